/**
 * The tar header writer against tar-stream (an independent implementation, whose bytes the
 * layers had before): the same entries give the same archive, byte for byte; GNU tar reads it.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import tar from 'tar-stream';
import { afterAll, describe, expect, it } from 'vitest';
import { TAR_END_BYTES, tarPadding, writeTarHeader, type TarHeaderFields } from '../../src/oci/tar-writer.js';
import { tarMode } from '../../src/util/tar.js';

const tmpRoot = await mkdtemp(path.join(os.tmpdir(), 'tsbuild-tar-writer-test-'));
afterAll(() => rm(tmpRoot, { recursive: true, force: true }));

type Entry = TarHeaderFields & { readonly body?: Buffer };

/** The archive tar-stream's pack() writes for `entries` (modes through tarMode, as layers did). */
async function viaTarStream(entries: readonly Entry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  const ended = new Promise<void>((resolve, reject) => {
    pack.on('end', resolve);
    pack.on('error', reject);
  });
  for (const e of entries) {
    const { body, mtimeMs, ...h } = e;
    const header = { ...h, mode: tarMode(h.mode), mtime: new Date(mtimeMs) };
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null): void => (err ? reject(err) : resolve());
      if (e.type === 'file') pack.entry(header, body ?? Buffer.alloc(0), done);
      else pack.entry(header, done);
    });
  }
  pack.finalize();
  await ended;
  return Buffer.concat(chunks);
}

/** The same archive with writeTarHeader, into one buffer. */
function viaWriter(entries: readonly Entry[]): Buffer {
  const buf = Buffer.alloc(1 << 20, 0xaa); // not zeroed: the writer must clear what it uses
  let at = 0;
  for (const e of entries) {
    at = writeTarHeader(buf, at, buf.length, e);
    expect(at).toBeGreaterThan(0);
    if (e.type === 'file' && e.body) {
      at += e.body.copy(buf, at);
      buf.fill(0, at, at + tarPadding(e.body.length));
      at += tarPadding(e.body.length);
    }
  }
  buf.fill(0, at, at + TAR_END_BYTES);
  return buf.subarray(0, at + TAR_END_BYTES);
}

const T = Date.UTC(2020, 0, 2, 3, 4, 5);
const base = { mode: 0o644, uid: 0, gid: 0, size: 0, mtimeMs: T, uname: '', gname: '' } as const;
const body = (n: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + 3) & 0xff));
const file = (name: string, n: number, extra: Partial<Entry> = {}): Entry => ({ ...base, name, type: 'file', size: n, body: body(n), ...extra });

