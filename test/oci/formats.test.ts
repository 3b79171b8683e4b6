import { execFile } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { makeBusyboxImage, buildBusyboxImage } from '../helpers/base-images.js';
import { appendLayers, tarLayer, writeImage, type Image } from '../../src/oci/image.js';
import { OciLayout, readOciArchive, writeOciArchive } from '../../src/oci/layout.js';
import { readDockerArchive, writeDockerArchive } from '../../src/oci/docker-archive.js';
import { Store } from '../../src/oci/store.js';
import { digestLayerBlob } from '../../src/oci/compress.js';
import tar from 'tar-stream';
import { extractLayer } from '../../src/oci/extract.js';

const run = promisify(execFile);
let tmp: string;
let busybox: Image;

async function tarOf(files: Record<string, string>): Promise<Buffer> {
  const pack = tar.pack();
  for (const name of Object.keys(files).sort()) pack.entry({ name, mode: 0o644, mtime: new Date(0), uid: 0, gid: 0 }, files[name]!);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function twoLayerImage(compression: 'zstd' | 'gzip' = 'zstd'): Promise<Image> {
  const zstdTar = await tarOf({ 'data/zstd.txt': 'compressed with zstd\n' });
  const plainTar = await tarOf({ 'data/plain.txt': 'not compressed\n' });
  return appendLayers(
    busybox,
    { layer: tarLayer(() => Readable.from([zstdTar]), { compression }), history: { created_by: `${compression} layer` } },
    { layer: tarLayer(() => Readable.from([plainTar]), { compression: 'none' }), history: { created_by: 'plain layer' } },
  );
}

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(tmpdir(), 'tsbuild-oci-formats-'));
  busybox = (await makeBusyboxImage()).image;
});
afterAll(async () => {
  if (!process.env.KEEP) await fs.rm(tmp, { recursive: true, force: true });
});

describe('busybox fixture', () => {
  test('is deterministic: two builds give the same manifest digest', async () => {
    const a = await buildBusyboxImage();
    const b = await buildBusyboxImage();
    expect(await a.image.digest()).toBe(await b.image.digest());
    expect(await a.image.digest()).toBe(await busybox.digest());
  });
});

describe('OCI layout', () => {
  test('written layout passes oci-image-tool, umoci and skopeo; umoci unpacks the files', async () => {
    const dir = path.join(tmp, 'layout');
    const layout = await OciLayout.create(dir);
    const img = await twoLayerImage();
    const desc = await layout.write(img, 'v1');
    // oci-image-tool (1.0.0) predates the zstd media type: validate a gzip twin of the image.
    const gz = await twoLayerImage('gzip');
    await layout.write(gz, 'gz');
    const v = await run('oci-image-tool', ['validate', '--type', 'image', '--ref', 'name=gz', dir]);
    expect(v.stdout + v.stderr).toContain('Validation succeeded');
    const ls = await run('umoci', ['ls', '--layout', dir]);
    expect(ls.stdout.trim().split('\n').sort()).toEqual(['gz', 'v1']);
    const bundle = path.join(tmp, 'bundle');
    // umoci 0.4.7 cannot read zstd layers: it unpacks the gzip twin; our extractor checks the zstd one.
    await run('umoci', ['unpack', '--image', `${dir}:gz`, bundle]);
    expect(await fs.readFile(path.join(bundle, 'rootfs/data/zstd.txt'), 'utf8')).toBe('compressed with zstd\n');
    const rootfs = path.join(tmp, 'rootfs-zstd');
    for (const l of await (await layout.image('v1')).layers()) await extractLayer(await l.open(), rootfs);
    expect(await fs.readFile(path.join(rootfs, 'data/zstd.txt'), 'utf8')).toBe('compressed with zstd\n');
    expect(await fs.readlink(path.join(rootfs, 'bin/sh'))).toBe('/bin/busybox');
    expect(await fs.readFile(path.join(bundle, 'rootfs/data/plain.txt'), 'utf8')).toBe('not compressed\n');
    expect(await fs.readlink(path.join(bundle, 'rootfs/bin/sh'))).toBe('/bin/busybox');
    expect((await fs.stat(path.join(bundle, 'rootfs/tmp'))).mode & 0o7777).toBe(0o1777);
    const info = JSON.parse((await run('skopeo', ['inspect', `oci:${dir}:v1`])).stdout) as { Digest: string; Layers: string[] };
    expect(info.Digest).toBe(desc.digest);
    expect(info.Layers).toHaveLength(3);
    // Reading it back gives the same bytes.
    const back = await (await OciLayout.open(dir)).image('v1');
    expect(await back.digest()).toBe(desc.digest);
    const layers = await back.layers();
    expect(await layers[1]!.diffId()).toBe(await (await img.layers())[1]!.diffId());
  });

  test('reads a layout that skopeo wrote from a docker archive we wrote', async () => {
    const archive = path.join(tmp, 'busybox-docker.tar');
    await writeDockerArchive(createWriteStream(archive), [{ image: busybox, tags: ['busybox:latest'] }]);
    const info = JSON.parse((await run('skopeo', ['inspect', `docker-archive:${archive}`])).stdout) as { RepoTags: string[]; Layers: string[]; Architecture: string };
    expect(info.Layers).toHaveLength(1);
    const dir = path.join(tmp, 'from-skopeo');
    await run('skopeo', ['copy', `docker-archive:${archive}`, `oci:${dir}:copied`]);
    const img = await (await OciLayout.open(dir)).image('copied');
    const cfg = await img.config();
    expect(cfg.rootfs.diff_ids).toEqual((await busybox.config()).rootfs.diff_ids);
    const [layer] = await img.layers();
    const d = await digestLayerBlob(await layer!.open());
    expect(d.diffId).toBe(cfg.rootfs.diff_ids[0]);
  });
});

