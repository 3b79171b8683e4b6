import type { BigIntStats } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { DEFAULT_HELPER_PATH, readXattrs } from './helper.js';
import { lstatInLayers } from './layers.js';
import type { TreeSnapshot } from './copy.js';
import { keepXattr, packEntries, type DiffEntry, type MtimePolicy } from './tar.js';

export interface DiffOptions {
  /**
   * Entry mtimes: a number of seconds sets every entry's mtime to it; `{ clamp: n }` lowers later
   * ones to n (BuildKit's SOURCE_DATE_EPOCH rewrite); `'preserve'` keeps them. Default 0.
   */
  readonly mtime?: MtimePolicy;
  /**
   * Paths (absolute, inside the root) the sandbox mounted over. An empty directory or file the
   * sandbox created there only as a mount point, and parents created only for it, are left out.
   */
  readonly excludeMountPoints?: readonly string[];
  /** The C helper (reads xattrs); default the bundled one. */
  readonly helperPath?: string;
}

const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

function mountSets(points: readonly string[]): { points: Set<string>; parents: Set<string> } {
  const p = new Set<string>();
  const parents = new Set<string>();
  for (const m of points) {
    const parts = m.split('/').filter(Boolean);
    p.add(parts.join('/'));
    for (let i = 1; i < parts.length; i++) parents.add(parts.slice(0, i).join('/'));
  }
  return { points: p, parents };
}

const isOpaque = (x: ReadonlyMap<string, Buffer> | undefined) =>
  x?.get('trusted.overlay.opaque')?.toString() === 'y' || x?.get('user.overlay.opaque')?.toString() === 'y';

const kept = (x: ReadonlyMap<string, Buffer> | undefined) => [...(x ?? [])].filter(([k]) => keepXattr(k));

function sameXattrs(a: ReadonlyMap<string, Buffer> | undefined, b: ReadonlyMap<string, Buffer> | undefined): boolean {
  const ka = kept(a);
  const kb = new Map(kept(b));
  return ka.length === kb.size && ka.every(([k, v]) => kb.get(k)?.equals(v) === true);
}

function nodeEntry(rel: string, path: string, stats: BigIntStats, xattrs: ReadonlyMap<string, Buffer> | undefined, linkTarget?: string): DiffEntry {
  return { kind: 'node', rel, path, stats, ...(linkTarget !== undefined ? { linkTarget } : {}), ...(xattrs ? { xattrs } : {}) };
}

/**
 * The changes an overlayfs upper directory holds over its lower dirs (bottom first), as a
 * deterministic layer tar: entries sorted by name, whiteouts (0/0 character devices) as
 * `.wh.<name>`, opaque directories as `<dir>/.wh..wh..opq`, copied-up directories only when
 * their metadata changed or something below them did, sandbox-made mount points left out.
 */
export function diffUpperDir(upperDir: string, lowerDirs: readonly string[], options: DiffOptions = {}): Readable {
  return packEntries(upperEntries(upperDir, lowerDirs, options), options.mtime ?? 0);
}

async function* upperEntries(upperDir: string, lowerDirs: readonly string[], options: DiffOptions): AsyncGenerator<DiffEntry> {
  const xattrs = await readXattrs(options.helperPath ?? DEFAULT_HELPER_PATH, upperDir);
  const layers = [...lowerDirs].reverse();
  const mounts = mountSets(options.excludeMountPoints ?? []);
  const walk = async (relDir: string, dir: string): Promise<DiffEntry[]> => {
    const out: DiffEntry[] = [];
    for (const name of (await readdir(dir)).sort(byteOrder)) {
      const rel = relDir ? `${relDir}/${name}` : name;
      const path = join(dir, name);
      const st = await lstat(path, { bigint: true });
      if (st.isCharacterDevice() && st.rdev === 0n) {
        out.push({ kind: 'whiteout', rel: relDir ? `${relDir}/.wh.${name}` : `.wh.${name}` });
        continue;
      }
      const xa = xattrs.get(`/${rel}`);
      if (st.isDirectory()) {
        const opaque = isOpaque(xa);
        const children = await walk(rel, path);
        const lower = opaque ? undefined : await lstatInLayers(layers, rel);
        const lowerSt = lower?.stats;
        const same = lowerSt?.isDirectory() === true && BigInt(lowerSt.mode) === st.mode && BigInt(lowerSt.uid) === st.uid &&
          BigInt(lowerSt.gid) === st.gid && kept(xa).length === 0;
        const mountOnly = !lower && !opaque && children.length === 0 && (mounts.points.has(rel) || mounts.parents.has(rel));
        if (mountOnly || (same && children.length === 0)) continue;
        out.push(nodeEntry(rel, path, st, xa));
        if (opaque) out.push({ kind: 'opaque', rel });
        out.push(...children);
        continue;
      }
      if (mounts.points.has(rel) && st.isFile() && st.size === 0n && !(await lstatInLayers(layers, rel))) continue;
      out.push(nodeEntry(rel, path, st, xa, st.isSymbolicLink() ? await readlink(path) : undefined));
    }
    return out;
  };
  yield* await walk('', upperDir);
}