const cases: Record<string, Entry[]> = {
  'plain entries': [
    { ...base, name: 'usr/', type: 'directory', mode: 0o755 },
    file('usr/a', 0),
    file('usr/b', 1),
    file('usr/c', 511),
    file('usr/d', 512),
    file('usr/e', 513, { mode: 0o4755, uid: 1000, gid: 1001 }),
    { ...base, name: 'usr/link', type: 'symlink', linkname: 'e', mode: 0o777 },
    { ...base, name: 'usr/hard', type: 'link', linkname: 'usr/e' },
    { ...base, name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
    { ...base, name: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 0 },
    { ...base, name: 'run/fifo', type: 'fifo' },
  ],
  'modes, ids and times at the edges': [
    file('mode0', 3, { mode: 0 }),
    file('mode7777', 3, { mode: 0o7777 }),
    file('high-bits', 3, { mode: 0o100644 }),
    file('uid-max', 3, { uid: 0o777777, gid: 0o777777 }),
    file('uid-over', 3, { uid: 0o1000000, gid: 65534 }),
    file('before-1970', 3, { mtimeMs: -86_400_000 }),
    file('after-2038', 3, { mtimeMs: Date.UTC(2100, 0, 1) }),
    file('named-owner', 3, { uname: 'root', gname: 'wheel' }),
  ],
  'long and non-ASCII names': [
    { ...base, name: `${'d'.repeat(120)}/`, type: 'directory', mode: 0o755 },
    file(`${'d'.repeat(120)}/${'f'.repeat(90)}`, 4), // prefix + name
    file(`${'p'.repeat(60)}/${'q'.repeat(60)}/${'r'.repeat(60)}/x`, 4), // prefix of two components
    file('n'.repeat(101), 4), // no slash: PAX
    file(`${'a'.repeat(200)}/b`, 4), // prefix over 155: PAX
    file(`${'s/'.repeat(150)}end`, 4), // over 255: PAX
    file('café/naïve.txt', 5), // not ASCII: PAX
    file(`${'é'.repeat(300)}`, 2), // long PAX record (length digits roll over)
    { ...base, name: 'ln-utf8', type: 'symlink', linkname: 'zürich' }, // ustar, UTF-8 link name
    { ...base, name: 'ln-long', type: 'symlink', linkname: 'l'.repeat(101) }, // PAX linkpath
    { ...base, name: `${'x'.repeat(130)}`, type: 'symlink', linkname: 'short' }, // PAX path + linkpath
    { ...base, name: 'hard-long', type: 'link', linkname: `${'y'.repeat(50)}/${'z'.repeat(60)}` },
    { ...base, name: `${'w'.repeat(99)}/`, type: 'directory', mode: 0o755 }, // exactly 100 with the slash
  ],
};

describe('writeTarHeader', () => {
  for (const [name, entries] of Object.entries(cases)) {
    it(`writes what tar-stream writes: ${name}`, async () => {
      const mine = viaWriter(entries);
      expect(mine.equals(await viaTarStream(entries))).toBe(true);
    });
  }

  it('writes what tar-stream writes for random names, link names, modes, ids and sizes', async () => {
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const parts = ['a', 'bb', 'c-d', 'e.f', 'ü', '😀', 'x'.repeat(40), 'y'.repeat(99), 'z'.repeat(101), ' ', '=', '\\'];
    const types: TarHeaderFields['type'][] = ['file', 'directory', 'symlink', 'link', 'fifo', 'character-device'];
    const entries: Entry[] = [];
    for (let i = 0; i < 400; i++) {
      const comps = Array.from({ length: 1 + rnd(6) }, () => parts[rnd(parts.length)]!);
      const type = types[rnd(types.length)]!;
      const name = comps.join('/') + (type === 'directory' ? '/' : '');
      const e: Entry = {
        ...base,
        name,
        type,
        mode: rnd(0o10000),
        uid: rnd(4) === 0 ? rnd(1 << 20) : rnd(2000),
        gid: rnd(2000),
        mtimeMs: (rnd(1 << 30) + (rnd(2) ? 1 << 30 : 0)) * 1000,
        ...(type === 'symlink' || type === 'link' ? { linkname: Array.from({ length: 1 + rnd(5) }, () => parts[rnd(parts.length)]!).join('/') } : {}),
        ...(type === 'character-device' ? { devmajor: rnd(300), devminor: rnd(1 << 20) } : {}),
      };
      entries.push(type === 'file' ? { ...e, size: rnd(1500), body: body(rnd(2) ? rnd(1500) : 0) } : e);
    }
    const fixed = entries.map((e) => (e.type === 'file' ? { ...e, size: e.body!.length } : e));
    expect(viaWriter(fixed).equals(await viaTarStream(fixed))).toBe(true);
  });

  it('writes a base-256 size over 8 GiB as tar-stream does', async () => {
    const h: TarHeaderFields = { ...base, name: 'huge', type: 'file', size: 2 ** 33 + 5 };
    const mine = Buffer.alloc(512);
    expect(writeTarHeader(mine, 0, 512, h)).toBe(512);
    // tar-stream pushes the header when the entry opens, before any content.
    const pack = tar.pack();
    pack.on('error', () => {}); // destroyed below, once the header is out
    const first = new Promise<Buffer>((resolve) => pack.once('data', (c: unknown) => resolve(c as Buffer)));
    const sink = pack.entry({ ...h, mtime: new Date(h.mtimeMs) }, () => {});
    sink.on('error', () => {});
    const theirs = await first;
    pack.destroy();
    expect(mine.equals(theirs.subarray(0, 512))).toBe(true);
    expect(mine[124]).toBe(0x80);
  });

  it('reports a header that does not fit before the end, writing nothing past it', () => {
    const buf = Buffer.alloc(2048, 1);
    expect(writeTarHeader(buf, 1536 + 1, 2048, { ...base, name: 'a', type: 'file' })).toBe(-1);
    expect(writeTarHeader(buf, 0, 1024, { ...base, name: 'é'.repeat(400), type: 'file' })).toBe(-1);
    expect(buf.every((b) => b === 1)).toBe(true);
  });

  it('makes archives GNU tar lists with the names, links, owners and sizes given', async () => {
    const entries = [...cases['plain entries']!, ...cases['long and non-ASCII names']!];
    const file = path.join(tmpRoot, 'all.tar');
    await writeFile(file, viaWriter(entries));
    const names = execFileSync('tar', ['-tf', file], { encoding: 'utf8' }).trimEnd().split('\n');
    expect(names).toEqual(entries.map((e) => e.name));
    const verbose = execFileSync('tar', ['--numeric-owner', '-tvf', file], { encoding: 'utf8' }).trimEnd().split('\n');
    expect(verbose[5]).toMatch(/^-rwsr-xr-x 1000\/1001\s+513 2020-01-02 03:04 usr\/e$/);
    expect(verbose[6]).toMatch(/usr\/link -> e$/);
    expect(verbose[7]).toMatch(/usr\/hard link to usr\/e$/);
    expect(verbose.some((l) => l.endsWith(`${'x'.repeat(130)} -> short`))).toBe(true);
    expect(verbose.some((l) => l.endsWith(`ln-long -> ${'l'.repeat(101)}`))).toBe(true);
  });
});
