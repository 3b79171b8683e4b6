import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build } from '../../src/builder/build.js';
import { compressStoredImage } from '../../src/oci/recompress.js';
import { Store } from '../../src/oci/store.js';
import { makeBusyboxImage } from '../helpers/base-images.js';

const run = promisify(execFile);
let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'tsbuild-recompress-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('compressStoredImage', () => {
  it('compresses the uncompressed layers of a locally built image, keeps the others and the config', { timeout: 120_000 }, async () => {
    const root = path.join(tmp, 'root');
    await makeBusyboxImage(root);
    const ctx = path.join(tmp, 'ctx');
    await mkdir(ctx, { recursive: true });
    await writeFile(path.join(ctx, 'Dockerfile'), 'FROM busybox:latest\nCOPY f /f\nRUN echo hi > /g\n');
    await writeFile(path.join(ctx, 'f'), 'data\n'.repeat(500));
    const r = await build({ context: ctx, root, tags: ['local:1'], env: {} });
    const store = await Store.open({ root });
    const entry = (await store.resolve('local:1'))!;
    const before = JSON.parse((await store.readBlob(entry.descriptor.digest)).toString()) as { config: { digest: string }; layers: { mediaType: string; digest: string }[] };
    expect(before.layers.map((l) => l.mediaType.endsWith('+gzip'))).toEqual([true, false, false]);

    const desc = await compressStoredImage(store, entry.descriptor);
    expect(desc.digest).not.toBe(entry.descriptor.digest);
    const after = JSON.parse((await store.readBlob(desc.digest)).toString()) as typeof before;
    expect(after.config.digest).toBe(before.config.digest);
    expect(after.layers[0]).toEqual(before.layers[0]);
    expect(after.layers.map((l) => l.mediaType)).toEqual(Array(3).fill('application/vnd.oci.image.layer.v1.tar+gzip'));
    for (let i = 1; i < 3; i++) {
      const { stdout } = await run('sh', ['-c', `gzip -dc < ${store.blobPath(after.layers[i]!.digest as never)} | sha256sum`]);
      expect(`sha256:${stdout.split(' ')[0]}`).toBe(r.config.rootfs.diff_ids[i]);
    }
    // Nothing left to compress: the same descriptor back.
    expect((await compressStoredImage(store, desc)).digest).toBe(desc.digest);
  });
});
