/**
 * Loading Chevrotain fast in a fresh process.
 *
 * Before the first parse, node must load Chevrotain (~140 KB of minified code) and V8 must compile
 * the functions that building a lexer and a parser run: 30–40 ms on a small machine, most of a
 * first parse. So the build (`scripts/bundle.mjs`) writes Chevrotain as one CommonJS script,
 * `dist/vendor/chevrotain.cjs`, run with V8's code cache made after a warm-up parse
 * (util/code-cache.ts): `dist/vendor/chevrotain.<node version>-<arch>.v8cache`. Loading both
 * takes about half the time.
 *
 * `loadVendoredChevrotain` returns undefined when the script is not there (running from `src/`
 * under the tests, or a package built without it); chevrotain.ts then imports the npm package.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { runCachedScript, writeCodeCache, type CachedScript } from '../util/code-cache.js';
import { packageFile } from '../util/package-root.js';

type Chevrotain = typeof import('chevrotain');

let loaded: CachedScript<Chevrotain> | undefined;

/** Chevrotain from `dist/vendor/chevrotain.cjs` with V8's code cache when there is one, else undefined. */
export function loadVendoredChevrotain(): Chevrotain | undefined {
  let file: string;
  try {
    file = path.join(packageFile('dist/vendor'), 'chevrotain.cjs');
  } catch {
    return undefined;
  }
  if (!existsSync(file)) return undefined;
  loaded = runCachedScript<Chevrotain>(file);
  const mod = loaded.exports;
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
  return loaded ? writeCodeCache(loaded) : undefined;
}

/** Whether V8 refused the code cache it was given (another node version): for the benchmark's report. */
export function chevrotainCodeCacheRejected(): boolean | undefined {
  return loaded?.rejected;
}
