/** Layer tars checked with independent tools: GNU tar lists them, gzip/sha256sum verify digests. */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, chown, link, mkdir, mkdtemp, readdir, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { applyCopy } from '../../src/builder/copy.js';
import { comparePaths, compressBlob, writeLayer } from '../../src/builder/layer.js';
import { digestHex } from '../../src/oci/digest.js';

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
});
