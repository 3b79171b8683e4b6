import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runCli } from '../helpers/cli.js';

const DOCKERFILE = `FROM scratch AS base
COPY a /a

FROM base AS build
COPY b /b

FROM scratch AS assets
COPY --from=base /a /assets/a

FROM scratch AS unused
COPY z /z

FROM scratch AS final
COPY --from=build /b /b
RUN --mount=type=bind,from=assets,target=/m true
COPY --from=busybox:1.36 /bin/busybox /busybox
`;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tsbuild-graph-'));
  writeFileSync(join(dir, 'Dockerfile'), DOCKERFILE);
  writeFileSync(join(dir, 'Bad.Dockerfile'), 'FROM scratch AS a\nCOPY --from=b /x /x\nFROM scratch AS b\nCOPY --from=a /y /y\n');
  writeFileSync(join(dir, 'Syntax.Dockerfile'), 'FROM scratch\nFNTRYPOINT ["x"]\n');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('tsbuild graph', () => {
  test('json: the plan, pruned to the target', async () => {
    const r = await runCli(['graph', '--format', 'json', dir]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const g = JSON.parse(r.stdout) as { version: number; target: number; stages: { name: string; reachable: boolean; dependsOn: { kind: string; stage: number }[] }[]; levels: number[][] };
    expect(g.version).toBe(1);
    expect(g.target).toBe(4);
    expect(g.stages.map((s) => [s.name, s.reachable])).toEqual([
      ['base', true],
      ['build', true],
      ['assets', true],
      ['unused', false],
      ['final', true],
    ]);
    expect(g.stages[4]!.dependsOn).toEqual([
      expect.objectContaining({ kind: 'copy', stage: 1 }),
      expect.objectContaining({ kind: 'mount', stage: 2 }),
    ]);
    expect(g.levels).toEqual([[0], [1, 2], [4]]);
  });

  test('dot: stage nodes with base, labelled edges, external image, no pruned stage', async () => {
    const r = await runCli(['graph', dir], { cwd: dir });
    expect(r.code).toBe(0);
    const out = r.stdout;
    expect(out.startsWith('digraph build {')).toBe(true);
    expect(out).toContain('s0 [label="0: base\\nFROM scratch\\nlinux/amd64"];');
    expect(out).toContain('s4 [label="4: final (target)\\nFROM scratch\\nlinux/amd64", style=bold];');
    expect(out).toContain('s0 -> s1 [label="from"];');
    expect(out).toContain('s0 -> s2 [label="copy"];');
    expect(out).toContain('s1 -> s4 [label="copy"];');
    expect(out).toContain('s2 -> s4 [label="mount"];');
    expect(out).toMatch(/x0 \[label="busybox:1\.36", shape=ellipse\];\n[\s\S]*x0 -> s4 \[label="copy"\];/);
    expect(out).not.toContain('unused');
  });

  test('dot --all shows pruned stages greyed and dashed', async () => {
    const r = await runCli(['graph', '--all', dir]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('s3 [label="3: unused (not needed)\\nFROM scratch\\nlinux/amd64", style=dashed, color=grey, fontcolor=grey];');
  });

  test('mermaid, with --target pruning and the edge kinds', async () => {
    const r = await runCli(['graph', '--format', 'mermaid', '--target', 'ASSETS', dir]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      [
        'flowchart LR',
        '  s0["0: base<br/>FROM scratch<br/>linux/amd64"]',
        '  s2["2: assets (target)<br/>FROM scratch<br/>linux/amd64"]',
        '  s0 -->|copy| s2',
        '  classDef target stroke-width:3px;',
        '  class s2 target;',
        '',
      ].join('\n'),
    );
  });

  test('-f, --build-arg and --platform reach the plan', async () => {
    writeFileSync(join(dir, 'Args.Dockerfile'), 'ARG BASE\nFROM ${BASE} AS x\nARG TARGETARCH\nENV A=$TARGETARCH\n');
    const r = await runCli(['graph', '-f', join(dir, 'Args.Dockerfile'), '--build-arg', 'BASE=scratch', '--platform', 'linux/arm64', '--format', 'json', dir]);
    expect(r.code).toBe(0);
    const g = JSON.parse(r.stdout) as { stages: { base: unknown; config: { Env: string[] }; platform: string }[] };
    expect(g.stages[0]!.base).toEqual({ kind: 'scratch' });
    expect(g.stages[0]!.platform).toBe('linux/arm64');
    expect(g.stages[0]!.config.Env).toContain('A=arm64');
  });

  test('planning errors: a code frame on stderr, exit 1', async () => {
    const r = await runCli(['graph', '-f', join(dir, 'Bad.Dockerfile'), dir]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`${join(dir, 'Bad.Dockerfile')}:2:1: error: circular dependency detected on stage: a [circular-dependency]`);
    expect(r.stderr).toContain('  2 | COPY --from=b /x /x\n    | ^');
  });

  test('an unknown --target suggests the closest stage', async () => {
    const r = await runCli(['graph', '--target', 'biuld', dir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('target stage "biuld" could not be found (did you mean build?)');
  });

  test('parse errors stop before planning', async () => {
    const r = await runCli(['graph', '-f', join(dir, 'Syntax.Dockerfile'), dir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(':2:1: error:');
    expect(r.stderr).toContain('FNTRYPOINT');
  });

  test('usage errors: bad --format exits 2; --help prints usage', async () => {
    const bad = await runCli(['graph', '--format', 'svg', dir]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('invalid --format "svg"');
    const help = await runCli(['graph', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: tsbuild graph');
  });

  test('a missing Dockerfile is reported, exit 1', async () => {
    const r = await runCli(['graph', join(dir, 'nope')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('cannot read Dockerfile');
  });

  test('-f - reads the Dockerfile from stdin', async () => {
    const r = await runCli(['graph', '-f', '-', '--format', 'json', dir], { stdin: 'FROM scratch AS only\nCOPY a /a\n' });
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as { stages: { name: string }[] }).stages[0]!.name).toBe('only');
  });
});
