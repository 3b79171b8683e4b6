import { createHash, randomBytes, type Hash } from 'node:crypto';
import { constants as fsc, mkdirSync, readdirSync, readFileSync, statSync, utimesSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { homedir } from 'node:os';
import * as path from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { TsbuildError } from '../errors.js';
import { digestAlgorithm, digestHex, isDigest, parseDigest, type Digest } from './digest.js';
import { formatReference, parseReference, type Reference } from './reference.js';
import type { Descriptor } from './types.js';

export class BlobNotFoundError extends TsbuildError {
  readonly digest: Digest;
  constructor(digest: Digest, where: string, options?: { cause?: unknown }) {
    super('TSBUILD_BLOB_NOT_FOUND', `blob ${digest} not found in ${where}`, options);
    this.digest = digest;
  }
}

export class DigestMismatchError extends TsbuildError {
  readonly expected: Digest;
  readonly actual: Digest;
  constructor(what: string, expected: Digest, actual: Digest) {
    super('TSBUILD_DIGEST_MISMATCH', `${what}: digest mismatch: expected ${expected}, got ${actual}`);
    this.expected = expected;
    this.actual = actual;
  }
}

export class SizeMismatchError extends TsbuildError {
  constructor(what: string, expected: number, actual: number) {
    super('TSBUILD_SIZE_MISMATCH', `${what}: size mismatch: expected ${expected} bytes, got ${actual}`);
  }
}

export class TagNotFoundError extends TsbuildError {
  readonly reference: string;
  constructor(reference: string, suggestion?: string) {
    super('TSBUILD_IMAGE_NOT_FOUND', `image ${reference} not found in the local store${suggestion ? `; did you mean ${suggestion}?` : ''}`);
    this.reference = reference;
  }
}

/** Where blobs come from: a store, an OCI layout, a registry. */
export interface BlobSource {
  /** A stream of the blob's bytes, verified against `digest` at its end. */
  openBlob(digest: Digest): Promise<Readable>;
  /** A small blob (manifest, config) read whole and verified. */
  readBlob(digest: Digest): Promise<Buffer>;
}

/** Where blobs go: a store, an OCI layout. */
export interface BlobSink {
  hasBlob(digest: Digest): Promise<boolean>;
  /**
   * Stores a blob and returns its digest and size. Idempotent. With `expected.digest` and the
   * blob already present, the source is not opened (pass a function to make that lazy).
   */
  putBlob(source: BlobInput, expected?: { digest?: Digest; size?: number }): Promise<{ digest: Digest; size: number }>;
}

/** Bytes, a string (UTF-8), a stream, or a function opening a stream only when needed. */
export type BlobInput = Uint8Array | string | Readable | (() => Readable | Promise<Readable>);

/** What `putBlobFile` and `Store.putBlob` also take: any async iterable of byte chunks (a download's chunks as they arrive). */
export type BlobChunksInput = BlobInput | AsyncIterable<Uint8Array>;

/** A verifying pass-through: errors at the end of the stream when the bytes do not hash to `digest`. */
export function verifyingStream(digest: Digest, what: string, expectedSize?: number): Transform {
  const hash = createHash(digestAlgorithm(digest));
  let size = 0;
  return new Transform({
    transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback) {
      hash.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
    flush(cb: TransformCallback) {
      const actual = `${digestAlgorithm(digest)}:${hash.digest('hex')}` as Digest;
      if (actual !== digest) cb(new DigestMismatchError(what, digest, actual));
      else if (expectedSize !== undefined && size !== expectedSize) cb(new SizeMismatchError(what, expectedSize, size));
      else cb();
    },
  });
}

/** Hands a source stream's errors to `out`, and destroys the source when `out` closes early. */
function chain(src: Readable, out: Transform, map?: (e: Error) => Error): Transform {
  src.on('error', (e) => out.destroy(map ? map(e) : e));
  out.on('close', () => {
    if (!src.destroyed) src.destroy();
  });
  src.pipe(out);
  return out;
}

async function openInput(input: BlobChunksInput): Promise<AsyncIterable<Uint8Array>> {
  if (typeof input === 'function') return await input();
  if (typeof input === 'string') return [Buffer.from(input)] as unknown as AsyncIterable<Uint8Array>;
  if (input instanceof Uint8Array) return [input] as unknown as AsyncIterable<Uint8Array>;
  return input;
}

/** Releases an input that will not be read (a stream is destroyed, an iterator returned). */
function dropInput(input: BlobChunksInput): void {
  if (typeof input === 'function' || typeof input === 'string' || input instanceof Uint8Array) return;
  if (input instanceof Readable) input.destroy();
  else void input[Symbol.asyncIterator]().return?.().catch(() => undefined);
}

/**
 * Bytes are written to a blob's temp file in batches of at least this size, one `pwritev` each
 * (a socket or gzip stream hands on 16-64 KiB pieces: per-piece writes cost a syscall and a
 * thread-pool round trip each), at most WRITES_IN_FLIGHT batches at once; the source waits
 * beyond that, so memory per blob stays below (WRITES_IN_FLIGHT + 1) batches whatever its size.
 */
const WRITE_BATCH = 1024 * 1024;
const WRITES_IN_FLIGHT = 2;

/** Writes `chunks` to `fh` from offset 0, hashing each chunk in the same pass; resolves with the byte count. */
async function writeHashed(fh: fs.FileHandle, chunks: AsyncIterable<Uint8Array>, hash: Hash): Promise<number> {
  const inflight: Promise<unknown>[] = [];
  let batch: Uint8Array[] = [];
  let batched = 0;
  let position = 0;
  const flush = async () => {
    const w = fh.writev(batch, position);
    w.catch(() => undefined); // awaited below; a failure must not surface as an unhandled rejection first
    inflight.push(w);
    position += batched;
    batch = [];
    batched = 0;
    if (inflight.length >= WRITES_IN_FLIGHT) await inflight.shift();
  };
  try {
    for await (const piece of chunks) {
      // A stream with an encoding set hands on strings.
      const chunk = typeof piece === 'string' ? Buffer.from(piece) : piece;
      if (chunk.length === 0) continue;
      hash.update(chunk);
      batch.push(chunk);
      batched += chunk.length;
      if (batched >= WRITE_BATCH) await flush();
    }
    if (batched > 0) await flush();
    await Promise.all(inflight);
  } finally {
    // On failure, no write may still be running when the caller closes and removes the file.
    await Promise.allSettled(inflight);
  }
  return position;
}

function sameDescriptor(a: Descriptor, b: Descriptor): boolean {
  return JSON.stringify([a.mediaType, a.digest, a.size, a.annotations ?? null, a.platform ?? null]) === JSON.stringify([b.mediaType, b.digest, b.size, b.annotations ?? null, b.platform ?? null]);
}

/**
 * Writes `data` to `file` atomically: temp file in the same dir, fsync, rename, then (unless
 * `syncDir` is false) fsync of the directory, which makes the rename itself durable. A file that
 * only saves work (a cache of results) can skip the directory's sync: a crash of the machine then
 * loses at most the new file, never leaves a torn one.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o644, options: { syncDir?: boolean } = {}): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.tmp-${path.basename(file)}-${randomBytes(6).toString('hex')}`);
  const fh = await fs.open(tmp, 'wx', mode);
  try {
    await fh.writeFile(data);
    await fh.datasync();
  } finally {
    await fh.close();
  }
  try {
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
  if (options.syncDir !== false) await fsyncDir(dir);
}

/** fsync of a directory: the renames and unlinks in it so far are durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Makes the blobs renamed into `blobsRoot/<algorithm>/` so far durable (one fsync per algorithm
 * directory). `putBlobFile` leaves that to whoever writes a reference to its blobs (a tag, a
 * layout's index.json): one directory sync per reference instead of one per blob, and a
 * reference that survives a crash of the machine never names a blob that did not.
 */
export async function syncBlobDirs(blobsRoot: string): Promise<void> {
  let algorithms: string[];
  try {
    algorithms = readdirSync(blobsRoot);
  } catch {
    return;
  }
  await Promise.all(algorithms.filter((a) => a !== 'tmp' && /^[a-z0-9]+$/.test(a)).map((a) => fsyncDir(path.join(blobsRoot, a))));
}

/**
 * Streams `input` into a temp file under `tmpDir` while hashing, fsyncs it, checks it against
 * `expected`, and renames it to `finalPathOf(digest)`. Two writers of the same blob each use
 * their own temp file; the rename is atomic, so readers see either nothing or a whole blob. The
 * rename is made durable by the next `syncBlobDirs` (a tag or an index naming the blob).
 */
export async function putBlobFile(
  blobsRoot: string,
  tmpDir: string,
  input: BlobChunksInput,
  expected: { digest?: Digest; size?: number } = {},
  what = 'blob',
): Promise<{ digest: Digest; size: number }> {
  const algorithm = expected.digest ? digestAlgorithm(expected.digest) : 'sha256';
  const tmp = path.join(tmpDir, `blob-${randomBytes(8).toString('hex')}`);
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(tmp, 'wx', 0o644);
  } catch (err) {
    dropInput(input);
    throw err;
  }
  const hash = createHash(algorithm);
  let size: number;
  try {
    size = await writeHashed(fh, await openInput(input), hash);
    await fh.datasync();
  } catch (err) {
    await fh.close().catch(() => undefined);
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  const digest = `${algorithm}:${hash.digest('hex')}` as Digest;
  try {
    if (expected.digest && expected.digest !== digest) throw new DigestMismatchError(`${what} ${expected.digest}`, expected.digest, digest);
    if (expected.size !== undefined && expected.size !== size) throw new SizeMismatchError(`${what} ${digest}`, expected.size, size);
    const dir = path.join(blobsRoot, digestAlgorithm(digest));
    const final = path.join(dir, digestHex(digest));
    await fs.mkdir(dir, { recursive: true });
    await fs.rename(tmp, final);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
  return { digest, size };
}

/** The tsbuild root: `options.root`, else `TSBUILD_ROOT` from `env`, else `$XDG_DATA_HOME/tsbuild` or `~/.local/share/tsbuild`. */
export function resolveRootDir(options: { root?: string | undefined; env?: Readonly<Record<string, string | undefined>> } = {}): string {
  if (options.root) return path.resolve(options.root);
  const env = options.env ?? {};
  if (env.TSBUILD_ROOT) return path.resolve(env.TSBUILD_ROOT);
  const base = env.XDG_DATA_HOME || path.join(env.HOME ?? homedir(), '.local', 'share');
  return path.join(base, 'tsbuild');
}

export interface StoreOptions {
  /** The tsbuild root directory; the store lives in `<root>/store`. */
  readonly root?: string;
  /** Environment consulted for `TSBUILD_ROOT`, `XDG_DATA_HOME`, `HOME` when `root` is not given (default: none, so `~/.local/share/tsbuild`). */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** One entry of the tag index. */
export interface TagEntry {
  /** Normalized reference, e.g. `docker.io/library/busybox:latest`. */
  readonly name: string;
  readonly reference: Reference;
  /** The manifest or index the tag points at. */
  readonly descriptor: Descriptor;
  /** When the tag was last written (ISO 8601). */
  readonly updated: string;
}

export interface GcOptions {
  /** Blobs and temp files younger than this are kept (default 10 minutes), for writers in flight. */
  readonly graceMs?: number;
  /** More roots to keep, besides every tag (e.g. blobs the build cache refers to). */
  readonly roots?: readonly Digest[];
  /** Report what would be removed without removing it. */
  readonly dryRun?: boolean;
}

export interface GcResult {
  readonly removed: readonly Digest[];
  readonly freedBytes: number;
  readonly kept: number;
}

/** Digests a manifest or index refers to: config, layers, manifests, subject. Unknown JSON refers to nothing. */
export function childDescriptors(raw: Buffer | string): Descriptor[] {
  let doc: unknown;
  try {
    doc = JSON.parse(raw.toString());
  } catch {
    return [];
  }
  if (typeof doc !== 'object' || doc === null) return [];
  const d = doc as { config?: Descriptor; layers?: Descriptor[]; manifests?: Descriptor[]; subject?: Descriptor; blobs?: Descriptor[] };
  const out: Descriptor[] = [];
  const add = (x: unknown) => {
    if (typeof x === 'object' && x !== null && typeof (x as Descriptor).digest === 'string' && isDigest((x as Descriptor).digest)) out.push(x as Descriptor);
  };
  add(d.config);
  if (Array.isArray(d.layers)) d.layers.forEach(add);
  if (Array.isArray(d.manifests)) d.manifests.forEach(add);
  if (Array.isArray(d.blobs)) d.blobs.forEach(add);
  add(d.subject);
  return out;
}

function isManifestLike(mediaType: string): boolean {
  return /manifest|index|list/.test(mediaType) && mediaType.includes('json');
}

/**
 * The local content store: `blobs/<alg>/<hex>` plus a tag index `tags/<sha256(name)>.json`
 * (one file per tag, replaced by atomic rename, so concurrent writers never corrupt it).
 * Temp files live in `tmp/`, on the same filesystem as the blobs.
 */
/** Blobs up to this size are read synchronously by `readBlob`. */
const SMALL_BLOB = 1 << 20;

export class Store implements BlobSource, BlobSink {
  readonly dir: string;
  readonly blobsDir: string;
  readonly tagsDir: string;
  readonly tmpDir: string;

  private constructor(dir: string) {
    this.dir = dir;
    this.blobsDir = path.join(dir, 'blobs');
    this.tagsDir = path.join(dir, 'tags');
    this.tmpDir = path.join(dir, 'tmp');
  }

  /** Opens (creating if needed) the store of a tsbuild root: `<root>/store`. */
  static async open(options: StoreOptions = {}): Promise<Store> {
    return Store.openDir(path.join(resolveRootDir(options), 'store'));
  }

  /**
   * Opens (creating if needed) a store in exactly `dir`. Metadata calls here and below that
   * take microseconds (mkdir, stat, utimes, reading a tag or a small blob) are synchronous: awaited,
   * each is a round trip through the threadpool and a wake-up, which a no-op rebuild makes
   * dozens of.
   */
  static async openDir(dir: string): Promise<Store> {
    const s = new Store(path.resolve(dir));
    mkdirSync(path.join(s.blobsDir, 'sha256'), { recursive: true });
    mkdirSync(s.tagsDir, { recursive: true });
    mkdirSync(s.tmpDir, { recursive: true });
    return s;
  }

  blobPath(digest: Digest): string {
    // checked here too: a digest from a file or a registry is text, never a path of its own
    return path.join(this.blobsDir, digestAlgorithm(parseDigest(digest)), digestHex(digest));
  }

  /** Size of a stored blob, or undefined. */
  async statBlob(digest: Digest): Promise<number | undefined> {
    return statSync(this.blobPath(digest), { throwIfNoEntry: false })?.size;
  }

  async hasBlob(digest: Digest): Promise<boolean> {
    return (await this.statBlob(digest)) !== undefined;
  }

  async putBlob(source: BlobChunksInput, expected: { digest?: Digest; size?: number } = {}): Promise<{ digest: Digest; size: number }> {
    // Bytes in memory (a manifest, a config) are named before they are written: when the store
    // has them already (a rebuild writing the same image), nothing is written or synced.
    if (!expected.digest && Buffer.isBuffer(source)) expected = { ...expected, digest: `sha256:${createHash('sha256').update(source).digest('hex')}` as Digest };
    if (expected.digest) {
      const have = await this.statBlob(expected.digest);
      if (have !== undefined && (expected.size === undefined || expected.size === have)) {
        // Refresh mtime so a concurrent GC's grace period covers this new reference.
        const now = new Date();
        try {
          utimesSync(this.blobPath(expected.digest), now, now);
        } catch {
          // best effort (a read-only store)
        }
        dropInput(source);
        return { digest: expected.digest, size: have };
      }
    }
    return putBlobFile(this.blobsDir, this.tmpDir, source, expected, 'blob');
  }

  /** A stream of a blob that errors with DigestMismatchError at its end when the file is corrupt. */
  async openBlob(digest: Digest): Promise<Readable> {
    const file = this.blobPath(digest);
    let fh: fs.FileHandle;
    try {
      fh = await fs.open(file, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new BlobNotFoundError(digest, `store ${this.dir}`, { cause: err });
      throw err;
    }
    const src = fh.createReadStream({ highWaterMark: 256 * 1024 });
    return chain(src, verifyingStream(digest, `blob ${digest} in store ${this.dir}`));
  }

  async readBlob(digest: Digest): Promise<Buffer> {
    const file = this.blobPath(digest);
    let data: Buffer;
    try {
      // a manifest or a config synchronously; a layer (a caller may ask) through the threadpool
      data = statSync(file).size <= SMALL_BLOB ? readFileSync(file) : await fs.readFile(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new BlobNotFoundError(digest, `store ${this.dir}`, { cause: err });
      throw err;
    }
    const actual = `${digestAlgorithm(digest)}:${createHash(digestAlgorithm(digest)).update(data).digest('hex')}` as Digest;
    if (actual !== digest) throw new DigestMismatchError(`blob ${digest} in store ${this.dir}`, digest, actual);
    return data;
  }

  async deleteBlob(digest: Digest): Promise<boolean> {
    try {
      await fs.unlink(this.blobPath(digest));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  async *listBlobs(): AsyncIterable<{ digest: Digest; size: number; mtimeMs: number }> {
    for (const alg of await fs.readdir(this.blobsDir)) {
      let names: string[];
      try {
        names = await fs.readdir(path.join(this.blobsDir, alg));
      } catch {
        continue;
      }
      for (const hex of names) {
        const d = `${alg}:${hex}`;
        if (!isDigest(d)) continue;
        try {
          const st = await fs.stat(path.join(this.blobsDir, alg, hex));
          yield { digest: d, size: st.size, mtimeMs: st.mtimeMs };
        } catch {
          /* removed meanwhile */
        }
      }
    }
  }

  // ---- tags -------------------------------------------------------------------------------

  private tagFile(name: string): string {
    return path.join(this.tagsDir, `${createHash('sha256').update(name).digest('hex')}.json`);
  }

  /** Points `ref` (normalized, `busybox` → `docker.io/library/busybox:latest`) at a manifest or index. */
  async tag(ref: string | Reference, descriptor: Descriptor): Promise<TagEntry> {
    const reference = typeof ref === 'string' ? parseReference(ref) : ref;
    if (reference.digest !== undefined) throw new TsbuildError('TSBUILD_INVALID_REFERENCE', `cannot tag ${formatReference(reference)}: a tag name has no digest`);
    const name = formatReference(reference);
    const desc: Descriptor = { mediaType: descriptor.mediaType, digest: parseDigest(descriptor.digest), size: descriptor.size, ...(descriptor.annotations ? { annotations: descriptor.annotations } : {}), ...(descriptor.platform ? { platform: descriptor.platform } : {}) };
    // Already pointing there (a rebuild that made the same image): nothing to write or sync.
    const current = await this.readTagFile(this.tagFile(name), name).catch(() => undefined);
    if (current && sameDescriptor(current.descriptor, desc)) return current;
    const entry: TagEntry = { name, reference, descriptor: desc, updated: new Date().toISOString() };
    await syncBlobDirs(this.blobsDir);
    await writeFileAtomic(this.tagFile(name), JSON.stringify({ name, descriptor: desc, updated: entry.updated }) + '\n');
    return entry;
  }

  /** The descriptor a tag points at, or undefined. A reference with a digest resolves to that digest when stored. */
  async resolve(ref: string | Reference): Promise<TagEntry | undefined> {
    const reference = typeof ref === 'string' ? parseReference(ref) : ref;
    if (reference.digest !== undefined) {
      const size = await this.statBlob(reference.digest);
      if (size === undefined) return undefined;
      const mediaType = mediaTypeOf(await this.readBlob(reference.digest));
      return { name: formatReference(reference), reference, descriptor: { mediaType, digest: reference.digest, size }, updated: '' };
    }
    const name = formatReference(reference);
    return this.readTagFile(this.tagFile(name), name);
  }

  private async readTagFile(file: string, expectName?: string): Promise<TagEntry | undefined> {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    const j = JSON.parse(text) as { name: string; descriptor: Descriptor; updated: string };
    if (expectName !== undefined && j.name !== expectName) return undefined;
    return { name: j.name, reference: parseReference(j.name), descriptor: j.descriptor, updated: j.updated };
  }

  /** Removes a tag; false when it did not exist. Blobs stay until `gc`. */
  async untag(ref: string | Reference): Promise<boolean> {
    const reference = typeof ref === 'string' ? parseReference(ref) : ref;
    try {
      await fs.unlink(this.tagFile(formatReference(reference)));
      await fsyncDir(this.tagsDir);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  /** Every tag, sorted by name. */
  async listTags(): Promise<TagEntry[]> {
    const out: TagEntry[] = [];
    for (const f of await fs.readdir(this.tagsDir)) {
      if (!f.endsWith('.json') || f.startsWith('.')) continue;
      const e = await this.readTagFile(path.join(this.tagsDir, f));
      if (e) out.push(e);
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /**
   * Finds an image by what a user types: a reference (`busybox`, `host:5000/a:tag`,
   * `name@sha256:…`), a full digest, or an unambiguous hex prefix (≥ 4) of a tagged manifest
   * digest. Throws TagNotFoundError (with a did-you-mean from the tags) when nothing matches.
   */
  async lookup(text: string): Promise<TagEntry> {
    const tags = await this.listTags();
    const hex = text.startsWith('sha256:') ? text.slice(7) : text;
    if (/^[a-f0-9]{4,64}$/.test(hex)) {
      const hits = new Map<string, TagEntry>();
      for (const t of tags) if (digestHex(t.descriptor.digest).startsWith(hex)) hits.set(t.descriptor.digest, t);
      if (hits.size === 1) return [...hits.values()][0]!;
      if (hits.size > 1) throw new TsbuildError('TSBUILD_AMBIGUOUS_ID', `image id ${text} is ambiguous: ${[...hits.keys()].join(', ')}`);
      if (isDigest(text)) {
        const size = await this.statBlob(text);
        if (size !== undefined) return { name: text, reference: { domain: '', path: '', digest: text }, descriptor: { mediaType: mediaTypeOf(await this.readBlob(text)), digest: text, size }, updated: '' };
      }
    }
    let reference: Reference;
    try {
      reference = parseReference(text);
    } catch (err) {
      if (/^[a-f0-9]{4,64}$/.test(hex)) throw new TagNotFoundError(text);
      throw err;
    }
    const hit = await this.resolve(reference);
    if (hit) return hit;
    const { didYouMean } = await import('../util/suggest.js');
    const names = tags.map((t) => t.name);
    const full = formatReference(reference);
    const s = didYouMean(full, names);
    throw new TagNotFoundError(text, typeof s === 'string' ? s : undefined);
  }

  /** Every blob reachable from `roots` (manifests and indexes are followed). Missing children are skipped. */
  async reachable(roots: Iterable<Descriptor | Digest>): Promise<Set<Digest>> {
    const seen = new Set<Digest>();
    const stack: { digest: Digest; mediaType?: string }[] = [];
    for (const r of roots) stack.push(typeof r === 'string' ? { digest: r } : { digest: r.digest, mediaType: r.mediaType });
    while (stack.length > 0) {
      const { digest, mediaType } = stack.pop()!;
      if (seen.has(digest)) continue;
      seen.add(digest);
      if (mediaType !== undefined && !isManifestLike(mediaType)) continue;
      const size = await this.statBlob(digest);
      if (size === undefined || size > 8 * 1024 * 1024) continue;
      let raw: Buffer;
      try {
        raw = await this.readBlob(digest);
      } catch {
        continue;
      }
      for (const c of childDescriptors(raw)) stack.push({ digest: c.digest, mediaType: c.mediaType });
    }
    return seen;
  }

  /** Mark from every tag (and `roots`), sweep the rest; blobs and temp files younger than the grace period stay. */
  async gc(options: GcOptions = {}): Promise<GcResult> {
    const grace = options.graceMs ?? 10 * 60 * 1000;
    const now = Date.now();
    const tags = await this.listTags();
    const live = await this.reachable([...tags.map((t) => t.descriptor), ...(options.roots ?? [])]);
    const removed: Digest[] = [];
    let freedBytes = 0;
    let kept = 0;
    for await (const b of this.listBlobs()) {
      if (live.has(b.digest) || now - b.mtimeMs < grace) {
        kept++;
        continue;
      }
      if (!options.dryRun && !(await this.deleteBlob(b.digest))) continue;
      removed.push(b.digest);
      freedBytes += b.size;
    }
    for (const f of await fs.readdir(this.tmpDir)) {
      const p = path.join(this.tmpDir, f);
      try {
        const st = await fs.stat(p);
        if (now - st.mtimeMs >= grace && !options.dryRun) await fs.rm(p, { force: true, recursive: true });
      } catch {
        /* gone */
      }
    }
    return { removed, freedBytes, kept };
  }
}

/** The mediaType a manifest or index declares, or a guess from its shape. */
export function mediaTypeOf(raw: Buffer | string): string {
  try {
    const j = JSON.parse(raw.toString()) as { mediaType?: unknown; manifests?: unknown; config?: unknown };
    if (typeof j.mediaType === 'string') return j.mediaType;
    if (Array.isArray(j.manifests)) return 'application/vnd.oci.image.index.v1+json';
    if (j.config !== undefined) return 'application/vnd.oci.image.manifest.v1+json';
  } catch {
    /* not JSON */
  }
  return 'application/octet-stream';
}
