/**
 * Deterministic layer tars: entries in depth-first name order (parents first), owners as
 * numeric ids with empty user/group names, modes kept, mtimes kept or clamped to
 * SOURCE_DATE_EPOCH, hard links within the layer written as links, PAX headers for long names.
 *
 * One streaming pass computes the diffID (sha256 of the tar) and, when compressing, the digest
 * and size of the gzip blob; the blob is written atomically (temp file, fsync, rename) into
 * `<blobDir>/sha256/<hex>`. With `compression: 'none'` only the tar is stored (named by its
 * diffID) and `compressBlob` makes the gzip blob later, when an exporter needs it (lazy blobs).
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, lstatSync, openSync, readdirSync, readlinkSync, readSync } from 'node:fs';
import { mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { TsbuildError } from '../errors.js';
import { compressStream, createGzipStream, layerMediaType } from '../oci/compress.js';
import { DigestingStream, digestHex, type Digest } from '../oci/digest.js';
import { BlobNotFoundError } from '../oci/store.js';
import { TAR_END_BYTES, tarPadding, writeTarHeader, type TarHeaderFields } from '../oci/tar-writer.js';
import { flatString } from './context.js';

export class LayerError extends TsbuildError {}

export const MEDIA_TYPE_LAYER_TAR = 'application/vnd.oci.image.layer.v1.tar';
export const MEDIA_TYPE_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';

export interface WriteLayerOptions {
  /** The directory the entries are read from (a stage rootfs or an overlay upper dir). */
  readonly root: string;
  /**
   * Paths (slash-separated, relative to root) to put in the layer; their parent directories are
   * added. Directories listed are added without their contents. Omitted: the whole tree.
   */
  readonly paths?: readonly string[];
  /** Paths deleted by this layer: written as `.wh.<name>` whiteouts. */
  readonly whiteouts?: readonly string[];
  /** Directories whose lower contents are hidden: a `.wh..wh..opq` entry inside each. */
  readonly opaqueDirs?: readonly string[];
  /**
   * With a whole-tree walk of an overlayfs upper dir: turn 0/0 character devices into
   * whiteouts (overlayfs' own whiteout form).
   */
  readonly overlayWhiteouts?: boolean;
  /** Clamp mtimes later than this (seconds since the epoch), as BuildKit's rewrite-timestamp does. */
  readonly sourceDateEpoch?: number;
  /** Blob directory: blobs land in `<blobDir>/sha256/<hex>`. */
  readonly blobDir: string;
  /** Default 'gzip'. 'none' stores the tar itself (lazy compression). */
  readonly compression?: 'gzip' | 'none';
  /** zlib level, default 6 (as gzip and BuildKit). */
  readonly gzipLevel?: number;
  readonly signal?: AbortSignal;
}

export interface LayerResult {
  /** sha256 of the uncompressed tar. */
  readonly diffId: Digest;
  /** Digest of the stored blob (equal to diffId when not compressed). */
  readonly digest: Digest;
  /** Size in bytes of the stored blob. */
  readonly size: number;
  readonly uncompressedSize: number;
  readonly mediaType: string;
  /** Number of tar entries written. */
  readonly entries: number;
}

/**
 * Compare slash paths component by component, so a directory's children follow it directly:
 * components compare by their UTF-8 bytes (code points), a path before the paths it is a prefix
 * of. The same order as comparing the split components, without splitting: at the first
 * character that differs, a `/` (a component's end) comes first.
 */
export function comparePaths(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return pathUnit(x) - pathUnit(y);
  }
  return a.length - b.length;
}

/** A UTF-16 unit's rank in the order above: `/` lowest, surrogates (code points past U+FFFF) after U+FFFF. */
function pathUnit(c: number): number {
  if (c === 0x2f) return -1;
  if (c < 0xd800) return c;
  return c < 0xe000 ? c + 0x2000 : c - 0x800;
}

/** A path with empty, `.` or `..` components, or a leading or trailing slash. */
const UNCLEAN = /^\/|\/$|\/\/|(?:^|\/)\.\.?(?:\/|$)/;

