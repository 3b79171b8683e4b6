/**
 * compressStoredImage when a layer blob is gone or corrupt: the blob's error, no temp file left,
 * and no unhandled rejection (which ends the process; vitest reports it as an "Unhandled
 * Error" and fails the run).
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Digest } from '../../src/oci/digest.js';
import { compressStoredImage } from '../../src/oci/recompress.js';
import { Store } from '../../src/oci/store.js';
import { MediaType, type Descriptor } from '../../src/oci/types.js';

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'tsbuild-stream-errors-recompress-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

let n = 0;
/** A store holding one image whose only layer is an uncompressed tar. */
async function imageWithTarLayer(): Promise<{ store: Store; manifest: Descriptor; layer: Digest }> {
  const store = await Store.open({ root: path.join(tmp, `store-${++n}`) });
  const dir = path.join(tmp, `files-${n}`);
  await mkdir(dir);
  await writeFile(path.join(dir, 'f'), 'data\n'.repeat(20_000));
  const layer = await store.putBlob(execFileSync('tar', ['-cf', '-', '-C', dir, 'f']));
  const config = await store.putBlob(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layer.digest] } }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: { mediaType: MediaType.OciConfig, ...config },
      layers: [{ mediaType: MediaType.OciLayer, ...layer }],
    }),
  );
  const m = await store.putBlob(manifest);
  return { store, manifest: { mediaType: MediaType.OciManifest, ...m }, layer: layer.digest };
}

describe('compressStoredImage with a bad layer blob', () => {
  it('reports a layer blob removed from the store, leaving no temp file', async () => {
    const { store, manifest, layer } = await imageWithTarLayer();
    await rm(store.blobPath(layer));
    await expect(compressStoredImage(store, manifest)).rejects.toMatchObject({ code: 'TSBUILD_BLOB_NOT_FOUND' });
    expect(await readdir(store.tmpDir)).toEqual([]);
  });

  it('reports a corrupt layer blob as a digest mismatch, leaving no temp file', async () => {
    const { store, manifest, layer } = await imageWithTarLayer();
    await writeFile(store.blobPath(layer), 'not the layer\n'.repeat(10_000));
    await expect(compressStoredImage(store, manifest)).rejects.toMatchObject({ name: 'DigestMismatchError' });
    expect(await readdir(store.tmpDir)).toEqual([]);
  });

  it('reports a store that cannot take the compressed blob by its own error', async () => {
    const { store, manifest } = await imageWithTarLayer();
    // A file where the temp directory should be: putBlob fails before compression ends.
    await rm(store.tmpDir, { recursive: true });
    await writeFile(store.tmpDir, '');
    await expect(compressStoredImage(store, manifest)).rejects.toMatchObject({ code: 'ENOTDIR' });
  });
});
