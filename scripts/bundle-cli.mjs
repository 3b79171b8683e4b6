// Bundles the command line (src/cli.ts and every module it reaches, dynamic imports included)
// into one ES module, dist/cli.js, over the file tsc wrote there. Loading ~60 modules one by
// one costs node about 0.1–0.2 s before a build starts; one file costs a fraction of that.
// npm packages stay external (loaded from node_modules as they are). The library entry points
// (dist/index.js, dist/parser/…) stay tsc's one-file-per-module output.
import { build } from 'esbuild';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
await build({
  entryPoints: [join(repo, 'src/cli.ts')],
  outfile: join(repo, 'dist/cli.js'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  sourcemap: 'linked',
  logLevel: 'warning',
});