function normalize(rel: string): string {
  if (!UNCLEAN.test(rel)) return rel;
  const parts: string[] = [];
  for (const p of rel.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') throw new LayerError('TSBUILD_LAYER_PATH', `layer path ${JSON.stringify(rel)} leaves the root`);
    parts.push(p);
  }
  return parts.join('/');
}

/** Every path under root (unsorted). Synchronous: one readdir per directory, no per-file stat. */
function walkAll(root: string, rel: string, out: string[]): void {
  for (const d of readdirSync(rel === '' ? root : path.join(root, rel), { withFileTypes: true })) {
    const r = flatString(rel === '' ? d.name : `${rel}/${d.name}`);
    out.push(r);
    if (d.isDirectory()) walkAll(root, r, out);
  }
}

interface Whiteout {
  readonly rel: string;
  readonly parentRel: string;
}

/**
 * What a layer holds, in tar order: `paths` (listed paths plus every parent of one, sorted
 * component-wise, once each) and `whiteouts` (sorted; after a path of the same name). One array
 * of the caller's strings plus the parents it lacked: no object per entry.
 */
interface LayerPlan {
  readonly paths: readonly string[];
  readonly whiteouts: readonly Whiteout[];
}

function isParentOf(dir: string, p: string): boolean {
  return p.length > dir.length && p.charCodeAt(dir.length) === 0x2f && p.startsWith(dir);
}

function planLayer(options: Pick<WriteLayerOptions, 'root' | 'paths' | 'whiteouts' | 'opaqueDirs'>): LayerPlan {
  const listed: string[] = [];
  if (options.paths === undefined) walkAll(options.root, '', listed);
  else {
    for (const p of options.paths) {
      const rel = normalize(p);
      if (rel !== '') listed.push(rel);
    }
  }
  const whiteouts: Whiteout[] = [];
  for (const w of options.whiteouts ?? []) {
    const rel = normalize(w);
    const dir = path.posix.dirname(rel);
    whiteouts.push({ rel: `${dir === '.' ? '' : dir + '/'}.wh.${path.posix.basename(rel)}`, parentRel: dir === '.' ? '' : dir });
    if (dir !== '.') listed.push(dir);
  }
  for (const o of options.opaqueDirs ?? []) {
    const dir = normalize(o);
    whiteouts.push({ rel: `${dir === '' ? '' : dir + '/'}.wh..wh..opq`, parentRel: dir });
    if (dir !== '') listed.push(dir);
  }
  listed.sort(comparePaths);
  // In this order a directory comes right before what is under it, so the parents a path lacks
  // are the ones missing from the chain of directories above it seen so far (`chain`).
  const paths: string[] = [];
  const chain: string[] = [];
  for (const p of listed) {
    if (paths.length > 0 && paths[paths.length - 1] === p) continue;
    while (chain.length > 0 && !isParentOf(chain[chain.length - 1]!, p)) chain.pop();
    const top = chain[chain.length - 1];
    for (let i = p.indexOf('/', top === undefined ? 0 : top.length + 1); i !== -1; i = p.indexOf('/', i + 1)) {
      const parent = p.slice(0, i);
      paths.push(parent);
      chain.push(parent);
    }
    paths.push(p);
    chain.push(p);
  }
  // A whiteout named twice is written once (the last one's parent, as a map keeps it).
  const byName = new Map<string, Whiteout>();
  for (const w of whiteouts) byName.set(w.rel, w);
  return { paths, whiteouts: [...byName.values()].sort((a, b) => comparePaths(a.rel, b.rel)) };
}

/** What `clamp` did to a Date, in milliseconds (whole seconds; the epoch caps later times). */
function clampMs(ms: number, epoch: number | undefined): number {
  const whole = Math.floor(ms / 1000) * 1000;
  if (epoch === undefined) return whole;
  const e = epoch * 1000;
  return ms > e ? timeClip(e) : whole;
}

/** ECMAScript TimeClip: the value a Date made from `ms` holds. */
function timeClip(ms: number): number {
  return Math.abs(ms) > 8.64e15 ? NaN : Math.trunc(ms);
}

/**
 * Bytes per tar chunk. Headers are encoded and file contents read straight into chunks of this
 * size (a big file in as many as it needs), so the memory a layer write holds is two chunks,
 * whatever the number or the size of its files.
 */
