import { createWriteStream } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { TsbuildError } from '../errors.js';
import { autoDecompress } from './compress.js';

export class UnsafePathError extends TsbuildError {
  readonly entry: string;
  constructor(entry: string, reason: string) {
    super('TSBUILD_UNSAFE_PATH', `tar entry ${JSON.stringify(entry)}: ${reason}`);
    this.entry = entry;
  }
}

export class ExtractError extends TsbuildError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('TSBUILD_EXTRACT', message, options);
  }
}

export interface ExtractOptions {
  /** lchown entries to the uid/gid in the tar (needs root or a user namespace). Default false. */
  readonly preserveOwner?: boolean;
  /** Apply `.wh.` whiteouts and `.wh..wh..opq` opaque markers (default true); when false they are skipped. */
  readonly whiteouts?: boolean;
  readonly signal?: AbortSignal;
}

export interface ExtractResult {
  /** Entries written (files, dirs, links). */
  readonly entries: number;
  /** Whiteouts applied. */
  readonly whiteouts: number;
  /** Entries not written (device nodes, fifos) with the reason. */
  readonly skipped: readonly { name: string; reason: string }[];
}

const WH_PREFIX = '.wh.';
const WH_OPAQUE = '.wh..wh..opq';
const MAX_SYMLINKS = 255;

/** Splits a tar entry name into safe components; `..` anywhere is refused. Leading `/` and `./` are dropped. */
export function safeComponents(name: string, what = name): string[] {
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new UnsafePathError(what, 'path contains ".." (it could escape the root)');
  if (parts.some((p) => p.includes('\0'))) throw new UnsafePathError(what, 'path contains a NUL byte');
  return parts;
}

function clamp(parts: readonly string[]): string[] {
  const out: string[] = [];
  for (const p of parts) {
    if (p === '' || p === '.') continue;
    if (p === '..') out.pop();
    else out.push(p);
  }
  return out;
}

/**
 * Resolves `parts` under `root` the way a chroot would: symlinks in the path are followed, but
 * an absolute target is taken relative to `root` and `..` stops at `root`, so the result is
 * always inside `root`. The last component is followed only when `followLast`.
 */
export async function resolveInRoot(root: string, parts: readonly string[], followLast = false): Promise<string> {
  let pending = [...parts];
  let done: string[] = [];
  let hops = 0;
  while (pending.length > 0) {
    const c = pending.shift()!;
    if (c === '' || c === '.') continue;
    if (c === '..') {
      done.pop();
      continue;
    }
    const isLast = pending.length === 0;
    const candidate = path.join(root, ...done, c);
    if (isLast && !followLast) {
      done.push(c);
      break;
    }
    let st;
    try {
      st = await fs.lstat(candidate);
    } catch {
      done.push(c);
      continue;
    }
    if (!st.isSymbolicLink()) {
      done.push(c);
      continue;
    }
    if (++hops > MAX_SYMLINKS) throw new UnsafePathError(parts.join('/'), 'too many levels of symbolic links');
    const target = await fs.readlink(candidate);
    const targetParts = target.split('/');
    if (target.startsWith('/')) done = [];
    pending = [...targetParts, ...pending];
    done = clamp(done);
  }
  return path.join(root, ...clamp(done));
}

async function removeAll(p: string): Promise<void> {
  await fs.rm(p, { recursive: true, force: true });
}

/** True when every component of `p` below `root` is a directory, none a symlink. */
async function isRealDir(root: string, p: string): Promise<boolean> {
  const rel = path.relative(root, p);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) return false;
  let cur = root;
  for (const part of rel.split(path.sep)) {
    cur = path.join(cur, part);
    const st = await lstatOrUndefined(cur);
    if (!st || !st.isDirectory()) return false;
  }
  return true;
}

async function lstatOrUndefined(p: string) {
  try {
    return await fs.lstat(p);
  } catch {
    return undefined;
  }
}

/**
 * Unpacks one layer (tar, optionally gzip or zstd, detected by magic bytes) onto `dir`, the
 * rootfs assembled so far. Whiteouts delete what lower layers put there; no entry, symlink or
 * hardlink can write outside `dir` (names with `..` are refused, symlinks are resolved inside
 * `dir`, hardlink targets must be inside `dir`).
 */
