/** A registry served over https with a certificate only a certs.d directory vouches for. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Digest } from '../../../src/oci/digest.js';
import { registryTls } from '../../../src/oci/registry/certs.js';
import { RegistryError } from '../../../src/oci/registry/errors.js';
import { pull } from '../../../src/oci/registry/pull.js';
import { push } from '../../../src/oci/registry/push.js';
import { Store } from '../../../src/oci/store.js';
import { makeBusyboxImage } from '../../helpers/base-images.js';
import { startRegistry, type TestRegistry } from '../../helpers/registry.js';

describe('https registry with a private certificate authority (certs.d)', () => {
  let reg: TestRegistry;
  let dir: string;
  let certsD: string;
  let src: Store;
  let busybox: Digest;
  beforeAll(async () => {
    reg = await startRegistry({ mode: 'anonymous', tls: true });
    dir = mkdtempSync(join(tmpdir(), 'tsbuild-tls-'));
    certsD = join(dir, 'certs.d');
    mkdirSync(join(certsD, reg.host), { recursive: true });
    writeFileSync(join(certsD, reg.host, 'ca.crt'), reg.certificate!);
    src = await Store.open({ root: join(dir, 'src') });
    busybox = (await makeBusyboxImage(src)).descriptor.digest;
  });
  afterAll(async () => {
    await reg?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('pushes and pulls over TLS when certs.d/<host>/ca.crt holds the CA (added to the system roots)', async () => {
    const env = { TSBUILD_CERTS_D: certsD, HOME: dir };
    // insecure: false makes the client use https for a loopback registry too
    const pushed = await push(`${reg.host}/tls/busybox:1`, { store: src, source: 'busybox:latest', insecure: false, env });
    expect(pushed.digest).toBe(busybox);
    const dst = await Store.open({ root: join(dir, 'dst') });
    const pulled = await pull(`${reg.host}/tls/busybox:1`, { store: dst, insecure: false, env });
    expect(pulled.descriptor.digest).toBe(busybox);
    expect((await dst.readBlob(busybox)).equals(await src.readBlob(busybox))).toBe(true);
  });

  it('without the CA the certificate is refused, and the error names the repository and what to do', async () => {
    const dst = await Store.open({ root: join(dir, 'dst2') });
    const err = await pull(`${reg.host}/tls/busybox:1`, { store: dst, insecure: false, env: { TSBUILD_CERTS_D: join(dir, 'empty'), HOME: dir }, retries: 0 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as RegistryError).message).toContain(`${reg.host}/tls/busybox`);
    expect((err as RegistryError).message).toMatch(/self.signed|certificate/i);
    expect((err as RegistryError).message).toContain(`/etc/docker/certs.d/${reg.host}/ca.crt`);
  });

  it('reads client certificate pairs and refuses a .cert without its .key', async () => {
    const d = join(dir, 'pairs');
    mkdirSync(join(d, 'reg.example:5000'), { recursive: true });
    writeFileSync(join(d, 'reg.example:5000', 'ca.crt'), reg.certificate!);
    writeFileSync(join(d, 'reg.example:5000', 'client.cert'), 'CERT');
    writeFileSync(join(d, 'reg.example:5000', 'client.key'), 'KEY');
    expect(await registryTls('reg.example:5000', [join(dir, 'none'), d])).toEqual({ id: join(d, 'reg.example:5000'), ca: [reg.certificate!], cert: 'CERT', key: 'KEY' });
    expect(await registryTls('other.example', [d])).toBeUndefined();
    mkdirSync(join(d, 'half.example'));
    writeFileSync(join(d, 'half.example', 'client.cert'), 'CERT');
    await expect(registryTls('half.example', [d])).rejects.toThrow(/missing key client\.key/);
  });
});

describe('https registry with token auth whose token server shares the private CA', () => {
  let reg: TestRegistry;
  let dir: string;
  let src: Store;
  let busybox: Digest;
  beforeAll(async () => {
    reg = await startRegistry({ mode: 'token', tls: true });
    dir = mkdtempSync(join(tmpdir(), 'tsbuild-tls-token-'));
    mkdirSync(join(dir, 'certs.d', reg.host), { recursive: true });
    writeFileSync(join(dir, 'certs.d', reg.host, 'ca.crt'), reg.certificate!);
    src = await Store.open({ root: join(dir, 'src') });
    busybox = (await makeBusyboxImage(src)).descriptor.digest;
  });
  afterAll(async () => {
    await reg?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("fetches tokens from the https realm with the registry's certs.d CA, and pushes and pulls", async () => {
    const env = { TSBUILD_CERTS_D: join(dir, 'certs.d'), HOME: dir };
    const auth = { username: 'alice', password: reg.users.alice! };
    const pushed = await push(`${reg.host}/tls/busybox:1`, { store: src, source: 'busybox:latest', insecure: false, env, auth });
    expect(pushed.digest).toBe(busybox);
    const dst = await Store.open({ root: join(dir, 'dst') });
    expect((await pull(`${reg.host}/tls/busybox:1`, { store: dst, insecure: false, env, auth })).descriptor.digest).toBe(busybox);
    expect(reg.tokenRequests.some((r) => r.user === 'alice' && r.scopes.includes('repository:tls/busybox:pull,push'))).toBe(true);
  });
});