const CHUNK = 1 << 20;

function changedSize(rel: string, listed: number, read: string): LayerError {
  return new LayerError('TSBUILD_LAYER_CHANGED', `${rel} changed size while the layer was written (${listed} bytes when listed, ${read} when read)`);
}

/**
 * The layer's tar in chunks of up to CHUNK bytes, read synchronously (a thread-pool round trip
 * per call would cost more than the call; the consumer's writes are where the event loop runs).
 * With `reuse`, two buffers take turns: a chunk stays valid until the second `next()` after the
 * one that returned it, so a consumer must be done with it by then (hashed and written). Without,
 * each chunk has a buffer of its own. `count.entries` is the number of entries written.
 */
function* layerTar(options: WriteLayerOptions, plan: LayerPlan, reuse: boolean, count: { entries: number }): Generator<Buffer, void, undefined> {
  const spare = reuse ? [Buffer.allocUnsafeSlow(CHUNK)] : undefined;
  let buf = Buffer.allocUnsafeSlow(CHUNK);
  let at = 0;
  /** The filled part of `buf`; the next chunk goes to the other buffer (or a new one). */
  const take = (): Buffer => {
    const out = buf.subarray(0, at);
    if (spare) {
      const next = spare.pop()!;
      spare.push(buf);
      buf = next;
    } else buf = Buffer.allocUnsafeSlow(CHUNK);
    at = 0;
    return out;
  };
  const seen = new Map<string, string>();
  const { paths, whiteouts } = plan;
  let w = 0;
  let i = 0;
  for (;;) {
    // The next entry in path order: a whiteout that sorts before the next path, else that path.
    const next = paths[i];
    let h: TarHeaderFields;
    /** The file whose content follows the header, if any. */
    let content: { readonly abs: string; readonly rel: string } | undefined;
    if (w < whiteouts.length && (next === undefined || comparePaths(whiteouts[w]!.rel, next) < 0)) {
      const wh = whiteouts[w++]!;
      const mtime = wh.parentRel === '' ? 0 : (lstatSync(path.join(options.root, wh.parentRel), { throwIfNoEntry: false })?.mtime.getTime() ?? 0);
      h = { name: wh.rel, type: 'file', size: 0, mode: 0o644, uid: 0, gid: 0, mtimeMs: clampMs(mtime, options.sourceDateEpoch) };
    } else {
      if (next === undefined) break;
      const rel = next;
      i++;
      if (options.signal?.aborted) throw new LayerError('TSBUILD_ABORTED', 'layer writing aborted', { cause: options.signal.reason });
      const abs = path.join(options.root, rel);
      const st = lstatSync(abs);
      const mtimeMs = clampMs(st.mtime.getTime(), options.sourceDateEpoch);
      if (st.isDirectory()) {
        h = { name: rel + '/', type: 'directory', size: 0, mode: st.mode, uid: st.uid, gid: st.gid, mtimeMs };
      } else if (st.isSymbolicLink()) {
        h = { name: rel, type: 'symlink', size: 0, linkname: readlinkSync(abs), mode: st.mode, uid: st.uid, gid: st.gid, mtimeMs };
      } else if (st.isFile()) {
        const first = st.nlink > 1 ? seen.get(`${st.dev}:${st.ino}`) : undefined;
        if (first !== undefined) {
          h = { name: rel, type: 'link', size: 0, linkname: first, mode: st.mode, uid: st.uid, gid: st.gid, mtimeMs };
        } else {
          if (st.nlink > 1) seen.set(`${st.dev}:${st.ino}`, rel);
          h = { name: rel, type: 'file', size: st.size, mode: st.mode, uid: st.uid, gid: st.gid, mtimeMs };
          if (st.size > 0) content = { abs, rel };
        }
      } else if (st.isCharacterDevice() && options.overlayWhiteouts && st.rdev === 0) {
        const dir = path.posix.dirname(rel);
        h = { name: `${dir === '.' ? '' : dir + '/'}.wh.${path.posix.basename(rel)}`, type: 'file', size: 0, mode: 0o644, uid: st.uid, gid: st.gid, mtimeMs };
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        const major = Number((BigInt(st.rdev) >> 8n) & 0xfffn) | Number((BigInt(st.rdev) >> 32n) & ~0xfffn);
        const minor = Number(BigInt(st.rdev) & 0xffn) | Number((BigInt(st.rdev) >> 12n) & ~0xffn);
        h = { name: rel, type: st.isCharacterDevice() ? 'character-device' : 'block-device', size: 0, devmajor: major, devminor: minor, mode: st.mode, uid: st.uid, gid: st.gid, mtimeMs };
      } else if (st.isFIFO()) {
        h = { name: rel, type: 'fifo', size: 0, mode: st.mode, uid: st.uid, gid: st.gid, mtimeMs };
      } else {
        continue; // sockets have no tar form
      }
    }
    const end = writeTarHeader(buf, at, CHUNK, h);
    if (end < 0) {
      yield take();
      at = headerAtStart(buf, h);
    } else at = end;
    count.entries++;
    if (!content) continue;
    // The content, read into the chunk; one byte more is asked for at the end, to see a file
    // that grew since it was stat'ed (the header must describe what is written).
    const fd = openSync(content.abs, 'r');
    try {
      let left = h.size;
      let pos = 0;
      for (;;) {
        if (at === CHUNK) yield take();
        const n = readSync(fd, buf, at, Math.min(CHUNK - at, left + 1), pos);
        if (n === 0) break;
        if (n > left) throw changedSize(content.rel, h.size, 'more');
        at += n;
        pos += n;
        left -= n;
      }
      if (left > 0) throw changedSize(content.rel, h.size, String(h.size - left));
    } finally {
      closeSync(fd);
    }
    // Entries start on a block boundary and CHUNK is a multiple of the block: the padding fits.
    const pad = tarPadding(h.size);
    buf.fill(0, at, at + pad);
    at += pad;
  }
  if (CHUNK - at < TAR_END_BYTES) yield take();
  buf.fill(0, at, at + TAR_END_BYTES);
  at += TAR_END_BYTES;
  yield buf.subarray(0, at);
}

