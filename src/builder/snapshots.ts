import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, createWriteStream, lchownSync, linkSync, lstatSync, lutimesSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, symlinkSync, utimesSync, writeFileSync, type Stats } from 'node:fs';
import { lstat, mkdir, readdir, readFile, realpath, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { TsbuildError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import { digestHex } from '../oci/digest.js';
import { autoDecompress } from '../oci/compress.js';

/** How long a snapshot or temp directory is safe from `gc` after its last use (as the store's blob GC). */
export const DEFAULT_GRACE_MS = 10 * 60 * 1000;

/** How often a process refreshes the marks of the temp directories it is using. */
const TEMP_MARK_MS = 60 * 1000;

/**
 * The one rule `gc` follows and `usage` reports: a directory goes when no live diffID names it
 * and it was not used within the grace period (a build in flight may be about to mount it).
 */
function reclaimable(live: boolean, lastUsedMs: number, now: number, graceMs: number): boolean {
  return !live && now - lastUsedMs >= graceMs;
}

/** One snapshot (or temp directory) as `SnapshotStore.usage` reports it. */
export interface SnapshotUsage {
  /** The directory's name: a layer's first 24 hex digits of its diffID, or a temp directory's name under `tmp/`. */
  readonly name: string;
  /** An unpacked layer, or a build's temp directory (in flight, or left by a killed build). */
  readonly kind: 'layer' | 'temp';
  /** Bytes on disk (allocated blocks), as `du -sx` counts them. */
  readonly size: number;
  /** The `used/<name>` mark's mtime, else the directory's own mtime. */
  readonly lastUsedAt: Date;
  /** A layer: a diffID of the `live` set names it. A temp directory: something is mounted under it (a build in flight). */
  readonly live: boolean;
  /** `gc` with the same live set and grace period would remove it. */
  readonly reclaimable: boolean;
}

/** What `SnapshotStore.gc` removed (or, with `dryRun`, would remove), and the bytes on disk that frees. */
export interface SnapshotGcResult {
  readonly removed: number;
  readonly freedBytes: number;
  readonly tempsRemoved: number;
  readonly tempsFreedBytes: number;
}

/**
 * Unpacked layers, one directory per layer diffID, in overlayfs format (whiteouts are 0/0
 * character devices, opaque directories carry `trusted.overlay.opaque=y`), so a stack of them
 * is the lower directories of an overlay mount. Directories are complete or absent: a layer is
 * unpacked into a temp directory and renamed into place, and removed (`gc`) by renaming it out
 * before deleting it.
 *
 * A build marks each snapshot it mounts or makes as used now (`used/<name>`, an empty file whose
 * mtime says when): `gc` leaves alone what was used within its grace period, so a build that
 * runs beside a prune keeps the layers it stands on.
 */
export class SnapshotStore {
  readonly dir: string;
  readonly tmpDir: string;
  constructor(root: string) {
    this.dir = path.join(root, 'snapshots');
    this.tmpDir = path.join(root, 'snapshots', 'tmp');
  }

  /** Short path, because overlay's lowerdir option is limited to a page. */
  pathFor(diffId: Digest): string {
    return path.join(this.dir, digestHex(diffId).slice(0, 24));
  }

  #markUsed(diffId: Digest): void {
    this.#mark(digestHex(diffId).slice(0, 24));
  }

  /** Sets `used/<name>` to now: a snapshot (by its directory name) or a temp directory (`tmp/<name>`). */
  #mark(name: string): void {
    const f = path.join(this.dir, 'used', name);
    const now = new Date();
    try {
      utimesSync(f, now, now);
    } catch {
      try {
        mkdirSync(path.dirname(f), { recursive: true });
        closeSync(openSync(f, 'w'));
      } catch {
        // best effort: without a mark, the snapshot's own mtime (when it was made) counts
      }
    }
  }

  /**
   * Removes the snapshots no diffID in `live` names that were not used within `graceMs`
   * (default 10 minutes, as the store's blob GC), and temp directories (of killed builds) older
   * than that with nothing mounted under them: what `usage` reports as reclaimable. Each snapshot is renamed out of place before
   * it is deleted, so that no build ever sees half of one. Returns how many snapshots went and
   * their size on disk, and the same for the temp directories.
   */
  async gc(live: ReadonlySet<Digest>, options: { graceMs?: number; dryRun?: boolean } = {}): Promise<SnapshotGcResult> {
    const result = { removed: 0, freedBytes: 0, tempsRemoved: 0, tempsFreedBytes: 0 };
    const seen = new Set<string>();
    for (const c of await this.#scan(live, options.graceMs ?? DEFAULT_GRACE_MS)) {
      if (!c.reclaimable) continue;
      const bytes = await diskUsage(c.dir, seen);
      if (c.kind === 'temp') {
        if (!options.dryRun) {
          rmSync(c.dir, { recursive: true, force: true });
          rmSync(path.join(this.dir, 'used', c.name), { force: true });
        }
        result.tempsRemoved++;
        result.tempsFreedBytes += bytes;
        continue;
      }
      if (!options.dryRun) {
        const out = this.tempDirSync('gc');
        try {
          renameSync(c.dir, path.join(out, c.name));
        } catch {
          rmSync(out, { recursive: true, force: true });
          continue; // gone meanwhile
        }
        rmSync(out, { recursive: true, force: true });
        rmSync(path.join(this.dir, 'used', c.name), { force: true });
      }
      result.removed++;
      result.freedBytes += bytes;
    }
    // marks of temp directories that are gone (their process was killed before it forgot them)
    if (!options.dryRun) {
      for (const name of listSync(path.join(this.dir, 'used'))) {
        if (!/^[0-9a-f]{24}$/.test(name) && !lstatSync(path.join(this.tmpDir, name), { throwIfNoEntry: false })) rmSync(path.join(this.dir, 'used', name), { force: true });
      }
    }
    return result;
  }

  /**
   * Every snapshot, and every temp directory a build left under `tmp/`, with its size on disk and
   * whether `gc(live, { graceMs })` would remove it; most recently used first. Sizes are `du -sx`
   * sizes: allocated blocks, each directory itself included, a file with several hard links
   * counted once in the whole listing, nothing under a mount point (an overlay a build in flight
   * has mounted in its temp directory).
   */
  async usage(live: ReadonlySet<Digest>, options: { graceMs?: number } = {}): Promise<SnapshotUsage[]> {
    const seen = new Set<string>();
    const out: SnapshotUsage[] = [];
    for (const c of await this.#scan(live, options.graceMs ?? DEFAULT_GRACE_MS)) {
      out.push({ name: c.name, kind: c.kind, size: await diskUsage(c.dir, seen), lastUsedAt: new Date(c.lastUsedMs), live: c.live, reclaimable: c.reclaimable });
    }
    return out.sort((a, b) => b.lastUsedAt.getTime() - a.lastUsedAt.getTime() || (a.name < b.name ? -1 : 1));
  }

  /** The snapshots and temp directories, each with its last use and the verdict of `reclaimable`. */
  async #scan(live: ReadonlySet<Digest>, graceMs: number): Promise<{ name: string; dir: string; kind: 'layer' | 'temp'; lastUsedMs: number; live: boolean; reclaimable: boolean }[]> {
    const now = Date.now();
    const keep = new Set([...live].map((d) => digestHex(d).slice(0, 24)));
    const list = async (dir: string) => readdir(dir).catch((): string[] => []);
    const layers = await Promise.all(
      (await list(this.dir))
        .filter((name) => /^[0-9a-f]{24}$/.test(name))
        .map(async (name) => {
          const dir = path.join(this.dir, name);
          // the build's mark, else the directory's own mtime (when it was made)
          const used = (await stat(path.join(this.dir, 'used', name)).catch(() => undefined)) ?? (await stat(dir).catch(() => undefined));
          const isLive = keep.has(name);
          return used && { name, dir, kind: 'layer' as const, lastUsedMs: used.mtimeMs, live: isLive, reclaimable: reclaimable(isLive, used.mtimeMs, now, graceMs) };
        }),
    );
    // A temp directory with a mount under it belongs to a build in flight, however old it is
    // (a RUN may take longer than the grace period): removing it would delete through the mount.
    const tmpReal = await realpath(this.tmpDir).catch(() => path.resolve(this.tmpDir));
    const mounted = await mountPointsUnder(tmpReal);
    const temps = await Promise.all(
      (await list(this.tmpDir)).map(async (name) => {
        const dir = path.join(this.tmpDir, name);
        const st = await lstat(dir).catch(() => undefined);
        // the directory's own mtime, or the mark its build refreshes while it runs
        const mark = await stat(path.join(this.dir, 'used', name)).catch(() => undefined);
        const last = Math.max(st?.mtimeMs ?? 0, mark?.mtimeMs ?? 0);
        const real = path.join(tmpReal, name);
        const inUse = mounted.some((m) => m === real || m.startsWith(`${real}/`));
        return st && { name, dir, kind: 'temp' as const, lastUsedMs: last, live: inUse, reclaimable: reclaimable(inUse, last, now, graceMs) };
      }),
    );
    return [...layers, ...temps].filter((c) => c !== undefined);
  }

  async has(diffId: Digest): Promise<boolean> {
    try {
      return (await lstat(this.pathFor(diffId))).isDirectory();
    } catch {
      return false;
    }
  }

  /** A fresh, empty directory under the store's temp dir (same filesystem as the snapshots). */
  async tempDir(prefix = 'w'): Promise<string> {
    return this.tempDirSync(prefix);
  }

  /** `tempDir`, synchronously: two mkdir calls cost less than two threadpool round trips. */
  tempDirSync(prefix = 'w'): string {
    const name = `${prefix}-${randomBytes(6).toString('hex')}`;
    const d = path.join(this.tmpDir, name);
    try {
      mkdirSync(d);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      mkdirSync(this.tmpDir, { recursive: true });
      mkdirSync(d);
    }
    this.#temps.add(name);
    if (!this.#heartbeat) {
      this.#heartbeat = setInterval(() => this.refreshTempMarks(), TEMP_MARK_MS);
      this.#heartbeat.unref();
    }
    return d;
  }

  /**
   * Temp directories this process made, while they exist: their `used/` marks are refreshed
   * every minute, so a step that runs longer than `gc`'s grace period (a RUN upper dir whose
   * own mtime does not move) is never taken by a prune beside it.
   */
  readonly #temps = new Set<string>();
  #heartbeat: NodeJS.Timeout | undefined;

  /** Marks this process's temp directories as used now and forgets those that are gone (called every minute). */
  refreshTempMarks(): void {
    for (const name of this.#temps) {
      if (lstatSync(path.join(this.tmpDir, name), { throwIfNoEntry: false })) this.#mark(name);
      else {
        this.#temps.delete(name);
        rmSync(path.join(this.dir, 'used', name), { force: true });
      }
    }
    if (this.#temps.size === 0 && this.#heartbeat) {
      clearInterval(this.#heartbeat);
      this.#heartbeat = undefined;
    }
  }

  /**
   * Removes a small temp directory (an overlay's work and mount dirs, once unmounted) with
   * synchronous calls: a handful of them cost less than the threadpool round trips of `rm`.
   */
  removeSmall(dir: string): void {
    rmSync(dir, { recursive: true, force: true });
  }

  /**
   * The directories of one overlay mount, in one fresh temp directory `dir` (removed as a whole
   * once the mount is gone): `upper` (the changes, committed by renaming it), `work` and `mnt`.
   */
  overlayDirs(prefix = 'o'): { dir: string; upper: string; work: string; mnt: string } {
    const dir = this.tempDirSync(prefix);
    const sub = { upper: path.join(dir, 'u'), work: path.join(dir, 'w'), mnt: path.join(dir, 'm') };
    for (const d of Object.values(sub)) mkdirSync(d);
    return { dir, ...sub };
  }

  /** Moves a finished directory (an overlay upper dir, or an unpacked layer) into place for `diffId`. */
  async commit(dir: string, diffId: Digest): Promise<string> {
    const dest = this.pathFor(diffId);
    this.#markUsed(diffId);
    try {
      await rename(dir, dest);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
      await rm(dir, { recursive: true, force: true }); // another build committed the same layer
    }
    return dest;
  }

  /** Unpacks a (compressed or not) layer blob for `diffId`, unless present. Returns its directory. */
  async ensure(diffId: Digest, open: () => Promise<Readable>): Promise<string> {
    if (await this.has(diffId)) {
      this.#markUsed(diffId);
      return this.pathFor(diffId);
    }
    const tmp = await this.tempDir('u');
    try {
      await unpackOverlayLayer(await open(), tmp);
      return await this.commit(tmp, diffId);
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      throw err;
    }
  }

  /** An empty directory, the lower layer of a scratch filesystem. */
  async empty(): Promise<string> {
    const d = path.join(this.dir, 'empty');
    await mkdir(d, { recursive: true });
    return d;
  }
}

