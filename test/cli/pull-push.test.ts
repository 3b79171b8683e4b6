import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Digest } from '../../src/oci/digest.js';
import { parseManifest } from '../../src/oci/image.js';
import { Store } from '../../src/oci/store.js';
import { makeBusyboxImage } from '../helpers/base-images.js';
import { runCli } from '../helpers/cli.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { storeIndex } from '../oci/registry/images.js';

function skopeo(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('skopeo', args, { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => (err ? reject(new Error(`skopeo ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout)));
  });
}

describe('tsbuild pull / tsbuild push against a real registry', () => {
  let reg: TestRegistry;
  let dir: string;
  let rootA: string;
  let busybox: Digest;
  const env = (root: string) => ({ TSBUILD_ROOT: root, DOCKER_CONFIG: join(dir, 'no-docker-config') });
  beforeAll(async () => {
    reg = await startRegistry({ mode: 'anonymous' });
    dir = mkdtempSync(join(tmpdir(), 'tsbuild-cli-pp-'));
    rootA = join(dir, 'a');
    busybox = (await makeBusyboxImage(rootA)).descriptor.digest;
  });
  afterAll(async () => {
    await reg?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('pushes a local image to a destination, then pulls it into another root byte-identical', async () => {
    const p = await runCli(['push', '--root', rootA, 'busybox:latest', `${reg.host}/cli/busybox:v1`]);
    expect(p.stderr).toBe('');
    expect(p.code).toBe(0);
    expect(p.stdout).toContain(`Pushing busybox:latest to ${reg.host}/cli/busybox:v1\n`);
    expect(p.stdout).toMatch(/^[0-9a-f]{12}: Pushed$/m);
    expect(p.stdout).toContain(`${reg.host}/cli/busybox:v1: digest: ${busybox} size: `);
    const seen = JSON.parse(await skopeo(['inspect', '--tls-verify=false', `docker://${reg.host}/cli/busybox:v1`])) as { Digest: string };
    expect(seen.Digest).toBe(busybox);

    const rootB = join(dir, 'b');
    const q = await runCli(['pull', `${reg.host}/cli/busybox:v1`], { env: env(rootB) });
    expect(q.stderr).toBe('');
    expect(q.code).toBe(0);
    expect(q.stdout).toContain(`Pulling ${reg.host}/cli/busybox:v1\n`);
    expect(q.stdout).toMatch(/^[0-9a-f]{12}: Pull complete$/m);
    expect(q.stdout).toContain(`Digest: ${busybox}\n`);
    expect(q.stdout).toContain(`Status: Downloaded newer image for ${reg.host}/cli/busybox:v1\n`);
    const a = await Store.open({ root: rootA });
    const b = await Store.open({ root: rootB });
    expect((await b.resolve(`${reg.host}/cli/busybox:v1`))?.descriptor.digest).toBe(busybox);
    const m = parseManifest(await a.readBlob(busybox));
    for (const d of [{ digest: busybox }, m.config, ...m.layers]) expect((await b.readBlob(d.digest)).equals(await a.readBlob(d.digest))).toBe(true);

    const again = await runCli(['pull', '--root', rootB, `${reg.host}/cli/busybox:v1`]);
    expect(again.stdout).toContain('Already exists');
    expect(again.stdout).toContain(`Status: Image is up to date for ${reg.host}/cli/busybox:v1`);
    const images = await runCli(['images', '--root', rootB]);
    expect(images.stdout).toContain(`${reg.host}/cli/busybox`);
  });

  it('pushes under the local name when no destination is given; -q prints only the digest; --chunk-size uploads in chunks', async () => {
    const store = await Store.open({ root: rootA });
    await store.tag(`${reg.host}/cli/self:1`, (await store.resolve('busybox:latest'))!.descriptor);
    const p = await runCli(['push', '-q', '--root', rootA, '--chunk-size', '65536', `${reg.host}/cli/self:1`]);
    expect(p.stderr).toBe('');
    expect(p.stdout).toBe(`${busybox}\n`);
    const seen = JSON.parse(await skopeo(['inspect', '--tls-verify=false', `docker://${reg.host}/cli/self:1`])) as { Digest: string };
    expect(seen.Digest).toBe(busybox);
  });

  it('pulls by digest (no tag written) and one platform of an index with --platform', async () => {
    await runCli(['push', '--root', rootA, 'busybox:latest', `${reg.host}/cli/digest:v1`]);
    const rootC = join(dir, 'c');
    const d = await runCli(['pull', '-q', '--root', rootC, `${reg.host}/cli/digest@${busybox}`]);
    expect(d.stderr).toBe('');
    expect(d.stdout).toBe(`${reg.host}/cli/digest@${busybox}\n`);
    const c = await Store.open({ root: rootC });
    expect(await c.listTags()).toEqual([]);
    expect(await c.hasBlob(busybox)).toBe(true);

    const { index, arm64 } = await storeIndex(await Store.open({ root: rootA }), 'cli-multi:1');
    expect((await runCli(['push', '--root', rootA, 'cli-multi:1', `${reg.host}/cli/multi:1`])).code).toBe(0);
    const pl = await runCli(['pull', '--root', rootC, '--platform', 'linux/arm64/v8', `${reg.host}/cli/multi:1`]);
    expect(pl.stderr).toBe('');
    expect(pl.stdout).toContain(`Digest: ${index.digest}\n`);
    expect(pl.stdout).toContain(`Platform: linux/arm64/v8 (${arm64.digest})\n`);
    expect((await c.resolve(`${reg.host}/cli/multi:1`))?.descriptor.digest).toBe(arm64.digest);
    const none = await runCli(['pull', '--root', rootC, '--platform', 'linux/riscv64', `${reg.host}/cli/multi:1`]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain(`index ${index.digest} in ${reg.host}/cli/multi: no manifest for platform linux/riscv64`);
  });

  it('reports registry and store errors with the repository, manifest and cause', async () => {
    const rootD = join(dir, 'd');
    const bad = await runCli(['pull', '--root', rootD, `${reg.host}/cli/busybox:missing`]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(`tsbuild pull: manifest missing in ${reg.host}/cli/busybox: HTTP 404 (MANIFEST_UNKNOWN`);
    expect(await (await Store.open({ root: rootD })).listTags()).toEqual([]);
    const typo = await runCli(['push', '--root', rootA, 'busybx', `${reg.host}/cli/x:1`]);
    expect(typo.code).toBe(1);
    expect(typo.stderr).toContain('did you mean docker.io/library/busybox:latest');
    const closed = await runCli(['pull', '--root', rootD, '127.0.0.1:1/nothing/here:1']);
    expect(closed.code).toBe(1);
    expect(closed.stderr).toContain('manifest 1 in 127.0.0.1:1/nothing/here');
    expect(closed.stderr).toContain('ECONNREFUSED');
  });

  it('usage errors exit 2, --help exits 0', async () => {
    expect((await runCli(['pull'])).code).toBe(2);
    expect((await runCli(['push'])).code).toBe(2);
    expect((await runCli(['push', 'a', 'b', 'c'])).code).toBe(2);
    const tv = await runCli(['push', '--tls-verify=maybe', 'x']);
    expect(tv.code).toBe(2);
    expect(tv.stderr).toContain('invalid --tls-verify "maybe"');
    const cs = await runCli(['push', '--chunk-size', '0', 'x']);
    expect(cs.code).toBe(2);
    expect(cs.stderr).toContain('invalid --chunk-size');
    expect((await runCli(['pull', '--creds', 'nopassword', 'x'])).code).toBe(2);
    expect((await runCli(['pull', '--bogus', 'x'])).code).toBe(2);
    const h = await runCli(['pull', '--help']);
    expect([h.code, h.stdout.startsWith('Usage: tsbuild pull')]).toEqual([0, true]);
    const ph = await runCli(['push', '--help']);
    expect([ph.code, ph.stdout.startsWith('Usage: tsbuild push')]).toEqual([0, true]);
  });
});