export async function extractLayer(input: Readable, dir: string, options: ExtractOptions = {}): Promise<ExtractResult> {
  await fs.mkdir(dir, { recursive: true });
  const root = await fs.realpath(dir);
  const applyWhiteouts = options.whiteouts ?? true;
  const written = new Set<string>();
  const dirMeta: { p: string; mode: number; mtime: Date; depth: number }[] = [];
  const skipped: { name: string; reason: string }[] = [];
  let entries = 0;
  let whiteouts = 0;

  const ensureParent = async (parts: string[]): Promise<string> => {
    const parent = await resolveInRoot(root, parts.slice(0, -1), true);
    await fs.mkdir(parent, { recursive: true });
    const st = await fs.lstat(parent);
    if (!st.isDirectory()) throw new ExtractError(`cannot create ${parts.join('/')}: parent ${path.relative(root, parent)} is not a directory`);
    return parent;
  };

  const handle = async (header: tar.Header, stream: Readable): Promise<void> => {
    const name = header.name;
    const parts = safeComponents(name);
    if (parts.length === 0) {
      stream.resume();
      return;
    }
    const base = parts[parts.length - 1]!;
    const rel = parts.join('/');
    if (base.startsWith(WH_PREFIX)) {
      stream.resume();
      if (!applyWhiteouts) return;
      whiteouts++;
      const parentParts = parts.slice(0, -1);
      const parent = await resolveInRoot(root, parentParts, true);
      if (base === WH_OPAQUE) {
        const prefix = parentParts.join('/');
        let names: string[] = [];
        try {
          names = await fs.readdir(parent);
        } catch {
          return;
        }
        for (const n of names) {
          const childRel = prefix ? `${prefix}/${n}` : n;
          if (!written.has(childRel)) await removeAll(path.join(parent, n));
        }
        return;
      }
      const victim = base.slice(WH_PREFIX.length);
      if (victim === '' || victim === '.' || victim === '..') throw new UnsafePathError(name, 'invalid whiteout');
      await removeAll(path.join(parent, victim));
      return;
    }
    const parent = await ensureParent(parts);
    const target = path.join(parent, base);
    if (!target.startsWith(root + path.sep)) throw new UnsafePathError(name, 'resolves outside the root');
    const existing = await lstatOrUndefined(target);
    const mode = (header.mode ?? 0o644) & 0o7777;
    const mtime = header.mtime ?? new Date(0);
    const chown = async () => {
      if (options.preserveOwner) await fs.lchown(target, header.uid ?? 0, header.gid ?? 0);
    };
    switch (header.type) {
      case 'directory': {
        stream.resume();
        if (existing && !existing.isDirectory()) await removeAll(target);
        if (!existing || !existing.isDirectory()) await fs.mkdir(target, { mode: 0o755 });
        await chown();
        dirMeta.push({ p: target, mode, mtime, depth: parts.length });
        break;
      }
      case 'file':
      case 'contiguous-file': {
        if (existing) await removeAll(target);
        const fh = await fs.open(target, 'wx', 0o600);
        try {
          await pipeline(stream, createWriteStream('', { fd: fh.fd, autoClose: false }));
        } finally {
          await fh.close();
        }
        await chown();
        await fs.chmod(target, mode);
        await fs.utimes(target, mtime, mtime);
        break;
      }
      case 'symlink': {
        stream.resume();
        if (existing) await removeAll(target);
        await fs.symlink(header.linkname ?? '', target);
        await chown();
        await fs.lutimes(target, mtime, mtime).catch(() => undefined);
        break;
      }
      case 'link': {
        stream.resume();
        const linkParts = safeComponents(header.linkname ?? '', `${name} (hardlink target ${header.linkname})`);
        if (linkParts.length === 0) throw new UnsafePathError(name, 'hardlink to the root');
        const src = await resolveInRoot(root, linkParts, false);
        if (!src.startsWith(root + path.sep)) throw new UnsafePathError(name, `hardlink target ${header.linkname} is outside the root`);
        const sst = await lstatOrUndefined(src);
        if (!sst) throw new ExtractError(`tar entry ${JSON.stringify(name)}: hardlink target ${JSON.stringify(header.linkname)} does not exist`);
        if (sst.isDirectory()) throw new UnsafePathError(name, `hardlink target ${header.linkname} is a directory`);
        if (src === target) break;
        if (existing) await removeAll(target);
        await fs.link(src, target);
        break;
      }
      default: {
        stream.resume();
        skipped.push({ name: rel, reason: `${header.type} entries are not supported` });
        return;
      }
    }
    written.add(rel);
    entries++;
  };

  const extract = tar.extract();
  const done = new Promise<void>((resolve, reject) => {
    extract.on('entry', (header, stream, next) => {
      if (options.signal?.aborted) {
        extract.destroy(options.signal.reason as Error);
        return;
      }
      handle(header, stream as unknown as Readable).then(
        () => next(),
        (err: unknown) => {
          reject(err);
          extract.destroy(err as Error);
        },
      );
    });
    extract.on('finish', resolve);
    extract.on('error', reject);
  });
  const feed = pipeline(input, autoDecompress(), extract as unknown as NodeJS.WritableStream);
  const results = await Promise.allSettled([done, feed]);
  for (const r of results) if (r.status === 'rejected') throw r.reason;
  dirMeta.sort((a, b) => b.depth - a.depth);
  for (const d of dirMeta) {
    // A later entry may have made this path, or a directory above it, a symlink (`d/` then
    // `d -> /etc`): chmod and utimes follow links, so only a path that is still directories all
    // the way down from the root gets them.
    if (!(await isRealDir(root, d.p))) continue;
    await fs.chmod(d.p, d.mode);
    await fs.utimes(d.p, d.mtime, d.mtime);
  }
  return { entries, whiteouts, skipped };
}
