// Builds the runtime's C helper at install time. Never fails the install: without a compiler
// (or off Linux) tsbuild still parses, plans, pulls and pushes; only RUN needs the helper.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'native', 'tsbuild-sandbox.c');
const out = join(root, 'native', 'build', 'tsbuild-sandbox');
if (process.platform !== 'linux' || !existsSync(src)) process.exit(0);
mkdirSync(dirname(out), { recursive: true });
const cc = process.env.CC || 'cc';
const r = spawnSync(cc, ['-O2', '-Wall', '-static-pie', '-o', out, src], { stdio: 'inherit' });
if (r.status !== 0) {
  const r2 = spawnSync(cc, ['-O2', '-Wall', '-o', out, src], { stdio: 'inherit' });
  if (r2.status !== 0) {
    console.warn(`tsbuild: could not build the runtime helper with ${cc}; RUN steps will be unavailable`);
  }
}
