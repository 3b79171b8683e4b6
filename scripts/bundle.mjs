// Builds the JavaScript of dist/ with esbuild (tsc writes only the declarations, see
// tsconfig.build.json):
// - The library's entry points (dist/index.js, dist/parser/index.js, dist/oci/index.js,
//   dist/runtime/index.js, dist/builder/index.js) in one run with code splitting: code shared by
//   several entry points lives once, in dist/chunks/ (a class is the same class from every entry
//   point, so instanceof holds across them), and what a dynamic import() reaches is a chunk of
//   its own, loaded when first needed. Loading a few chunks costs node far less than the ~120
//   modules tsc writes one by one: the first parse in a fresh process starts sooner.
// - The command line as one CommonJS script without splitting, dist/cli/main.cjs, which
//   dist/cli.js runs with V8's code cache (src/cli/loader.ts): what a dynamic import() reaches is
//   still evaluated only when needed (a no-op rebuild never runs the parser's or the registry
//   client's module code), and one file is what node loads fastest (measured: a 01 no-op rebuild
//   0.24 s from one file, 0.32 s from the 25 chunks a split CLI loads); the code cache saves
//   its compilation (20-30 ms, and the functions a run compiles).
// - tar-stream and p-limit (and what they use) are bundled in: node's loader takes 20-30 ms to
//   load tar-stream's dozen CommonJS files from an ES module, the bundled copy a few ms. The
//   other npm packages stay external (fast-glob is loaded only when a wildcard needs it).
// - Chevrotain as one CommonJS script with V8's code cache, below.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { chmodSync, readFileSync } from 'node:fs';
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
// The command line: one CommonJS script, dist/cli/main.cjs, run with V8's code cache by
// dist/cli/loader.js (src/cli/loader.ts), which dist/cli.js imports.
// - A CommonJS script has no top-level await: the parser's chevrotain.ts (which awaits the npm
//   package when there is no vendored copy) is swapped for chevrotain-vendored.ts.
// - No dynamic import() is left in it (node loses the callback for a script's import() when V8
//   takes its functions from a code cache): esbuild turns each one into a require(), which for
//   a module bundled in is still evaluated only when first needed, and for node's built-in
//   modules still loads them on first use (net, tls, zlib stay unloaded in a no-op rebuild).
// - import.meta.url is the script's own file URL, made from __filename.
await build({
  ...common,
  splitting: false,
  format: 'cjs',
  entryPoints: [join(repo, 'src', 'cli', 'main.ts')],
  outfile: join(repo, 'dist', 'cli', 'main.cjs'),
  // Whitespace and syntax only (names stay, for stack traces): a quarter fewer bytes to read and
  // a smaller code cache (~3 ms less per command).
  minifyWhitespace: true,
  minifySyntax: true,
  supported: { 'dynamic-import': false },
  define: { 'import.meta.url': '__tsbuildImportMetaUrl' },
  banner: { js: 'var __tsbuildImportMetaUrl = require("node:url").pathToFileURL(__filename).href;' },
  plugins: [
    {
      name: 'vendored-chevrotain',
      setup(b) {
        b.onResolve({ filter: /^\.\/chevrotain\.js$/ }, (args) =>
          args.importer.endsWith(join('src', 'parser', 'tokens.ts')) ? { path: join(repo, 'src', 'parser', 'chevrotain-vendored.ts') } : undefined,
        );
      },
    },
  ],
});
// Its loader (node's built-in modules only), and dist/cli.js: an ES module that imports the
// loader beside it, not bundled.
await build({ ...common, splitting: false, entryPoints: [join(repo, 'src', 'cli', 'loader.ts')], outfile: join(repo, 'dist', 'cli', 'loader.js') });
await build({ entryPoints: [join(repo, 'src', 'cli.ts')], outfile: join(repo, 'dist', 'cli.js'), platform: 'node', format: 'esm', target: 'node20', logLevel: 'warning' });
// The command as package.json's bin gives it: the loader in a CommonJS file (node starts a
// CommonJS entry without its ES module loader: 15-25 ms less). Its first two lines are also a
// shell script: run as a command, /bin/sh starts node on the same file without
// NODE_EXTRA_CA_CERTS, passed on as TSBUILD_NODE_EXTRA_CA_CERTS (node loads that file while it
// starts, 60-90 ms with a system bundle; src/util/extra-ca.ts reads it when a TLS connection
// needs it). To node, line 2 is a string and a comment; `node dist/cli.cjs` works as before.
const launcher = [
  '#!/bin/sh',
  '":" //; [ -z "$NODE_EXTRA_CA_CERTS" ] || { export TSBUILD_NODE_EXTRA_CA_CERTS="$NODE_EXTRA_CA_CERTS"; unset NODE_EXTRA_CA_CERTS; }; exec node "$0" "$@"',
].join('\n');
await build({
  ...common,
  splitting: false,
  format: 'cjs',
  stdin: { contents: "import { loadCommandLine } from './cli/loader.ts';\nvoid loadCommandLine().runProcess();\n", resolveDir: join(repo, 'src'), sourcefile: 'cli.cjs.ts', loader: 'ts' },
  outfile: join(repo, 'dist', 'cli.cjs'),
  define: { 'import.meta.url': '__tsbuildImportMetaUrl' },
  banner: { js: `${launcher}\nvar __tsbuildImportMetaUrl = require("node:url").pathToFileURL(__filename).href;` },
});
for (const f of ['cli.js', 'cli.cjs']) chmodSync(join(repo, 'dist', f), 0o755);

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
