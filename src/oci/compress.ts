import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Duplex, PassThrough, Readable, Transform, Writable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import { TsbuildError } from '../errors.js';
import type { Digest } from './digest.js';
import { MediaType } from './types.js';

/** How a layer blob is compressed. */
export type Compression = 'gzip' | 'zstd' | 'none';

export class CompressionError extends TsbuildError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('TSBUILD_COMPRESSION', message, options);
  }
}

/** Compression from the first bytes of a blob: gzip `1f 8b`, zstd `28 b5 2f fd`, else none. */
export function detectCompression(head: Uint8Array): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  return 'none';
}

/** Compression a layer media type declares, or undefined when the type is not a known layer type. */
export function compressionOfMediaType(mediaType: string): Compression | undefined {
  if (mediaType.endsWith('+gzip') || mediaType.endsWith('.tar.gzip')) return 'gzip';
  if (mediaType.endsWith('+zstd') || mediaType.endsWith('.tar.zstd')) return 'zstd';
  if (mediaType.endsWith('.tar') || mediaType.endsWith('.diff.tar')) return 'none';
  return undefined;
}

/** The layer media type for a compression, OCI (default) or Docker schema2 flavour. */
export function layerMediaType(compression: Compression, flavour: 'oci' | 'docker' = 'oci'): string {
  if (flavour === 'docker') {
    if (compression === 'gzip') return MediaType.DockerLayerGzip;
    if (compression === 'zstd') return MediaType.OciLayerZstd; // Docker has no zstd type of its own
    return 'application/vnd.docker.image.rootfs.diff.tar';
  }
  if (compression === 'gzip') return MediaType.OciLayerGzip;
  if (compression === 'zstd') return MediaType.OciLayerZstd;
  return MediaType.OciLayer;
}

type ZlibZstd = {
  createZstdCompress?: (o?: object) => Transform;
  createZstdDecompress?: (o?: object) => Transform;
  constants: Record<string, number>;
};
const zz = zlib as unknown as ZlibZstd;

/** True when this Node has zstd in node:zlib (≥ 22.15); else the `zstd` binary is spawned. */
export const nativeZstd = typeof zz.createZstdCompress === 'function';

/** Wraps a spawned filter (stdin → stdout) as a Duplex that fails when the program fails. */
function spawnFilter(cmd: string, args: string[]): Duplex {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s: string) => {
    if (stderr.length < 4096) stderr += s;
  });
  const out = new PassThrough();
  child.stdout.pipe(out, { end: false });
  let stdoutEnded = false;
  let exitCode: number | undefined;
  const finish = () => {
    if (!stdoutEnded || exitCode === undefined) return;
    if (exitCode === 0) out.end();
    else out.destroy(new CompressionError(`${cmd} ${args.join(' ')} failed (exit ${exitCode}): ${stderr.trim()}`));
  };
  child.stdout.on('end', () => {
    stdoutEnded = true;
    finish();
  });
  child.on('error', (err) => out.destroy(new CompressionError(`cannot run ${cmd}: ${err.message} (install zstd)`, { cause: err })));
  child.on('exit', (code, signal) => {
    exitCode = code ?? (signal ? 128 : 1);
    finish();
  });
  child.stdin.on('error', () => {
    /* the exit code reports the failure */
  });
  out.on('close', () => {
    if (exitCode === undefined) child.kill('SIGKILL');
  });
  return Duplex.from({ writable: child.stdin, readable: out });
}

export interface CompressOptions {
  /** gzip 1–9 (default 6, like `docker build`), zstd 1–19 (default 3). */
  readonly level?: number;
}

const deflateRaw = (buf: Buffer, opts: zlib.ZlibOptions): Promise<Buffer> =>
  new Promise((resolve, reject) => zlib.deflateRaw(buf, opts, (err, out) => (err ? reject(err) : resolve(out))));

