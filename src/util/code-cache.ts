/**
 * A CommonJS script run through `vm.Script` with V8's code cache.
 *
 * Node 20 keeps no compiled code between runs for modules (Node 22's `module.enableCompileCache`
 * does), so a fresh process compiles every function it runs again: tens of ms for the command
 * line's bundle and for Chevrotain. `vm.Script` accepts V8's code cache, and a cache made after a
 * warm-up run holds every function that run compiled, not only the top level. V8 checks the cache
 * (its version, its flags and the source's hash) and compiles as usual when it does not fit:
 * never worse than without one. Caches are made by the build and at install
 * (scripts/prime-code-cache.mjs), named for the node and architecture they were made by.
 *
 * Dynamic `import()` must not appear in such a script: node loses the callback that resolves it
 * when V8 takes functions from a cache ("A dynamic import callback was not specified").
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Script } from 'node:vm';

export interface CachedScript<T> {
  /** What the script left in `module.exports`. */
  readonly exports: T;
  readonly script: Script;
  /** The code cache file for this node, read if it was there and written by `writeCodeCache`. */
  readonly cacheFile: string;
  /** V8 refused the cache it was given (made by another node, or damaged). */
  readonly rejected: boolean;
}

/** `<dir>/<name without .cjs>.<node version>-<arch>.v8cache`: V8 caches are specific to a V8 build. */
export function codeCacheFile(file: string): string {
  return path.join(path.dirname(file), `${path.basename(file, '.cjs')}.${process.version}-${process.arch}.v8cache`);
}

/** Runs the CommonJS script `file` in this context with its code cache when there is one (throws if `file` cannot be read). */
export function runCachedScript<T>(file: string): CachedScript<T> {
  const cacheFile = codeCacheFile(file);
  let cachedData: Buffer | undefined;
  try {
    cachedData = readFileSync(cacheFile);
  } catch {
    cachedData = undefined;
  }
  // The same wrapper as node's CommonJS loader, so the script sees `exports`, `module` and `require`.
  const source = `(function (exports, require, module, __filename, __dirname) {${readFileSync(file, 'utf8')}\n})`;
  const script = new Script(source, { filename: file, ...(cachedData ? { cachedData } : {}) });
  const module = { exports: {} as T };
  const dir = path.dirname(file);
  (script.runInThisContext() as (e: unknown, r: unknown, m: unknown, f: string, d: string) => void)(module.exports, createRequire(file), module, file, dir);
  return { exports: module.exports, script, cacheFile, rejected: cachedData !== undefined && script.cachedDataRejected === true };
}

/**
 * Writes the script's code cache as it is now (with every function compiled so far) to its
 * cache file, through a temp file, fsync and a rename: a reader sees the old cache or the new one.
 */
export function writeCodeCache(s: CachedScript<unknown>): string {
  const tmp = `${s.cacheFile}.${process.pid}.tmp`;
  const data = s.script.createCachedData();
  const fd = openSync(tmp, 'w');
  try {
    for (let at = 0; at < data.length; ) at += writeSync(fd, data, at);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, s.cacheFile);
  return s.cacheFile;
}
