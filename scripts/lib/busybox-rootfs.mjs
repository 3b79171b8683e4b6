// Plain JS (no build step) so both test/helpers/base-images.ts and scripts/make-base-images.mjs
// can use it. Builds the deterministic rootfs tar of a busybox base image from a static busybox.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import tar from 'tar-stream';

const run = promisify(execFile);

/** Bumped when the rootfs recipe changes (part of the fixture cache key). */
export const BUSYBOX_RECIPE_VERSION = 2; // 2: gzip in 1 MiB blocks (ParallelGzip)

const PASSWD = 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n';
const GROUP = 'root:x:0:\nnobody:x:65534:\n';

/**
 * The rootfs tar of a busybox image: /bin/busybox, one absolute symlink per applet
 * (`busybox --list-full`), /etc/passwd and /etc/group (root, nobody), /tmp 1777, /root 0700.
 * Entries sorted, mtime `mtime` (default SOURCE_DATE_EPOCH semantics are the caller's), uid/gid 0,
 * empty user/group names.
 * @param {{ busybox?: string, mtime?: number }} [options]
 * @returns {Promise<{ tar: Buffer, busyboxSha256: string, applets: string[] }>}
 */
export async function busyboxRootfsTar(options = {}) {
  const busybox = options.busybox ?? '/bin/busybox';
  const mtime = new Date((options.mtime ?? 0) * 1000);
  const bin = await readFile(busybox);
  const busyboxSha256 = createHash('sha256').update(bin).digest('hex');
  const { stdout } = await run(busybox, ['--list-full']);
  const applets = stdout.split('\n').map((s) => s.trim()).filter((s) => s && s !== 'bin/busybox');
  /** @type {Map<string, {type: string, mode: number, data?: Buffer, linkname?: string}>} */
  const entries = new Map();
  const dir = (p, mode = 0o755) => entries.set(p, { type: 'directory', mode });
  for (const d of ['bin', 'dev', 'etc', 'home', 'proc', 'sbin', 'sys', 'usr', 'usr/bin', 'usr/sbin', 'var', 'var/tmp']) dir(d);
  dir('root', 0o700);
  dir('tmp', 0o1777);
  entries.set('bin/busybox', { type: 'file', mode: 0o755, data: bin });
  entries.set('etc/passwd', { type: 'file', mode: 0o644, data: Buffer.from(PASSWD) });
  entries.set('etc/group', { type: 'file', mode: 0o644, data: Buffer.from(GROUP) });
  for (const a of applets) {
    const parent = a.split('/').slice(0, -1).join('/');
    if (parent && !entries.has(parent)) dir(parent);
    entries.set(a, { type: 'symlink', mode: 0o777, linkname: '/bin/busybox' });
  }
  const pack = tar.pack();
  const chunks = [];
  const done = new Promise((resolve, reject) => {
    pack.on('data', (c) => chunks.push(c));
    pack.on('end', resolve);
    pack.on('error', reject);
  });
  for (const name of [...entries.keys()].sort()) {
    const e = entries.get(name);
    const header = { name: e.type === 'directory' ? `${name}/` : name, type: e.type, mode: e.mode, mtime, uid: 0, gid: 0, uname: '', gname: '' };
    if (e.type === 'symlink') header.linkname = e.linkname;
    pack.entry(header, e.data);
  }
  pack.finalize();
  await done;
  return { tar: Buffer.concat(chunks), busyboxSha256, applets };
}

/**
 * The image config of the busybox image for an architecture (Env PATH, Cmd ["sh"]).
 * @param {{ architecture: string, os?: string, variant?: string }} platform
 */
export function busyboxConfig(platform) {
  const cfg = {
    architecture: platform.architecture,
    os: platform.os ?? 'linux',
    config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['sh'] },
    rootfs: { type: 'layers', diff_ids: [] },
    history: [],
  };
  if (platform.variant) cfg.variant = platform.variant;
  return cfg;
}
