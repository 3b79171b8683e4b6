/** Layer tars checked with independent tools: GNU tar lists them, gzip/sha256sum verify digests. */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, chown, link, mkdir, mkdtemp, readdir, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { lstatSync, readFileSync, readlinkSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { afterAll, describe, expect, it } from 'vitest';
import { applyCopy } from '../../src/builder/copy.js';
import { comparePaths, compressBlob, writeLayer } from '../../src/builder/layer.js';
import { digestHex } from '../../src/oci/digest.js';
import { tarMode } from '../../src/util/tar.js';

const tmpRoot = await mkdtemp(path.join(os.tmpdir(), 'tsbuild-layer-test-'));
afterAll(() => rm(tmpRoot, { recursive: true, force: true }));

const T = new Date('2020-01-02T03:04:05Z');

async function tree(): Promise<string> {
  const root = await mkdtemp(path.join(tmpRoot, 'root-'));
  await mkdir(path.join(root, 'usr/bin'), { recursive: true });
  await mkdir(path.join(root, 'a-c'));
  await writeFile(path.join(root, 'usr/bin/tool'), '#!/bin/sh\necho hi\n');
  await chown(path.join(root, 'usr/bin/tool'), 1000, 1001);
  await chmod(path.join(root, 'usr/bin/tool'), 0o4755);
  await link(path.join(root, 'usr/bin/tool'), path.join(root, 'usr/bin/tool2'));
  await symlink('tool', path.join(root, 'usr/bin/link'));
  await writeFile(path.join(root, 'a-c/x'), 'x');
  const long = 'd'.repeat(120);
  await mkdir(path.join(root, long));
  await writeFile(path.join(root, long, 'f'.repeat(120)), 'long');
  for (const p of ['usr/bin/tool', 'a-c/x', `${long}/${'f'.repeat(120)}`, 'a-c', long, 'usr/bin', 'usr']) await utimes(path.join(root, p), T, T);
  return root;
}

/** The order layers had when their paths were compared as split components (UTF-8 bytes). */
function splitOrder(a: string, b: string): number {
  const pa = a.split('/');
  const pb = b.split('/');
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    if (pa[i] !== pb[i]) return Buffer.compare(Buffer.from(pa[i]!), Buffer.from(pb[i]!));
  }
  return pa.length - pb.length;
}

/**
 * The tar tar-stream's pack() makes of `rels` (sorted) under `root`, as layers were written
 * before the chunked writer: headers from lstat, contents read whole, hard links as links.
 */
async function tarStreamLayer(root: string, rels: readonly string[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  const ended = new Promise<void>((resolve) => pack.on('end', () => resolve()));
  const seen = new Map<string, string>();
  for (const rel of rels) {
    const abs = path.join(root, rel);
    const st = lstatSync(abs);
    const h = { name: rel, uid: st.uid, gid: st.gid, uname: '', gname: '', mode: tarMode(st.mode), mtime: new Date(Math.floor(st.mtime.getTime() / 1000) * 1000) };
    const first = seen.get(`${st.dev}:${st.ino}`);
    if (st.nlink > 1 && !first) seen.set(`${st.dev}:${st.ino}`, rel);
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null): void => (err ? reject(err) : resolve());
      if (st.isDirectory()) pack.entry({ ...h, name: rel + '/', type: 'directory' }, done);
      else if (st.isSymbolicLink()) pack.entry({ ...h, type: 'symlink', linkname: readlinkSync(abs) }, done);
      else if (first) pack.entry({ ...h, type: 'link', linkname: first, size: 0 }, done);
      else pack.entry({ ...h, type: 'file' }, readFileSync(abs), done);
    });
  }
  pack.finalize();
  await ended;
  return Buffer.concat(chunks);
}

function sha256File(p: string): string {
  return createHash('sha256').update(execFileSync('cat', [p])).digest('hex');
}

