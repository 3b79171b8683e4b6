import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { makeBusyboxImage } from '../helpers/base-images.js';
import { Store } from '../../src/oci/store.js';

let root: string;
beforeEach(async () => {
  root = await fs.mkdtemp(path.join(tmpdir(), 'tsbuild-cli-oci-'));
});
afterEach(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

test('images, tag, inspect, rmi on a real store', async () => {
  const { descriptor, image } = await makeBusyboxImage(root);
  const short = descriptor.digest.slice(7, 19);

  let r = await runCli(['images', '--root', root]);
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(new RegExp(`^REPOSITORY\\s+TAG\\s+IMAGE ID\\s+CREATED\\s+SIZE\\nbusybox\\s+latest\\s+${short}\\s+1970-01-01T00:00:00Z\\s+1\\.\\d+MB\\n$`));

  r = await runCli(['tag', 'busybox', 'localhost:5000/my/box:v1', '--root', root]);
  expect(r.code).toBe(0);
  r = await runCli(['images', '--format', 'json'], { env: { TSBUILD_ROOT: root } });
  const rows = JSON.parse(r.stdout) as { name: string; digest: string; size: number }[];
  expect(rows.map((x) => x.name)).toEqual(['docker.io/library/busybox:latest', 'localhost:5000/my/box:v1']);
  expect(rows[1]!.digest).toBe(descriptor.digest);

  r = await runCli(['inspect', 'localhost:5000/my/box:v1', '--format', 'json', '--root', root]);
  expect(r.code).toBe(0);
  const info = JSON.parse(r.stdout) as { digest: string; layers: { diffId: string }[]; config: { config: { Cmd: string[] } } };
  expect(info.digest).toBe(descriptor.digest);
  expect(info.config.config.Cmd).toEqual(['sh']);
  expect(info.layers[0]!.diffId).toBe((await image.config()).rootfs.diff_ids[0]);

  r = await runCli(['inspect', 'busybox', '--raw', 'manifest', '--root', root]);
  expect(Buffer.from(r.stdout)).toEqual(await image.rawManifest());
  r = await runCli(['inspect', short, '--raw', 'config', '--root', root]);
  expect(Buffer.from(r.stdout)).toEqual(await image.rawConfig());
  r = await runCli(['inspect', 'busybox', '--root', root]);
  expect(r.stdout).toContain('Cmd:         ["sh"]');

  r = await runCli(['inspect', 'busybux', '--root', root]);
  expect(r.code).toBe(1);
  expect(r.stderr).toContain('did you mean docker.io/library/busybox:latest');

  r = await runCli(['rmi', 'busybox', '--root', root]);
  expect(r.code).toBe(0);
  expect(r.stdout).toBe('Untagged: busybox:latest\n');
  const store = await Store.open({ root });
  expect(await store.hasBlob(descriptor.digest)).toBe(true);

  r = await runCli(['rmi', 'localhost:5000/my/box:v1', 'nothere', '--root', root]);
  expect(r.code).toBe(1);
  expect(r.stdout).toContain('Untagged: localhost:5000/my/box:v1\n');
  expect(r.stdout).toContain(`Deleted: ${descriptor.digest}\n`);
  expect(r.stderr).toContain('No such image: nothere');
  expect(await store.hasBlob(descriptor.digest)).toBe(false);
  expect((await runCli(['images', '-q', '--root', root])).stdout).toBe('');
});

test('usage errors and --help', async () => {
  expect((await runCli(['tag', 'only-one'])).code).toBe(2);
  expect((await runCli(['images', '--format', 'xml'])).code).toBe(2);
  const h = await runCli(['inspect', '--help']);
  expect(h.code).toBe(0);
  expect(h.stdout).toContain('--raw');
});
