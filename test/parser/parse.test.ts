import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { Instruction, ParseResult } from '../../src/parser/index.js';
import { parseDockerfile } from '../../src/parser/index.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const conformance = path.resolve(repoRoot, '../shared/conformance');

const errors = (r: ParseResult) => r.diagnostics.filter((d) => d.severity === 'error');
const only = (text: string) => {
  const r = parseDockerfile(`FROM scratch\n${text}`);
  expect(errors(r)).toEqual([]);
  return r.ast.stages[0]!.instructions[0]!;
};
const firstError = (text: string) => errors(parseDockerfile(`FROM scratch\n${text}`))[0];

/** Drops ranges so instructions compare as plain data. */
function strip<T>(v: T): T {
  return JSON.parse(JSON.stringify(v, (k, x) => (k === 'range' || k.endsWith('Range') ? undefined : x))) as T;
}

describe('BuildKit instruction vectors (buildkit-instructions/vectors.json)', () => {
  const vectors = JSON.parse(readFileSync(path.join(conformance, 'buildkit-instructions/vectors.json'), 'utf8')) as {
    errors: { source: string; dockerfile: string; errorContains: string }[];
    ok: { source: string; dockerfile: string; expect: Record<string, unknown> }[];
  };

  it.each(vectors.errors.map((v) => [v.source, v] as const))('%s', (_name, v) => {
    // BuildKit converts only the first instruction; our diagnostics for it are those inside its range.
    const r = parseDockerfile(v.dockerfile);
    expect(r.syntaxValid).toBe(true);
    const first = r.raw.instructions[0]!;
    const messages = r.diagnostics
      .filter((d) => d.severity === 'error' && d.range.start.offset >= first.range.start.offset && d.range.start.offset <= first.range.end.offset)
      .map((d) => d.message);
    expect(messages.some((m) => m.includes(v.errorContains)), `${JSON.stringify(messages)} should contain ${v.errorContains}`).toBe(true);
  });

  /**
   * Field mapping, Go → ours:
   * - HealthcheckTest: ['CMD-SHELL', command] for the shell form, ['CMD', ...args] for exec, ['NONE'].
   * - FlagsUsed: the names of the RUN options present (mount when mounts is non-empty, network, security).
   * - stages[i].DocComment → ast.stages[i].docComment ('' when absent).
   * - metaArgs[i].Args[j] {Key, DocComment} → ast.metaArgs[i].args[j] {name, docComment}.
   * - stages[i].Commands[j].Args → the ARG instruction's args, same mapping.
   */
  function goView(r: ParseResult, first: Instruction | undefined, field: string): unknown {
    const argView = (a: { name: string; docComment?: string }) => ({ Key: a.name, DocComment: a.docComment ?? '' });
    if (field === 'HealthcheckTest') {
      if (first?.kind !== 'HEALTHCHECK') return undefined;
      const t = first.test;
      if (t.type === 'NONE') return ['NONE'];
      return t.command.form === 'shell' ? ['CMD-SHELL', t.command.command] : ['CMD', ...t.command.args];
    }
    if (field === 'FlagsUsed') {
      if (first?.kind !== 'RUN') return undefined;
      return [...(first.mounts.length ? ['mount'] : []), ...(first.network ? ['network'] : []), ...(first.security ? ['security'] : [])];
    }
    let m = /^stages\[(\d+)\]\.DocComment$/.exec(field);
    if (m) return r.ast.stages[Number(m[1])]?.docComment ?? '';
    m = /^metaArgs\[(\d+)\]\.Args\[(\d+)\]$/.exec(field);
    if (m) {
      const a = r.ast.metaArgs[Number(m[1])]?.args[Number(m[2])];
      return a && argView(a);
    }
    m = /^stages\[(\d+)\]\.Commands\[(\d+)\]\.Args(?:\[(\d+)\])?$/.exec(field);
    if (m) {
      const c = r.ast.stages[Number(m[1])]?.instructions[Number(m[2])];
      if (c?.kind !== 'ARG') return undefined;
      return m[3] === undefined ? c.args.map(argView) : c.args[Number(m[3])] && argView(c.args[Number(m[3])]!);
    }
    throw new Error(`no mapping for Go field ${field}`);
  }

  it.each(vectors.ok.map((v) => [v.source, v] as const))('%s', (_name, v) => {
    // BuildKit converts the vector's first instruction alone; a stage command needs a stage here.
    const opensStage = /^\s*(#.*\n\s*)*(FROM|ARG)\b/i.test(v.dockerfile);
    const r = parseDockerfile(opensStage ? v.dockerfile : `FROM scratch\n${v.dockerfile}`);
    expect(errors(r)).toEqual([]);
    const first = opensStage ? undefined : r.ast.stages[0]!.instructions[0];
    for (const [field, want] of Object.entries(v.expect)) {
      expect(goView(r, first, field), field).toEqual(want);
    }
  });
});

describe('parse-stage errors of the behaviors cases (behaviors/*/case.json)', () => {
  // The cases whose expected BuildKit error comes from the parser or the instructions package
  // (the others fail in the planner or the builder).
  const parseStage = [
    'add-chmod-invalid', 'copy-chmod-invalid-nonoctal', 'copy-chmod-invalid-range', 'empty-stages', 'error-copy-one-arg',
    'error-env-no-args', 'error-instruction-arg-counts', 'error-maintainer-unknown-flag', 'error-unknown-flag',
    'error-unknown-instruction', 'from-invalid-stage-name', 'from-wrong-arg-count', 'healthcheck-interval-too-small',
    'heredoc-copy-destination-error', 'onbuild-errors', 'onbuild-from-forbidden', 'shell-not-json-error', 'volume-empty-error',
  ];
  it.each(parseStage)('%s', (name) => {
    const dir = path.join(conformance, 'behaviors', name);
    const c = JSON.parse(readFileSync(path.join(dir, 'case.json'), 'utf8')) as { runs: { expect: { error?: { contains: string[]; lines?: number[] } } }[] };
    const want = c.runs[0]!.expect.error!;
    const r = parseDockerfile(readFileSync(path.join(dir, 'Dockerfile'), 'utf8'));
    const found = errors(r).filter((d) => want.contains.every((s) => d.message.includes(s)));
    expect(found.map((d) => d.message), JSON.stringify(errors(r).map((d) => d.message))).not.toEqual([]);
    if (want.lines) expect(found.map((d) => d.range.start.line)).toContain(want.lines[0]);
  });
});

describe('FROM', () => {
  it('reads image, platform and stage name with ranges', () => {
    const r = parseDockerfile('FROM --platform=$BUILDPLATFORM golang:1.22 AS Build\n');
    expect(errors(r)).toEqual([]);
    const s = r.ast.stages[0]!;
    expect(s.name).toBe('build');
    expect(s.nameAsWritten).toBe('Build');
    expect(s.from).toMatchObject({ image: 'golang:1.22', platform: '$BUILDPLATFORM', stageName: 'Build' });
    expect(s.from.imageRange).toMatchObject({ start: { line: 1, column: 32 }, end: { line: 1, column: 43 } });
    expect(s.from.stageNameRange).toMatchObject({ start: { line: 1, column: 47 }, end: { line: 1, column: 52 } });
  });

  it('rejects bad stage names and argument counts with BuildKit messages', () => {
    const r = parseDockerfile('FROM a AS 1st\nFROM b AS x y\nFROM c AS my_stage.v-2\nFROM\n');
    expect(errors(r).map((d) => [d.code, d.message, d.range.start.line, d.range.start.column])).toEqual([
      ['invalid-stage-name', 'invalid name for build stage: "1st", name can\'t start with a number or contain symbols', 1, 11],
      ['invalid-arguments', 'FROM requires either one or three arguments', 2, 6],
      ['missing-argument', 'FROM requires either one or three arguments', 4, 1],
    ]);
    expect(r.ast.stages.map((s) => s.name)).toEqual(['my_stage.v-2']);
  });

  it('groups instructions into stages and meta ARGs; an instruction before FROM is an error', () => {
    const r = parseDockerfile('ARG A=1\nARG B\nFROM x AS one\nRUN a\nFROM one\nCOPY . .\nENV k=v\n');
    expect(errors(r)).toEqual([]);
    expect(r.ast.metaArgs.flatMap((a) => a.args.map((x) => x.name))).toEqual(['A', 'B']);
    expect(r.ast.stages.map((s) => [s.index, s.name, s.instructions.map((i) => i.kind)])).toEqual([
      [0, 'one', ['RUN']],
      [1, undefined, ['COPY', 'ENV']],
    ]);
    expect(r.ast.stages[1]!.range).toMatchObject({ start: { line: 5, column: 1 }, end: { line: 7 } });
    const bad = parseDockerfile('RUN x\nFROM y\n');
    expect(errors(bad).map((d) => [d.code, d.message])).toEqual([['instruction-before-from', 'no build stage in current context']]);
  });

  it('a file with only ARGs has no stages', () => {
    expect(errors(parseDockerfile('ARG A\n')).map((d) => d.message)).toEqual(['dockerfile contains no stages to build']);
  });
});

describe('RUN', () => {
  it('shell and exec forms', () => {
    expect(strip(only('RUN echo "hi  there" \\\n  && true'))).toMatchObject({ kind: 'RUN', command: { form: 'shell', command: 'echo "hi  there"   && true' } });
    expect(strip(only('RUN ["echo", "a b"]'))).toMatchObject({ command: { form: 'exec', args: ['echo', 'a b'] } });
  });

  it('mounts, network and security', () => {
    const i = only('RUN --mount=type=cache,target=/root/.cache --mount=type=secret,id=tok --network=none --security=insecure make');
    expect(i.kind).toBe('RUN');
    if (i.kind !== 'RUN') return;
    expect(i.mounts.map((m) => [m.type, m.target, m.id])).toEqual([
      ['cache', '/root/.cache', undefined],
      ['secret', undefined, 'tok'],
    ]);
    expect([i.network, i.security]).toEqual(['none', 'insecure']);
    expect(firstError('RUN --network=bridge true')?.message).toBe('invalid network mode "bridge"');
    expect(firstError('RUN --security=root true')?.message).toBe('security "root" is not valid');
  });

  it('points mount errors at the offending field', () => {
    const d = firstError('RUN --mount=type=cahce,target=/x true')!;
    expect(d).toMatchObject({ code: 'unknown-mount-type', message: 'unsupported mount type "cahce" (did you mean cache?)', suggestion: 'cache' });
    expect(d.range).toMatchObject({ start: { line: 2, column: 13 }, end: { line: 2, column: 23 } });
  });

  it('heredocs', () => {
    const i = only('RUN <<EOF\necho hi\nEOF');
    if (i.kind !== 'RUN') throw new Error(i.kind);
    expect(i.command).toEqual({ form: 'shell', command: '<<EOF' });
    expect(i.heredocs.map((h) => [h.name, h.content])).toEqual([['EOF', 'echo hi\n']]);
  });
});

describe('CMD, ENTRYPOINT, SHELL', () => {
  it('exec vs shell form', () => {
    expect(strip(only('CMD ["a", "b"]'))).toMatchObject({ kind: 'CMD', command: { form: 'exec', args: ['a', 'b'] } });
    expect(strip(only('ENTRYPOINT exec  app --x'))).toMatchObject({ kind: 'ENTRYPOINT', command: { form: 'shell', command: 'exec  app --x' } });
    expect(strip(only('SHELL ["/bin/bash", "-o", "pipefail", "-c"]'))).toMatchObject({ kind: 'SHELL', shell: ['/bin/bash', '-o', 'pipefail', '-c'] });
  });
  it('SHELL requires JSON', () => {
    expect(firstError('SHELL /bin/bash -c')?.message).toBe('SHELL requires the arguments to be in JSON form');
    expect(firstError('SHELL []')?.message).toBe('SHELL requires at least one argument');
  });
});

describe('COPY and ADD', () => {
  it('all COPY flags', () => {
    const i = strip(only('COPY --from=build --chown=1:2 --chmod=u+x,g-w --link --parents --exclude=*.md --exclude=.git a b/ /dst/'));
    expect(i).toEqual({
      kind: 'COPY',
      keyword: 'COPY',
      sources: ['a', 'b/'],
      dest: '/dst/',
      from: 'build',
      chown: '1:2',
      chmod: 'u+x,g-w',
      link: true,
      parents: true,
      exclude: ['*.md', '.git'],
      heredocs: [],
      json: false,
    });
  });

  it('ADD-only flags', () => {
    const i = only('ADD --checksum=sha256:abc --keep-git-dir=true --unpack=false https://x/y.tar /y');
    expect(i).toMatchObject({ kind: 'ADD', checksum: 'sha256:abc', keepGitDir: true, unpack: false, sources: ['https://x/y.tar'] });
    expect(firstError('COPY --checksum=sha256:abc a b')?.message).toBe('unknown flag: --checksum');
    expect(firstError('COPY --keep-git-dir a b')?.message).toBe('unknown flag: --keep-git-dir');
  });

  it('--chmod: octal or symbolic, else BuildKit errors', () => {
    expect(only('COPY --chmod=0755 a b')).toMatchObject({ chmod: '0755' });
    expect(only('COPY --chmod=a=rwX,o-t a b')).toMatchObject({ chmod: 'a=rwX,o-t' });
    expect(only('COPY --chmod=$MODE a b')).toMatchObject({ chmod: '$MODE' });
    expect(firstError('COPY --chmod=17777 a b')?.message).toBe("invalid chmod parameter: '17777'. it should be octal string and between 0 and 07777");
    expect(firstError('COPY --chmod=789 a b')?.message).toBe("invalid chmod parameter: '789'. it should be octal string and between 0 and 07777");
    expect(firstError('COPY --chmod=u+q a b')?.message).toContain('invalid syntax');
  });

  it('JSON form and heredoc sources', () => {
    expect(only('COPY ["a b", "/c d/"]')).toMatchObject({ sources: ['a b'], dest: '/c d/', json: true });
    const i = only('COPY <<EOF <<-EOT2 /dst/\nhello\nEOF\n\tworld\nEOT2');
    if (i.kind !== 'COPY') throw new Error(i.kind);
    expect(i.sources).toEqual([]);
    expect(i.heredocs.map((h) => [h.name, h.content, h.chomp])).toEqual([
      ['EOF', 'hello\n', false],
      ['EOT2', '\tworld\n', true],
    ]);
  });

  it('argument errors', () => {
    expect(firstError('COPY a')?.message).toBe('COPY requires at least two arguments, but only one was provided. Destination could not be determined');
    expect(firstError('ADD <<EOF\nEOF')?.message).toContain('ADD requires at least two arguments');
  });
});

describe('ENV, LABEL, ARG', () => {
  it('both ENV forms, quotes kept', () => {
    expect(only('ENV A="x y" B=2')).toMatchObject({ pairs: [{ key: 'A', value: '"x y"', legacy: false }, { key: 'B', value: '2', legacy: false }] });
    expect(only('ENV PATH /usr/bin:$PATH')).toMatchObject({ pairs: [{ key: 'PATH', value: '/usr/bin:$PATH', legacy: true }] });
    expect(only('LABEL "com.example.vendor"="ACME Inc" version=1.0')).toMatchObject({ kind: 'LABEL', pairs: [{ key: '"com.example.vendor"', value: '"ACME Inc"' }, { key: 'version', value: '1.0' }] });
  });
  it('ARG with and without defaults, several per line', () => {
    expect(only('ARG A B=2 C="x y" D=')).toMatchObject({ args: [{ name: 'A' }, { name: 'B', defaultValue: '2' }, { name: 'C', defaultValue: '"x y"' }, { name: 'D', defaultValue: '' }] });
    expect((only('ARG A') as unknown as { args: object[] }).args[0]).not.toHaveProperty('defaultValue');
    expect(firstError('ARG =x')?.message).toBe('ARG names can not be blank');
  });
});

describe('the other instructions', () => {
  it('EXPOSE sorts like BuildKit; USER, WORKDIR, VOLUME, STOPSIGNAL, MAINTAINER', () => {
    expect(only('EXPOSE 8080/tcp 443 80')).toMatchObject({ ports: ['443', '80', '8080/tcp'] });
    expect(only('USER app:app')).toMatchObject({ kind: 'USER', user: 'app:app' });
    expect(only('WORKDIR /app')).toMatchObject({ kind: 'WORKDIR', path: '/app' });
    expect(only('VOLUME ["/a", "/b"]')).toMatchObject({ kind: 'VOLUME', paths: ['/a', '/b'] });
    expect(only('VOLUME /a /b')).toMatchObject({ kind: 'VOLUME', paths: ['/a', '/b'] });
    expect(only('STOPSIGNAL SIGKILL')).toMatchObject({ kind: 'STOPSIGNAL', signal: 'SIGKILL' });
    expect(only('MAINTAINER me <me@example.com>')).toMatchObject({ kind: 'MAINTAINER', maintainer: 'me <me@example.com>' });
    expect(firstError('USER')?.message).toBe('USER requires exactly one argument');
    expect(firstError('VOLUME [""]')?.message).toBe('VOLUME specified can not be an empty string');
  });

  it('HEALTHCHECK: flags, durations, NONE, CMD forms', () => {
    expect(only('HEALTHCHECK --interval=30s --timeout=1m30s --start-period=5s --start-interval=500ms --retries=3 CMD curl -f http://x/ || exit 1')).toMatchObject({
      test: { type: 'CMD', command: { form: 'shell', command: 'curl -f http://x/ || exit 1' } },
      interval: 30e9,
      timeout: 90e9,
      startPeriod: 5e9,
      startInterval: 5e8,
      retries: 3,
    });
    expect(only('HEALTHCHECK CMD ["true"]')).toMatchObject({ test: { type: 'CMD', command: { form: 'exec', args: ['true'] } } });
    expect(only('HEALTHCHECK none')).toMatchObject({ test: { type: 'NONE' } });
    expect(firstError('HEALTHCHECK NONE x')?.message).toBe('HEALTHCHECK NONE takes no arguments');
    expect(firstError('HEALTHCHECK --interval=10 CMD x')?.message).toBe('time: missing unit in duration "10"');
    expect(firstError('HEALTHCHECK --timeout=10us CMD x')?.message).toBe('Interval "timeout" cannot be less than 1ms');
    expect(firstError('HEALTHCHECK --retries=-1 CMD x')?.message).toBe('--retries cannot be negative (-1)');
    expect(firstError('HEALTHCHECK --retries=x CMD x')?.message).toBe('strconv.ParseInt: parsing "x": invalid syntax');
    expect(firstError('HEALTHCHECK CMD')?.message).toBe('Missing command after HEALTHCHECK CMD');
    expect(firstError('HEALTHCHECK RUN x')?.message).toBe('Unknown type "RUN" in HEALTHCHECK (try CMD)');
    expect(firstError('HEALTHCHECK --intervl=1s CMD x')?.message).toBe('unknown flag: --intervl (did you mean interval?)');
  });

  it('ONBUILD keeps the expression and types its trigger', () => {
    const i = only('ONBUILD RUN --mount=type=cache,target=/c make');
    expect(i).toMatchObject({ kind: 'ONBUILD', expression: 'RUN --mount=type=cache,target=/c make', trigger: { kind: 'RUN', mounts: [{ type: 'cache' }] } });
    const w = parseDockerfile('FROM x\nONBUILD COPY a\n');
    expect(errors(w)).toEqual([]);
    expect(w.diagnostics.map((d) => [d.severity, d.message])).toEqual([['warning', 'ONBUILD trigger: COPY requires at least two arguments, but only one was provided. Destination could not be determined']]);
  });

  it('unknown instructions get did-you-mean', () => {
    const d = firstError('RNU make')!;
    expect(d).toMatchObject({ code: 'unknown-instruction', message: 'unknown instruction: RNU (did you mean RUN?)', suggestion: 'RUN' });
    expect(d.range).toMatchObject({ start: { line: 2, column: 1 }, end: { line: 2, column: 4 } });
    expect(firstError('copi a b')?.message).toBe('unknown instruction: copi (did you mean copy?)');
  });
});

describe('parseDockerfile', () => {
  it('reports every error in the file, in order, and never throws', () => {
    const r = parseDockerfile('FROM x\nRNU a\nCOPY --form=a b c\nUSER\nRUN --mount=type=nope true\n', { file: 'df' });
    expect(errors(r).map((d) => [d.range.start.line, d.code, d.file])).toEqual([
      [2, 'unknown-instruction', 'df'],
      [3, 'unknown-flag', 'df'],
      [4, 'missing-argument', 'df'],
      [5, 'unknown-mount-type', 'df'],
    ]);
    expect(r.syntaxValid).toBe(true);
    for (const junk of ['', '\\', 'FROM x\nRUN <<EOF\n', '# escape=`\nFROM x\nRUN a `', '\u0000\uffff', 'FROM [', 'CMD ["a", [1]]']) {
      expect(() => parseDockerfile(junk)).not.toThrow();
    }
  });

  it('accepts the standard syntax directive from any mirror, warns for other frontends', () => {
    for (const v of ['docker/dockerfile:1', 'docker/dockerfile-upstream:master', 'mirror.gcr.io/docker/dockerfile:1.9-labs', 'localhost:5000/docker/dockerfile:1']) {
      expect(parseDockerfile(`# syntax=${v}\nFROM x\n`).diagnostics).toEqual([]);
    }
    const w = parseDockerfile('# syntax=example.com/frontend:1\nFROM x\n').diagnostics;
    expect(w.map((d) => [d.severity, d.code, d.range.start.line])).toEqual([['warning', 'unsupported-syntax', 1]]);
  });

  it('RUN --device values and mounts with variables are kept for the planner', () => {
    const r = parseDockerfile('FROM x\nRUN --device=nvidia.com/gpu=all --mount=type=cache,target=$HOME/.cache,uid=$UID true\n');
    expect(errors(r)).toEqual([]);
    expect(r.ast.stages[0]!.instructions[0]).toMatchObject({
      devices: ['nvidia.com/gpu=all'],
      mounts: [{ type: 'cache', target: '$HOME/.cache', spec: 'type=cache,target=$HOME/.cache,uid=$UID' }],
    });
  });

  it('DocComments as BuildKit reads them', () => {
    const r = parseDockerfile('# syntax=docker/dockerfile:1\n# base is the base\n#\n# base really\nFROM x AS base\n');
    expect(r.ast.stages[0]!.docComment).toBe('really');
  });

  it('real-world images parse without errors (corpus: official, vendor and project files)', () => {
    const index = readFileSync(path.join(conformance, 'corpus/INDEX.tsv'), 'utf8').trim().split('\n').slice(1);
    const failures: string[] = [];
    let checked = 0;
    for (const line of index) {
      const [file, , , , , , kind] = line.split('\t');
      if (kind === 'builder-testdata') continue;
      const r = parseDockerfile(readFileSync(path.join(conformance, 'corpus', file!), 'utf8'), { file });
      checked++;
      for (const d of errors(r)) failures.push(`${file}:${d.range.start.line}: ${d.message}`);
    }
    expect(checked).toBeGreaterThan(1000);
    expect(failures).toEqual([]);
  });
});
