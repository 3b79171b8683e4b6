// The package mirror here serves only some of rollup's per-platform optional packages, so
// `npm install` leaves the others out of package-lock.json and `npm ci` then refuses the lock.
// This adds lock entries for the missing ones (os/cpu/libc from the package name), which npm ci
// skips on any other platform without fetching. Run after `npm install` changes the lock.
import { readFileSync, writeFileSync } from 'node:fs';

const lockPath = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(lockPath, 'utf8'));
const pkgs = lock.packages;
const osOf = { android: 'android', darwin: 'darwin', freebsd: 'freebsd', linux: 'linux', openbsd: 'openbsd', openharmony: 'openharmony', win32: 'win32' };
let added = 0;
for (const [key, entry] of Object.entries(pkgs)) {
  for (const [name, version] of Object.entries(entry.optionalDependencies ?? {})) {
    const at = `node_modules/${name}`;
    if (pkgs[at]) continue;
    const m = /^@rollup\/rollup-([a-z0-9]+)-([a-z0-9]+)(?:-([a-z]+))?$/.exec(name);
    if (!m || !osOf[m[1]]) throw new Error(`${key}: optional ${name} missing from the lock and not a known platform package`);
    const [, os, cpu, abi] = m;
    const e = { version, cpu: [cpu === 'arm' ? 'arm' : cpu], dev: entry.dev ?? undefined, license: 'MIT', optional: true, os: [osOf[os]] };
    if (os === 'linux' && abi) e.libc = [abi.startsWith('musl') ? 'musl' : 'glibc'];
    pkgs[at] = e;
    added++;
  }
}
lock.packages = Object.fromEntries(Object.entries(pkgs).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : a > b ? 1 : 0)));
writeFileSync(lockPath, JSON.stringify(lock, null, 2) + '\n');
console.log(`added ${added} optional platform entries`);
