/**
 * The built parser loads Chevrotain from dist/vendor with V8's code cache (src/parser/chevrotain-loader.ts).
 * Run against dist (built by `npm test` before vitest), in fresh node processes.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parseDockerfile } from '../../src/parser/index.js';
import { repoRoot } from '../helpers/base-images.js';

const text = 'FROM busybox AS a\nRUN <<EOF\necho hi\nEOF\nCOPY --from=a /x /y\nCMD ["sh"]\n';

/** Parses `text` with the parser under `root` in a fresh node; returns the result and whether V8 refused the cache. */
function parseIn(root: string): { result: unknown; rejected: boolean | undefined; vendored: boolean } {
  const script = `const p = await import(${JSON.stringify(pathToFileURL(path.join(root, 'dist/parser/index.js')).href)});
const result = p.parseDockerfile(${JSON.stringify(text)}, { file: 'Dockerfile' });
process.stdout.write(JSON.stringify({ result, rejected: p.chevrotainCodeCacheRejected(), vendored: p.chevrotainCodeCache() !== undefined }));`;
  return JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })) as { result: unknown; rejected: boolean | undefined; vendored: boolean };
}

/** What the source parser gives for `text`, as it comes through JSON from the child. */
const expected = (): unknown => JSON.parse(JSON.stringify(parseDockerfile(text, { file: 'Dockerfile' })));

const temps: string[] = [];
/** A copy of the built package (package.json and dist/) in a temp dir, to change its vendor files. */
function copyPackage(): string {
  const copy = mkdtempSync(path.join(tmpdir(), 'tsbuild-code-cache-'));
  temps.push(copy);
  cpSync(path.join(repoRoot, 'package.json'), path.join(copy, 'package.json'));
  cpSync(path.join(repoRoot, 'dist'), path.join(copy, 'dist'), { recursive: true });
  return copy;
}
afterAll(() => {
  for (const t of temps) rmSync(t, { recursive: true, force: true });
});

describe('Chevrotain from dist/vendor with V8 code cache', () => {
  const vendor = path.join(repoRoot, 'dist/vendor');

  it('the build writes the script and a cache for this node, which V8 accepts', () => {
    expect(existsSync(path.join(vendor, 'chevrotain.cjs'))).toBe(true);
    expect(readdirSync(vendor)).toContain(`chevrotain.${process.version}-${process.arch}.v8cache`);
    const r = parseIn(repoRoot);
    expect(r.vendored).toBe(true);
    expect(r.rejected).toBe(false);
    expect(r.result).toStrictEqual(expected());
  });

  it('parses the same when the cache does not fit (V8 refuses it and compiles as usual)', () => {
    const copy = copyPackage();
    writeFileSync(path.join(copy, 'dist/vendor', `chevrotain.${process.version}-${process.arch}.v8cache`), Buffer.alloc(4096, 7));
    const r = parseIn(copy);
    expect(r.vendored).toBe(true);
    expect(r.rejected).toBe(true);
    expect(r.result).toStrictEqual(expected());
  });

  it('falls back to the npm package when there is no vendored script', () => {
    const copy = copyPackage();
    rmSync(path.join(copy, 'dist/vendor'), { recursive: true });
    // the copy has no node_modules: resolve chevrotain from the repository's
    cpSync(path.join(repoRoot, 'node_modules/chevrotain'), path.join(copy, 'node_modules/chevrotain'), { recursive: true });
    cpSync(path.join(repoRoot, 'node_modules/@chevrotain'), path.join(copy, 'node_modules/@chevrotain'), { recursive: true });
    const r = parseIn(copy);
    expect(r.vendored).toBe(false);
    expect(r.result).toStrictEqual(expected());
  });
});
