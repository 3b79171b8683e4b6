/**
 * Loading the command line fast in a fresh process.
 *
 * A small command (`tsbuild` on an unchanged context, `tsbuild images`) runs for less time than
 * node takes to compile the CLI's code: as an ES module, the bundle (~800 KB) costs 20–30 ms to
 * compile before it starts, and every function it runs is compiled again on each run. So the
 * build (scripts/bundle.mjs) writes the command line as one CommonJS script, `dist/cli/main.cjs`
 * (this directory's main.ts and what it imports), which `dist/cli.js` runs through this loader
 * with V8's code cache (util/code-cache.ts), made after a warm-up run of a few commands by
 * scripts/prime-code-cache.mjs: a no-op rebuild starts ~40 ms sooner.
 *
 * The loader is built on its own (`dist/cli/loader.js`), so that the priming script can run the
 * same script the same way.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCachedScript, writeCodeCache, type CachedScript } from '../util/code-cache.js';

type CommandLine = typeof import('./main.js');

let loaded: CachedScript<CommandLine> | undefined;

/** The command line's module (main.ts as built into `main.cjs` beside this file), loaded once. */
export function loadCommandLine(): CommandLine {
  loaded ??= runCachedScript<CommandLine>(path.join(path.dirname(fileURLToPath(import.meta.url)), 'main.cjs'));
  return loaded.exports;
}

/** Writes V8's code cache of the command line's script as it is now; undefined when it was not loaded. */
export function writeCommandLineCodeCache(): string | undefined {
  return loaded ? writeCodeCache(loaded) : undefined;
}

/** Whether V8 refused the code cache it was given (made by another node, or damaged); undefined when not loaded. */
export function commandLineCodeCacheRejected(): boolean | undefined {
  return loaded?.rejected;
}
