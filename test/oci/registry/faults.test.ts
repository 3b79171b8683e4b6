import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sha256 } from '../../../src/oci/digest.js';
import { MediaType } from '../../../src/oci/types.js';
import { basicHeader } from '../../../src/oci/registry/auth.js';
import { bufferSource, RegistryClient } from '../../../src/oci/registry/client.js';
import { RegistryError } from '../../../src/oci/registry/errors.js';
import { startFaultProxy, type FaultProxy } from '../../helpers/fault-proxy.js';
import { startRegistry, type TestRegistry } from '../../helpers/registry.js';

async function collect(s: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c);
  return Buffer.concat(parts);
}

describe('retries, resume and redirects through a fault-injecting proxy', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let direct: RegistryClient;
  let client: RegistryClient;
  const blob = randomBytes(2_000_000);
  const digest = sha256(blob);
  beforeAll(async () => {
    reg = await startRegistry({ mode: 'anonymous' });
    proxy = await startFaultProxy(reg.host);
    direct = new RegistryClient(reg.host, { auth: 'anonymous' });
    client = new RegistryClient(proxy.host, { auth: 'anonymous', retryDelayMs: 5 });
    await direct.uploadBlob('faults/app', digest, bufferSource(blob));
  });
  afterEach(() => {
    proxy.rules = [];
    proxy.log.length = 0;
  });
  afterAll(async () => {
    await proxy?.stop();
    await reg?.stop();
  });

  it('resumes a blob download with Range after the connection drops mid-body', async () => {
    proxy.rules = [{ method: 'GET', path: /\/blobs\/sha256:/, action: { kind: 'drop-mid-body', fraction: 0.4 }, times: 2 }];
    const got = await collect(client.openBlob('faults/app', digest, { size: blob.length }));
    expect(got.equals(blob)).toBe(true);
    const gets = proxy.log.filter((e) => e.method === 'GET');
    expect(gets.length).toBe(3);
    expect(gets[0]!.range).toBeUndefined();
    expect(gets[1]!.range).toMatch(/^bytes=\d+-$/);
    expect(Number(gets[1]!.range!.slice(6, -1))).toBeGreaterThan(0);
  });

  it('retries 500 and 429 (honouring Retry-After) on idempotent requests', async () => {
    proxy.rules = [
      { method: 'HEAD', path: /\/blobs\//, action: { kind: 'status', status: 500 } },
      { method: 'GET', path: /\/blobs\//, action: { kind: 'status', status: 429, retryAfter: '0' } },
    ];
    expect(await client.blobSize('faults/app', digest)).toBe(blob.length);
    expect((await collect(client.openBlob('faults/app', digest))).equals(blob)).toBe(true);
    expect(proxy.log.map((e) => e.fault).filter(Boolean)).toEqual(['status 500', 'status 429']);
  });

  it('fails a corrupted download with a digest error naming the blob', async () => {
    proxy.rules = [{ method: 'GET', path: /\/blobs\//, action: { kind: 'corrupt' } }];
    const err = (await collect(client.openBlob('faults/app', digest)).catch((e: unknown) => e)) as RegistryError;
    expect(err).toBeInstanceOf(RegistryError);
    expect(err.code).toBe('TSBUILD_REGISTRY_DIGEST_MISMATCH');
    expect(err.message).toContain(`blob ${digest} in ${proxy.host}/faults/app`);
  });

  it('gives up after the retries with the status and the registry message', async () => {
    proxy.rules = [{ method: 'GET', path: /\/manifests\//, action: { kind: 'status', status: 503 }, times: 100 }];
    const err = (await client.getManifest('faults/app', 'latest').catch((e: unknown) => e)) as RegistryError;
    expect(err.code).toBe('TSBUILD_REGISTRY_HTTP');
    expect(err.message).toBe(`manifest latest in ${proxy.host}/faults/app: HTTP 503 (UNKNOWN: injected fault)`);
    expect(proxy.log.length).toBe(5); // 1 + 4 retries
  });

  it('restarts a monolithic upload whose connection was reset, and the blob is byte-identical', async () => {
    const up = randomBytes(700_000);
    proxy.rules = [{ method: 'PUT', path: /\/blobs\/uploads\//, action: { kind: 'reset' } }];
    expect(await client.uploadBlob('faults/push', sha256(up), bufferSource(up))).toBe('uploaded');
    expect(proxy.log.filter((e) => e.method === 'POST').length).toBe(2);
    expect((await collect(direct.openBlob('faults/push', sha256(up)))).equals(up)).toBe(true);
  });

  it('resumes a chunked upload from the Range the registry reports after a reset and a 500', async () => {
    const up = randomBytes(900_000);
    proxy.rules = [
      { method: 'PATCH', path: /\/blobs\/uploads\//, action: { kind: 'reset' }, skip: 1 },
      { method: 'PATCH', path: /\/blobs\/uploads\//, action: { kind: 'status', status: 500 }, skip: 1 },
    ];
    const c = new RegistryClient(proxy.host, { auth: 'anonymous', retryDelayMs: 5, chunkSize: 200_000 });
    expect(await c.uploadBlob('faults/chunked', sha256(up), bufferSource(up))).toBe('uploaded');
    expect(proxy.log.filter((e) => e.fault).map((e) => e.fault)).toEqual(['reset', 'status 500']);
    expect(proxy.log.filter((e) => e.method === 'POST').length).toBe(1); // resumed, not restarted
    expect(proxy.log.filter((e) => e.method === 'GET' && /uploads/.test(e.path)).length).toBe(2); // two status checks
    expect(proxy.log.filter((e) => e.method === 'PATCH').length).toBe(7); // 5 chunks + 2 failed
    expect((await collect(direct.openBlob('faults/chunked', sha256(up)))).equals(up)).toBe(true);
  });

  it('restarts a chunked upload when the registry cannot say how much it has (Range 0-0)', async () => {
    const up = randomBytes(500_000);
    proxy.rules = [{ method: 'PATCH', path: /\/blobs\/uploads\//, action: { kind: 'reset' } }];
    const c = new RegistryClient(proxy.host, { auth: 'anonymous', retryDelayMs: 5, chunkSize: 200_000 });
    expect(await c.uploadBlob('faults/chunked0', sha256(up), bufferSource(up))).toBe('uploaded');
    expect(proxy.log.filter((e) => e.method === 'POST').length).toBe(2);
    expect((await collect(direct.openBlob('faults/chunked0', sha256(up)))).equals(up)).toBe(true);
  });

  it('retries manifest PUT on 500 and the manifest is stored byte-for-byte', async () => {
    const config = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
    await client.uploadBlob('faults/app', sha256(config), bufferSource(config));
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: { mediaType: MediaType.OciConfig, digest: sha256(config), size: config.length }, layers: [] }, null, 3));
    proxy.rules = [{ method: 'PUT', path: /\/manifests\//, action: { kind: 'status', status: 502 } }];
    await client.putManifest('faults/app', 'm1', manifest, MediaType.OciManifest);
    expect((await direct.getManifest('faults/app', 'm1')).bytes.equals(manifest)).toBe(true);
  });
});

describe('redirected blob downloads', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  beforeAll(async () => {
    reg = await startRegistry({ mode: 'htpasswd' });
    proxy = await startFaultProxy(reg.host, { upstreamAuthorization: basicHeader('alice', 'wonderland') });
  });
  afterAll(async () => {
    await proxy?.stop();
    await reg?.stop();
  });

  it('follows a redirect to another origin without forwarding Authorization', async () => {
    const creds = { username: 'alice', password: 'wonderland' };
    const blob = randomBytes(100_000);
    await new RegistryClient(reg.host, { auth: creds }).uploadBlob('redir/app', sha256(blob), bufferSource(blob));
    proxy.rules = [{ method: 'GET', path: /\/blobs\/sha256:/, action: { kind: 'redirect' } }];
    const client = new RegistryClient(proxy.host, { auth: creds });
    await client.blobSize('redir/app', sha256(blob)); // authenticates (Basic) first
    const got = await collect(client.openBlob('redir/app', sha256(blob)));
    expect(got.equals(blob)).toBe(true);
    expect(proxy.redirected.length).toBe(1);
    expect(proxy.redirected[0]!.authorization).toBeUndefined();
    expect(proxy.log.some((e) => e.fault === 'redirect')).toBe(true);
  });
});
