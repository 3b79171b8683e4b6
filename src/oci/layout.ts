import { createHash } from 'node:crypto';
import { createReadStream, constants as fsc } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { TsbuildError } from '../errors.js';
import { digestAlgorithm, digestHex, isDigest, parseDigest, type Digest } from './digest.js';
import { collectBlobs, loadManifest, selectImage, type Image, type ImageOrIndex } from './image.js';
import { BlobNotFoundError, DigestMismatchError, putBlobFile, syncBlobDirs, verifyingStream, writeFileAtomic, type BlobInput, type BlobSink, type BlobSource } from './store.js';
import { MediaType, type Descriptor, type ImageIndex, type Platform } from './types.js';

/** The annotation naming an entry of a layout's index.json (`oci:DIR:NAME` in skopeo). */
export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';

export class LayoutError extends TsbuildError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('TSBUILD_LAYOUT', message, options);
  }
}

/** One entry of index.json: a manifest or index, with its ref name when annotated. */
export interface LayoutEntry {
  readonly refName: string | undefined;
  readonly descriptor: Descriptor;
}

const OCI_LAYOUT = JSON.stringify({ imageLayoutVersion: '1.0.0' });

/**
 * An OCI image layout directory (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`). Blobs are
 * written temp-file + fsync + rename, read with digest verification; index.json is replaced
 * atomically (last writer wins when two processes add entries at once).
 */
export class OciLayout implements BlobSource, BlobSink {
  readonly dir: string;
  private constructor(dir: string) {
    this.dir = dir;
  }