/** CRC-32 (gzip's) of `buf` continuing from `crc`: node:zlib's when this Node has it (≥ 20.15). */
const crc32: (buf: Buffer, crc: number) => number =
  typeof (zlib as { crc32?: unknown }).crc32 === 'function'
    ? (buf, crc) => (zlib as unknown as { crc32(b: Buffer, c: number): number }).crc32(buf, crc)
    : (() => {
        const table = new Int32Array(256);
        for (let n = 0; n < 256; n++) {
          let c = n;
          for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
          table[n] = c;
        }
        return (buf: Buffer, crc: number): number => {
          let c = ~crc;
          for (let i = 0; i < buf.length; i++) c = table[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
          return ~c >>> 0;
        };
      })();

/** Input bytes per independently compressed gzip block. */
export const GZIP_BLOCK = 1 << 20;

/**
 * Gzip on every core, pigz-style: the input is cut into fixed 1 MiB blocks, each deflated on
 * the thread pool with the previous block's last 32 KiB as its dictionary and ended by a sync
 * flush (so the raw streams concatenate into one deflate stream), the last one by a final
 * block. The output is one ordinary gzip member that any gunzip reads, and it depends only on
 * the input and the level: not on the core count, the thread pool or how the input was chunked,
 * so the same tar gives the same digest on any machine.
 */
export class ParallelGzip extends Transform {
  readonly #level: number;
  readonly #inflight: Promise<Buffer>[] = [];
  readonly #max: number;
  #pending: Buffer[] = [];
  #pendingSize = 0;
  #dictionary: Buffer | undefined;
  #crc = 0;
  #size = 0;
  #headerSent = false;

  constructor(options: { level?: number; concurrency?: number } = {}) {
    super();
    this.#level = options.level ?? 6;
    this.#max = Math.max(1, options.concurrency ?? availableParallelism() + 1);
  }

  #header(): void {
    if (this.#headerSent) return;
    this.#headerSent = true;
    // As zlib writes it: no name, mtime 0, XFL from the level, OS 3 (Unix).
    const xfl = this.#level === 9 ? 2 : this.#level === 1 ? 4 : 0;
    this.push(Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 3]));
  }

  /** Queues one block for compression; `last` ends the deflate stream. */
  #queue(block: Buffer, last: boolean): void {
    this.#crc = crc32(block, this.#crc);
    this.#size = (this.#size + block.length) >>> 0;
    const opts: zlib.ZlibOptions = { level: this.#level, ...(last ? {} : { finishFlush: zlib.constants.Z_SYNC_FLUSH }), ...(this.#dictionary ? { dictionary: this.#dictionary } : {}) };
    const done = deflateRaw(block, opts);
    done.catch(() => {}); // awaited in order by #drain; this only keeps a later one's failure from going unhandled first
    this.#inflight.push(done);
    this.#dictionary = block.length >= 32768 ? block.subarray(block.length - 32768) : Buffer.concat([this.#dictionary ?? Buffer.alloc(0), block]).subarray(-32768);
  }

  /** Pushes finished blocks in order until at most `keep` are in flight. */
  async #drain(keep: number): Promise<void> {
    while (this.#inflight.length > keep) this.push(await this.#inflight.shift()!);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#header();
    this.#pending.push(chunk);
    this.#pendingSize += chunk.length;
    if (this.#pendingSize < GZIP_BLOCK) return cb();
    const all = this.#pending.length === 1 ? this.#pending[0]! : Buffer.concat(this.#pending, this.#pendingSize);
    let off = 0;
    while (all.length - off >= GZIP_BLOCK) {
      this.#queue(all.subarray(off, off + GZIP_BLOCK), false);
      off += GZIP_BLOCK;
    }
    this.#pending = off < all.length ? [all.subarray(off)] : [];
    this.#pendingSize = all.length - off;
    this.#drain(this.#max - 1).then(() => cb(), cb);
  }

  override _flush(cb: TransformCallback): void {
    this.#header();
    this.#queue(this.#pending.length === 1 ? this.#pending[0]! : Buffer.concat(this.#pending, this.#pendingSize), true);
    this.#pending = [];
    this.#drain(0).then(() => {
      const trailer = Buffer.alloc(8);
      trailer.writeUInt32LE(this.#crc >>> 0, 0);
      trailer.writeUInt32LE(this.#size, 4);
      cb(null, trailer);
    }, cb);
  }
}

/** A gzip Transform: {@link ParallelGzip}. */
export function createGzipStream(level = 6): Transform {
  return new ParallelGzip({ level });
}

/**
 * A compressing Transform. Output is deterministic (gzip: header mtime 0, no file name, fixed
 * blocks), so the same tar gives the same digest.
 */
