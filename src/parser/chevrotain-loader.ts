/**
 * Loading Chevrotain fast in a fresh process.
 *
 * Before the first parse, node must load Chevrotain (~140 KB of minified code) and V8 must compile
 * the functions that building a lexer and a parser run: 30–40 ms on a small machine, most of a
 * first parse. Node 22 can keep compiled code between runs (`module.enableCompileCache`); Node 20
 * cannot for ES modules, but `vm.Script` accepts V8's code cache for a script. So the build
 * (`scripts/bundle.mjs`) writes Chevrotain as one CommonJS script, `dist/vendor/chevrotain.cjs`,
 * and, after a warm-up parse in a child process, the code cache of that script with every
 * function the parser used compiled: `dist/vendor/chevrotain.<node version>.v8cache`. Loading both
 * takes about half the time. V8 checks the cache (its version, flags and the source's hash) and
 * compiles normally when it does not match (another node version): never worse than without it.
 *
 * `loadVendoredChevrotain` returns undefined when the script is not there (running from `src/`
 * under the tests, or a package built without it); tokens.ts then imports the npm package.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Script } from 'node:vm';
import { packageFile } from '../util/package-root.js';

type Chevrotain = typeof import('chevrotain');

let loaded: { script: Script; file: string; rejected: boolean } | undefined;

/** Name of the code cache for this process's node (V8 caches are specific to a V8 build). */
export function codeCacheFile(dir: string): string {
  return path.join(dir, `chevrotain.${process.version}-${process.arch}.v8cache`);
}

/** Chevrotain from `dist/vendor/chevrotain.cjs` with V8's code cache when there is one, else undefined. */
export function loadVendoredChevrotain(): Chevrotain | undefined {
  let dir: string;
  try {
    dir = packageFile('dist/vendor');
  } catch {
    return undefined;
  }
  const file = path.join(dir, 'chevrotain.cjs');
  if (!existsSync(file)) return undefined;
  let cachedData: Buffer | undefined;
  try {
    cachedData = readFileSync(codeCacheFile(dir));
  } catch {
    cachedData = undefined;
  }
  // The same wrapper as node's CommonJS loader, so the script sees `exports`, `module` and `require`.
  const source = `(function (exports, require, module, __filename, __dirname) {${readFileSync(file, 'utf8')}\n})`;
  const script = new Script(source, { filename: file, ...(cachedData ? { cachedData } : {}) });
  const module = { exports: {} as Chevrotain };
  (script.runInThisContext() as (e: unknown, r: unknown, m: unknown, f: string, d: string) => void)(module.exports, createRequire(file), module, file, dir);
  loaded = { script, file, rejected: cachedData !== undefined && script.cachedDataRejected === true };
  const mod = module.exports;
  return typeof mod.CstParser === 'function' && typeof mod.Lexer === 'function' ? mod : undefined;
}

/**
 * V8's code cache of the vendored Chevrotain script as it is now (functions compiled so far
 * included): what the build writes after a warm-up parse. Undefined when Chevrotain was not
 * loaded from the vendored script.
 */
export function chevrotainCodeCache(): Buffer | undefined {
  return loaded?.script.createCachedData();
}

/**
 * Writes `chevrotainCodeCache()` beside the vendored script, under this node's name (temp file
 * and rename: a reader sees the old cache or the new one). Returns the file, or undefined when
 * Chevrotain was not loaded from the vendored script.
 */
export function writeChevrotainCodeCache(): string | undefined {
  const data = chevrotainCodeCache();
  if (!data || !loaded) return undefined;
  const out = codeCacheFile(path.dirname(loaded.file));
  const tmp = `${out}.${process.pid}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, out);
  return out;
}

/** Whether V8 refused the code cache it was given (another node version): for the benchmark's report. */
export function chevrotainCodeCacheRejected(): boolean | undefined {
  return loaded?.rejected;
}