/** The names in a directory; none when it is missing. */
function listSync(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** The mount points (of this process's mount namespace) at or under `dir`, from /proc/self/mountinfo. */
async function mountPointsUnder(dir: string): Promise<string[]> {
  let info: string;
  try {
    info = await readFile('/proc/self/mountinfo', 'utf8');
  } catch {
    return []; // not Linux: no overlays either
  }
  const out: string[] = [];
  for (const line of info.split('\n')) {
    // field 5 is the mount point, with space, tab, newline and backslash as octal escapes
    const field = line.split(' ')[4];
    if (field === undefined) continue;
    const p = field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (p === dir || p.startsWith(`${dir}/`)) out.push(p);
  }
  return out;
}

/**
 * Bytes a directory tree takes on disk, as `du -sx` counts them: allocated blocks of `dir` and
 * everything under it, links not followed, a mount point below `dir` (another device) not
 * entered, and a file with several hard links counted once per `seen` set.
 *
 * Synchronous calls, yielding to the event loop every 20 ms: on /usr here (140,000 entries)
 * that takes 1.0 s, as GNU du does, where a walk of promised `lstat`s takes 4.6 to 7.6 s and
 * 300 MB.
 */
async function diskUsage(dir: string, seen: Set<string>): Promise<number> {
  const top = lstatSync(dir, { throwIfNoEntry: false });
  if (!top) return 0;
  let total = 0;
  const count = (st: Stats): void => {
    if (st.nlink > 1 && !st.isDirectory()) {
      const id = `${st.dev}:${st.ino}`;
      if (seen.has(id)) return;
      seen.add(id);
    }
    total += st.blocks * 512;
  };
  count(top);
  const stack = top.isDirectory() ? [dir] : [];
  let since = performance.now();
  while (stack.length > 0) {
    const d = stack.pop()!;
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      continue; // removed meanwhile
    }
    for (const n of names) {
      const p = path.join(d, n);
      const st = lstatSync(p, { throwIfNoEntry: false });
      if (!st || st.dev !== top.dev) continue;
      count(st);
      if (st.isDirectory()) stack.push(p);
    }
    if (performance.now() - since > 20) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      since = performance.now();
    }
  }
  return total;
}

