import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { loadVendoredChevrotain } from './chevrotain-loader.js';

type Chevrotain = typeof import('chevrotain');

/**
 * Chevrotain's package entry (`lib/src/api.js`) imports a few hundred lodash-es modules, which
 * costs 0.2–0.6 s of module loading before the first parse. The package also ships the same
 * build as a single ES module (`lib/chevrotain.mjs`, not listed in its `exports`), which loads in
 * about 25 ms, and a minified copy of it (`lib/chevrotain.min.mjs`, 40% of the bytes), which
 * compiles a few ms faster still: use the first of these that is there, else the entry.
 */
async function loadChevrotain(): Promise<Chevrotain> {
  let entry: string | undefined;
  try {
    // `import.meta.resolve` is synchronous and cheap; the CommonJS resolver (about 3 ms to start)
    // only where it is missing (some test runners).
    entry = typeof import.meta.resolve === 'function' ? import.meta.resolve('chevrotain') : undefined;
  } catch {
    entry = undefined;
  }
  try {
    entry ??= pathToFileURL(createRequire(import.meta.url).resolve('chevrotain')).href;
  } catch {
    entry = undefined;
  }
  for (const name of entry === undefined ? [] : ['../chevrotain.min.mjs', '../chevrotain.mjs']) {
    try {
      const mod = (await import(new URL(name, entry).href)) as Chevrotain;
      if (typeof mod.CstParser === 'function' && typeof mod.Lexer === 'function') return mod;
    } catch {
      // try the next one
    }
  }
  return import('chevrotain');
}

/**
 * The Chevrotain runtime the parser uses: the build's vendored script with V8's code cache
 * (chevrotain-loader.ts), else the npm package (see `loadChevrotain`). The command line's
 * CommonJS bundle, which cannot hold a top-level await, is built with chevrotain-vendored.ts in
 * place of this module (scripts/bundle.mjs): the vendored script is always there in a build.
 */
export const chevrotain: Chevrotain = loadVendoredChevrotain() ?? (await loadChevrotain());