import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256, type Digest } from '../../../src/oci/digest.js';
import { MediaType } from '../../../src/oci/types.js';
import { bufferSource, RegistryClient } from '../../../src/oci/registry/client.js';
import { RegistryError } from '../../../src/oci/registry/errors.js';
import { startRegistry, type TestRegistry } from '../../helpers/registry.js';

async function collect(s: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c);
  return Buffer.concat(parts);
}

/** A tiny image from raw bytes: a config and one "layer". */
function rawImage(layer: Buffer) {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(layer)] } }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: { mediaType: MediaType.OciConfig, digest: sha256(config), size: config.length },
      layers: [{ mediaType: MediaType.OciLayer, digest: sha256(layer), size: layer.length }],
    }),
  );
  return { config, manifest, layer };
}

describe('RegistryClient against an anonymous registry', () => {
  let reg: TestRegistry;
  let client: RegistryClient;
  beforeAll(async () => {
    reg = await startRegistry({ mode: 'anonymous' });
    client = new RegistryClient(reg.host, { auth: 'anonymous' });
  });
  afterAll(async () => reg?.stop());

  it('pings, uploads monolithically, reads blobs and manifests back by tag and digest', async () => {
    await client.ping();
    const img = rawImage(randomBytes(300_000));
    expect(await client.uploadBlob('demo/app', sha256(img.layer), bufferSource(img.layer))).toBe('uploaded');
    expect(await client.uploadBlob('demo/app', sha256(img.config), bufferSource(img.config))).toBe('uploaded');
    expect(await client.uploadBlob('demo/app', sha256(img.layer), bufferSource(img.layer))).toBe('exists');
    expect(await client.blobSize('demo/app', sha256(img.layer))).toBe(img.layer.length);
    const digest = await client.putManifest('demo/app', 'v1', img.manifest, MediaType.OciManifest);
    expect(digest).toBe(sha256(img.manifest));
    const byTag = await client.getManifest('demo/app', 'v1');
    expect(byTag.digest).toBe(digest);
    expect(byTag.bytes.equals(img.manifest)).toBe(true);
    expect(byTag.mediaType).toBe(MediaType.OciManifest);
    const byDigest = await client.getManifest('demo/app', digest);
    expect(byDigest.bytes.equals(img.manifest)).toBe(true);
    expect((await client.headManifest('demo/app', 'v1'))?.digest).toBe(digest);
    expect(await client.headManifest('demo/app', 'nope')).toBeUndefined();
    const got = await collect(client.openBlob('demo/app', sha256(img.layer), { size: img.layer.length }));
    expect(got.equals(img.layer)).toBe(true);
    expect(await client.listTags('demo/app')).toEqual(['v1']);
  });

  it('uploads in PATCH chunks with Content-Range', async () => {
    const layer = randomBytes(1_000_003);
    const d = sha256(layer);
    const seen: number[] = [];
    expect(await client.uploadBlob('demo/chunked', d, bufferSource(layer), { chunkSize: 256 * 1024, onProgress: (n) => seen.push(n) })).toBe('uploaded');
    expect(seen.at(-1)).toBe(layer.length);
    const got = await collect(client.openBlob('demo/chunked', d));
    expect(got.equals(layer)).toBe(true);
  });

  it('mounts a blob from another repository, and falls back to an upload when the source lacks it', async () => {
    const layer = randomBytes(50_000);
    const d = sha256(layer);
    await client.uploadBlob('mount/src', d, bufferSource(layer));
    expect(await client.uploadBlob('mount/dst', d, bufferSource(layer), { mountFrom: ['mount/src'] })).toBe('mounted');
    expect(await client.blobSize('mount/dst', d)).toBe(layer.length);
    const other = randomBytes(10_000);
    expect(await client.uploadBlob('mount/dst', sha256(other), bufferSource(other), { mountFrom: ['mount/empty'] })).toBe('uploaded');
    expect((await collect(client.openBlob('mount/dst', sha256(other)))).equals(other)).toBe(true);
  });

  it('names the repository and the manifest or blob when it is missing', async () => {
    const err = await client.getManifest('demo/app', 'missing-tag').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as RegistryError).code).toBe('TSBUILD_REGISTRY_NOT_FOUND');
    expect((err as RegistryError).message).toContain(`manifest missing-tag in ${reg.host}/demo/app`);
    expect((err as RegistryError).message).toContain('MANIFEST_UNKNOWN');
    const d = sha256('nothing here') as Digest;
    const berr = await collect(client.openBlob('demo/app', d)).catch((e: unknown) => e);
    expect((berr as RegistryError).code).toBe('TSBUILD_REGISTRY_NOT_FOUND');
    expect((berr as RegistryError).message).toContain(`blob ${d} in ${reg.host}/demo/app`);
  });

  it('refuses a manifest whose bytes do not match the digest asked for', async () => {
    const img = rawImage(randomBytes(1000));
    await client.uploadBlob('demo/m', sha256(img.layer), bufferSource(img.layer));
    await client.uploadBlob('demo/m', sha256(img.config), bufferSource(img.config));
    const err = await client.putManifest('demo/m', sha256('other'), img.manifest, MediaType.OciManifest).catch((e: unknown) => e);
    expect((err as RegistryError).code).toBe('TSBUILD_REGISTRY_DIGEST_MISMATCH');
  });
});