  /** Opens a layout, creating `oci-layout`, `index.json` and `blobs/sha256` when missing. */
  static async create(dir: string): Promise<OciLayout> {
    const abs = path.resolve(dir);
    await fs.mkdir(path.join(abs, 'blobs', 'sha256'), { recursive: true });
    try {
      await fs.access(path.join(abs, 'oci-layout'));
    } catch {
      await writeFileAtomic(path.join(abs, 'oci-layout'), OCI_LAYOUT);
    }
    try {
      await fs.access(path.join(abs, 'index.json'));
    } catch {
      await writeFileAtomic(path.join(abs, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] }));
    }
    return new OciLayout(abs);
  }

  /** Opens an existing layout; errors when `oci-layout` is missing or of another version. */
  static async open(dir: string): Promise<OciLayout> {
    const abs = path.resolve(dir);
    let text: string;
    try {
      text = await fs.readFile(path.join(abs, 'oci-layout'), 'utf8');
    } catch (err) {
      throw new LayoutError(`${abs} is not an OCI image layout: no oci-layout file`, { cause: err });
    }
    let v: unknown;
    try {
      v = (JSON.parse(text) as { imageLayoutVersion?: unknown }).imageLayoutVersion;
    } catch (err) {
      throw new LayoutError(`${abs}/oci-layout is not valid JSON`, { cause: err });
    }
    if (v !== '1.0.0') throw new LayoutError(`${abs}: unsupported imageLayoutVersion ${JSON.stringify(v)} (want 1.0.0)`);
    return new OciLayout(abs);
  }

  blobPath(digest: Digest): string {
    // A digest from index.json or a manifest is text from the layout: never a path of its own.
    return path.join(this.dir, 'blobs', digestAlgorithm(parseDigest(digest)), digestHex(digest));
  }

  async hasBlob(digest: Digest): Promise<boolean> {
    try {
      await fs.access(this.blobPath(digest));
      return true;
    } catch {
      return false;
    }
  }

  async putBlob(source: BlobInput, expected: { digest?: Digest; size?: number } = {}): Promise<{ digest: Digest; size: number }> {
    if (expected.digest && (await this.hasBlob(expected.digest))) {
      const st = await fs.stat(this.blobPath(expected.digest));
      if (typeof source !== 'function' && typeof source !== 'string' && !(source instanceof Uint8Array)) source.destroy();
      return { digest: expected.digest, size: st.size };
    }
    return putBlobFile(path.join(this.dir, 'blobs'), this.dir, source, expected, `blob in layout ${this.dir}`);
  }

  async openBlob(digest: Digest): Promise<Readable> {
    let fh: fs.FileHandle;
    try {
      fh = await fs.open(this.blobPath(digest), fsc.O_RDONLY);
    } catch (err) {
      throw new BlobNotFoundError(digest, `layout ${this.dir}`, { cause: err });
    }
    const src = fh.createReadStream({ highWaterMark: 256 * 1024 });
    const v = verifyingStream(digest, `blob ${digest} in layout ${this.dir}`);
    src.on('error', (e) => v.destroy(e));
    v.on('close', () => src.destroy());
    return src.pipe(v);
  }

  async readBlob(digest: Digest): Promise<Buffer> {
    let data: Buffer;
    try {
      data = await fs.readFile(this.blobPath(digest));
    } catch (err) {
      throw new BlobNotFoundError(digest, `layout ${this.dir}`, { cause: err });
    }
    const algorithm = digestAlgorithm(digest);
    const actual = `${algorithm}:${createHash(algorithm).update(data).digest('hex')}` as Digest;
    if (actual !== digest) throw new DigestMismatchError(`blob ${digest} in layout ${this.dir}`, digest, actual);
    return data;
  }

  async readIndex(): Promise<ImageIndex> {
    let text: string;
    try {
      text = await fs.readFile(path.join(this.dir, 'index.json'), 'utf8');
    } catch (err) {
      throw new LayoutError(`${this.dir}: cannot read index.json`, { cause: err });
    }
    try {
      const j = JSON.parse(text) as ImageIndex;
      if (!Array.isArray(j.manifests)) throw new Error('manifests is not an array');
      return j;
    } catch (err) {
      throw new LayoutError(`${this.dir}/index.json is invalid: ${(err as Error).message}`, { cause: err });
    }
  }

  async entries(): Promise<LayoutEntry[]> {
    return (await this.readIndex()).manifests.map((d) => {
      if (typeof d.digest !== 'string' || !isDigest(d.digest)) throw new LayoutError(`${this.dir}/index.json names an invalid digest ${JSON.stringify(d.digest)}`);
      return { refName: d.annotations?.[REF_NAME_ANNOTATION], descriptor: d };
    });
  }

  /** Adds a manifest/index descriptor to index.json; an entry with the same ref name is replaced. */
  async addEntry(descriptor: Descriptor, refName?: string): Promise<void> {
    const index = await this.readIndex();
    const annotations = { ...descriptor.annotations, ...(refName !== undefined ? { [REF_NAME_ANNOTATION]: refName } : {}) };
    const entry: Descriptor = { ...descriptor, ...(Object.keys(annotations).length ? { annotations } : {}) };
    const manifests = index.manifests.filter((d) =>
      refName !== undefined ? d.annotations?.[REF_NAME_ANNOTATION] !== refName : !(d.digest === descriptor.digest && d.annotations?.[REF_NAME_ANNOTATION] === undefined),
    );
    manifests.push(entry);
    await syncBlobDirs(path.join(this.dir, 'blobs'));
    await writeFileAtomic(path.join(this.dir, 'index.json'), JSON.stringify({ ...index, schemaVersion: 2, mediaType: MediaType.OciIndex, manifests }));
  }

  /** Finds an entry by ref name, by digest, or the only entry when `ref` is omitted. */
  async find(ref?: string): Promise<LayoutEntry> {
    const all = await this.entries();
    let hit: LayoutEntry | undefined;
    if (ref === undefined) {
      if (all.length !== 1) throw new LayoutError(`${this.dir} holds ${all.length} images; name one (${all.map((e) => e.refName ?? e.descriptor.digest).join(', ')})`);
      hit = all[0];
    } else if (isDigest(ref)) hit = all.find((e) => e.descriptor.digest === ref);
    else hit = all.find((e) => e.refName === ref);
    if (!hit) throw new LayoutError(`${this.dir} has no image ${JSON.stringify(ref)}; it has ${all.map((e) => e.refName ?? e.descriptor.digest).join(', ') || 'none'}`);
    return hit;
  }

  async item(ref?: string): Promise<ImageOrIndex> {
    return loadManifest(this, (await this.find(ref)).descriptor);
  }

  /** The image for a ref name (or the only one), choosing from an index by platform. */
  async image(ref?: string, platform?: Platform): Promise<Image> {
    return selectImage(this, await this.item(ref), platform);
  }

  /** Writes an image or index (all its blobs) and names it in index.json. */
  async write(item: ImageOrIndex, refName?: string): Promise<Descriptor> {
    const { writeImage } = await import('./image.js');
    const desc = await writeImage(this, item);
    await this.addEntry(desc, refName);
    return desc;
  }
}

