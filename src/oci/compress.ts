import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
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

/**
 * A compressing Transform. Gzip output is deterministic (header mtime 0, no file name, OS
 * byte from zlib), so the same tar gives the same digest.
 */
export function compressStream(compression: Compression, options: CompressOptions = {}): Duplex {
  if (compression === 'gzip') return zlib.createGzip({ level: options.level ?? 6 });
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
