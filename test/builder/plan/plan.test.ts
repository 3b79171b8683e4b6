import { describe, expect, test } from 'vitest';
import { planBuild, semanticOp, type BuildGraph, type ExecOp, type CopyOp, type PlanOptions, type StagePlan } from '../../../src/builder/plan/index.js';
import { parseDockerfile } from '../../../src/parser/index.js';
import type { Diagnostic } from '../../../src/parser/diagnostics.js';

function plan(text: string, options: PlanOptions = {}): { graph: BuildGraph; diagnostics: readonly Diagnostic[]; errors: Diagnostic[] } {
  const parsed = parseDockerfile(text, { file: 'Dockerfile' });
  const parseErrors = parsed.diagnostics.filter((d) => d.severity === 'error');
  expect(parseErrors.map((d) => d.message), 'the test Dockerfile parses').toEqual([]);
  const r = planBuild(parsed.ast, { platform: 'linux/amd64', buildPlatform: 'linux/amd64', source: text, ...options });
  return { ...r, errors: r.diagnostics.filter((d) => d.severity === 'error') };
}

function ok(text: string, options: PlanOptions = {}): BuildGraph {
  const r = plan(text, options);
  expect(r.errors.map((d) => d.message)).toEqual([]);
  return r.graph;
}

const stage = (g: BuildGraph, name: string): StagePlan => g.stages.find((s) => s.name === name)!;
const env = (s: StagePlan) => s.config.Env ?? [];
const execs = (s: StagePlan) => s.ops.filter((o): o is ExecOp => o.type === 'tsbuild.exec.v1');
const copies = (s: StagePlan) => s.ops.filter((o): o is CopyOp => o.type === 'tsbuild.file.copy.v1');

