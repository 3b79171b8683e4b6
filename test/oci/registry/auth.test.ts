import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256 } from '../../../src/oci/digest.js';
import { MediaType } from '../../../src/oci/types.js';
import { parseWwwAuthenticate } from '../../../src/oci/registry/auth.js';
import { bufferSource, RegistryClient } from '../../../src/oci/registry/client.js';
import { dockerCredentials } from '../../../src/oci/registry/credentials.js';
import { RegistryError } from '../../../src/oci/registry/errors.js';
import { startRegistry, type TestRegistry } from '../../helpers/registry.js';

async function roundTrip(client: RegistryClient, repo: string): Promise<void> {
  const layer = randomBytes(20_000);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(layer)] } }));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, digest: sha256(config), size: config.length },
    layers: [{ mediaType: MediaType.OciLayer, digest: sha256(layer), size: layer.length }],
  }));
  await client.uploadBlob(repo, sha256(layer), bufferSource(layer));
  await client.uploadBlob(repo, sha256(config), bufferSource(config));
  await client.putManifest(repo, 'v1', manifest, MediaType.OciManifest);
  const back = await client.getManifest(repo, 'v1');
  expect(back.bytes.equals(manifest)).toBe(true);
  expect((await client.getBlobBytes(repo, sha256(layer))).equals(layer)).toBe(true);
}

