import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { chmod, lchown, link, lstat, lutimes, mkdir, rename, rm, symlink } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { TsbuildError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import { digestHex } from '../oci/digest.js';
import { autoDecompress } from '../oci/compress.js';

/**
 * Unpacked layers, one directory per layer diffID, in overlayfs format (whiteouts are 0/0
 * character devices, opaque directories carry `trusted.overlay.opaque=y`), so a stack of them
 * is the lower directories of an overlay mount. Directories are complete or absent: a layer is
 * unpacked into a temp directory and renamed into place.
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

  async has(diffId: Digest): Promise<boolean> {
    try {
      return (await lstat(this.pathFor(diffId))).isDirectory();
    } catch {
      return false;
    }
  }

  /** A fresh, empty directory under the store's temp dir (same filesystem as the snapshots). */
  async tempDir(prefix = 'w'): Promise<string> {
    await mkdir(this.tmpDir, { recursive: true });
    const d = path.join(this.tmpDir, `${prefix}-${randomBytes(6).toString('hex')}`);
    await mkdir(d, { recursive: true });
    return d;
  }

  /** Moves a finished directory (an overlay upper dir, or an unpacked layer) into place for `diffId`. */
  async commit(dir: string, diffId: Digest): Promise<string> {
    const dest = this.pathFor(diffId);
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
    if (await this.has(diffId)) return this.pathFor(diffId);
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

/**
 * Unpacks one layer tar into `dir` in overlayfs format. Entries never escape `dir`: `..` is
 * rejected and no entry is written through a symlink. Ownership, modes and mtimes are kept.
 */
export async function unpackOverlayLayer(stream: Readable, dir: string): Promise<void> {
  const extract = tar.extract();
  const safeDirs = new Set<string>(['']);
  const dirTimes: { abs: string; mtime: Date }[] = [];
  const opaque: string[] = [];

  const ensureParent = async (rel: string) => {
    const parent = path.posix.dirname(rel);
    if (parent === '.' || safeDirs.has(parent)) return;
    let cur = '';
    for (const part of parent.split('/')) {
      cur = cur ? `${cur}/${part}` : part;
      if (safeDirs.has(cur)) continue;
      const abs = path.join(dir, cur);
      try {
        const st = await lstat(abs);
        if (!st.isDirectory()) throw new LayerUnpackError('TSBUILD_LAYER_ESCAPE', `layer entry under ${JSON.stringify(cur)} goes through a non-directory`);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        await mkdir(abs, { mode: 0o755 });
      }
      safeDirs.add(cur);
    }
  };

  const done = (async () => {
    for await (const entry of extract) {
      const h = entry.header;
      const rel = entryPath(h.name);
      const base = path.posix.basename(rel);
      try {
        if (rel === '') {
          if (h.type === 'directory') {
            await chmod(dir, (h.mode ?? 0o755) & 0o7777);
            await lchown(dir, h.uid ?? 0, h.gid ?? 0);
          }
          continue;
        }
        await ensureParent(rel);
        const abs = path.join(dir, rel);
        if (base === '.wh..wh..opq') {
          opaque.push(path.dirname(abs));
          continue;
        }
        if (base.startsWith('.wh.')) {
          const target = path.join(path.dirname(abs), base.slice(4));
          await rm(target, { recursive: true, force: true });
          await run('mknod', [target, 'c', '0', '0']);
          continue;
        }
        const mtime = h.mtime ?? new Date(0);
        switch (h.type) {
          case 'directory': {
            try {
              const st = await lstat(abs);
              if (!st.isDirectory()) {
                await rm(abs, { force: true });
                await mkdir(abs);
              }
            } catch {
              await mkdir(abs);
            }
            safeDirs.add(rel);
            await chmod(abs, (h.mode ?? 0o755) & 0o7777);
            await lchown(abs, h.uid ?? 0, h.gid ?? 0);
            dirTimes.push({ abs, mtime });
            break;
          }
          case 'file':
          case 'contiguous-file': {
            await rm(abs, { recursive: true, force: true });
            await pipeline(entry, createWriteStream(abs, { mode: 0o600 }));
            await lchown(abs, h.uid ?? 0, h.gid ?? 0);
            await chmod(abs, (h.mode ?? 0o644) & 0o7777);
            await lutimes(abs, mtime, mtime);
            break;
          }
          case 'symlink': {
            await rm(abs, { recursive: true, force: true });
            await symlink(h.linkname ?? '', abs);
            await lchown(abs, h.uid ?? 0, h.gid ?? 0);
            await lutimes(abs, mtime, mtime);
            break;
          }
          case 'link': {
            const target = entryPath(h.linkname ?? '');
            const targetAbs = path.join(dir, target);
            const st = await lstat(targetAbs).catch(() => undefined);
            if (!st) throw new LayerUnpackError('TSBUILD_LAYER_BAD_LINK', `hard link ${JSON.stringify(h.name)} points at ${JSON.stringify(h.linkname)}, which is not in this layer`);
            await rm(abs, { recursive: true, force: true });
            await link(targetAbs, abs);
            break;
          }
          case 'character-device':
          case 'block-device':
          case 'fifo': {
            await rm(abs, { recursive: true, force: true });
            const t = h.type === 'fifo' ? ['p'] : [h.type === 'character-device' ? 'c' : 'b', String(h.devmajor ?? 0), String(h.devminor ?? 0)];
            await run('mknod', ['-m', ((h.mode ?? 0o644) & 0o7777).toString(8), abs, ...t]);
            await lchown(abs, h.uid ?? 0, h.gid ?? 0);
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
  await Promise.all([pipeline(stream, autoDecompress(), extract).catch((e) => { throw e; }), done]);
  for (const d of opaque) await run('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', d]);
  for (const { abs, mtime } of dirTimes.reverse()) await lutimes(abs, mtime, mtime).catch(() => {});
}

/** Mounts an overlay of `lowerDirs` (bottom first) with `upperDir` at `target`. Returns the unmount function. */
export async function mountOverlay(lowerDirs: readonly string[], upperDir: string, workDir: string, target: string): Promise<() => Promise<void>> {
  await mkdir(target, { recursive: true });
  await mkdir(workDir, { recursive: true });
  const lower = [...lowerDirs].reverse().join(':');
  await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upperDir},workdir=${workDir}`, target]);
  return async () => {
    await run('umount', [target]).catch(() => run('umount', ['-l', target]));
  };
}