/**
 * The changes of a copy-fallback root against the snapshot taken when it was made: the same
 * entries `diffUpperDir` gives for the same operations (a replaced directory, one whose inode
 * or birth time changed, becomes opaque; a missing path becomes a whiteout).
 */
export function diffTrees(rootDir: string, base: TreeSnapshot, options: DiffOptions = {}): Readable {
  return packEntries(treeEntries(rootDir, base, options), options.mtime ?? 0);
}

async function* treeEntries(rootDir: string, base: TreeSnapshot, options: DiffOptions): AsyncGenerator<DiffEntry> {
  const xattrs = await readXattrs(options.helperPath ?? DEFAULT_HELPER_PATH, rootDir);
  const mounts = mountSets(options.excludeMountPoints ?? []);
  const walk = async (relDir: string, dir: string, fresh: boolean): Promise<DiffEntry[]> => {
    const out: DiffEntry[] = [];
    const present = (await readdir(dir)).sort(byteOrder);
    const before = fresh ? [] : (base.children.get(relDir) ?? []);
    const names = [...new Set([...present, ...before])].sort(byteOrder);
    const here = new Set(present);
    for (const name of names) {
      const rel = relDir ? `${relDir}/${name}` : name;
      const old = fresh ? undefined : base.entries.get(rel);
      if (!here.has(name)) {
        out.push({ kind: 'whiteout', rel: relDir ? `${relDir}/.wh.${name}` : `.wh.${name}` });
        continue;
      }
      const path = join(dir, name);
      const st = await lstat(path, { bigint: true });
      const xa = xattrs.get(`/${rel}`);
      if (st.isDirectory()) {
        const replaced = old !== undefined && (!old.stats.isDirectory() || old.stats.ino !== st.ino || old.stats.birthtimeNs !== st.birthtimeNs);
        const children = await walk(rel, path, fresh || replaced);
        const same = old !== undefined && !replaced && old.stats.mode === st.mode && old.stats.uid === st.uid && old.stats.gid === st.gid &&
          sameXattrs(old.xattrs, xa);
        const mountOnly = old === undefined && children.length === 0 && (mounts.points.has(rel) || mounts.parents.has(rel));
        if (mountOnly || (same && children.length === 0)) continue;
        out.push(nodeEntry(rel, path, st, xa));
        if (replaced) out.push({ kind: 'opaque', rel });
        out.push(...children);
        continue;
      }
      if (old) {
        const o = old.stats;
        const unchanged = o.ino === st.ino && o.ctimeNs === st.ctimeNs && o.mtimeNs === st.mtimeNs && o.size === st.size &&
          o.mode === st.mode && o.uid === st.uid && o.gid === st.gid && sameXattrs(old.xattrs, xa);
        if (unchanged) continue;
      } else if (mounts.points.has(rel) && st.isFile() && st.size === 0n) continue;
      out.push(nodeEntry(rel, path, st, xa, st.isSymbolicLink() ? await readlink(path) : undefined));
    }
    return out;
  };
  yield* await walk('', rootDir, false);
}