describe('parseWwwAuthenticate', () => {
  it('parses Bearer with quoted, comma-holding params', () => {
    expect(parseWwwAuthenticate('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push"')).toEqual([
      { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/busybox:pull,push' } },
    ]);
  });
  it('parses several challenges, unquoted values, escapes and token68', () => {
    expect(parseWwwAuthenticate('Basic realm="a \\"b\\"", charset=UTF-8, Bearer realm=x,error="invalid_token"')).toEqual([
      { scheme: 'basic', params: { realm: 'a "b"', charset: 'UTF-8' } },
      { scheme: 'bearer', params: { realm: 'x', error: 'invalid_token' } },
    ]);
    expect(parseWwwAuthenticate('Negotiate abc123==')).toEqual([{ scheme: 'negotiate', params: { token68: 'abc123==' } }]);
  });
});

describe('htpasswd registry (Basic auth)', () => {
  let reg: TestRegistry;
  beforeAll(async () => (reg = await startRegistry({ mode: 'htpasswd' })));
  afterAll(async () => reg?.stop());

  it('pushes and pulls with the right password', async () => {
    await roundTrip(new RegistryClient(reg.host, { auth: { username: 'alice', password: 'wonderland' } }), 'basic/app');
  });

  it('says which repository and why when the password is wrong', async () => {
    const client = new RegistryClient(reg.host, { auth: { username: 'alice', password: 'wrong' } });
    const err = (await client.getManifest('basic/app', 'v1').catch((e: unknown) => e)) as RegistryError;
    expect(err).toBeInstanceOf(RegistryError);
    expect(err.code).toBe('TSBUILD_REGISTRY_UNAUTHORIZED');
    expect(err.message).toContain(`manifest v1 in ${reg.host}/basic/app`);
    expect(err.message).toContain('credentials were rejected');
    expect(err.message).toContain('UNAUTHORIZED');
  });

  it('says that credentials are missing', async () => {
    const err = (await new RegistryClient(reg.host, { auth: 'anonymous' }).getManifest('basic/app', 'v1').catch((e: unknown) => e)) as RegistryError;
    expect(err.code).toBe('TSBUILD_REGISTRY_UNAUTHORIZED');
    expect(err.message).toContain(`${reg.host}/basic/app`);
    expect(err.message).toMatch(/no username\/password is configured/);
  });
});

describe('token registry (Bearer JWTs from a token server)', () => {
  let reg: TestRegistry;
  beforeAll(async () => (reg = await startRegistry({ mode: 'token' })));
  afterAll(async () => reg?.stop());

  it('gets a token for pull,push with username and password and reuses it', async () => {
    const before = reg.tokenRequests.length;
    await roundTrip(new RegistryClient(reg.host, { auth: { username: 'bob', password: 'builder' } }), 'tok/app');
    const mine = reg.tokenRequests.slice(before);
    expect(mine.length).toBeGreaterThan(0);
    expect(mine.length).toBeLessThanOrEqual(3); // cached per scope, not one per request
    expect(mine.every((r) => r.user === 'bob' && r.method === 'GET')).toBe(true);
    expect(mine.some((r) => r.scopes.includes('repository:tok/app:pull,push'))).toBe(true);
  });

  it('uses an identity token with the OAuth2 refresh_token grant', async () => {
    reg.refreshTokens.set('rt-123', 'alice');
    const before = reg.tokenRequests.length;
    await roundTrip(new RegistryClient(reg.host, { auth: { identityToken: 'rt-123' } }), 'tok/refresh');
    const mine = reg.tokenRequests.slice(before);
    expect(mine.length).toBeGreaterThan(0);
    expect(mine.every((r) => r.method === 'POST' && r.grantType === 'refresh_token' && r.user === 'alice')).toBe(true);
  });

  it('names the repository, the token server and the user when the password is wrong', async () => {
    const client = new RegistryClient(reg.host, { auth: { username: 'bob', password: 'nope' } });
    const err = (await client.getManifest('tok/app', 'v1').catch((e: unknown) => e)) as RegistryError;
    expect(err.code).toBe('TSBUILD_REGISTRY_UNAUTHORIZED');
    expect(err.message).toContain(`manifest v1 in ${reg.host}/tok/app`);
    expect(err.message).toContain('refused username "bob"');
    expect(err.message).toContain('invalid username or password');
  });

  it('anonymous tokens grant nothing here: a clear unauthorized error', async () => {
    const err = (await new RegistryClient(reg.host, { auth: 'anonymous' }).getManifest('tok/app', 'v1').catch((e: unknown) => e)) as RegistryError;
    expect(err.code).toBe('TSBUILD_REGISTRY_UNAUTHORIZED');
    expect(err.message).toContain(`${reg.host}/tok/app`);
    expect(err.message).toContain('no credentials are configured');
  });
});

describe('docker config credentials', () => {
  let reg: TestRegistry;
  let dir: string;
  beforeAll(async () => {
    reg = await startRegistry({ mode: 'htpasswd' });
    dir = mkdtempSync(join(tmpdir(), 'tsbuild-dockercfg-'));
  });
  afterAll(async () => {
    await reg?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads auths[host].auth from $DOCKER_CONFIG/config.json', async () => {
    const cfgDir = join(dir, 'plain');
    mkdirSync(cfgDir);
    writeFileSync(join(cfgDir, 'config.json'), JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from('alice:wonderland').toString('base64') } } }));
    expect(await dockerCredentials(reg.host, { env: { DOCKER_CONFIG: cfgDir } })).toEqual({ username: 'alice', password: 'wonderland' });
    await roundTrip(new RegistryClient(reg.host, { dockerConfig: { env: { DOCKER_CONFIG: cfgDir } } }), 'cfg/auths');
  });

  it('files Docker Hub under https://index.docker.io/v1/', async () => {
    const cfgDir = join(dir, 'hub');
    mkdirSync(cfgDir);
    writeFileSync(join(cfgDir, 'config.json'), JSON.stringify({ auths: { 'https://index.docker.io/v1/': { auth: Buffer.from('hubuser:hubpass').toString('base64') } } }));
    expect(await dockerCredentials('docker.io', { configDir: cfgDir })).toEqual({ username: 'hubuser', password: 'hubpass' });
    expect(await dockerCredentials('quay.io', { configDir: cfgDir })).toBeUndefined();
  });

  it('runs docker-credential-<name> from credHelpers before auths, and credsStore otherwise', async () => {
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    const log = join(dir, 'helper.log');
    writeFileSync(
      join(bin, 'docker-credential-test'),
      `#!/bin/sh\n[ "$1" = get ] || exit 1\nread host\necho "$host" >> ${log}\nif [ "$host" = "${reg.host}" ]; then echo '{"ServerURL":"'$host'","Username":"bob","Secret":"builder"}'; else echo "credentials not found in native keychain"; exit 1; fi\n`,
    );
    chmodSync(join(bin, 'docker-credential-test'), 0o755);
    const env = { PATH: `${bin}:${process.env.PATH}`, DOCKER_CONFIG: join(dir, 'helpers') };
    mkdirSync(env.DOCKER_CONFIG);
    // auths has a wrong password: the helper must win.
    writeFileSync(join(env.DOCKER_CONFIG, 'config.json'), JSON.stringify({ credHelpers: { [reg.host]: 'test' }, auths: { [reg.host]: { auth: Buffer.from('bob:stale').toString('base64') } } }));
    expect(await dockerCredentials(reg.host, { env })).toEqual({ username: 'bob', password: 'builder' });
    await roundTrip(new RegistryClient(reg.host, { dockerConfig: { env } }), 'cfg/helper');
    writeFileSync(join(env.DOCKER_CONFIG, 'config.json'), JSON.stringify({ credsStore: 'test' }));
    expect(await dockerCredentials(reg.host, { env })).toEqual({ username: 'bob', password: 'builder' });
    expect(await dockerCredentials('other.example:5000', { env })).toBeUndefined();
    // A helper that is not installed is a clear error.
    writeFileSync(join(env.DOCKER_CONFIG, 'config.json'), JSON.stringify({ credsStore: 'absent' }));
    const err = (await dockerCredentials(reg.host, { env }).catch((e: unknown) => e)) as RegistryError;
    expect(err.code).toBe('TSBUILD_REGISTRY_CREDENTIALS');
    expect(err.message).toContain('docker-credential-absent');
  });
});