/** Options for writing tars (archives). */
export interface ArchiveOptions {
  /** mtime of every entry, seconds since the epoch (default 0). */
  readonly mtime?: number;
}

/** Tar pack helper: awaits each entry so a blob's stream is consumed before the next starts. */
export class TarWriter {
  readonly pack = tar.pack();
  private readonly mtime: Date;
  constructor(options: ArchiveOptions = {}) {
    this.mtime = new Date((options.mtime ?? 0) * 1000);
  }
  private header(name: string, extra: Partial<tar.Header>): tar.Header {
    return { name, mtime: this.mtime, uid: 0, gid: 0, uname: '', gname: '', mode: 0o644, ...extra } as tar.Header;
  }
  dir(name: string): void {
    quietEntry(this.pack, this.header(name, { type: 'directory', mode: 0o755 }));
  }
  file(name: string, data: Buffer | string): void {
    quietEntry(this.pack, this.header(name, { type: 'file' }), Buffer.from(data));
  }
  async stream(name: string, size: number, src: Readable): Promise<void> {
    // pipeline, not pipe: a failing source or a destroyed pack (its output failed) rejects here,
    // and the source is closed; pipe() re-emits the entry's error with no listener.
    await pipeline(src, quietEntry(this.pack, this.header(name, { type: 'file', size })));
  }
  finalize(): void {
    this.pack.finalize();
  }
}

/**
 * `pack.entry`, with a listener for its 'error': an entry not yet written when the pack is
 * destroyed (a failing output, a failing source) is destroyed with the pack's error, and an
 * 'error' event nobody listens to ends the process. The pipeline into the output reports it.
 */
export function quietEntry(pack: tar.Pack, header: Partial<tar.Header> & { name: string }, data?: Buffer): NodeJS.WritableStream {
  const entry = data ? pack.entry(header, data) : pack.entry(header);
  entry.on('error', () => {});
  // A streamx Writable, which node's pipeline drives as it does its own.
  return entry as unknown as NodeJS.WritableStream;
}

/**
 * Streams `pack` into `out` while `fill` adds the entries, then ends the archive. The first
 * failure ends both sides and is the one thrown: the output's own (EACCES, ENOSPC) when it came
 * first, though `fill` then only meets a destroyed pack. The pipeline's outcome is taken from the
 * start, so an output failing while `fill` awaits something else is no unhandled rejection.
 */
export async function packInto(pack: tar.Pack, out: Writable | NodeJS.WritableStream, fill: () => Promise<void>): Promise<void> {
  const failed = pipeline(pack, out).then(
    () => undefined,
    (err: unknown) => err ?? new Error('archive output failed'),
  );
  try {
    await fill();
    pack.finalize();
  } catch (err) {
    pack.destroy(err as Error);
    throw (await failed) ?? err;
  }
  const err = await failed;
  if (err) throw err;
}

/**
 * Streams an OCI archive (a tar of a layout) of `entries` into `out`. Blobs are streamed from
 * their sources; nothing is staged on disk.
 */
