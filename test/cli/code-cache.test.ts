/**
 * The built command line (dist/cli.cjs, the package's bin, and dist/cli.js) runs dist/cli/main.cjs with V8's code cache
 * (src/cli/loader.ts, src/util/code-cache.ts). Run against dist (built by `npm test` before
 * vitest), in fresh node processes.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/base-images.js';

const version = (JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;

const temps: string[] = [];
function temp(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'tsbuild-cli-cache-'));
  temps.push(d);
  return d;
}
afterAll(() => {
  for (const t of temps) rmSync(t, { recursive: true, force: true });
});

/** A copy of the built package (package.json, dist/, native/, node_modules linked) whose files a test may change. */
function copyPackage(): string {
  const copy = temp();
  cpSync(path.join(repoRoot, 'package.json'), path.join(copy, 'package.json'));
  cpSync(path.join(repoRoot, 'dist'), path.join(copy, 'dist'), { recursive: true });
  symlinkSync(path.join(repoRoot, 'native'), path.join(copy, 'native'));
  symlinkSync(path.join(repoRoot, 'node_modules'), path.join(copy, 'node_modules'));
  return copy;
}

/** Loads the command line of the package at `root` in a fresh node, runs `argv` in it; returns its output and whether V8 refused the cache. */
function runLoaded(root: string, argv: string[]): { code: number; stdout: string; rejected: boolean | undefined } {
  const script = `const l = await import(${JSON.stringify(pathToFileURL(path.join(root, 'dist/cli/loader.js')).href)});
const cli = l.loadCommandLine();
let stdout = '';
const sink = (w) => ({ write: (c) => { w(String(c)); return true; }, on() {}, once() {}, end() {} });
const code = await cli.main(${JSON.stringify(argv)}, { stdout: sink((s) => { stdout += s; }), stderr: sink(() => {}), stdin: process.stdin, env: process.env, cwd: process.cwd(), signal: new AbortController().signal });
process.stdout.write(JSON.stringify({ code, stdout, rejected: l.commandLineCodeCacheRejected() }));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { code: number; stdout: string; rejected: boolean | undefined };
}

describe('the command line from dist/cli/main.cjs with V8 code cache', () => {
  it('the build writes a cache for this node, which V8 accepts', () => {
    expect(readdirSync(path.join(repoRoot, 'dist/cli'))).toContain(`main.${process.version}-${process.arch}.v8cache`);
    const r = runLoaded(repoRoot, ['--version']);
    expect(r.rejected).toBe(false);
    expect(r).toMatchObject({ code: 0, stdout: `tsbuild ${version}\n` });
  });

  it('runs the same when the cache does not fit (V8 refuses it and compiles as usual)', () => {
    const copy = copyPackage();
    writeFileSync(path.join(copy, 'dist/cli', `main.${process.version}-${process.arch}.v8cache`), Buffer.alloc(8192, 3));
    const r = runLoaded(copy, ['--version']);
    expect(r.rejected).toBe(true);
    expect(r).toMatchObject({ code: 0, stdout: `tsbuild ${version}\n` });
  });

  it('runs without a cache (an install that skipped its scripts)', () => {
    const copy = copyPackage();
    rmSync(path.join(copy, 'dist/cli', `main.${process.version}-${process.arch}.v8cache`));
    // the bin (a CommonJS file) and the same as an ES module
    for (const entry of ['dist/cli.cjs', 'dist/cli.js']) {
      const r = spawnSync(process.execPath, [path.join(copy, entry), '--version'], { encoding: 'utf8' });
      expect(r.stdout, entry).toBe(`tsbuild ${version}\n`);
    }
  });

  it('a module loaded on first use (the registry client: node:net, node:http) works from the cached code', () => {
    // node loses a script's dynamic import() callback when its functions come from a code cache:
    // the bundle must load such modules another way, or this fails with "A dynamic import
    // callback was not specified" instead of the registry error.
    const root = temp();
    const r = spawnSync(process.execPath, [path.join(repoRoot, 'dist/cli.cjs'), 'pull', '--root', root, '127.0.0.1:1/nothing/here:latest'], { encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).not.toMatch(/dynamic import/);
    expect(r.stderr).toMatch(/127\.0\.0\.1:1/);
    expect(r.stderr).toMatch(/ECONNREFUSED|refused/i);
  });
});