export class LayerUnpackError extends TsbuildError {}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (b) => (err += String(b)));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')}: ${err.trim() || `exit ${code}`}`))));
  });
}

/** Normalizes a tar entry name to a clean relative path, or throws if it leaves the root. */
function entryPath(name: string): string {
  const parts: string[] = [];
  for (const p of name.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') throw new LayerUnpackError('TSBUILD_LAYER_ESCAPE', `layer entry ${JSON.stringify(name)} escapes the layer root`);
    parts.push(p);
  }
  return parts.join('/');
}

/** Runs `cmd args` with `input` on stdin; rejects with its stderr on failure. */
function runWithInput(cmd: string, args: string[], input: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (b) => (err += String(b)));
    child.on('error', reject);
    child.stdin.on('error', () => {}); // an early exit shows up as the exit code
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')}: ${err.trim() || `exit ${code}`}`))));
    child.stdin.end(input);
  });
}

/** A path as `getfattr --dump` writes it and `setfattr --restore` reads it: octal escapes for anything unusual. */
function xattrDumpPath(p: string): string {
  let out = '';
  for (const byte of Buffer.from(p)) {
    out += byte > 0x20 && byte < 0x7f && byte !== 0x5c ? String.fromCharCode(byte) : `\\${byte.toString(8).padStart(3, '0')}`;
  }
  return out;
}

