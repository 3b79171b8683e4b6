import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';

const conformance = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../shared/conformance');

describe('tsbuild parse', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'tsbuild-parse-'));
    writeFileSync(path.join(dir, 'good'), 'FROM alpine AS base\nRUN --mount=type=cache,target=/c echo hi\nCMD ["sh"]\n');
    writeFileSync(path.join(dir, 'semantic'), 'FROM alpine\nRNU apk add curl\n');
    writeFileSync(path.join(dir, 'syntax'), 'FROM alpine\nRUN <<EOF\necho never ends\n');
    writeFileSync(path.join(dir, 'warn'), '# syntax=example.com/my/frontend\nFROM alpine\n');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('prints {file, ast, diagnostics} as JSON by default', async () => {
    const r = await runCli(['parse', 'good'], { cwd: dir });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { file: string; ast: { stages: { name: string; instructions: { kind: string }[] }[] }; diagnostics: unknown[] };
    expect(out.file).toBe('good');
    expect(out.diagnostics).toEqual([]);
    expect(out.ast.stages[0]!.name).toBe('base');
    expect(out.ast.stages[0]!.instructions.map((i) => i.kind)).toEqual(['RUN', 'CMD']);
  });

  it('prints BuildKit dumps that match the conformance results', async () => {
    for (const c of ['env', 'docker', 'mail']) {
      const r = await runCli(['parse', '--format', 'buildkit', path.join(conformance, 'buildkit-parser', c, 'Dockerfile')]);
      expect(r.stdout).toBe(readFileSync(path.join(conformance, 'buildkit-parser', c, 'result'), 'utf8'));
    }
  });

  it('prints the dump for valid syntax with semantic errors, and frames to stderr, exit 1', async () => {
    const r = await runCli(['parse', '--format=buildkit', 'semantic'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('(from "alpine")\n(rnu "")\n');
    expect(r.stderr).toContain('semantic:2:1: error: unknown instruction: RNU (did you mean RUN?) [unknown-instruction]');
    expect(r.stderr).toContain('  2 | RNU apk add curl\n    | ^~~');
  });

  it('prints no dump for a syntax error', async () => {
    const r = await runCli(['parse', '-f', 'buildkit', 'syntax'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/syntax:\d+:\d+: error: /);
  });

  it('warnings alone do not fail', async () => {
    const r = await runCli(['parse', 'warn'], { cwd: dir });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('warning:');
  });

  it('several files: head-style headers, exit 1 when any has an error', async () => {
    const r = await runCli(['parse', '--format', 'buildkit', 'good', 'semantic'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe(
      '==> good <==\n(from "alpine" "AS" "base")\n(run ["--mount=type=cache,target=/c"] "echo hi")\n(cmd "sh")\n\n==> semantic <==\n(from "alpine")\n(rnu "")\n',
    );
  });

  it('reads standard input for "-"', async () => {
    const r = await runCli(['parse', '-'], { stdin: 'FROM x\nUSER 1\n' });
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as { ast: { stages: { instructions: { user: string }[] }[] } }).ast.stages[0]!.instructions[0]!.user).toBe('1');
  });

  it('usage errors and a missing file', async () => {
    expect((await runCli(['parse'])).code).toBe(2);
    expect((await runCli(['parse', '--format', 'yaml', 'x'])).code).toBe(2);
    const help = await runCli(['parse', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: tsbuild parse');
    const missing = await runCli(['parse', 'nope'], { cwd: dir });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('nope: no such file');
  });
});
