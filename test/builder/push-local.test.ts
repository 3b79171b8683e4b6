/** Pushing a locally built image: its layers are kept uncompressed in the store and gzipped on push, as `docker push` does. */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build } from '../../src/builder/build.js';
import { push } from '../../src/oci/registry/push.js';
import { makeBusyboxImage } from '../helpers/base-images.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';

const run = promisify(execFile);
let tmp: string;
let reg: TestRegistry;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'tsbuild-push-local-'));
  reg = await startRegistry({ mode: 'anonymous' });
});
afterAll(async () => {
  await reg?.stop();
  await rm(tmp, { recursive: true, force: true });
});

type Manifest = { config: { digest: string }; layers: { mediaType: string; digest: string }[] };
const remote = async (ref: string): Promise<Manifest> => JSON.parse((await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`])).stdout) as Manifest;

describe('push of a locally built image', () => {
  it('gzips the uncompressed layers (same config), or pushes them as they are with compression: uncompressed', { timeout: 120_000 }, async () => {
    const root = path.join(tmp, 'root');
    await makeBusyboxImage(root);
    const ctx = path.join(tmp, 'ctx');
    await mkdir(ctx, { recursive: true });
    await writeFile(path.join(ctx, 'Dockerfile'), 'FROM busybox:latest\nCOPY f /f\nRUN echo pushed > /g\n');
    await writeFile(path.join(ctx, 'f'), 'payload\n'.repeat(300));
    const r = await build({ context: ctx, root, tags: ['app:1'], env: {} });
    expect(r.layers.slice(1).every((l) => l.mediaType === 'application/vnd.oci.image.layer.v1.tar')).toBe(true);

    await push(`${reg.host}/local/app:gz`, { root, source: 'app:1', env: {} });
    const gz = await remote(`${reg.host}/local/app:gz`);
    expect(gz.config.digest).toBe(r.configDigest);
    expect(gz.layers.map((l) => l.mediaType)).toEqual(Array(3).fill('application/vnd.oci.image.layer.v1.tar+gzip'));

    // skopeo copies it back out and the layer gunzips to the image's diffID.
    const out = path.join(tmp, 'copied');
    await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${reg.host}/local/app:gz`, `oci:${out}:x`]);
    const { stdout } = await run('sh', ['-c', `gzip -dc < ${out}/blobs/sha256/${gz.layers[2]!.digest.slice(7)} | sha256sum`]);
    expect(`sha256:${stdout.split(' ')[0]}`).toBe(r.config.rootfs.diff_ids[2]);

    await push(`${reg.host}/local/app:raw`, { root, source: 'app:1', env: {}, compression: 'uncompressed' });
    const raw = await remote(`${reg.host}/local/app:raw`);
    expect(raw.layers.slice(1).map((l) => l.digest)).toEqual(r.config.rootfs.diff_ids.slice(1));
  });
});