/** Files up to this size are buffered and written with one synchronous call. */
const SMALL_FILE = 1 << 20;

async function readEntry(entry: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of entry) parts.push(chunk);
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/**
 * Unpacks one layer tar into `dir` in overlayfs format. Entries never escape `dir`: `..` is
 * rejected, no entry is written through a symlink, and a hard link's target must lie in real
 * directories. Ownership, modes and mtimes are kept.
 *
 * Speed: metadata calls are synchronous (one thread-pool round trip costs more than the call);
 * when `dir` starts empty, a path under a directory this unpack created can only exist if an
 * earlier entry wrote it, which a set answers, so the `rm` before each entry is skipped; the
 * whiteouts (0/0 character devices) are made by one `xargs mknod` and the opaque markers by one
 * `setfattr --restore` per layer, after the last entry.
 */
export async function unpackOverlayLayer(stream: Readable, dir: string): Promise<void> {
  const extract = tar.extract();
  /** Directories (relative) known to be real directories, not symlinks, under `dir`. */
  const safeDirs = new Set<string>(['']);
  /** Directories created by this unpack (or `dir` itself when it started empty): their contents are all in `written`. */
  const freshDirs = new Set<string>();
  if (readdirSync(dir).length === 0) freshDirs.add('');
  /** Every path this unpack created (a superset after removals, which is the safe direction). */
  const written = new Set<string>();
  const dirTimes: { abs: string; mtime: Date }[] = [];
  /** Whiteouts to make at the end, by relative path; dropped if a later entry replaces them. */
  const whiteouts = new Set<string>();
  const opaque = new Set<string>();

  const parentOf = (rel: string): string => {
    const i = rel.lastIndexOf('/');
    return i < 0 ? '' : rel.slice(0, i);
  };
  /** Whether `rel` is certainly absent, so it can be created without removing anything first. */
  const knownAbsent = (rel: string): boolean => freshDirs.has(parentOf(rel)) && !written.has(rel);
  /** Forget what `rel` (and anything under it) was, before it is removed or replaced. */
  const forget = (rel: string): void => {
    const prefix = `${rel}/`;
    for (const set of [safeDirs, freshDirs, whiteouts, opaque]) {
      for (const p of set) if (p === rel || p.startsWith(prefix)) set.delete(p);
    }
  };
  /** Clears the way for a new non-directory entry at `rel`. */
  const clear = (rel: string, abs: string): void => {
    whiteouts.delete(rel);
    if (knownAbsent(rel)) return;
    if (safeDirs.has(rel) || freshDirs.has(rel)) forget(rel);
    rmSync(abs, { recursive: true, force: true });
  };

  const ensureParent = (rel: string): void => {
    const parent = parentOf(rel);
    if (safeDirs.has(parent)) return;
    let cur = '';
    for (const part of parent.split('/')) {
      cur = cur ? `${cur}/${part}` : part;
      if (safeDirs.has(cur)) continue;
      const abs = path.join(dir, cur);
      if (knownAbsent(cur)) {
        mkdirSync(abs, { mode: 0o755 });
        freshDirs.add(cur);
      } else {
        const st = lstatSync(abs, { throwIfNoEntry: false });
        if (st === undefined) {
          mkdirSync(abs, { mode: 0o755 });
          if (freshDirs.has(parentOf(cur))) freshDirs.add(cur);
        } else if (!st.isDirectory()) {
          throw new LayerUnpackError('TSBUILD_LAYER_ESCAPE', `layer entry under ${JSON.stringify(cur)} goes through a non-directory`);
        }
      }
      written.add(cur);
      whiteouts.delete(cur);
      safeDirs.add(cur);
    }
  };

  /** Whether every component of `rel` is a real directory (not created if missing). */
  const isDirChain = (rel: string): boolean => {
    if (safeDirs.has(rel)) return true;
    let cur = '';
    for (const part of rel.split('/')) {
      cur = cur ? `${cur}/${part}` : part;
      if (safeDirs.has(cur)) continue;
      if (!lstatSync(path.join(dir, cur), { throwIfNoEntry: false })?.isDirectory()) return false;
    }
    return true;
  };

  const done = (async () => {
    for await (const entry of extract) {
      const h = entry.header;
      const rel = entryPath(h.name);
      const base = path.posix.basename(rel);
      try {
        if (rel === '') {
          if (h.type === 'directory') {
            chmodSync(dir, (h.mode ?? 0o755) & 0o7777);
            lchownSync(dir, h.uid ?? 0, h.gid ?? 0);
          }
          continue;
        }
        ensureParent(rel);
        const abs = path.join(dir, rel);
        if (base === '.wh..wh..opq') {
          opaque.add(parentOf(rel));
          continue;
        }
        if (base.startsWith('.wh.')) {
          const name = base.slice(4);
          if (name === '' || name === '.' || name === '..') throw new LayerUnpackError('TSBUILD_LAYER_ESCAPE', `layer entry ${JSON.stringify(h.name)} is not a valid whiteout`);
          const targetRel = parentOf(rel) === '' ? name : `${parentOf(rel)}/${name}`;
          clear(targetRel, path.join(dir, targetRel));
          written.add(targetRel);
          whiteouts.add(targetRel);
          continue;
        }
        const mtime = h.mtime ?? new Date(0);
        const uid = h.uid ?? 0;
        const gid = h.gid ?? 0;
        switch (h.type) {
          case 'directory': {
            whiteouts.delete(rel);
            if (knownAbsent(rel)) {
              mkdirSync(abs);
              freshDirs.add(rel);
            } else {
              const st = lstatSync(abs, { throwIfNoEntry: false });
              if (st === undefined || !st.isDirectory()) {
                if (st !== undefined) rmSync(abs, { force: true });
                mkdirSync(abs);
                if (freshDirs.has(parentOf(rel))) freshDirs.add(rel);
              }
            }
            written.add(rel);
            safeDirs.add(rel);
            chmodSync(abs, (h.mode ?? 0o755) & 0o7777);
            lchownSync(abs, uid, gid);
            dirTimes.push({ abs, mtime });
            break;
          }
          case 'file':
          case 'contiguous-file': {
            clear(rel, abs);
            written.add(rel);
            // 'wx': O_EXCL never follows a symlink and fails if something is already there.
            if ((h.size ?? 0) <= SMALL_FILE) writeFileSync(abs, await readEntry(entry as unknown as AsyncIterable<Buffer>), { flag: 'wx', mode: 0o600 });
            else await pipeline(entry, createWriteStream(abs, { flags: 'wx', mode: 0o600 }));
            lchownSync(abs, uid, gid);
            chmodSync(abs, (h.mode ?? 0o644) & 0o7777);
            lutimesSync(abs, mtime, mtime);
            break;
          }
          case 'symlink': {
            clear(rel, abs);
            written.add(rel);
            symlinkSync(h.linkname ?? '', abs);
            lchownSync(abs, uid, gid);
            lutimesSync(abs, mtime, mtime);
            break;
          }
          case 'link': {
            const target = entryPath(h.linkname ?? '');
            const targetAbs = path.join(dir, target);
            const st = target !== '' && isDirChain(parentOf(target)) ? lstatSync(targetAbs, { throwIfNoEntry: false }) : undefined;
            if (!st || whiteouts.has(target)) throw new LayerUnpackError('TSBUILD_LAYER_BAD_LINK', `hard link ${JSON.stringify(h.name)} points at ${JSON.stringify(h.linkname)}, which is not in this layer`);
            if (st.isDirectory()) throw new LayerUnpackError('TSBUILD_LAYER_BAD_LINK', `hard link ${JSON.stringify(h.name)} points at directory ${JSON.stringify(h.linkname)}`);
            if (target === rel) break;
            clear(rel, abs);
            written.add(rel);
            linkSync(targetAbs, abs);
            break;
          }
          case 'character-device':
          case 'block-device':
          case 'fifo': {
            clear(rel, abs);
            written.add(rel);
            const t = h.type === 'fifo' ? ['p'] : [h.type === 'character-device' ? 'c' : 'b', String(h.devmajor ?? 0), String(h.devminor ?? 0)];
            await run('mknod', ['-m', ((h.mode ?? 0o644) & 0o7777).toString(8), abs, ...t]);
            lchownSync(abs, uid, gid);
            break;
          }
          default:
            break; // pax headers etc. are consumed by tar-stream
        }
      } finally {
        entry.resume();
      }
    }
  })();
  await Promise.all([pipeline(stream, autoDecompress(), extract), done]);
  // Every parent below is still a directory this unpack verified (replacements `forget` theirs).
  if (whiteouts.size > 0) {
    const list = Buffer.from([...whiteouts].map((rel) => `${path.join(dir, rel)}\0`).join(''));
    await runWithInput('xargs', ['-0', '-I{}', 'mknod', '{}', 'c', '0', '0'], list);
  }
  if (opaque.size > 0) {
    const dump = [...opaque].map((rel) => `# file: ${xattrDumpPath(path.join(dir, rel))}\ntrusted.overlay.opaque="y"\n\n`).join('');
    await runWithInput('setfattr', ['-h', '--restore=-'], Buffer.from(dump));
  }
  for (const { abs, mtime } of dirTimes.reverse()) {
    try {
      lutimesSync(abs, mtime, mtime);
    } catch {
      // replaced by a later entry
    }
  }
}

