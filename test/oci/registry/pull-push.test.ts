import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Digest } from '../../../src/oci/digest.js';
import { parseManifest } from '../../../src/oci/image.js';
import { withQuery } from '../../../src/oci/registry/client.js';
import { RegistryError } from '../../../src/oci/registry/errors.js';
import { pull } from '../../../src/oci/registry/pull.js';
import { push } from '../../../src/oci/registry/push.js';
import { Store } from '../../../src/oci/store.js';
import { MediaType } from '../../../src/oci/types.js';
import { makeBusyboxImage } from '../../helpers/base-images.js';
import { startFaultProxy } from '../../helpers/fault-proxy.js';
import { startRegistry, type TestRegistry } from '../../helpers/registry.js';
import { randomImage, storeImage, storeIndex } from './images.js';

/** skopeo, asynchronously: the token server of the test registry runs in this process. */
function skopeo(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('skopeo', args, { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => (err ? reject(new Error(`skopeo ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout)));
  });
}

/** Every blob of the image a tag points at, byte-compared between two stores. */
async function expectSameImage(a: Store, b: Store, digest: Digest): Promise<void> {
  const ma = await a.readBlob(digest);
  expect((await b.readBlob(digest)).equals(ma)).toBe(true);
  const m = parseManifest(ma);
  for (const d of [m.config, ...m.layers]) expect((await b.readBlob(d.digest)).equals(await a.readBlob(d.digest))).toBe(true);
}

describe('pull and push against a real registry', () => {
  let reg: TestRegistry;
  let dir: string;
  let src: Store;
  let busybox: Digest;
  const roots: string[] = [];
  const freshStore = async () => {
    const r = mkdtempSync(join(tmpdir(), 'tsbuild-store-'));
    roots.push(r);
    return Store.open({ root: r });
  };
  beforeAll(async () => {
    reg = await startRegistry({ mode: 'anonymous' });
    dir = mkdtempSync(join(tmpdir(), 'tsbuild-pp-'));
    src = await Store.open({ root: join(dir, 'src') });
    busybox = (await makeBusyboxImage(src)).descriptor.digest;
  });
  afterAll(async () => {
    await reg?.stop();
    rmSync(dir, { recursive: true, force: true });
    for (const r of roots) rmSync(r, { recursive: true, force: true });
  });

  it('round-trips busybox: push, skopeo sees it, pull into another store gives identical bytes', async () => {
    const events: string[] = [];
    const pushed = await push(`${reg.host}/tests/busybox:1`, { store: src, source: 'busybox:latest', onProgress: (e) => events.push(e.type) });
    expect(pushed.digest).toBe(busybox);
    expect(pushed.uploaded).toBe(2); // one layer + config
    expect(events).toContain('manifest');
    const seen = JSON.parse(await skopeo(['inspect', '--tls-verify=false', `docker://${reg.host}/tests/busybox:1`])) as { Digest: string; Layers: string[] };
    expect(seen.Digest).toBe(busybox);
    const manifest = parseManifest(await src.readBlob(busybox));
    expect(seen.Layers).toEqual(manifest.layers.map((l) => l.digest));
    const dst = await freshStore();
    const pulled = await pull(`${reg.host}/tests/busybox:1`, { store: dst });
    expect(pulled.descriptor.digest).toBe(busybox);
    expect(pulled.downloaded).toBe(2);
    expect((await dst.resolve(`${reg.host}/tests/busybox:1`))?.descriptor.digest).toBe(busybox);
    await expectSameImage(src, dst, busybox);
    // Pulling again downloads nothing; pushing again uploads nothing.
    expect((await pull(`${reg.host}/tests/busybox:1`, { store: dst })).downloaded).toBe(0);
    const again = await push(`${reg.host}/tests/busybox:1`, { store: src, source: 'busybox:latest' });
    expect([again.uploaded, again.existing]).toEqual([0, 2]);
  });

  it('pulls by digest without tagging', async () => {
    await push(`${reg.host}/tests/bydigest:1`, { store: src, source: 'busybox:latest' });
    const dst = await freshStore();
    const r = await pull(`${reg.host}/tests/bydigest@${busybox}`, { store: dst });
    expect(r.descriptor.digest).toBe(busybox);
    expect(await dst.listTags()).toEqual([]);
    await expectSameImage(src, dst, busybox);
  });

  it('pushes with chunked uploads and the blobs arrive intact', async () => {
    const img = await randomImage([400_000, 150_000]);
    const desc = await storeImage(src, 'chunky:1', img);
    const r = await push(`${reg.host}/tests/chunky:1`, { store: src, source: 'chunky:1', chunkSize: 64 * 1024 });
    expect(r.uploaded).toBe(3);
    const dst = await freshStore();
    await pull(`${reg.host}/tests/chunky:1`, { store: dst });
    await expectSameImage(src, dst, desc.digest);
  });

  it('mounts blobs from another repository of the registry that the store knows holds them', async () => {
    const img = await randomImage([100_000]);
    await storeImage(src, 'mountme:1', img);
    await push(`${reg.host}/mnt/a:1`, { store: src, source: 'mountme:1' });
    // A second machine pulls from repository a, then pushes to repository b.
    const other = await freshStore();
    await pull(`${reg.host}/mnt/a:1`, { store: other });
    const r = await push(`${reg.host}/mnt/b:1`, { store: other, source: `${reg.host}/mnt/a:1` });
    expect([r.mounted, r.uploaded]).toEqual([2, 0]);
    const seen = JSON.parse(await skopeo(['inspect', '--tls-verify=false', `docker://${reg.host}/mnt/b:1`])) as { Digest: string };
    expect(seen.Digest).toBe(r.digest);
  });

  it('pushes a multi-platform index and pulls the platform asked for', async () => {
    const { index, amd64, arm64 } = await storeIndex(src, 'multi:1');
    const r = await push(`${reg.host}/tests/multi:1`, { store: src, source: 'multi:1' });
    expect(r.digest).toBe(index.digest);
    const raw = JSON.parse(await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/tests/multi:1`])) as { mediaType: string; manifests: { digest: string }[] };
    expect(raw.mediaType).toBe(MediaType.OciIndex);
    expect(raw.manifests.map((m) => m.digest)).toEqual([amd64.digest, arm64.digest]);
    const dst = await freshStore();
    const arm = await pull(`${reg.host}/tests/multi:1`, { store: dst, platform: 'linux/arm64' });
    expect(arm.registryDigest).toBe(index.digest);
    expect(arm.descriptor.digest).toBe(arm64.digest);
    expect(arm.platform?.architecture).toBe('arm64');
    expect((await dst.resolve(`${reg.host}/tests/multi:1`))?.descriptor.digest).toBe(arm64.digest);
    await expectSameImage(src, dst, arm64.digest);
    expect(await dst.hasBlob(amd64.digest)).toBe(false);
    const err = (await pull(`${reg.host}/tests/multi:1`, { store: dst, platform: 'linux/s390x' }).catch((e: unknown) => e)) as RegistryError;
    expect(err.code).toBe('TSBUILD_REGISTRY_PLATFORM');
    expect(err.message).toContain(`index ${index.digest} in ${reg.host}/tests/multi`);
    expect(err.message).toContain('linux/s390x');
    expect(err.message).toContain('linux/amd64, linux/arm64');
    const all = await freshStore();
    const every = await pull(`${reg.host}/tests/multi:1`, { store: all, allPlatforms: true });
    expect(every.descriptor.digest).toBe(index.digest);
    await expectSameImage(src, all, amd64.digest);
    await expectSameImage(src, all, arm64.digest);
    // And the fully pulled index pushes on to another repository.
    expect((await push(`${reg.host}/tests/multi-copy:1`, { store: all, source: `${reg.host}/tests/multi:1` })).digest).toBe(index.digest);
  });

  it('pulls what skopeo copied into the registry', async () => {
    const { layoutDir, descriptor } = await makeBusyboxImage();
    await skopeo(['copy', '--dest-tls-verify=false', `oci:${layoutDir}:latest`, `docker://${reg.host}/skopeo/busybox:copied`]);
    const dst = await freshStore();
    const r = await pull(`${reg.host}/skopeo/busybox:copied`, { store: dst });
    expect(r.registryDigest).toBe(descriptor.digest);
    await expectSameImage(src, dst, descriptor.digest);
  });

  it('names the repository and the manifest when a tag is missing, and leaves no tag behind', async () => {
    const dst = await freshStore();
    const err = (await pull(`${reg.host}/tests/busybox:nope`, { store: dst }).catch((e: unknown) => e)) as RegistryError;
    expect(err.code).toBe('TSBUILD_REGISTRY_NOT_FOUND');
    expect(err.message).toContain(`manifest nope in ${reg.host}/tests/busybox`);
    expect(await dst.listTags()).toEqual([]);
    const perr = (await push(`${reg.host}/tests/x:1`, { store: src, source: 'busybx:latest' }).catch((e: unknown) => e)) as Error & { code: string };
    expect(perr.code).toBe('TSBUILD_IMAGE_NOT_FOUND');
    expect(perr.message).toContain('did you mean docker.io/library/busybox:latest');
  });

  it('completes a push and a pull through a proxy that fails a share of the requests', async () => {
    const img = await randomImage([300_000, 200_000, 100_000]);
    const desc = await storeImage(src, 'flaky:1', img);
    const proxy = await startFaultProxy(reg.host, {
      seed: 7,
      rules: [
        { path: /\/v2\/.+/, action: { kind: 'status', status: 500 }, probability: 0.15, times: 6 },
        { method: 'PUT', path: /\/blobs\/uploads\//, action: { kind: 'reset' }, probability: 0.3, times: 2 },
        { method: 'PATCH', path: /\/blobs\/uploads\//, action: { kind: 'reset' }, probability: 0.3, times: 2 },
        { method: 'GET', path: /\/blobs\/sha256:/, action: { kind: 'drop-mid-body', fraction: 0.5 }, probability: 0.5, times: 3 },
        { method: 'HEAD', action: { kind: 'status', status: 429, retryAfter: '0' }, probability: 0.2, times: 3 },
      ],
    });
    // Always fired, whatever the order of the concurrent requests: one 416 on the second PATCH
    // (the client asks the session where it stands and goes on) and a reset of a monolithic PUT.
    proxy.rules.unshift(
      { method: 'PATCH', path: /\/blobs\/uploads\//, action: { kind: 'status', status: 416 }, skip: 1, times: 1 },
      { method: 'PUT', path: /\/blobs\/uploads\/.*digest=/, action: { kind: 'reset' }, times: 1 },
    );
    try {
      const r = await push(`${proxy.host}/flaky/app:1`, { store: src, source: 'flaky:1', chunkSize: 100_000, retries: 6 });
      expect(r.digest).toBe(desc.digest);
      const mono = await push(`${proxy.host}/flaky/mono:1`, { store: src, source: 'flaky:1', retries: 6, mountFrom: [] });
      expect(mono.digest).toBe(desc.digest);
      const dst = await freshStore();
      await pull(`${proxy.host}/flaky/app:1`, { store: dst, retries: 6 });
      await expectSameImage(src, dst, desc.digest);
      const faults = proxy.log.filter((e) => e.fault).map((e) => `${e.method} ${e.fault}`);
      expect(faults).toContain('PATCH status 416');
      expect(faults).toContain('PUT reset');
      expect(faults.length).toBeGreaterThan(4);
    } finally {
      await proxy.stop();
    }
    // And the registry itself holds the identical image in both repositories (read without the proxy).
    for (const repo of ['flaky/app', 'flaky/mono']) {
      const direct = await freshStore();
      await pull(`${reg.host}/${repo}:1`, { store: direct });
      await expectSameImage(src, direct, desc.digest);
    }
  });

  it('a push whose blob upload keeps failing names the blob and the cause, and writes no tag', async () => {
    const desc = await storeImage(src, 'broken:1', await randomImage([20_000]));
    const layer = parseManifest(await src.readBlob(desc.digest)).layers[0]!.digest;
    const proxy = await startFaultProxy(reg.host, {
      rules: [{ method: 'PUT', path: new RegExp(`/blobs/uploads/.*digest=${layer.replace(':', '(:|%3A)')}`), action: { kind: 'status', status: 503 }, times: 1000 }],
    });
    try {
      const err = (await push(`${proxy.host}/flaky/broken:1`, { store: src, source: 'broken:1', retries: 1 }).catch((e: unknown) => e)) as RegistryError;
      expect(err).toBeInstanceOf(RegistryError);
      expect(err.message).toContain(`blob ${layer} in ${proxy.host}/flaky/broken`);
      expect(err.message).toContain('HTTP 503');
      expect(err.message).toContain('injected fault');
      expect(proxy.log.some((e) => e.method === 'PUT' && e.path.includes('/manifests/'))).toBe(false);
    } finally {
      await proxy.stop();
    }
    const missing = (await pull(`${reg.host}/flaky/broken:1`, { store: await freshStore() }).catch((e: unknown) => e)) as RegistryError;
    expect(missing.code).toBe('TSBUILD_REGISTRY_NOT_FOUND');
  });

  it('a pull that gets corrupted bytes fails naming the blob, and leaves no tag and no blob', async () => {
    const desc = await storeImage(src, 'corrupt:1', await randomImage([30_000]));
    await push(`${reg.host}/tests/corrupt:1`, { store: src, source: 'corrupt:1' });
    const layer = parseManifest(await src.readBlob(desc.digest)).layers[0]!.digest;
    const proxy = await startFaultProxy(reg.host, { rules: [{ method: 'GET', path: new RegExp(`/blobs/${layer}`), action: { kind: 'corrupt' }, times: 1000 }] });
    const dst = await freshStore();
    try {
      const err = (await pull(`${proxy.host}/tests/corrupt:1`, { store: dst }).catch((e: unknown) => e)) as RegistryError;
      expect(err.code).toBe('TSBUILD_REGISTRY_DIGEST_MISMATCH');
      expect(err.message).toContain(`blob ${layer} in ${proxy.host}/tests/corrupt`);
    } finally {
      await proxy.stop();
    }
    expect(await dst.listTags()).toEqual([]);
    expect(await dst.hasBlob(layer)).toBe(false);
    expect(await dst.hasBlob(desc.digest)).toBe(false);
    expect(readdirSync(dst.tmpDir)).toEqual([]);
  });
});

describe('pull and push with token auth', () => {
  let reg: TestRegistry;
  let dir: string;
  beforeAll(async () => {
    reg = await startRegistry({ mode: 'token' });
    dir = mkdtempSync(join(tmpdir(), 'tsbuild-pptok-'));
  });
  afterAll(async () => {
    await reg?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('round-trips with credentials and reports a wrong password with repository and cause', async () => {
    const src = await Store.open({ root: join(dir, 'a') });
    const desc = await storeImage(src, 'tok:1', await randomImage([50_000]));
    const auth = { username: 'alice', password: 'wonderland' };
    expect((await push(`${reg.host}/secure/app:1`, { store: src, source: 'tok:1', auth })).digest).toBe(desc.digest);
    const dst = await Store.open({ root: join(dir, 'b') });
    expect((await pull(`${reg.host}/secure/app:1`, { store: dst, auth })).descriptor.digest).toBe(desc.digest);
    const seen = JSON.parse(await skopeo(['inspect', '--tls-verify=false', '--creds', 'alice:wonderland', `docker://${reg.host}/secure/app:1`])) as { Digest: string };
    expect(seen.Digest).toBe(desc.digest);
    const err = (await push(`${reg.host}/secure/app:2`, { store: src, source: 'tok:1', auth: { username: 'alice', password: 'bad' } }).catch((e: unknown) => e)) as RegistryError;
    expect(err).toBeInstanceOf(RegistryError);
    expect(err.code).toBe('TSBUILD_REGISTRY_UNAUTHORIZED');
    expect(err.message).toContain(`${reg.host}/secure/app`);
    expect(err.message).toContain('invalid username or password');
    // The tag was not written.
    const tags = JSON.parse(await skopeo(['list-tags', '--tls-verify=false', '--creds', 'alice:wonderland', `docker://${reg.host}/secure/app`])) as { Tags: string[] };
    expect(tags.Tags).toEqual(['1']);
  });
});

describe('pull and push with htpasswd (Basic) auth', () => {
  let reg: TestRegistry;
  let dir: string;
  beforeAll(async () => {
    reg = await startRegistry({ mode: 'htpasswd' });
    dir = mkdtempSync(join(tmpdir(), 'tsbuild-pphtp-'));
  });
  afterAll(async () => {
    await reg?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('round-trips busybox byte-identical with credentials from a docker config', async () => {
    const src = await Store.open({ root: join(dir, 'a') });
    const { descriptor } = await makeBusyboxImage(src);
    const configDir = join(dir, 'docker');
    mkdirSync(configDir);
    writeFileSync(join(configDir, 'config.json'), JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from('bob:builder').toString('base64') } } }));
    const env = { DOCKER_CONFIG: configDir };
    const pushed = await push(`${reg.host}/team/busybox:1`, { store: src, source: 'busybox:latest', env });
    expect(pushed.digest).toBe(descriptor.digest);
    const dst = await Store.open({ root: join(dir, 'b') });
    const pulled = await pull(`${reg.host}/team/busybox:1`, { store: dst, env });
    expect(pulled.descriptor.digest).toBe(descriptor.digest);
    await expectSameImage(src, dst, descriptor.digest);
    const seen = JSON.parse(await skopeo(['inspect', '--tls-verify=false', '--creds', 'bob:builder', `docker://${reg.host}/team/busybox:1`])) as { Digest: string };
    expect(seen.Digest).toBe(descriptor.digest);
    const err = (await pull(`${reg.host}/team/busybox:1`, { store: await Store.open({ root: join(dir, 'c') }), auth: 'anonymous' }).catch((e: unknown) => e)) as RegistryError;
    expect(err.code).toBe('TSBUILD_REGISTRY_UNAUTHORIZED');
    expect(err.message).toContain(`manifest 1 in ${reg.host}/team/busybox`);
    expect(err.message).toContain('no username/password is configured');
  });
});

describe('withQuery', () => {
  it('keeps the registry\'s upload Location byte for byte and appends the digest', () => {
    const loc = new URL('http://r.example/v2/a/blobs/uploads/u1?_state=ab%2Bc%3D%3D&x=a+b~');
    expect(withQuery(loc, 'digest', 'sha256:00').href).toBe('http://r.example/v2/a/blobs/uploads/u1?_state=ab%2Bc%3D%3D&x=a+b~&digest=sha256%3A00');
    expect(withQuery(new URL('http://r.example/v2/a/blobs/uploads/u2'), 'digest', 'sha256:00').href).toBe('http://r.example/v2/a/blobs/uploads/u2?digest=sha256%3A00');
  });
});
