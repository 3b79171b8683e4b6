import { spawn } from 'node:child_process';
import type { BigIntStats } from 'node:fs';
import { chmod, chown, lstat, mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { SandboxSetupError } from './errors.js';
import { readXattrs } from './helper.js';

/** The state of a copied root right after the copy, for `diffTrees`. Keys have no leading slash. */
export interface TreeSnapshot {
  readonly entries: ReadonlyMap<string, { readonly stats: BigIntStats; readonly xattrs?: ReadonlyMap<string, Buffer> }>;
  /** Names in each directory ('' is the root). */
  readonly children: ReadonlyMap<string, readonly string[]>;
}

const isOpaque = (x: ReadonlyMap<string, Buffer> | undefined) =>
  x?.get('trusted.overlay.opaque')?.toString() === 'y' || x?.get('user.overlay.opaque')?.toString() === 'y';

function cpA(from: string, to: string): Promise<void> {
  return new Promise((resolve, reject) => {
    // --remove-destination: an existing non-directory is replaced, never written through
    const child = spawn('cp', ['-a', '--reflink=auto', '--remove-destination', `${from}/.`, `${to}/`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (b: Buffer) => { err += String(b); });
    child.on('error', (e) => reject(new SandboxSetupError(`cannot copy layer ${from}`, { cause: e })));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new SandboxSetupError(`cannot copy layer ${from}: ${err.trim()}`))));
  });
}

/**
 * Merges overlay-format layer dirs (bottom first) into `dest` with `cp -a` (owners, modes,
 * xattrs, hardlinks, devices), applying each layer's whiteouts and opaque dirs, and returns the
 * snapshot the diff compares against. Used where overlayfs is not available.
 */
export async function copyLayers(helperPath: string, lowerDirs: readonly string[], dest: string): Promise<TreeSnapshot> {
  await mkdir(dest, { recursive: true });
  for (const layer of lowerDirs) {
    const xattrs = await readXattrs(helperPath, layer);
    const whiteouts: string[] = [];
    const prepare = async (rel: string): Promise<void> => {
      const here = join(layer, rel);
      if (rel && isOpaque(xattrs.get(`/${rel}`))) await rm(join(dest, rel), { recursive: true, force: true });
      for (const name of await readdir(here)) {
        const r = rel ? `${rel}/${name}` : name;
        const st = await lstat(join(layer, r));
        if (st.isCharacterDevice() && st.rdev === 0) {
          whiteouts.push(r);
          await rm(join(dest, r), { recursive: true, force: true });
        } else if (st.isDirectory()) {
          const d = await lstat(join(dest, r)).catch(() => undefined);
          if (d && !d.isDirectory()) await rm(join(dest, r), { force: true });
          await prepare(r);
        } else {
          // Whatever is there goes, a symlink most of all: cp -a would write through a lower
          // layer's `f -> /host/file` onto the host.
          const d = await lstat(join(dest, r)).catch(() => undefined);
          if (d) await rm(join(dest, r), { recursive: true, force: true });
        }
      }
    };
    await prepare('');
    await cpA(layer, dest);
    for (const w of whiteouts) await rm(join(dest, w), { force: true });
  }
  const root = await lstat(dest);
  if (lowerDirs.length > 0) {
    const top = await lstat(lowerDirs[lowerDirs.length - 1]!);
    await chmod(dest, top.mode & 0o7777);
    await chown(dest, top.uid, top.gid);
  } else void root;
  const xattrs = await readXattrs(helperPath, dest);
  const entries = new Map<string, { stats: BigIntStats; xattrs?: ReadonlyMap<string, Buffer> }>();
  const children = new Map<string, string[]>();
  const walk = async (rel: string): Promise<void> => {
    const names = await readdir(join(dest, rel));
    children.set(rel, names);
    for (const name of names) {
      const r = rel ? `${rel}/${name}` : name;
      const stats = await lstat(join(dest, r), { bigint: true });
      const xa = xattrs.get(`/${r}`);
      entries.set(r, { stats, ...(xa ? { xattrs: xa } : {}) });
      if (stats.isDirectory()) await walk(r);
    }
  };
  await walk('');
  return { entries, children };
}
