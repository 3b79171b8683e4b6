// Builds the JavaScript of dist/ with esbuild (tsc writes only the declarations, see
// tsconfig.build.json):
// - The library's entry points (dist/index.js, dist/parser/index.js, dist/oci/index.js,
//   dist/runtime/index.js, dist/builder/index.js) in one run with code splitting: code shared by
//   several entry points lives once, in dist/chunks/ (a class is the same class from every entry
//   point, so instanceof holds across them), and what a dynamic import() reaches is a chunk of
//   its own, loaded when first needed. Loading a few chunks costs node far less than the ~120
//   modules tsc writes one by one: the first parse in a fresh process starts sooner.
// - The command line, dist/cli.js, as one file without splitting: what a dynamic import()
//   reaches is still evaluated only when needed (a no-op rebuild never runs the parser's or the
//   registry client's module code), and one file is what node loads fastest (measured: a 01
//   no-op rebuild 0.24 s from one file, 0.32 s from the 25 chunks a split CLI loads).
// - tar-stream and p-limit (and what they use) are bundled in: node's loader takes 20-30 ms to
//   load tar-stream's dozen CommonJS files from an ES module, the bundled copy a few ms. The
//   other npm packages stay external (fast-glob is loaded only when a wildcard needs it).
// - Chevrotain as one CommonJS script with V8's code cache, below.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const common = {
  bundle: true,
  splitting: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['chevrotain', 'fast-glob'],
  // CommonJS code bundled into an ES module calls require() for node's built-in modules.
  banner: { js: "import { createRequire as __tsbuildCreateRequire } from 'node:module'; const require = __tsbuildCreateRequire(import.meta.url);" },
  sourcemap: 'linked',
  logLevel: 'warning',
};
await rm(join(repo, 'dist', 'chunks'), { recursive: true, force: true });
await rm(join(repo, 'dist', 'cli-chunks'), { recursive: true, force: true });
// The library: five entry points sharing chunks.
await build({
  ...common,
  entryPoints: ['index', 'parser/index', 'oci/index', 'runtime/index', 'builder/index'].map((e) => join(repo, 'src', `${e}.ts`)),
  outbase: join(repo, 'src'),
  outdir: join(repo, 'dist'),
  chunkNames: 'chunks/[name]-[hash]',
});
// The command line: one file.
await build({
  ...common,
  splitting: false,
  entryPoints: [join(repo, 'src', 'cli.ts')],
  outfile: join(repo, 'dist', 'cli.js'),
});

// Chevrotain as one CommonJS script, loaded through vm.Script with V8's code cache (see
// src/parser/chevrotain-loader.ts), and that cache for this node after a warm-up parse.
const chevrotainEntry = createRequire(join(repo, 'package.json')).resolve('chevrotain'); // lib/src/api.js
const chevrotainVersion = JSON.parse(readFileSync(join(dirname(chevrotainEntry), '../../package.json'), 'utf8')).version;
await build({
  entryPoints: [join(dirname(chevrotainEntry), '../chevrotain.mjs')],
  outfile: join(repo, 'dist/vendor/chevrotain.cjs'),
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  minify: true,
  legalComments: 'eof',
  banner: { js: `/* Chevrotain ${chevrotainVersion} (https://github.com/chevrotain/chevrotain), Apache-2.0; its ES module build as one CommonJS script for tsbuild's parser. */` },
  logLevel: 'warning',
});
const primed = spawnSync(process.execPath, [join(repo, 'scripts/prime-code-cache.mjs')], { stdio: 'inherit' });
if (primed.status !== 0) console.warn('bundle: priming the code cache failed; the parser will start without it');
