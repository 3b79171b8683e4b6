/**
 * The Chevrotain runtime for the command line's CommonJS bundle, in place of chevrotain.ts
 * (scripts/bundle.mjs swaps them): the vendored script only, loaded synchronously, since a
 * CommonJS script cannot await the npm package's ES module. A build always has it.
 */
import { loadVendoredChevrotain } from './chevrotain-loader.js';

function vendored(): typeof import('chevrotain') {
  const c = loadVendoredChevrotain();
  if (c === undefined) throw new Error('tsbuild: dist/vendor/chevrotain.cjs is missing or broken; rebuild the package (npm run build)');
  return c;
}

export const chevrotain = vendored();
