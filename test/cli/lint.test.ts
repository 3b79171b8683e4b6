import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Store } from '../../src/oci/store.js';
import { MediaType } from '../../src/oci/types.js';
import { runCli } from '../helpers/cli.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'tsbuild-lint-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});
const write = (name: string, text: string) => writeFileSync(path.join(dir, name), text);

describe('tsbuild lint', () => {
  it('lints ./Dockerfile by default and prints code frames; warnings exit 0', async () => {
    write('Dockerfile', 'FROM alpine AS Builder\nCMD echo hi\n');
    const r = await runCli(['lint', '--no-color'], { cwd: dir });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Dockerfile:1:16: warning: Stage name 'Builder' should be lowercase [lint/StageNameCasing]");
    expect(r.stdout).toContain('  1 | FROM alpine AS Builder\n    |                ^~~~~~~');
    expect(r.stdout).toContain('did you mean "builder"?');
    expect(r.stdout).toContain('see https://docs.docker.com/go/dockerfile/rule/stage-name-casing/');
    expect(r.stdout).toContain('Dockerfile:2:5: warning: JSON arguments recommended for CMD');
    expect(r.stdout.endsWith('2 problems (0 errors, 2 warnings)\n')).toBe(true);
    expect(r.stderr).toBe('');
  });

  it('says so when there is nothing to report', async () => {
    write('Dockerfile', 'FROM alpine\nCMD ["true"]\n');
    const r = await runCli(['lint'], { cwd: dir });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('Dockerfile: no problems found\n');
  });

  it('check=error=true turns findings into errors and exits 1', async () => {
    write('Dockerfile', '# check=error=true\nFROM alpine\nMAINTAINER me\n');
    const r = await runCli(['lint', 'Dockerfile'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('Dockerfile:3:1: error: Maintainer instruction is deprecated in favor of using label [lint/MaintainerDeprecated]');
  });

  it('--check replaces the directive', async () => {
    write('Dockerfile', '# check=error=true\nFROM alpine\nMAINTAINER me\n');
    const skipped = await runCli(['lint', '--check', 'skip=MaintainerDeprecated'], { cwd: dir });
    expect(skipped.code).toBe(0);
    expect(skipped.stdout).toBe('Dockerfile: no problems found\n');
    const bad = await runCli(['lint', '--check', 'nonsense'], { cwd: dir });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('invalid check option "nonsense"');
  });

  it('--format json prints one array with every file\'s parse errors and findings', async () => {
    write('a.Dockerfile', 'FROM alpine\nENV K v\n');
    write('b.Dockerfile', 'FROM alpine\nFOO bar\n');
    const r = await runCli(['lint', '--format', 'json', 'a.Dockerfile', 'b.Dockerfile'], { cwd: dir });
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout) as { file: string; code: string; severity: string; message: string; range: { start: { line: number } } }[];
    expect(out.map((d) => [d.file, d.code, d.severity, d.range.start.line])).toEqual([
      ['a.Dockerfile', 'lint/LegacyKeyValueFormat', 'warning', 2],
      ['b.Dockerfile', 'unknown-instruction', 'error', 2],
    ]);
    expect(out[0]!.message).toBe('"ENV key=value" should be used instead of legacy "ENV key value" format');
  });

  it('reports parse errors with a caret and exits 1', async () => {
    write('Dockerfile', 'FROM alpine\nCOPY --frm=x a b\n');
    const r = await runCli(['lint'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/Dockerfile:2:6: error: .*frm/);
    expect(r.stdout).toContain('^');
  });

  it('reports the empty continuation warning once, as NoEmptyContinuation, and obeys skip', async () => {
    write('Dockerfile', 'FROM alpine\nRUN echo a \\\n\n  b\n');
    const r = await runCli(['lint', '--format', 'json'], { cwd: dir });
    const codes = (JSON.parse(r.stdout) as { code: string }[]).map((d) => d.code);
    expect(codes).toEqual(['lint/NoEmptyContinuation']);
    const skipped = await runCli(['lint', '--format', 'json', '--check', 'skip=NoEmptyContinuation'], { cwd: dir });
    expect(JSON.parse(skipped.stdout)).toEqual([]);
  });

  it('--context enables CopyIgnoredFile with the context .dockerignore', async () => {
    write('Dockerfile', 'FROM alpine\nCOPY secret.env /app/\nCOPY app.js /app/\n');
    write('.dockerignore', '# comment\n*.env\n');
    const without = await runCli(['lint', '--format', 'json'], { cwd: dir });
    expect(JSON.parse(without.stdout)).toEqual([]);
    const r = await runCli(['lint', '--format', 'json', '--context', '.'], { cwd: dir });
    const out = JSON.parse(r.stdout) as { code: string; message: string }[];
    expect(out.map((d) => d.message)).toEqual(['Attempting to Copy file "secret.env" that is excluded by .dockerignore']);
  });

  it('--build-arg declares nothing but feeds the FROM checks', async () => {
    write('Dockerfile', 'ARG TAG\nFROM busybox:${TAG}\n');
    const r = await runCli(['lint', '--format', 'json', '--build-arg', 'TAG=1.36'], { cwd: dir });
    // InvalidDefaultArgInFrom checks the defaults, whatever --build-arg says.
    expect((JSON.parse(r.stdout) as { code: string }[]).map((d) => d.code)).toEqual(['lint/InvalidDefaultArgInFrom']);
  });

  it('reads standard input for "-"', async () => {
    const r = await runCli(['lint', '--format', 'json', '-'], { cwd: dir, stdin: 'FROM alpine\nWORKDIR app\n' });
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { file: string; code: string }[];
    expect(out.map((d) => [d.file, d.code])).toEqual([['-', 'lint/WorkdirRelativePath']]);
  });

  it('names a missing file and exits 1', async () => {
    const r = await runCli(['lint', 'nope.Dockerfile'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('nope.Dockerfile: no such file');
  });

  it('rejects a bad --format and prints usage for --help', async () => {
    const bad = await runCli(['lint', '--format', 'xml'], { cwd: dir });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('invalid --format "xml"');
    const help = await runCli(['lint', '--help'], { cwd: dir });
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: tsbuild lint');
  });

  it('--root: base images in the local store give UndefinedVar their env and JSONArgsRecommended their shell', async () => {
    const root = path.join(dir, 'root');
    const store = await Store.openDir(path.join(root, 'store'));
    const config = JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'PYTHON_VERSION=3.12.4'], Shell: ['/bin/bash', '-c'] },
      rootfs: { type: 'layers', diff_ids: [] },
    });
    const cfg = await store.putBlob(config);
    const manifest = JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: { mediaType: MediaType.OciConfig, digest: cfg.digest, size: cfg.size }, layers: [] });
    const man = await store.putBlob(manifest);
    await store.tag('python:3.12', { mediaType: MediaType.OciManifest, digest: man.digest, size: man.size });
    write('Dockerfile', 'FROM python:3.12\nENV V=$PYTHON_VERSION X=$PYTHN_VERSION\nCMD python app.py\n');

    const unknown = await runCli(['lint', '--format', 'json', '--root', path.join(dir, 'empty-root')], { cwd: dir });
    expect((JSON.parse(unknown.stdout) as { code: string }[]).map((d) => d.code)).toEqual(['lint/JSONArgsRecommended']);
    expect(existsSync(path.join(dir, 'empty-root'))).toBe(false);

    const known = await runCli(['lint', '--format', 'json', '--root', root], { cwd: dir });
    const out = JSON.parse(known.stdout) as { code: string; message: string }[];
    expect(out.map((d) => [d.code, d.message])).toEqual([['lint/UndefinedVar', "Usage of undefined variable '$PYTHN_VERSION' (did you mean $PYTHON_VERSION?)"]]);
  });
});
