/**
 * Lazy compression of a stored layer blob that is gone (a concurrent prune) or unreadable: a
 * clear error and no temp file, never an 'error' event without a listener (which ends the
 * process; vitest reports it as an "Unhandled Error" and fails the run).
 */
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compressBlob, writeLayer } from '../../src/builder/layer.js';
import { digestHex } from '../../src/oci/digest.js';

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'tsbuild-stream-errors-layer-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('compressBlob', () => {
  it('reports a blob removed before it is compressed, leaving no temp file', async () => {
    const root = path.join(tmp, 'root');
    await mkdir(root, { recursive: true });
    await writeFile(path.join(root, 'f'), 'data\n'.repeat(1000));
    const blobs = path.join(tmp, 'blobs');
    const layer = await writeLayer({ root, blobDir: blobs, compression: 'none' });
    await rm(path.join(blobs, 'sha256', digestHex(layer.diffId)));
    await expect(compressBlob(blobs, layer.diffId)).rejects.toMatchObject({
      code: 'TSBUILD_BLOB_NOT_FOUND',
      message: `blob ${layer.diffId} not found in ${blobs}`,
    });
    expect(await readdir(path.join(blobs, 'tmp'))).toEqual([]);
    expect(await readdir(path.join(blobs, 'sha256'))).toEqual([]);
  });

  it('opens nothing when the temp file cannot be made', async () => {
    const root = path.join(tmp, 'root2');
    await mkdir(root, { recursive: true });
    await writeFile(path.join(root, 'f'), 'x');
    const blobs = path.join(tmp, 'blobs2');
    const layer = await writeLayer({ root, blobDir: blobs, compression: 'none' });
    // A file where storeAtomically makes its temp directory: it fails before the blob is read.
    await rm(path.join(blobs, 'tmp'), { recursive: true });
    await writeFile(path.join(blobs, 'tmp'), '');
    const openFds = async () => (await readdir('/proc/self/fd')).length;
    const before = await openFds();
    await expect(compressBlob(blobs, layer.diffId)).rejects.toMatchObject({ code: 'EEXIST' });
    await new Promise((r) => setTimeout(r, 50));
    expect(await openFds()).toBe(before);
  });
});