/**
 * The native helper's `mountd` mode: one long-lived process that mounts and unmounts overlays
 * in our mount namespace on request (a line each way), instead of spawning mount(8) and
 * umount(8) for every COPY (~12 ms a pair here). It never keeps node alive while idle. If it
 * cannot run (no helper built, not Linux), `mountOverlay` spawns mount(8) as before.
 */
class MountServer {
  readonly #child: ChildProcess;
  #alive = true;
  #buffer = '';
  readonly #waiting: { resolve: (line: string) => void; reject: (err: Error) => void }[] = [];
  #queue: Promise<unknown> = Promise.resolve();

  constructor(helper: string) {
    this.#child = spawn(helper, ['mountd'], { stdio: ['pipe', 'pipe', 'ignore'] });
    this.#child.on('error', (err) => this.#fail(err));
    this.#child.on('exit', () => this.#fail(new Error('mount helper exited')));
    this.#child.stdin!.on('error', (err) => this.#fail(err));
    this.#child.stdout!.setEncoding('utf8');
    this.#child.stdout!.on('data', (chunk: string) => {
      this.#buffer += chunk;
      let nl: number;
      while ((nl = this.#buffer.indexOf('\n')) >= 0) {
        const line = this.#buffer.slice(0, nl);
        this.#buffer = this.#buffer.slice(nl + 1);
        this.#waiting.shift()?.resolve(line);
      }
      this.#idle();
    });
    this.#idle();
  }

  get alive(): boolean {
    return this.#alive;
  }

  /** Unref the process and its pipes while no reply is awaited, so node can exit. */
  #idle(): void {
    if (this.#waiting.length > 0) return;
    this.#child.unref();
    (this.#child.stdout as unknown as { unref?: () => void }).unref?.();
    (this.#child.stdin as unknown as { unref?: () => void }).unref?.();
  }

  #fail(err: Error): void {
    this.#alive = false;
    for (const w of this.#waiting.splice(0)) w.reject(err);
  }

  /** Sends one request line; resolves with "ok" or rejects with the helper's error. Requests go one at a time. */
  request(line: string): Promise<void> {
    const next = this.#queue.then(
      () =>
        new Promise<void>((resolve, reject) => {
          if (!this.#alive) return reject(new Error('mount helper is not running'));
          this.#waiting.push({
            resolve: (reply) => (reply === 'ok' ? resolve() : reject(new Error(reply.replace(/^err \d+ /, '')))),
            reject,
          });
          this.#child.ref();
          (this.#child.stdout as unknown as { ref?: () => void }).ref?.();
          this.#child.stdin!.write(line + '\n');
        }),
    );
    this.#queue = next.catch(() => {});
    return next;
  }
}

