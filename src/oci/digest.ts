import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { TsbuildError } from '../errors.js';

declare const digestBrand: unique symbol;
/** `algorithm:hex`, validated by `parseDigest`. Only sha256 and sha512 are accepted. */
export type Digest = string & { readonly [digestBrand]: true };

const DIGEST_RE = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

export class InvalidDigestError extends TsbuildError {
  constructor(value: string) {
    super('TSBUILD_INVALID_DIGEST', `invalid digest ${JSON.stringify(value)}: want sha256:<64 hex> or sha512:<128 hex>`);
  }
}

/** The one way to make a Digest from untrusted text. */
export function parseDigest(value: string): Digest {
  if (!DIGEST_RE.test(value)) throw new InvalidDigestError(value);
  return value as Digest;
}

export function isDigest(value: string): value is Digest {
  return DIGEST_RE.test(value);
}

export function digestAlgorithm(d: Digest): 'sha256' | 'sha512' {
  return d.slice(0, d.indexOf(':')) as 'sha256' | 'sha512';
}

export function digestHex(d: Digest): string {
  return d.slice(d.indexOf(':') + 1);
}

/** sha256 of bytes or a string (UTF-8). */
export function sha256(data: Uint8Array | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}` as Digest;
}

/**
 * A pass-through stream that hashes and counts what flows through it, so a blob is hashed while
 * it is copied, never twice. Read `digest` and `size` after 'finish'.
 */
export class DigestingStream extends Transform {
  #hash: Hash;
  #size = 0;
  #digest: Digest | undefined;
  readonly algorithm: 'sha256' | 'sha512';
  constructor(algorithm: 'sha256' | 'sha512' = 'sha256') {
    super();
    this.algorithm = algorithm;
    this.#hash = createHash(algorithm);
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#hash.update(chunk);
    this.#size += chunk.length;
    cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    this.#digest = `${this.algorithm}:${this.#hash.digest('hex')}` as Digest;
    cb();
  }
  get size(): number {
    return this.#size;
  }
  get digest(): Digest {
    if (this.#digest === undefined) throw new Error('DigestingStream: digest read before the stream finished');
    return this.#digest;
  }
}