export async function writeOciArchive(out: Writable, entries: readonly { item: ImageOrIndex; refName?: string }[], options: ArchiveOptions = {}): Promise<Descriptor[]> {
  const w = new TarWriter(options);
  const manifests: Descriptor[] = [];
  await packInto(w.pack, out, async () => {
    const blobs: { descriptor: Descriptor; open: () => Promise<Readable> }[] = [];
    const seen = new Set<string>();
    for (const e of entries) {
      for (const b of await collectBlobs(e.item)) {
        if (seen.has(b.descriptor.digest)) continue;
        seen.add(b.descriptor.digest);
        blobs.push(b);
      }
      const d = await e.item.descriptor();
      manifests.push(e.refName !== undefined ? { ...d, annotations: { [REF_NAME_ANNOTATION]: e.refName } } : d);
    }
    w.file('oci-layout', OCI_LAYOUT);
    w.file('index.json', JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests }));
    w.dir('blobs/');
    w.dir('blobs/sha256/');
    for (const b of blobs) await w.stream(`blobs/${digestAlgorithm(b.descriptor.digest)}/${digestHex(b.descriptor.digest)}`, b.descriptor.size, await b.open());
  });
  return manifests;
}

/** Normalizes a tar entry name: strips `./` and leading `/`. */
function cleanName(name: string): string {
  return path.posix.normalize(name.replace(/^\/+/, '')).replace(/^\.\//, '').replace(/\/$/, '');
}

/**
 * Reads an OCI archive from a stream into `sink` (a store or a layout): every blob is streamed
 * in and verified against its file name; returns index.json's entries.
 */
export async function readOciArchive(input: Readable, sink: BlobSink): Promise<LayoutEntry[]> {
  const extract = tar.extract();
  let index: ImageIndex | undefined;
  let sawLayout = false;
  const done = new Promise<void>((resolve, reject) => {
    extract.on('entry', (header, stream, next) => {
      const name = cleanName(header.name);
      const handle = async () => {
        if (header.type !== 'file' && header.type !== 'contiguous-file') {
          stream.resume();
          return;
        }
        const m = /^blobs\/(sha256|sha512)\/([a-f0-9]+)$/.exec(name);
        if (m) {
          const digest = `${m[1]}:${m[2]}`;
          if (!isDigest(digest)) throw new LayoutError(`OCI archive: blob file name ${name} is not a digest`);
          if (await sink.hasBlob(digest)) {
            stream.resume();
            await new Promise<void>((r) => stream.on("end", () => r()));
            return;
          }
          await sink.putBlob(Readable.from(stream), header.size != null ? { digest, size: header.size } : { digest });
          return;
        }
        const chunks: Buffer[] = [];
        for await (const c of stream) chunks.push(c as Buffer);
        const text = Buffer.concat(chunks).toString('utf8');
        if (name === 'index.json') {
          try {
            index = JSON.parse(text) as ImageIndex;
          } catch (err) {
            throw new LayoutError(`OCI archive: index.json is invalid JSON`, { cause: err });
          }
        } else if (name === 'oci-layout') sawLayout = true;
      };
      handle().then(
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
  await Promise.all([pipeline(input, extract).catch((e: unknown) => Promise.reject(e)), done]);
  if (!sawLayout) throw new LayoutError('OCI archive has no oci-layout file');
  if (!index || !Array.isArray(index.manifests)) throw new LayoutError('OCI archive has no valid index.json');
  return index.manifests.map((d) => ({ refName: d.annotations?.[REF_NAME_ANNOTATION], descriptor: d }));
}

/** Writes an OCI archive of a whole layout directory (every blob and index.json as they are). */
export async function archiveLayout(layout: OciLayout, out: Writable, options: ArchiveOptions = {}): Promise<void> {
  const w = new TarWriter(options);
  await packInto(w.pack, out, async () => {
    w.file('oci-layout', OCI_LAYOUT);
    w.file('index.json', await fs.readFile(path.join(layout.dir, 'index.json')));
    w.dir('blobs/');
    for (const alg of (await fs.readdir(path.join(layout.dir, 'blobs'))).sort()) {
      w.dir(`blobs/${alg}/`);
      for (const hex of (await fs.readdir(path.join(layout.dir, 'blobs', alg))).sort()) {
        const p = path.join(layout.dir, 'blobs', alg, hex);
        await w.stream(`blobs/${alg}/${hex}`, (await fs.stat(p)).size, createReadStream(p));
      }
    }
  });
}