describe('writeLayer', () => {
  it('writes a sorted, deterministic gzip layer whose digest and diffID match independent tools', async () => {
    const root = await tree();
    const blobs = path.join(tmpRoot, 'blobs1');
    const r = await writeLayer({ root, blobDir: blobs });
    const blob = path.join(blobs, 'sha256', digestHex(r.digest));
    expect(`sha256:${sha256File(blob)}`).toBe(r.digest);
    const tarBytes = gunzipSync(await readFile(blob));
    expect(`sha256:${createHash('sha256').update(tarBytes).digest('hex')}`).toBe(r.diffId);
    expect(tarBytes.length).toBe(r.uncompressedSize);
    expect((await readFile(blob)).length).toBe(r.size);
    const tarFile = path.join(tmpRoot, 'l1.tar');
    await writeFile(tarFile, tarBytes);
    const listing = execFileSync('tar', ['--numeric-owner', '-tvf', tarFile], { encoding: 'utf8' }).trim().split('\n');
    const names = execFileSync('tar', ['-tf', tarFile], { encoding: 'utf8' }).trim().split('\n');
    const long = 'd'.repeat(120);
    // depth-first: a directory's children right after it ('a-c' sorts before 'd…' and 'usr').
    expect(names).toEqual(['a-c/', 'a-c/x', `${long}/`, `${long}/${'f'.repeat(120)}`, 'usr/', 'usr/bin/', 'usr/bin/link', 'usr/bin/tool', 'usr/bin/tool2']);
    const tool = listing.find((l) => l.endsWith('usr/bin/tool'))!;
    expect(tool).toMatch(/^-rwsr-xr-x 1000\/1001 /);
    expect(listing.find((l) => l.includes('usr/bin/tool2'))).toMatch(/^hrwsr-xr-x .*usr\/bin\/tool2 link to usr\/bin\/tool$/);
    expect(listing.find((l) => l.includes('usr/bin/link'))).toMatch(/^lrwxrwxrwx .*usr\/bin\/link -> tool$/);
    expect(tool).toContain('2020-01-02 03:04');
    // no user or group names in the headers
    expect(execFileSync('tar', ['-tvf', tarFile], { encoding: 'utf8' })).not.toMatch(/root|nobody/);
    // Same tree, second write: same digests.
    const r2 = await writeLayer({ root, blobDir: path.join(tmpRoot, 'blobs2') });
    expect(r2.digest).toBe(r.digest);
    expect(r2.diffId).toBe(r.diffId);
    expect(await readdir(path.join(blobs, 'tmp'))).toEqual([]);
  });

  it('includes the parents of listed paths, and only those, like a COPY layer', async () => {
    const root = await tree();
    const r = await writeLayer({ root, paths: ['usr/bin/tool'], blobDir: path.join(tmpRoot, 'blobs3'), compression: 'none' });
    expect(r.digest).toBe(r.diffId);
    const tarFile = path.join(tmpRoot, 'blobs3', 'sha256', digestHex(r.digest));
    expect(execFileSync('tar', ['-tf', tarFile], { encoding: 'utf8' }).trim().split('\n')).toEqual(['usr/', 'usr/bin/', 'usr/bin/tool']);
    expect(r.entries).toBe(3);
  });

  it('clamps mtimes to SOURCE_DATE_EPOCH and writes whiteouts and opaque markers', async () => {
    const root = await tree();
    const epoch = Date.parse('2010-01-01T00:00:00Z') / 1000;
    const r = await writeLayer({
      root,
      paths: ['a-c/x'],
      whiteouts: ['usr/bin/gone'],
      opaqueDirs: ['a-c'],
      sourceDateEpoch: epoch,
      blobDir: path.join(tmpRoot, 'blobs4'),
    });
    const tarFile = path.join(tmpRoot, 'l4.tar');
    await writeFile(tarFile, gunzipSync(await readFile(path.join(tmpRoot, 'blobs4', 'sha256', digestHex(r.digest)))));
    const listing = execFileSync('tar', ['--full-time', '-tvf', tarFile], { encoding: 'utf8' }).trim().split('\n');
    expect(listing.map((l) => l.split(/\s+/).pop())).toEqual(['a-c/', 'a-c/.wh..wh..opq', 'a-c/x', 'usr/', 'usr/bin/', 'usr/bin/.wh.gone']);
    for (const l of listing) expect(l).toContain('2010-01-01 00:00:00');
  });

  it('compresses lazily to the same blob as an eager write', async () => {
    const root = await tree();
    const blobs = path.join(tmpRoot, 'blobs5');
    const eager = await writeLayer({ root, blobDir: blobs });
    const lazy = await writeLayer({ root, blobDir: blobs, compression: 'none' });
    expect(lazy.diffId).toBe(eager.diffId);
    const c = await compressBlob(blobs, lazy.diffId);
    expect(c.digest).toBe(eager.digest);
    expect(c.size).toBe(eager.size);
  });

  it('layers a COPY result: the destination parents plus the written files', async () => {
    const ctx = await mkdtemp(path.join(tmpRoot, 'ctx-'));
    const root = await mkdtemp(path.join(tmpRoot, 'rootfs-'));
    await mkdir(path.join(ctx, 'src/sub'), { recursive: true });
    await writeFile(path.join(ctx, 'src/sub/a'), 'a');
    const { changed } = await applyCopy({ kind: 'COPY', sources: [{ kind: 'path', path: 'src' }], dest: '/app/' }, { source: { root: ctx }, destRoot: root, createdTime: T });
    const r = await writeLayer({ root, paths: changed, blobDir: path.join(tmpRoot, 'blobs6'), compression: 'none' });
    const tarFile = path.join(tmpRoot, 'blobs6', 'sha256', digestHex(r.digest));
    expect(execFileSync('tar', ['-tf', tarFile], { encoding: 'utf8' }).trim().split('\n')).toEqual(['app/', 'app/sub/', 'app/sub/a']);
  });

  it('leaves no temp file behind when the source cannot be read', async () => {
    const blobs = path.join(tmpRoot, 'blobs7');
    await expect(writeLayer({ root: path.join(tmpRoot, 'nope'), blobDir: blobs })).rejects.toThrow();
    const tmp = await readdir(path.join(blobs, 'tmp')).catch(() => []);
    expect(tmp).toEqual([]);
    const stored = await readdir(path.join(blobs, 'sha256')).catch(() => []);
    expect(stored).toEqual([]);
  });

  it('rejects (and does not crash on an unhandled stream error) when a listed path is missing', async () => {
    const root = await tree();
    const blobs = path.join(tmpRoot, 'blobs8');
    await expect(writeLayer({ root, paths: ['usr/bin/tool', 'no/such/file'], blobDir: blobs, compression: 'none' })).rejects.toThrow(/ENOENT/);
    expect(await readdir(path.join(blobs, 'tmp')).catch(() => [])).toEqual([]);
  });

  it('orders paths component-wise', () => {
    expect(['a-c', 'a/b', 'a', 'a.b'].sort(comparePaths)).toEqual(['a', 'a/b', 'a-c', 'a.b']);
  });

  it('orders paths as their split components compare, for any characters', () => {
    const alphabet = ['a', 'b', '-', '.', '/', ' ', '~', 'é', '\uffff', '\ue000', '😀', '\u{10ffff}', '0'];
    let seed = 7;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const paths = Array.from({ length: 3000 }, () => Array.from({ length: 1 + rnd(8) }, () => alphabet[rnd(alphabet.length)]!).join(''));
    for (let i = 1; i < paths.length; i++) {
      const [a, b] = [paths[i - 1]!, paths[i]!];
      expect(Math.sign(comparePaths(a, b)), `${JSON.stringify(a)} vs ${JSON.stringify(b)}`).toBe(Math.sign(splitOrder(a, b)));
    }
    expect([...paths].sort(comparePaths)).toEqual([...paths].sort(splitOrder));
  });

  it('writes the bytes tar-stream wrote, also where entries, PAX headers and contents cross its 1 MiB chunks', async () => {
    const root = await mkdtemp(path.join(tmpRoot, 'chunks-'));
    const MiB = 1 << 20;
    const fill = (n: number, k: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + k) & 0xff));
    // 'a/' (512) + 'a/b' (512 + 1 MiB - 2048) ends 1024 bytes before the first chunk's end: the PAX
    // entry after it (1536 bytes of headers) starts the next chunk; its content ends that chunk exactly.
    await mkdir(path.join(root, 'a'));
    await writeFile(path.join(root, 'a/b'), fill(MiB - 2048, 1));
    await writeFile(path.join(root, `a/c${'p'.repeat(150)}`), fill(MiB - 1536, 2));
    await writeFile(path.join(root, 'a/d'), fill(2.5 * MiB + 77, 3)); // spans chunks
    await mkdir(path.join(root, 'm'));
    for (let i = 0; i < 1500; i++) await writeFile(path.join(root, 'm', `f${i}`), fill((i * 397) % 1700, i));
    await link(path.join(root, 'm/f7'), path.join(root, 'm/hard'));
    await symlink('f7', path.join(root, 'm/sym'));
    await mkdir(path.join(root, 'z'));
    await writeFile(path.join(root, 'z/empty'), '');
    const rels = execFileSync('find', ['.', '-mindepth', '1'], { cwd: root, encoding: 'utf8' }).trim().split('\n').map((p) => p.slice(2)).sort(splitOrder);
    const expected = await tarStreamLayer(root, rels);
    expect(expected.length).toBeGreaterThan(5 * MiB);

    const whole = await writeLayer({ root, blobDir: path.join(tmpRoot, 'blobs-chunks'), compression: 'none' });
    const listed = await writeLayer({ root, paths: rels.filter((r) => !r.endsWith('/a') && r !== 'm'), blobDir: path.join(tmpRoot, 'blobs-chunks'), compression: 'none' });
    const want = `sha256:${createHash('sha256').update(expected).digest('hex')}`;
    expect(whole.diffId).toBe(want);
    expect(listed.diffId).toBe(want); // the missing parents are added in place
    expect(whole.entries).toBe(rels.length);
    expect(whole.uncompressedSize).toBe(expected.length);
    expect((await readFile(path.join(tmpRoot, 'blobs-chunks', 'sha256', digestHex(whole.diffId)))).equals(expected)).toBe(true);
    // Eager gzip of the same tar: the same diffID, and a blob gunzip turns back into it.
    const gz = await writeLayer({ root, blobDir: path.join(tmpRoot, 'blobs-chunks-gz') });
    expect(gz.diffId).toBe(want);
    expect(gunzipSync(await readFile(path.join(tmpRoot, 'blobs-chunks-gz', 'sha256', digestHex(gz.digest)))).equals(expected)).toBe(true);
  });

  it('stops when aborted, leaving no temp file', async () => {
    const root = await tree();
    const blobs = path.join(tmpRoot, 'blobs-abort');
    const ac = new AbortController();
    ac.abort(new Error('stop'));
    await expect(writeLayer({ root, blobDir: blobs, compression: 'none', signal: ac.signal })).rejects.toMatchObject({ code: 'TSBUILD_ABORTED' });
    expect(await readdir(path.join(blobs, 'tmp'))).toEqual([]);
    expect(await readdir(path.join(blobs, 'sha256'))).toEqual([]);
  });
});