let server: MountServer | undefined;
let serverChecked = false;

async function mountServer(): Promise<MountServer | undefined> {
  if (server?.alive) return server;
  if (serverChecked && !server) return undefined;
  serverChecked = true;
  try {
    const { DEFAULT_HELPER_PATH, ensureHelper } = await import('../runtime/helper.js');
    await ensureHelper(DEFAULT_HELPER_PATH);
    server = new MountServer(DEFAULT_HELPER_PATH);
  } catch {
    server = undefined;
  }
  return server;
}

/** Mounts an overlay of `lowerDirs` (bottom first) with `upperDir` at `target`. Returns the unmount function. */
export async function mountOverlay(lowerDirs: readonly string[], upperDir: string, workDir: string, target: string): Promise<() => Promise<void>> {
  mkdirSync(target, { recursive: true });
  mkdirSync(workDir, { recursive: true });
  // A work dir a volatile overlay used keeps work/incompat/volatile, and overlayfs refuses to
  // mount over it again until it is gone (a reused work dir; ours are usually fresh).
  rmSync(path.join(workDir, 'work', 'incompat'), { recursive: true, force: true });
  const options = `lowerdir=${lowerOption(lowerDirs)},upperdir=${overlayPath(upperDir)},workdir=${overlayPath(workDir)}`;
  // volatile (Linux 5.10): unmounting a writable overlay otherwise syncs the whole filesystem
  // of its upper dir (overlayfs' sync_fs), so a WORKDIR after an apt-get RUN waited 300 ms for
  // apt's files to reach the disk. The upper dir becomes a snapshot that nothing syncs either
  // (RUN overlays are volatile too); layers are made durable as blobs. A kernel without it
  // gets the plain mount.
  if (volatileOverlay) {
    try {
      return await mount(`${options},volatile`, target);
    } catch (err) {
      let unmount: () => Promise<void>;
      try {
        unmount = await mount(options, target);
      } catch {
        throw err; // not about volatile
      }
      volatileOverlay = false;
      return unmount;
    }
  }
  return mount(options, target);
}