export function compressStream(compression: Compression, options: CompressOptions = {}): Duplex {
  if (compression === 'gzip') return createGzipStream(options.level ?? 6);
  if (compression === 'zstd') {
    const level = options.level ?? 3;
    if (nativeZstd) return zz.createZstdCompress!({ params: { [zz.constants.ZSTD_c_compressionLevel!]: level } });
    return spawnFilter('zstd', ['-q', '-c', `-${level}`, '--no-check']);
  }
  return new PassThrough();
}

/** A decompressing Transform for a known compression. */
export function decompressStream(compression: Compression): Duplex {
  if (compression === 'gzip') return zlib.createGunzip();
  if (compression === 'zstd') {
    if (nativeZstd) return zz.createZstdDecompress!();
    return spawnFilter('zstd', ['-q', '-d', '-c']);
  }
  return new PassThrough();
}

/** A Transform that looks at the first bytes and decompresses gzip, zstd or passes a plain tar. */
export function autoDecompress(): Duplex {
  const input = new PassThrough();
  const output = new PassThrough();
  let head = Buffer.alloc(0);
  let started = false;
  const start = () => {
    started = true;
    const c = detectCompression(head);
    const d = decompressStream(c);
    pipeline(input, d, output).catch((err: unknown) => result.destroy(err as Error));
    input.write(head);
  };
  const result = new Duplex({
    write(chunk: Buffer, _enc, cb) {
      if (started) {
        if (input.write(chunk)) cb();
        else input.once('drain', () => cb());
        return;
      }
      head = Buffer.concat([head, chunk]);
      if (head.length >= 4) start();
      cb();
    },
    final(cb) {
      if (!started) start();
      input.end();
      cb();
    },
    read() {
      output.resume();
    },
    destroy(err, cb) {
      input.destroy();
      output.destroy();
      cb(err);
    },
  });
  output.on('data', (b: Buffer) => {
    if (!result.push(b)) output.pause();
  });
  output.on('end', () => result.push(null));
  output.on('error', (e) => result.destroy(e));
  return result;
}

/** Digests of one layer, compressed (`digest`, `size`) and uncompressed (`diffId`, `uncompressedSize`). */
export interface LayerDigests {
  readonly digest: Digest;
  readonly size: number;
  readonly diffId: Digest;
  readonly uncompressedSize: number;
  readonly compression: Compression;
}

class Hasher extends Transform {
  readonly hash = createHash('sha256');
  size = 0;
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback) {
    this.hash.update(chunk);
    this.size += chunk.length;
    cb(null, chunk);
  }
}

/**
 * Compresses an uncompressed tar stream into `dest` (or nowhere), hashing the tar and the
 * compressed bytes in the same streaming pass.
 */
export async function compressLayer(tar: Readable, compression: Compression, dest?: Writable, options: CompressOptions = {}): Promise<LayerDigests> {
  const inner = new Hasher();
  const outer = new Hasher();
  const sink = dest ?? new Writable({ write: (_c, _e, cb) => cb() });
  if (compression === 'none') {
    await pipeline(tar, inner, sink);
    const d = `sha256:${inner.hash.digest('hex')}` as Digest;
    return { digest: d, size: inner.size, diffId: d, uncompressedSize: inner.size, compression };
  }
  await pipeline(tar, inner, compressStream(compression, options), outer, sink);
  return {
    digest: `sha256:${outer.hash.digest('hex')}` as Digest,
    size: outer.size,
    diffId: `sha256:${inner.hash.digest('hex')}` as Digest,
    uncompressedSize: inner.size,
    compression,
  };
}

/**
 * Reads a (possibly compressed) layer blob to the end and returns its digests: the blob's own
 * digest and size and the diffId of the tar inside, in one pass.
 */
export async function digestLayerBlob(blob: Readable): Promise<LayerDigests> {
  const outer = new Hasher();
  const inner = new Hasher();
  let head = Buffer.alloc(0);
  const peek = new Transform({
    transform(chunk: Buffer, _e, cb) {
      if (head.length < 4) head = Buffer.concat([head, chunk.subarray(0, 4 - head.length)]);
      cb(null, chunk);
    },
  });
  await pipeline(blob, outer, peek, autoDecompress(), inner, new Writable({ write: (_c, _e, cb) => cb() }));
  return {
    digest: `sha256:${outer.hash.digest('hex')}` as Digest,
    size: outer.size,
    diffId: `sha256:${inner.hash.digest('hex')}` as Digest,
    uncompressedSize: inner.size,
    compression: detectCompression(head),
  };
}