/** The header of `h` at the start of an empty chunk, or an error when even that has no room for it. */
function headerAtStart(buf: Buffer, h: TarHeaderFields): number {
  const at = writeTarHeader(buf, 0, CHUNK, h);
  if (at < 0) throw new LayerError('TSBUILD_LAYER_PATH', `layer path ${JSON.stringify(h.name.slice(0, 100))}… is too long for a tar header`);
  return at;
}

/**
 * Write a blob through `fill` (given the temp file in blobDir), fsync it, and rename it to
 * `sha256/<hex>` once `name()` is known; on failure the temp file is removed.
 */
async function storeAtomically(blobDir: string, fill: (fh: FileHandle) => Promise<void>, name: () => Digest): Promise<void> {
  const dir = path.join(blobDir, 'sha256');
  const tmpDir = path.join(blobDir, 'tmp');
  await mkdir(dir, { recursive: true });
  await mkdir(tmpDir, { recursive: true });
  const tmp = path.join(tmpDir, `layer-${randomBytes(8).toString('hex')}`);
  const fh = await open(tmp, 'wx', 0o644);
  try {
    await fill(fh);
    await fh.datasync();
  } catch (err) {
    await fh.close().catch(() => {});
    await rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  // The rename is made durable by the tag that names the image (Store.tag syncs the blob
  // directories first: `syncBlobDirs`), not here: one directory sync per build, not per layer.
  await rename(tmp, path.join(dir, digestHex(name())));
}

/** A stream over the file handle, left open (storeAtomically closes it). */
function fileStream(fh: FileHandle): Writable {
  return createWriteStream('', { fd: fh.fd, autoClose: false });
}

/** Writes all of `chunk` at `position`. */
async function writeAll(fh: FileHandle, chunk: Buffer, position: number): Promise<void> {
  for (let off = 0; off < chunk.length; ) {
    const { bytesWritten } = await fh.write(chunk, off, chunk.length - off, position + off);
    if (bytesWritten === 0) throw new LayerError('TSBUILD_LAYER_WRITE', `writing a layer blob stopped at byte ${position + off}`);
    off += bytesWritten;
  }
}

/**
 * Write a layer: a deterministic tar of `paths` (plus parents) under `root`, hashed and
 * (by default) gzipped in one streaming pass, stored atomically in `blobDir`.
 */
export async function writeLayer(options: WriteLayerOptions): Promise<LayerResult> {
  const compression = options.compression ?? 'gzip';
  const plan = planLayer(options);
  const count = { entries: 0 };
  /** Digest and size of the tar, and of the stored blob (the same object when not compressed). */
  let tarSum: { digest: Digest; size: number } | undefined;
  let blobSum: { digest: Digest; size: number } | undefined;
  if (compression === 'gzip') {
    await storeAtomically(
      options.blobDir,
      async (fh) => {
        const tarHash = new DigestingStream();
        const blobHash = new DigestingStream();
        // The gzip stream keeps pieces of its input after taking it: each chunk is a buffer of its own.
        const source = Readable.from(layerTar(options, plan, false, count), { objectMode: true, highWaterMark: 1 });
        await pipeline(source, tarHash, createGzipStream(options.gzipLevel ?? 6), blobHash, fileStream(fh));
        tarSum = { digest: tarHash.digest, size: tarHash.size };
        blobSum = { digest: blobHash.digest, size: blobHash.size };
      },
      () => blobSum!.digest,
    );
  } else {
    // The tar is the blob. Each chunk is hashed, then written while the next one is filled; the
    // write is awaited before the one after, whose buffer it is (see layerTar).
    await storeAtomically(
      options.blobDir,
      async (fh) => {
        const hash = createHash('sha256');
        let size = 0;
        let writing: Promise<void> | undefined;
        try {
          for (const chunk of layerTar(options, plan, true, count)) {
            hash.update(chunk);
            if (writing) await writing;
            writing = writeAll(fh, chunk, size);
            writing.catch(() => {}); // awaited next round or below; a failure must not go unhandled meanwhile
            size += chunk.length;
          }
          await writing;
        } finally {
          // No write may still be running when the temp file is closed and removed.
          await writing?.catch(() => {});
        }
        tarSum = blobSum = { digest: `sha256:${hash.digest('hex')}` as Digest, size };
      },
      () => tarSum!.digest,
    );
  }
  return {
    diffId: tarSum!.digest,
    digest: blobSum!.digest,
    size: blobSum!.size,
    uncompressedSize: tarSum!.size,
    mediaType: compression === 'gzip' ? MEDIA_TYPE_LAYER_GZIP : MEDIA_TYPE_LAYER_TAR,
    entries: count.entries,
  };
}

/**
 * Compress a stored uncompressed layer blob (named by its diffID) into a new blob: lazy
 * compression. Gzip by default (level 6), or zstd (level 3).
 */
export async function compressBlob(
  blobDir: string,
  diffId: Digest,
  options: { compression?: 'gzip' | 'zstd'; level?: number; /** @deprecated use `level` */ gzipLevel?: number } = {},
): Promise<{ digest: Digest; size: number; mediaType: string }> {
  const compression = options.compression ?? 'gzip';
  const src = path.join(blobDir, 'sha256', digestHex(diffId));
  const check = new DigestingStream();
  const out = new DigestingStream();
  await storeAtomically(
    blobDir,
    async (fh) => {
      // Opened here, under pipeline: a stream made before storeAtomically's awaits could fail
      // to open (a blob pruned meanwhile) with no listener yet, or leak when they fail.
      const input = createReadStream(src);
      try {
        await pipeline(input, check, compressStream(compression, { level: options.level ?? options.gzipLevel ?? (compression === 'gzip' ? 6 : 3) }), out, fileStream(fh));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new BlobNotFoundError(diffId, blobDir, { cause: err });
        throw err;
      }
      if (check.digest !== diffId) throw new LayerError('TSBUILD_BLOB_CORRUPT', `blob ${diffId} does not match its digest (got ${check.digest})`);
    },
    () => out.digest,
  );
  return { digest: out.digest, size: out.size, mediaType: layerMediaType(compression) };
}
