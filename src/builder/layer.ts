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
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, lstatSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Readable, type TransformCallback, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { TsbuildError } from '../errors.js';
import { compressStream, createGzipStream, layerMediaType } from '../oci/compress.js';
import { DigestingStream, digestHex, type Digest } from '../oci/digest.js';
import { putBlobFile } from '../oci/store.js';
import { tarMode } from '../util/tar.js';

export class LayerError extends TsbuildError {}

type TarHeader = Parameters<tar.Pack['entry']>[0];

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

/** Compare slash paths component by component, so a directory's children follow it directly. */
export function comparePaths(a: string, b: string): number {
  const pa = a.split('/');
  const pb = b.split('/');
  const n = Math.min(pa.length, pb.length);
  for (let i = 0; i < n; i++) {
    const x = pa[i]!;
    const y = pb[i]!;
    if (x !== y) return Buffer.compare(Buffer.from(x), Buffer.from(y));
  }
  return pa.length - pb.length;
}

function normalize(rel: string): string {
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
    const r = rel === '' ? d.name : `${rel}/${d.name}`;
    out.push(r);
    if (d.isDirectory()) walkAll(root, r, out);
  }
}

type Item = { readonly kind: 'path'; readonly rel: string } | { readonly kind: 'whiteout'; readonly rel: string; readonly parentRel: string };

/** The sorted list of entries a layer holds: given paths plus all their parents, plus whiteouts. */
export async function layerEntries(options: Pick<WriteLayerOptions, 'root' | 'paths' | 'whiteouts' | 'opaqueDirs'>): Promise<Item[]> {
  const set = new Set<string>();
  const whiteouts = new Map<string, string>();
  let listed: string[];
  if (options.paths === undefined) {
    listed = [];
    walkAll(options.root, '', listed);
  } else listed = options.paths.map(normalize).filter((p) => p !== '');
  const addParents = (rel: string): void => {
    const parts = rel.split('/');
    for (let i = 1; i < parts.length; i++) set.add(parts.slice(0, i).join('/'));
  };
  for (const p of listed) {
    set.add(p);
    addParents(p);
  }
  for (const w of options.whiteouts ?? []) {
    const rel = normalize(w);
    const dir = path.posix.dirname(rel);
    const name = `${dir === '.' ? '' : dir + '/'}.wh.${path.posix.basename(rel)}`;
    whiteouts.set(name, dir === '.' ? '' : dir);
    if (dir !== '.') {
      set.add(dir);
      addParents(dir);
    }
  }
  for (const o of options.opaqueDirs ?? []) {
    const dir = normalize(o);
    whiteouts.set(`${dir === '' ? '' : dir + '/'}.wh..wh..opq`, dir);
    if (dir !== '') {
      set.add(dir);
      addParents(dir);
    }
  }
  const items: Item[] = [...set].map((rel) => ({ kind: 'path' as const, rel }));
  for (const [rel, parentRel] of whiteouts) items.push({ kind: 'whiteout', rel, parentRel });
  items.sort((a, b) => comparePaths(a.rel, b.rel));
  return items;
}

function clamp(mtime: Date, epoch: number | undefined): Date {
  if (epoch === undefined) return new Date(Math.floor(mtime.getTime() / 1000) * 1000);
  const e = epoch * 1000;
  return mtime.getTime() > e ? new Date(e) : new Date(Math.floor(mtime.getTime() / 1000) * 1000);
}

/**
 * Files up to this size are read whole (one sync read) instead of streamed; bigger ones stream
 * in pieces of this size. Whole reads are cheaper (a thread-pool round trip per piece costs more
 * than the read), but each is a buffer held until the blob writer has written it, with up to
 * three batches behind it: at 8 MiB a context of 5 MiB files held ~20 MB more at the peak of a
 * build than one of 1 MiB files (memory must not grow with file size).
 */
const WHOLE_FILE = 1 << 20;
/** Output batch size between tar-stream and the hash/gzip/file stages. */
const BATCH = 1 << 20;

/**
 * Joins tar-stream's many small pushes (a 512-byte header, a small body, its padding) into
 * ~1 MiB chunks, so the stages after it see tens of writes instead of tens of thousands.
 */
