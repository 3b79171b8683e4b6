/** Test images for the registry tests: real tar layers of random bytes, written into a store. */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { appendLayers, buildIndex, emptyImage, tarLayer, writeImage, type Image } from '../../../src/oci/image.js';
import type { Store } from '../../../src/oci/store.js';
import type { Descriptor, Platform } from '../../../src/oci/types.js';

/** An uncompressed tar holding one regular file of `size` bytes. */
export async function tarOf(name: string, data: Buffer): Promise<Buffer> {
  const pack = tar.pack();
  pack.entry({ name, size: data.length, mode: 0o644, mtime: new Date(0) }, data);
  pack.finalize();
  const parts: Buffer[] = [];
  for await (const c of pack as AsyncIterable<Buffer>) parts.push(c);
  return Buffer.concat(parts);
}

export async function randomImage(sizes: number[], opts: { platform?: Platform; compression?: 'gzip' | 'none' } = {}): Promise<Image> {
  let img: Image = emptyImage({ platform: opts.platform ?? { os: 'linux', architecture: 'amd64' } });
  for (const [i, size] of sizes.entries()) {
    const t = await tarOf(`layer${i}.bin`, randomBytes(size));
    img = await appendLayers(img, tarLayer(() => Readable.from([t]), { compression: opts.compression ?? 'gzip' }));
  }
  return img;
}

/** Writes an image into the store and tags it. */
export async function storeImage(store: Store, name: string, img: Image): Promise<Descriptor> {
  const desc = await writeImage(store, img);
  await store.tag(name, desc);
  return desc;
}

/** A two-platform index (linux/amd64, linux/arm64) written into the store and tagged. */
export async function storeIndex(store: Store, name: string): Promise<{ index: Descriptor; amd64: Descriptor; arm64: Descriptor }> {
  const amd = await randomImage([30_000], { platform: { os: 'linux', architecture: 'amd64' } });
  const arm = await randomImage([40_000], { platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } });
  const idx = buildIndex([{ item: amd }, { item: arm }]);
  const index = await writeImage(store, idx);
  await store.tag(name, index);
  return { index, amd64: await amd.descriptor(), arm64: await arm.descriptor() };
}