describe('ARG scoping', () => {
  test('a global ARG is usable in FROM but invisible in the stage until re-declared', () => {
    const g = ok(`ARG BASE=scratch\nARG V=1\nFROM \${BASE} AS a\nENV before=[\${V}]\nARG V\nENV after=[\${V}]\n`);
    const a = stage(g, 'a');
    expect(a.base).toEqual({ kind: 'scratch' });
    expect(env(a)).toContain('before=[]');
    expect(env(a)).toContain('after=[1]');
  });

  test('build args override global and stage defaults; ARG values never reach the config Env', () => {
    const g = ok(`ARG V=global\nFROM scratch\nARG V\nARG W=wdefault\nENV seen=\${V}-\${W}\n`, { buildArgs: { V: 'cli', W: 'wcli' } });
    const s = g.stages[0]!;
    expect(env(s)).toEqual(['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'seen=cli-wcli']);
  });

  test('a default is expanded against the stage env at that point', () => {
    const g = ok(`FROM scratch\nENV A=x\nARG B=\${A}y\nENV C=\$B\n`);
    expect(env(g.stages[0]!)).toContain('C=xy');
  });

  test('predefined platform args: global in FROM, in a stage only when declared', () => {
    const g = ok(`FROM scratch AS build-arm\nFROM build-\${TARGETARCH} AS s\nENV before=[\${TARGETOS}]\nARG TARGETOS TARGETARCH TARGETVARIANT BUILDPLATFORM\nENV after=\${TARGETOS}/\${TARGETARCH}/\${TARGETVARIANT}/\${BUILDPLATFORM}\n`, {
      platform: 'linux/arm/v7',
      buildPlatform: 'linux/amd64',
    });
    const s = stage(g, 's');
    expect(s.base).toEqual({ kind: 'stage', stage: 0 });
    expect(env(s)).toContain('before=[]');
    expect(env(s)).toContain('after=linux/arm/v7/linux/amd64');
    expect(s.platform).toBe('linux/arm/v7');
    expect(g.platform).toEqual({ target: 'linux/arm/v7', build: 'linux/amd64' });
  });

  test('TARGETSTAGE is the --target, else the last stage name, else "default"', () => {
    const text = `FROM scratch AS one\nARG TARGETSTAGE\nENV t=\${TARGETSTAGE}\nFROM one AS two\n`;
    expect(env(stage(ok(text, { target: 'one' }), 'one'))).toContain('t=one');
    expect(env(stage(ok(text), 'two'))).toContain('t=two');
    expect(env(ok(`FROM scratch\nARG TARGETSTAGE\nENV t=\${TARGETSTAGE}\n`).stages[0]!)).toContain('t=default');
  });

  test('a build arg no ARG declares is reported as a warning; declared and predefined ones are not', () => {
    const r = plan(`ARG G\nFROM scratch\nARG S\n`, { buildArgs: { G: '1', S: '2', NOPE: '3', HTTP_PROXY: 'http://p', TARGETOS: 'linux' } });
    expect(r.errors).toEqual([]);
    const w = r.diagnostics.filter((d) => d.code === 'unused-build-arg');
    expect(w).toHaveLength(1);
    expect(w[0]!.severity).toBe('warning');
    expect(w[0]!.message).toBe('One or more build-args [NOPE] were not consumed');
  });

  test('proxy build args reach RUN but not its history or env', () => {
    const g = ok(`FROM busybox\nRUN echo hi\n`, { buildArgs: { HTTP_PROXY: 'http://proxy:3128', no_proxy: 'x' } });
    const run = execs(g.stages[0]!)[0]!;
    expect(run.proxyEnv).toEqual({ HTTP_PROXY: 'http://proxy:3128', no_proxy: 'x' });
    expect(run.env.join(' ')).not.toContain('proxy');
    expect(run.meta.history?.created_by).toBe('RUN /bin/sh -c echo hi # buildkit');
  });

  test('RUN history lists the stage ARGs as |n k=v; RUN env includes them; the command is not expanded', () => {
    const g = ok(`FROM busybox\nARG foo=bar\nENV E=e\nRUN echo $foo $E\n`);
    const run = execs(g.stages[0]!)[0]!;
    expect(run.args).toEqual(['/bin/sh', '-c', 'echo $foo $E']);
    expect(run.env).toContain('foo=bar');
    expect(run.env).toContain('E=e');
    expect(run.meta.history?.created_by).toBe('RUN |1 foo=bar /bin/sh -c echo $foo $E # buildkit');
    expect(run.meta.name).toBe('RUN echo bar e');
  });
});

describe('stage graph', () => {
  const text = [
    'FROM scratch AS base', // 1
    'COPY a /a', // 2
    'FROM base AS left', // 3
    'COPY b /b', // 4
    'FROM scratch AS right', // 5
    'COPY --from=base /a /ra', // 6
    'FROM scratch AS unused', // 7
    'COPY c /c', // 8
    'FROM scratch AS final', // 9
    'COPY --from=left /b /b', // 10
    'RUN --mount=type=bind,from=right,target=/r true', // 11
    '',
  ].join('\n');

  test('edges by kind with positions, pruning, and parallel levels', () => {
    const g = ok(text);
    expect(g.target).toBe(4);
    const edges = (s: StagePlan) => s.dependsOn.map((e) => `${e.kind}:${e.stage}@${e.range.start.line}`);
    expect(edges(stage(g, 'left'))).toEqual(['from:0@3']);
    expect(edges(stage(g, 'right'))).toEqual(['copy:0@6']);
    expect(edges(stage(g, 'final'))).toEqual(['copy:1@10', 'mount:2@11']);
    expect(g.stages.map((s) => s.reachable)).toEqual([true, true, true, false, true]);
    expect(stage(g, 'unused').ops).toEqual([]);
    expect(g.levels).toEqual([[0], [1, 2], [4]]);
  });

  test('ops link to their inputs: the stage chain and other stages\' results', () => {
    const g = ok(text);
    const base = stage(g, 'base');
    const left = stage(g, 'left');
    const final = stage(g, 'final');
    expect(left.ops[0]!.inputs.parent).toBe(base.result);
    const cp = copies(final)[0]!;
    expect(cp.from).toEqual({ kind: 'stage', stage: 1, op: left.result });
    expect(cp.inputs).toEqual({ sources: [left.result] });
    const run = execs(final)[0]!;
    expect(run.inputs).toEqual({ parent: cp.id, sources: [stage(g, 'right').result] });
    expect(run.mounts[0]).toEqual({ type: 'bind', target: '/r', source: '/', from: { kind: 'stage', stage: 2, op: stage(g, 'right').result }, readonly: true });
    expect(final.result).toBe(run.id);
  });

  test('--target prunes to what the target reaches; names match case-insensitively', () => {
    const g = ok(text, { target: 'RIGHT' });
    expect(g.target).toBe(2);
    expect(g.stages.filter((s) => s.reachable).map((s) => s.index)).toEqual([0, 2]);
    expect(g.levels).toEqual([[0], [2]]);
  });

  test('unreachable stages are not dispatched, so their errors do not fail the build', () => {
    const r = plan(`FROM scratch AS broken\nWORKDIR \${MISSING:?must be set}\nFROM scratch AS good\nCOPY a /a\n`);
    expect(r.errors).toEqual([]);
    const r2 = plan(`FROM scratch AS broken\nWORKDIR \${MISSING:?must be set}\nFROM scratch AS good\nCOPY a /a\n`, { target: 'broken' });
    expect(r2.errors[0]!.message).toContain('MISSING: must be set');
    expect(r2.errors[0]!.range.start.line).toBe(2);
  });

  test('COPY --from by index, and an image reference as an external source', () => {
    const g = ok(`FROM scratch\nCOPY a /a\nFROM scratch\nCOPY --from=0 /a /b\nCOPY --from=alpine:3.20 /etc/os-release /c\nCOPY --from=alpine:3.20 /etc/hostname /d\n`);
    const s = g.stages[1]!;
    expect(s.dependsOn.map((e) => [e.kind, e.stage])).toEqual([['copy', 0]]);
    expect(g.sources).toHaveLength(1);
    expect(g.sources[0]).toMatchObject({ type: 'tsbuild.source.image.v1', ref: 'alpine:3.20', platform: 'linux/amd64' });
    const [, c2, c3] = copies(s);
    expect(c2!.from).toEqual({ kind: 'image', ref: 'alpine:3.20', op: g.sources[0]!.id });
    expect(c3!.inputs.sources).toEqual([g.sources[0]!.id]);
  });

  test('FROM of a stage defined later is an image, not the stage', () => {
    const g = ok(`FROM later AS first\nFROM scratch AS later\n`, { target: 'first' });
    expect(g.stages[0]!.base).toMatchObject({ kind: 'image', ref: 'later' });
    expect(g.stages[1]!.reachable).toBe(false);
  });
});

describe('planning errors, with positions', () => {
  test('unknown --target, with BuildKit\'s did-you-mean', () => {
    const r = plan(`FROM scratch AS build\nFROM scratch AS test\n`, { target: 'bulid' });
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]!.code).toBe('unknown-target');
    expect(r.errors[0]!.message).toBe('target stage "bulid" could not be found (did you mean build?)');
    expect(r.errors[0]!.suggestion).toBe('build');
    expect(plan(`FROM scratch AS build\n`, { target: 'zzzzzz' }).errors[0]!.message).toBe('target stage "zzzzzz" could not be found');
  });

  test('a cycle through COPY --from names the first stage and points at the COPY', () => {
    const r = plan(`FROM scratch AS a\nCOPY --from=c /x /x\nFROM scratch AS b\nCOPY --from=a /x /x\nFROM scratch AS c\nCOPY --from=b /x /x\n`);
    expect(r.errors[0]!.code).toBe('circular-dependency');
    expect(r.errors[0]!.message).toBe('circular dependency detected on stage: a');
    expect(r.errors[0]!.range.start.line).toBe(2);
    expect(r.graph.stages).toEqual([]);
  });

  test('a stage copying from itself is a cycle', () => {
    const r = plan(`FROM scratch\nCOPY a /a\nFROM scratch AS self\nRUN --mount=from=self,target=/m true\n`);
    expect(r.errors[0]!.message).toBe('circular dependency detected on stage: self');
    expect(r.errors[0]!.range.start.line).toBe(4);
  });

  test('COPY --from a stage defined later (forward reference)', () => {
    const r = plan(`FROM scratch AS target\nCOPY --from=build / /out\nFROM scratch AS build\nCOPY f /f\nFROM target\n`);
    expect(r.errors[0]!.message).toBe('cannot copy from stage "build", it needs to be defined before current stage "target"');
    expect(r.errors[0]!.range.start.line).toBe(2);
  });

  test('unknown stage index', () => {
    const r = plan(`FROM scratch\nCOPY --from=3 /a /a\n`);
    expect(r.errors[0]!.message).toBe('invalid stage index 3');
    expect(r.errors[0]!.range.start.line).toBe(2);
  });

  test('variables in --from are refused', () => {
    const r = plan(`FROM scratch\nARG X=y\nCOPY --from=\${X} /a /a\n`);
    expect(r.errors[0]!.message).toContain('variable expansion is not supported for --from');
    expect(r.errors[0]!.range.start.line).toBe(3);
  });

  test('a blank base name', () => {
    const r = plan(`ARG EMPTY\nFROM \${EMPTY}\n`);
    expect(r.errors[0]!.message).toBe('base name (${EMPTY}) should not be blank');
    expect(r.errors[0]!.range.start.line).toBe(2);
  });

  test('an expansion error names the variable and the line', () => {
    const r = plan(`FROM scratch\n\nENV A=\${NOPE:?required}\n`);
    expect(r.errors[0]!.message).toContain('NOPE: required');
    expect(r.errors[0]!.range.start.line).toBe(3);
  });

  test('a bad --platform', () => {
    const r = plan(`FROM scratch\n`, { platform: 'linux//' });
    expect(r.errors[0]!.code).toBe('invalid-platform');
  });
});

