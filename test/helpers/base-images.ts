import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { BUSYBOX_RECIPE_VERSION, busyboxConfig, busyboxRootfsTar } from '../../scripts/lib/busybox-rootfs.mjs';
import { appendLayers, emptyImage, tarLayer, withConfig, writeImage, type Image } from '../../src/oci/image.js';
import { OciLayout } from '../../src/oci/layout.js';
import { hostPlatform } from '../../src/oci/platform.js';
import { Store } from '../../src/oci/store.js';
import type { Descriptor, ImageConfig } from '../../src/oci/types.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const fixtureCacheDir = path.join(repoRoot, 'test/fixtures/.cache');

/** The ref name of the busybox image inside its cached OCI layout (`oci:DIR:latest`). */
export const BUSYBOX_LAYOUT_REF = 'latest';

export interface BusyboxImage {
  /** The cached OCI layout directory (read-only for tests: copy it before changing it). */
  readonly layoutDir: string;
  readonly descriptor: Descriptor;
  readonly image: Image;
  /** The store it was imported into, when one was given. */
  readonly store?: Store;
}

/** Builds the busybox image from /bin/busybox (deterministic: same busybox, same digest). */
export async function buildBusyboxImage(busybox = '/bin/busybox'): Promise<{ image: Image; busyboxSha256: string }> {
  const { tar, busyboxSha256 } = await busyboxRootfsTar({ busybox, mtime: 0 });
  const p = hostPlatform();
  const base = await withConfig(emptyImage({ platform: p }), { ...busyboxConfig(p), created: '1970-01-01T00:00:00Z' } as ImageConfig);
  const image = await appendLayers(base, {
    layer: tarLayer(() => Readable.from([tar]), { compression: 'gzip' }),
    history: { created: '1970-01-01T00:00:00Z', created_by: 'tsbuild test fixture: busybox rootfs from Debian busybox-static' },
  });
  return { image, busyboxSha256 };
}

/**
 * The busybox base image: an OCI layout cached under test/fixtures/.cache keyed by busybox's
 * sha256, and, when `target` (a Store or a tsbuild root directory) is given, imported into
 * that store as `busybox:latest` (= `docker.io/library/busybox:latest`).
 */
export async function makeBusyboxImage(target?: Store | string): Promise<BusyboxImage> {
  const { image, busyboxSha256 } = await buildBusyboxImage();
  const layoutDir = path.join(fixtureCacheDir, `busybox-v${BUSYBOX_RECIPE_VERSION}-${busyboxSha256.slice(0, 16)}-${hostPlatform().architecture}`);
  let layout: OciLayout;
  try {
    layout = await OciLayout.open(layoutDir);
    await layout.find(BUSYBOX_LAYOUT_REF);
  } catch {
    // Build into a temp dir and rename into place: concurrent test workers race safely.
    await fs.mkdir(fixtureCacheDir, { recursive: true });
    const tmp = `${layoutDir}.tmp-${process.pid}-${Date.now()}`;
    const l = await OciLayout.create(tmp);
    await l.write(image, BUSYBOX_LAYOUT_REF);
    try {
      await fs.rename(tmp, layoutDir);
    } catch {
      await fs.rm(tmp, { recursive: true, force: true });
    }
    layout = await OciLayout.open(layoutDir);
  }
  const stored = await layout.image(BUSYBOX_LAYOUT_REF);
  const descriptor = await stored.descriptor();
  if (target === undefined) return { layoutDir, descriptor, image: stored };
  const store = typeof target === 'string' ? await Store.open({ root: target }) : target;
  await writeImage(store, stored);
  await store.tag('busybox:latest', descriptor);
  return { layoutDir, descriptor, image: stored, store };
}