describe('OCI archive', () => {
  test('skopeo copies our archive; we read the archive skopeo writes', async () => {
    const img = await twoLayerImage();
    const archive = path.join(tmp, 'img.oci.tar');
    await writeOciArchive(createWriteStream(archive), [{ item: img, refName: 'v2' }]);
    const dir = path.join(tmp, 'copied-layout');
    // --preserve-digests: skopeo would otherwise gzip the uncompressed layer on the way.
    await run('skopeo', ['copy', '--preserve-digests', `oci-archive:${archive}:v2`, `oci:${dir}:v2`]);
    const copied = await (await OciLayout.open(dir)).image('v2');
    expect(await copied.digest()).toBe(await img.digest());
    const back = path.join(tmp, 'skopeo.oci.tar');
    await run('skopeo', ['copy', '--preserve-digests', `oci:${dir}:v2`, `oci-archive:${back}:again`]);
    const store = await Store.openDir(path.join(tmp, 'store-a'));
    const entries = await readOciArchive(createReadStream(back), store);
    expect(entries.map((e) => e.refName)).toEqual(['again']);
    expect(entries[0]!.descriptor.digest).toBe(await img.digest());
    expect(await store.hasBlob(await (await img.layers())[1]!.digest())).toBe(true);
  });

  test('a corrupted blob inside an archive is refused', async () => {
    const archive = path.join(tmp, 'bad.oci.tar');
    await writeOciArchive(createWriteStream(archive), [{ item: busybox, refName: 'x' }]);
    const buf = await fs.readFile(archive);
    const cfg = await busybox.rawConfig();
    const at = buf.indexOf(cfg);
    expect(at).toBeGreaterThan(0);
    buf[at + 5] = buf[at + 5]! ^ 1;
    const store = await Store.openDir(path.join(tmp, 'store-bad'));
    await expect(readOciArchive(Readable.from([buf]), store)).rejects.toThrow(/digest mismatch/);
  });
});

describe('docker archive', () => {
  test('round trip: we write, skopeo reads and rewrites, we read', async () => {
    const img = await twoLayerImage();
    const archive = path.join(tmp, 'two.docker.tar');
    await writeDockerArchive(createWriteStream(archive), [{ image: img, tags: ['example.com/two:1'] }]);
    const info = JSON.parse((await run('skopeo', ['inspect', `docker-archive:${archive}`])).stdout) as { RepoTags: string[]; Layers: string[] };
    expect(info.Layers).toHaveLength(3);
    const again = path.join(tmp, 'two-skopeo.docker.tar');
    await run('skopeo', ['copy', `docker-archive:${archive}`, `docker-archive:${again}:example.com/two:2`]);
    const store = await Store.openDir(path.join(tmp, 'store-docker'));
    for (const file of [archive, again]) {
      const imgs = await readDockerArchive(createReadStream(file), store);
      expect(imgs).toHaveLength(1);
      const i = await (await import('../../src/oci/image.js')).resolveImage(store, imgs[0]!.descriptor);
      expect((await i.config()).rootfs.diff_ids).toEqual((await img.config()).rootfs.diff_ids);
      for (const l of await i.layers()) expect((await digestLayerBlob(await l.open())).diffId).toBe(await l.diffId());
    }
    const [first] = await readDockerArchive(createReadStream(again), store);
    expect(first!.tags).toEqual(['example.com/two:2']);
  });

  test('writeImage into a store, then export: same diffIds as the source', async () => {
    const store = await Store.openDir(path.join(tmp, 'store-w'));
    const desc = await writeImage(store, busybox);
    expect(desc.digest).toBe(await busybox.digest());
    expect(await store.hasBlob((await busybox.configDescriptor()).digest)).toBe(true);
  });
});