describe('ops and config', () => {
  test('ENV accumulates and keeps position on override; expansion sees only earlier instructions', () => {
    const g = ok(`FROM scratch\nENV A=1 B=2\nENV A=3 C=\${A}\n`);
    expect(env(g.stages[0]!).slice(1)).toEqual(['A=3', 'B=2', 'C=1']);
  });

  test('WORKDIR: relative chain, expansion, mkdir op owned by USER; WORKDIR / is config only', () => {
    const g = ok(`FROM scratch\nENV D=sub\nUSER 1000\nWORKDIR /a\nWORKDIR \${D}/../b\nWORKDIR /\n`);
    const s = g.stages[0]!;
    const mk = s.ops.filter((o) => o.type === 'tsbuild.file.mkdir.v1');
    expect(mk.map((o) => [o.type === 'tsbuild.file.mkdir.v1' && o.path, o.type === 'tsbuild.file.mkdir.v1' && o.user])).toEqual([
      ['/a', '1000'],
      ['/a/b', '1000'],
    ]);
    expect(s.config.WorkingDir).toBe('/');
    expect(s.history.map((h) => [h.created_by, h.empty_layer])).toContainEqual(['WORKDIR /', true]);
  });

  test('COPY: expanded sources and flags, destination resolved against WORKDIR, BuildKit history', () => {
    const g = ok(`FROM scratch\nENV S=src D=dst U=1:2\nWORKDIR /w\nCOPY --chown=\${U} --chmod=640 \${S}/a.txt "\${D}/"\n`);
    const cp = copies(g.stages[0]!)[0]!;
    expect(cp.sources).toEqual(['src/a.txt']);
    expect(cp.dest).toBe('/w/dst/');
    expect(cp.chown).toBe('1:2');
    expect(cp.chmod).toEqual({ mode: 0o640 });
    expect(cp.meta.history?.created_by).toBe('COPY --chown=1:2 --chmod=640 src/a.txt dst/ # buildkit');
    expect(cp.meta.name).toBe('COPY --chown=1:2 --chmod=640 src/a.txt dst/');
    expect(cp.meta.step).toBe(2);
    expect(cp.meta.steps).toBe(2);
  });

  test('ADD defaults to unpacking; COPY rejects URLs', () => {
    const g = ok(`FROM scratch\nADD a.tar /x/\n`);
    expect(copies(g.stages[0]!)[0]).toMatchObject({ instruction: 'ADD', unpack: true, dest: '/x/' });
    expect(plan(`FROM scratch\nCOPY https://example.com/a /a\n`).errors[0]!.message).toBe("source can't be a URL for COPY");
  });

  test('RUN mounts are expanded and defaulted; shell form uses the stage SHELL', () => {
    const g = ok(`FROM busybox\nENV C=/root/.cache\nSHELL ["/bin/bash", "-c"]\nRUN --mount=type=cache,target=\${C} --mount=type=secret,id=tok --mount=type=tmpfs,target=/t --network=none echo hi\n`);
    const run = execs(g.stages[0]!)[0]!;
    expect(run.args).toEqual(['/bin/bash', '-c', 'echo hi']);
    expect(run.network).toBe('none');
    expect(run.mounts).toEqual([
      { type: 'cache', target: '/root/.cache', id: '/root/.cache', sharing: 'shared', readonly: false, mode: 0o755, uid: 0, gid: 0 },
      { type: 'secret', id: 'tok', target: '/run/secrets/tok', required: false, mode: 0o400, uid: 0, gid: 0 },
      { type: 'tmpfs', target: '/t', size: 0 },
    ]);
  });

  test('RUN heredocs: a shebang script is mounted and run, a plain body is run by the shell', () => {
    const g = ok(`FROM busybox\nRUN <<EOF\n#!/bin/sh\necho script\nEOF\nRUN <<EOF\necho plain\nEOF\n`);
    const [a, b] = execs(g.stages[0]!);
    expect(a!.args).toEqual(['/bin/sh', '-c', '/dev/pipes/EOF']);
    expect(a!.mounts).toEqual([{ type: 'inline', target: '/dev/pipes', files: [{ name: 'EOF', content: '#!/bin/sh\necho script\n', mode: 0o755 }] }]);
    expect(b!.args).toEqual(['/bin/sh', '-c', 'echo plain\n']);
  });

  test('COPY heredocs become inline files, expanded unless the delimiter is quoted', () => {
    const g = ok(`FROM scratch\nENV N=world\nCOPY <<EOF <<"RAW" /out/\nhello $N\nEOF\nkeep $N\nRAW\n`);
    const cp = copies(g.stages[0]!)[0]!;
    expect(cp.inline).toEqual([
      { name: 'EOF', content: 'hello world\n', mode: 0o644 },
      { name: 'RAW', content: 'keep $N\n', mode: 0o644 },
    ]);
    expect(cp.meta.history?.created_by).toBe('COPY <<EOF <<RAW /out/ # buildkit');
  });

  test('CMD/ENTRYPOINT: ENTRYPOINT clears an inherited CMD but keeps one set in the same stage', () => {
    const g = ok(`FROM scratch AS a\nCMD ["x"]\nFROM a AS b\nENTRYPOINT ["e"]\nFROM scratch AS c\nCMD ["y"]\nENTRYPOINT e2\n`, { target: 'c' });
    expect(stage(g, 'c').config).toMatchObject({ Cmd: ['y'], Entrypoint: ['/bin/sh', '-c', 'e2'] });
    const gb = ok(`FROM scratch AS a\nCMD ["x"]\nFROM a AS b\nENTRYPOINT ["e"]\n`);
    expect(stage(gb, 'b').config.Cmd).toBeUndefined();
  });

  test('a stage built on another inherits config, env, ARGs and history; the parent\'s ONBUILD triggers run first', () => {
    const g = ok(`FROM scratch AS src\nCOPY f /f\nFROM scratch AS base\nARG V=1\nLABEL l=base\nONBUILD COPY --from=src /f /g\nFROM base AS child\nRUN true\n`);
    const child = stage(g, 'child');
    expect(child.dependsOn.map((e) => [e.kind, e.stage, e.onbuild ?? false])).toEqual([
      ['from', 1, false],
      ['copy', 0, true],
    ]);
    const [trigger, run] = child.ops;
    expect(trigger).toMatchObject({ type: 'tsbuild.file.copy.v1', from: { kind: 'stage', stage: 0 } });
    expect(trigger!.meta.onbuild).toBe(true);
    expect(trigger!.meta.range.start.line).toBe(7);
    expect((run as ExecOp).meta.history?.created_by).toBe('RUN |1 V=1 /bin/sh -c true # buildkit');
    expect(child.config.Labels).toEqual({ l: 'base' });
    expect(child.config.OnBuild).toBeUndefined();
    expect(stage(g, 'base').config.OnBuild).toEqual(['COPY --from=src /f /g']);
    expect(child.history.map((h) => h.created_by)).toEqual(['ARG V=1', 'LABEL l=base', 'COPY /f /g # buildkit', 'RUN |1 V=1 /bin/sh -c true # buildkit']);
  });

  test('an image base config, when given, seeds env, workdir, user, shell, and its ONBUILD triggers run first', () => {
    const text = `FROM scratch AS files\nCOPY f /f\nFROM example/base:1\nRUN echo $HOME\nCOPY rel rel\n`;
    const unknown = ok(text);
    expect(unknown.stages[1]!.baseConfigKnown).toBe(false);
    const g = ok(text, {
      baseImage: (ref, platform) =>
        ref === 'example/base:1' && platform === 'linux/amd64'
          ? {
              os: 'linux',
              architecture: 'amd64',
              config: { Env: ['HOME=/home/u', 'PATH=/opt/bin'], WorkingDir: '/srv', User: 'u', Shell: ['/bin/ash', '-c'], OnBuild: ['COPY --from=files /f /onbuild'] },
            }
          : undefined,
    });
    const s = g.stages[1]!;
    expect(s.baseConfigKnown).toBe(true);
    expect(s.dependsOn.map((e) => [e.kind, e.stage, e.onbuild])).toEqual([['copy', 0, true]]);
    const [trig, run, cp] = s.ops as [CopyOp, ExecOp, CopyOp];
    expect(trig.from).toMatchObject({ kind: 'stage', stage: 0 });
    expect(run.args).toEqual(['/bin/ash', '-c', 'echo $HOME']);
    expect(run.env).toEqual(['HOME=/home/u', 'PATH=/opt/bin']);
    expect(run.cwd).toBe('/srv');
    expect(run.user).toBe('u');
    expect(cp.dest).toBe('/srv/rel');
    expect(s.config.OnBuild).toBeUndefined();
    expect(g.sources).toEqual([expect.objectContaining({ type: 'tsbuild.source.image.v1', ref: 'example/base:1' })]);
    expect(trig.inputs.parent).toBe(g.sources[0]!.id);
  });

  test('progress names as BuildKit prints them: stage prefix, padded step, ONBUILD marker', () => {
    const single = ok(`FROM scratch\n${Array.from({ length: 10 }, (_, i) => `COPY f${i} /f${i}\n`).join('')}`);
    const names = single.stages[0]!.ops.map((o) => o.meta.progressName);
    expect(names[0]).toBe('[ 1/10] COPY f0 /f0');
    expect(names[9]).toBe('[10/10] COPY f9 /f9');
    // A mount source (even none: scratch) is one more dispatch state, so the stage gets its name.
    const withMount = ok(`FROM busybox\nRUN --mount=type=cache,target=/c true\n`);
    expect(withMount.stages[0]!.ops[0]!.meta.progressName).toBe('[stage-0 2/2] RUN --mount=type=cache,target=/c true');
    const onb = ok(`FROM scratch AS base\nONBUILD COPY a /a\nFROM base AS child\nCOPY b /b\n`);
    expect(stage(onb, 'child').ops.map((o) => o.meta.progressName)).toEqual(['[child 1/2] ONBUILD COPY a /a', '[child 2/2] COPY b /b']);
  });

  test('semanticOp drops id and meta (what cache keys must not see)', () => {
    const g1 = ok(`FROM scratch\nCOPY a /a\n`);
    const g2 = ok(`\n\n# moved down\nFROM scratch\n\nCOPY a /a\n`);
    const a = copies(g1.stages[0]!)[0]!;
    const b = copies(g2.stages[0]!)[0]!;
    expect(a.meta.range).not.toEqual(b.meta.range);
    expect(semanticOp(a)).toEqual(semanticOp(b));
    expect(semanticOp(a)).not.toHaveProperty('meta');
  });

  test('the graph is plain JSON', () => {
    const g = ok(`FROM scratch AS a\nCOPY a /a\nFROM a\nRUN --mount=type=cache,target=/c true\n`);
    expect(JSON.parse(JSON.stringify(g))).toEqual(g);
  });
});