let volatileOverlay = true;

/**
 * A read-only view of the directory `source` without the paths `hidden` (relative to `source`;
 * a directory hides all below it), mounted at `target`: an overlay whose top layer (`maskDir`,
 * made here) holds a whiteout for each hidden path, its parent directories carrying the
 * originals' mode, owners and times (a directory of the top layer is what the view shows).
 * How a bind mount from the context sees it as BuildKit sends it: without what .dockerignore
 * excludes. Returns the unmount function.
 */
export async function mountMaskedView(source: string, hidden: readonly string[], maskDir: string, target: string): Promise<() => Promise<void>> {
  mkdirSync(maskDir, { recursive: true });
  // the mask's directories, in the order made (a parent before its children)
  const made = new Set<string>(['']);
  for (const rel of hidden) {
    const parts = rel.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (made.has(dir)) continue;
      mkdirSync(path.join(maskDir, dir));
      made.add(dir);
    }
  }
  if (hidden.length > 0) await runWithInput('xargs', ['-0', '-I{}', 'mknod', '{}', 'c', '0', '0'], Buffer.from(hidden.map((rel) => `${path.join(maskDir, rel)}\0`).join('')));
  // deepest first: a directory's times are set after its children were made
  for (const rel of [...made].reverse()) {
    const st = lstatSync(path.join(source, rel));
    const dir = path.join(maskDir, rel);
    chmodSync(dir, st.mode & 0o7777);
    lchownSync(dir, st.uid, st.gid);
    utimesSync(dir, st.atime, st.mtime);
  }
  return mountReadOnlyOverlay([source, maskDir], target);
}

