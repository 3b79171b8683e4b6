import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, test } from 'vitest';
import { GZIP_BLOCK, ParallelGzip } from '../../src/oci/compress.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'tsbuild-gzip-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Compressible but not trivial: text-like lines with random words. */
function sample(size: number): Buffer {
  const words = ['layer', 'tar', 'digest', 'sha256', 'blob', 'config', 'manifest', randomBytes(4).toString('hex')];
  const parts: string[] = [];
  let n = 0;
  while (n < size) {
    const w = `${words[Math.floor(Math.random() * words.length)]} ${Math.random().toString(36).slice(2, 8)}\n`;
    parts.push(w);
    n += w.length;
  }
  return Buffer.from(parts.join('')).subarray(0, size);
}

/** Compresses `input` fed in chunks of `chunk` bytes; returns the gzip bytes. */
async function gzip(input: Buffer, options: { chunk?: number; concurrency?: number; level?: number } = {}): Promise<Buffer> {
  const chunk = options.chunk ?? 64 * 1024;
  const out: Buffer[] = [];
  const parts: Buffer[] = [];
  for (let i = 0; i < input.length; i += chunk) parts.push(input.subarray(i, i + chunk));
  await pipeline(
    Readable.from(parts),
    new ParallelGzip({ ...(options.concurrency ? { concurrency: options.concurrency } : {}), ...(options.level ? { level: options.level } : {}) }),
    new Writable({
      write(c: Buffer, _e, cb) {
        out.push(c);
        cb();
      },
    }),
  );
  return Buffer.concat(out);
}

describe('ParallelGzip', () => {
  test.each([
    ['empty', 0],
    ['one byte', 1],
    ['under one block', 1000],
    ['exactly one block', GZIP_BLOCK],
    ['one block and a byte', GZIP_BLOCK + 1],
    ['several blocks', 3 * GZIP_BLOCK + 12345],
  ])('%s: gunzip (node and gzip -t) gives the input back', async (_name, size) => {
    const input = sample(size);
    const gz = await gzip(input);
    expect(gz.subarray(0, 3)).toEqual(Buffer.from([0x1f, 0x8b, 8]));
    expect(gunzipSync(gz).equals(input)).toBe(true);
    const file = path.join(tmp, `s${size}.gz`);
    writeFileSync(file, gz);
    execFileSync('gzip', ['-t', file]); // throws on a bad CRC, length or stream
    expect(execFileSync('gzip', ['-dc', file], { maxBuffer: 64 << 20 }).equals(input)).toBe(true);
  });

  test('output depends only on the input and level: not on chunking or concurrency', async () => {
    const input = Buffer.concat([sample(2 * GZIP_BLOCK), randomBytes(GZIP_BLOCK / 2), sample(GZIP_BLOCK)]);
    const a = await gzip(input, { chunk: 7919, concurrency: 1 });
    const b = await gzip(input, { chunk: 3 * GZIP_BLOCK, concurrency: 8 });
    const c = await gzip(input, { chunk: GZIP_BLOCK, concurrency: 3 });
    expect(b.equals(a)).toBe(true);
    expect(c.equals(a)).toBe(true);
    const fast = await gzip(input, { level: 1 });
    expect(fast.equals(a)).toBe(false);
    expect(gunzipSync(fast).equals(input)).toBe(true);
  });

  test('compresses about as well as a single gzip stream (dictionary carried across blocks)', async () => {
    const input = sample(4 * GZIP_BLOCK);
    const ours = await gzip(input);
    const single = execFileSync('gzip', ['-6', '-c'], { input, maxBuffer: 64 << 20 });
    expect(ours.length).toBeLessThan(single.length * 1.02);
  });
});