class Coalescer extends Transform {
  #parts: Buffer[] = [];
  #size = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#parts.push(chunk);
    this.#size += chunk.length;
    if (this.#size >= BATCH) this.#emit();
    cb();
  }
  override _flush(cb: TransformCallback): void {
    if (this.#size > 0) this.#emit();
    cb();
  }
  #emit(): void {
    const out = this.#parts.length === 1 ? this.#parts[0]! : Buffer.concat(this.#parts, this.#size);
    this.#parts = [];
    this.#size = 0;
    this.push(out);
  }
}

/**
 * Add the layer's entries to `pack` (not finalized). Returns the entry count. Metadata and small
 * files are read synchronously (a thread-pool round trip per call costs more than the call here);
 * each entry is awaited, so tar-stream's back-pressure bounds memory to about one file.
 */
async function packInto(options: WriteLayerOptions, items: readonly Item[], pack: tar.Pack): Promise<number> {
  const seen = new Map<string, string>();
  let count = 0;
  const put = (h: TarHeader, body?: Buffer | Readable): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const header = { ...h, mode: tarMode(h.mode ?? 0o644) };
      const done = (err?: Error | null): void => (err ? reject(err) : resolve());
      if (body === undefined) {
        if (header.type === 'file' || header.type === undefined) pack.entry(header, Buffer.alloc(0), done);
        else pack.entry(header, done);
        return;
      }
      if (Buffer.isBuffer(body)) {
        pack.entry(header, body, done);
        return;
      }
      const sink = pack.entry(header, done);
      body.on('error', reject);
      body.pipe(sink as unknown as Writable);
    });
  for (const item of items) {
    if (options.signal?.aborted) throw new LayerError('TSBUILD_ABORTED', 'layer writing aborted', { cause: options.signal.reason });
    count++;
    if (item.kind === 'whiteout') {
      let mtime = new Date(0);
      if (item.parentRel !== '') mtime = lstatSync(path.join(options.root, item.parentRel), { throwIfNoEntry: false })?.mtime ?? mtime;
      await put({ name: item.rel, type: 'file', size: 0, mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', mtime: clamp(mtime, options.sourceDateEpoch) });
      continue;
    }
    const abs = path.join(options.root, item.rel);
    const st = lstatSync(abs);
    const base = {
      uid: st.uid,
      gid: st.gid,
      uname: '',
      gname: '',
      mode: st.mode & 0o7777,
      mtime: clamp(st.mtime, options.sourceDateEpoch),
    };
    if (st.isDirectory()) {
      await put({ ...base, name: item.rel + '/', type: 'directory' });
    } else if (st.isSymbolicLink()) {
      await put({ ...base, name: item.rel, type: 'symlink', linkname: readlinkSync(abs) });
    } else if (st.isFile()) {
      if (st.nlink > 1) {
        const key = `${st.dev}:${st.ino}`;
        const first = seen.get(key);
        if (first !== undefined) {
          await put({ ...base, name: item.rel, type: 'link', linkname: first, size: 0 });
          continue;
        }
        seen.set(key, item.rel);
      }
      if (st.size <= WHOLE_FILE) {
        const data = readFileSync(abs);
        // The header must describe what was stat'ed; a file that changed under us is an error, as when streaming.
        if (data.length !== st.size) throw new LayerError('TSBUILD_LAYER_CHANGED', `${item.rel} changed size while the layer was written (${st.size} -> ${data.length} bytes)`);
        await put({ ...base, name: item.rel, type: 'file', size: st.size }, data);
      } else {
        await put({ ...base, name: item.rel, type: 'file', size: st.size }, createReadStream(abs, { highWaterMark: WHOLE_FILE }));
      }
    } else if (st.isCharacterDevice() && options.overlayWhiteouts && st.rdev === 0) {
      const dir = path.posix.dirname(item.rel);
      const name = `${dir === '.' ? '' : dir + '/'}.wh.${path.posix.basename(item.rel)}`;
      await put({ ...base, name, type: 'file', size: 0, mode: 0o644 });
    } else if (st.isCharacterDevice() || st.isBlockDevice()) {
      const major = Number((BigInt(st.rdev) >> 8n) & 0xfffn) | Number((BigInt(st.rdev) >> 32n) & ~0xfffn);
      const minor = Number(BigInt(st.rdev) & 0xffn) | Number((BigInt(st.rdev) >> 12n) & ~0xffn);
      await put({ ...base, name: item.rel, type: st.isCharacterDevice() ? 'character-device' : 'block-device', devmajor: major, devminor: minor });
    } else if (st.isFIFO()) {
      await put({ ...base, name: item.rel, type: 'fifo' });
    } else {
      count--; // sockets have no tar form
    }
  }
  return count;
}

/** Write `stream` to a temp file in blobDir, fsync, and rename it to `sha256/<hex>` once `name()` is known. */
async function storeAtomically(blobDir: string, sinks: (file: Writable) => Promise<void>, name: () => Digest): Promise<void> {
  const dir = path.join(blobDir, 'sha256');
  const tmpDir = path.join(blobDir, 'tmp');
  await mkdir(dir, { recursive: true });
  await mkdir(tmpDir, { recursive: true });
  const tmp = path.join(tmpDir, `layer-${randomBytes(8).toString('hex')}`);
  const fh = await open(tmp, 'wx', 0o644);
  try {
    await sinks(createWriteStream('', { fd: fh.fd, autoClose: false }));
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => {});
    await rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  const final = path.join(dir, digestHex(name()));
  await rename(tmp, final);
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/**
 * Write a layer: a deterministic tar of `paths` (plus parents) under `root`, hashed and
 * (by default) gzipped in one streaming pass, stored atomically in `blobDir`.
 */
export async function writeLayer(options: WriteLayerOptions): Promise<LayerResult> {
  const compression = options.compression ?? 'gzip';
  const items = await layerEntries(options);
  const pack = tar.pack();
  // A failure while producing entries destroys `pack`, possibly before the pipeline below has
  // attached its listeners; `producing` carries the error, so an 'error' event must not crash.
  pack.on('error', () => {});
  /** Digest and size of the tar, and of the stored blob (the same object when not compressed). */
  let tarSum: { digest: Digest; size: number } | undefined;
  let blobSum: { digest: Digest; size: number } | undefined;
  let entries = 0;
  const producing = packInto(options, items, pack).then(
    (n) => {
      entries = n;
      pack.finalize();
    },
    (err: unknown) => {
      pack.destroy(err as Error);
      throw err;
    },
  );
  producing.catch(() => {}); // awaited below; this only marks the rejection as handled early
  const source = pack as unknown as Readable;
  if (compression === 'gzip') {
    await storeAtomically(
      options.blobDir,
      async (file) => {
        const tarHash = new DigestingStream();
        const blobHash = new DigestingStream();
        await Promise.all([pipeline(source, new Coalescer(), tarHash, createGzipStream(options.gzipLevel ?? 6), blobHash, file), producing]);
        tarSum = { digest: tarHash.digest, size: tarHash.size };
        blobSum = { digest: blobHash.digest, size: blobHash.size };
      },
      () => blobSum!.digest,
    );
  } else {
    // The tar is the blob: the store's writer hashes and writes it in batches, atomically. A
    // failed entry destroys `pack` (the write then fails); a failed write stops `pack`.
    const tmpDir = path.join(options.blobDir, 'tmp');
    await mkdir(tmpDir, { recursive: true });
    await mkdir(path.join(options.blobDir, 'sha256'), { recursive: true });
    const storing = putBlobFile(options.blobDir, tmpDir, source, {}, 'layer').catch((err: unknown) => {
      pack.destroy(err as Error);
      throw err;
    });
    // Both settle before returning: the writer removes its temp file when the entries fail.
    const [stored, produced] = await Promise.allSettled([storing, producing]);
    if (produced.status === 'rejected') throw produced.reason;
    if (stored.status === 'rejected') throw stored.reason;
    tarSum = blobSum = stored.value;
  }
  return {
    diffId: tarSum!.digest,
    digest: blobSum!.digest,
    size: blobSum!.size,
    uncompressedSize: tarSum!.size,
    mediaType: compression === 'gzip' ? MEDIA_TYPE_LAYER_GZIP : MEDIA_TYPE_LAYER_TAR,
    entries,
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
  const input = createReadStream(src);
  await storeAtomically(
    blobDir,
    async (file) => {
      await pipeline(input, check, compressStream(compression, { level: options.level ?? options.gzipLevel ?? (compression === 'gzip' ? 6 : 3) }), out, file);
      if (check.digest !== diffId) throw new LayerError('TSBUILD_BLOB_CORRUPT', `blob ${diffId} does not match its digest (got ${check.digest})`);
    },
    () => out.digest,
  );
  return { digest: out.digest, size: out.size, mediaType: layerMediaType(compression) };
}
