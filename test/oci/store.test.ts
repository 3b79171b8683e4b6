import { spawn } from 'node:child_process';
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { sha256 } from '../../src/oci/digest.js';
import { Store, resolveRootDir } from '../../src/oci/store.js';
import { writeImage } from '../../src/oci/image.js';
import { makeBusyboxImage } from '../helpers/base-images.js';
import { repoRoot } from '../helpers/base-images.js';

let tmp: string;
beforeEach(async () => {
  tmp = await fs.mkdtemp(path.join(tmpdir(), 'tsbuild-store-'));
});
afterEach(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

const child = (args: string[]) => spawn(path.join(repoRoot, 'node_modules/.bin/vite-node'), [path.join(repoRoot, 'test/oci/children/put-blob.ts'), ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('Store', () => {
  test('writing what is already there writes nothing: a stored buffer, a tag pointing at the same manifest', async () => {
    const store = await Store.open({ root: tmp });
    const bytes = Buffer.from('{"schemaVersion":2}');
    const { digest } = await store.putBlob(bytes);
    const blobFile = store.blobPath(digest);
    const before = await fs.stat(blobFile);
    expect(await store.putBlob(Buffer.from(bytes))).toEqual({ digest, size: bytes.length });
    expect((await fs.stat(blobFile)).ino).toBe(before.ino); // not replaced by a rename

    const desc = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: bytes.length };
    const first = await store.tag('app:1', desc);
    const tagFiles = async () => (await fs.readdir(path.join(store.dir, 'tags'))).filter((n) => n.endsWith('.json'));
    const [tagName] = await tagFiles();
    const tagIno = (await fs.stat(path.join(store.dir, 'tags', tagName!))).ino;
    const again = await store.tag('app:1', { ...desc });
    expect(again.updated).toBe(first.updated);
    expect((await fs.stat(path.join(store.dir, 'tags', tagName!))).ino).toBe(tagIno);

    const other = await store.putBlob(Buffer.from('{"schemaVersion":2,"x":1}'));
    const moved = await store.tag('app:1', { ...desc, digest: other.digest, size: other.size });
    expect(moved.descriptor.digest).toBe(other.digest);
    expect((await store.resolve('app:1'))?.descriptor.digest).toBe(other.digest);
    expect((await fs.stat(path.join(store.dir, 'tags', tagName!))).ino).not.toBe(tagIno);
  });

  test('putBlob hashes while writing, is idempotent, and verifies expected digest and size', async () => {
    const store = await Store.openDir(tmp);
    const r = await store.putBlob('hello');
    expect(r).toEqual({ digest: sha256('hello'), size: 5 });
    expect(await store.putBlob(Readable.from([Buffer.from('hello')]))).toEqual(r);
    let opened = false;
    await store.putBlob(() => {
      opened = true;
      return Readable.from([Buffer.from('hello')]);
    }, { digest: r.digest });
    expect(opened).toBe(false);
    await expect(store.putBlob('other', { digest: r.digest.replace(/.$/, '0') as never })).rejects.toMatchObject({ code: 'TSBUILD_DIGEST_MISMATCH' });
    await expect(store.putBlob('other', { size: 99 })).rejects.toMatchObject({ code: 'TSBUILD_SIZE_MISMATCH' });
    expect(await fs.readdir(store.tmpDir)).toEqual([]);
    expect((await collect(await store.openBlob(r.digest))).toString()).toBe('hello');
  });

  test('a corrupt blob is detected on read', async () => {
    const store = await Store.openDir(tmp);
    const data = Buffer.alloc(1024 * 1024, 7);
    const { digest } = await store.putBlob(data);
    const p = store.blobPath(digest);
    const buf = await fs.readFile(p);
    buf[500_000] = 8;
    await fs.writeFile(p, buf);
    await expect(collect(await store.openBlob(digest))).rejects.toMatchObject({ code: 'TSBUILD_DIGEST_MISMATCH' });
    await expect(store.readBlob(digest)).rejects.toThrow(/digest mismatch/);
    await expect(store.openBlob(sha256('missing'))).rejects.toMatchObject({ code: 'TSBUILD_BLOB_NOT_FOUND' });
  });

  test('two processes putting the same blob at once end with one valid blob', async () => {
    const store = await Store.openDir(tmp);
    const size = 8 * 1024 * 1024;
    const procs = [child([tmp, 'same', String(size)]), child([tmp, 'same', String(size)])];
    const outs = await Promise.all(
      procs.map(
        (p) =>
          new Promise<string>((resolve, reject) => {
            let out = '';
            let err = '';
            p.stdout!.on('data', (c: Buffer) => (out += c));
            p.stderr!.on('data', (c: Buffer) => (err += c));
            p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`child failed ${code}: ${err}`))));
          }),
      ),
    );
    const results = outs.map((o) => JSON.parse(o.trim().split('\n').pop()!) as { digest: string; size: number });
    expect(results[0]).toEqual(results[1]);
    expect(results[0]!.size).toBe(size);
    const blobs = await fs.readdir(path.join(store.blobsDir, 'sha256'));
    expect(blobs).toEqual([results[0]!.digest.slice(7)]);
    expect(await fs.readdir(store.tmpDir)).toEqual([]);
    expect((await collect(await store.openBlob(results[0]!.digest as never))).length).toBe(size);
  });

  test('a writer killed mid-write leaves no blob, only a temp file that gc removes', async () => {
    const store = await Store.openDir(tmp);
    const p = child([tmp, 'killed', String(4 * 1024 * 1024), '20']);
    await new Promise<void>((resolve, reject) => {
      p.stdout!.on('data', (c: Buffer) => {
        if (String(c).includes('half')) resolve();
      });
      p.on('exit', () => reject(new Error('child exited before half')));
    });
    p.kill('SIGKILL');
    await new Promise((r) => p.on('exit', r));
    expect(await fs.readdir(path.join(store.blobsDir, 'sha256'))).toEqual([]);
    expect((await fs.readdir(store.tmpDir)).length).toBe(1);
    await store.gc({ graceMs: 60_000 });
    expect((await fs.readdir(store.tmpDir)).length).toBe(1);
    await store.gc({ graceMs: 0 });
    expect(await fs.readdir(store.tmpDir)).toEqual([]);
  });

  test('tags: normalized names, atomic per-tag files, list, untag', async () => {
    const store = await Store.openDir(tmp);
    const { descriptor } = await makeBusyboxImage(store);
    expect((await store.resolve('docker.io/library/busybox:latest'))?.descriptor.digest).toBe(descriptor.digest);
    await store.tag('localhost:5000/x:1', descriptor);
    expect((await store.listTags()).map((t) => t.name)).toEqual(['docker.io/library/busybox:latest', 'localhost:5000/x:1']);
    expect(await store.untag('busybox')).toBe(true);
    expect(await store.untag('busybox')).toBe(false);
    expect(await store.resolve('busybox')).toBeUndefined();
    await expect(store.lookup('localhost:5000/x:2')).rejects.toThrow(/did you mean docker.io|not found/);
    expect((await store.lookup(descriptor.digest.slice(7, 19))).name).toBe('localhost:5000/x:1');
  });

  test('gc removes only unreferenced blobs', async () => {
    const store = await Store.openDir(tmp);
    const { image, descriptor } = await makeBusyboxImage(store);
    const junk = await store.putBlob('unreferenced');
    const before = await store.reachable([descriptor]);
    expect(before.size).toBe(3);
    const dry = await store.gc({ graceMs: 0, dryRun: true });
    expect(dry.removed).toEqual([junk.digest]);
    expect(await store.hasBlob(junk.digest)).toBe(true);
    const fresh = await store.gc();
    expect(fresh.removed).toEqual([]);
    const r = await store.gc({ graceMs: 0 });
    expect(r.removed).toEqual([junk.digest]);
    for (const d of before) expect(await store.hasBlob(d)).toBe(true);
    await store.untag('busybox:latest');
    const r2 = await store.gc({ graceMs: 0 });
    expect(new Set(r2.removed)).toEqual(before);
    await writeImage(store, image);
    expect(await store.hasBlob(descriptor.digest)).toBe(true);
  });

  test('root resolution: option, TSBUILD_ROOT, XDG_DATA_HOME, HOME', () => {
    expect(resolveRootDir({ root: '/a', env: { TSBUILD_ROOT: '/b' } })).toBe('/a');
    expect(resolveRootDir({ env: { TSBUILD_ROOT: '/b' } })).toBe('/b');
    expect(resolveRootDir({ env: { XDG_DATA_HOME: '/x', HOME: '/h' } })).toBe('/x/tsbuild');
    expect(resolveRootDir({ env: { HOME: '/h' } })).toBe('/h/.local/share/tsbuild');
  });
});