/**
 * Mounts a read-only overlay of `lowerDirs` (bottom first; at least two, overlayfs' rule for a
 * mount without an upper dir) at `target`: a stage's filesystem to read from, with no upper and
 * work directories to make and remove. Returns the unmount function.
 */
export async function mountReadOnlyOverlay(lowerDirs: readonly string[], target: string): Promise<() => Promise<void>> {
  if (lowerDirs.length < 2) throw new LayerUnpackError('TSBUILD_MOUNT', `a read-only overlay needs two lower directories (got ${lowerDirs.length})`);
  mkdirSync(target, { recursive: true });
  return mount(`lowerdir=${lowerOption(lowerDirs)}`, target);
}

/**
 * A directory as an overlay mount option takes it: `\` and `:` escaped (overlayfs splits
 * `lowerdir` at `:`), and a `,` (which ends an option and cannot be escaped) refused. A context
 * directory named `x:/host/dir` would otherwise add the host's /host/dir as a layer.
 */
function overlayPath(dir: string): string {
  if (/[,\n\t\0]/.test(dir)) throw new LayerUnpackError('TSBUILD_MOUNT', `cannot mount an overlay of ${JSON.stringify(dir)}: its path holds a comma or a control character`);
  return dir.replace(/[\\:]/g, (c) => `\\${c}`);
}

function lowerOption(lowerDirs: readonly string[]): string {
  return [...lowerDirs].reverse().map(overlayPath).join(':');
}

async function mount(options: string, target: string): Promise<() => Promise<void>> {
  const srv = /[\t\n]/.test(options + target) ? undefined : await mountServer();
  if (srv) {
    try {
      await srv.request(`m ${target}\t${options}`);
      return async () => {
        await srv.request(`u ${target}`).catch(() => run('umount', ['-l', target]));
      };
    } catch (err) {
      if (srv.alive) throw new LayerUnpackError('TSBUILD_MOUNT', `mount overlay on ${target}: ${(err as Error).message}`, { cause: err });
      // the helper died: mount(8) below
    }
  }
  const args = ['-t', 'overlay', 'overlay', '-o', options, target];
  // -i: no /sbin/mount.<type> helper lookup, -n: no mtab work; about a third off each spawn pair.
  // A mount without those flags (another implementation) gets the plain form as a second try.
  await run('mount', ['-i', '-n', ...args]).catch(() => run('mount', args));
  return async () => {
    await run('umount', ['-i', '-n', target]).catch(() => run('umount', [target])).catch(() => run('umount', ['-l', target]));
  };
}
