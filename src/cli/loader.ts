/**
 * Loading the command line fast in a fresh process.
 *
 * A small command (`tsbuild` on an unchanged context, `tsbuild images`) runs for less time than
 * node takes to compile the CLI's code: as an ES module, the bundle (~800 KB) costs 20–30 ms to
 * compile before it starts, and every function it runs is compiled again on each run. So the
 * build (scripts/bundle.mjs) writes the command line as one CommonJS script, `dist/cli/main.cjs`
 * (this directory's main.ts and what it imports), which the `tsbuild` command runs through this
 * loader with V8's code cache (util/code-cache.ts), made after a warm-up run of a few commands by
 * scripts/prime-code-cache.mjs: a no-op rebuild starts ~40 ms sooner.
 *
 * The command (package.json `bin`) is `dist/cli.cjs`, this loader built into a CommonJS file: an
 * ES module entry costs node's module loader another 15-25 ms to start. `dist/cli.js` is the
 * same as an ES module (`node dist/cli.js …` works too), and `dist/cli/loader.js` this loader on
 * its own, for the priming script to run the same script the same way.
 */
import { runCachedScript, writeCodeCache, type CachedScript } from '../util/code-cache.js';
import { packageFile } from '../util/package-root.js';

type CommandLine = typeof import('./main.js');

let loaded: CachedScript<CommandLine> | undefined;

/** The command line's module (main.ts as built into `dist/cli/main.cjs`), loaded once. */
export function loadCommandLine(): CommandLine {
  loaded ??= runCachedScript<CommandLine>(packageFile('dist/cli/main.cjs'));
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
