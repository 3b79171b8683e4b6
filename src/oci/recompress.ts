/**
 * Compressing the uncompressed layers of a stored image, as `docker push` does for a local
 * image: the builder keeps the layers it makes uncompressed (compressing them once, when an
 * output needs it), so an image pushed or exported from the store may need this first.
 */
import { PassThrough } from 'node:stream';
import { compressLayer, compressionOfMediaType, layerMediaType, type Compression } from './compress.js';
import type { Digest } from './digest.js';
import { childDescriptors, mediaTypeOf, type Store } from './store.js';
import { MediaType, type Descriptor, type ImageIndex, type ImageManifest } from './types.js';

export interface RecompressOptions {
  /** Compression for the uncompressed layers; default gzip. Compressed layers are kept as they are. */
  readonly compression?: Exclude<Compression, 'none'>;
  /** gzip 1–9 (default 6), zstd 1–19 (default 3). */
  readonly level?: number;
}

const isIndex = (mt: string) => mt === MediaType.OciIndex || mt === MediaType.DockerManifestList;

/**
 * The manifest (or index) `desc` of the store with every uncompressed layer compressed: the
 * compressed blobs and a new manifest are written into the store and the new descriptor is
 * returned; `desc` itself when nothing needed compressing. Configs (and so image IDs) do not
 * change: a config names its layers by diffID.
 */
export async function compressStoredImage(store: Store, desc: Descriptor, options: RecompressOptions = {}): Promise<Descriptor> {
  const compression = options.compression ?? 'gzip';
  const raw = await store.readBlob(desc.digest);
  const mediaType = desc.mediaType || mediaTypeOf(raw);
  if (isIndex(mediaType)) {
    const index = JSON.parse(raw.toString('utf8')) as ImageIndex;
    let changed = false;
    const manifests: Descriptor[] = [];
    for (const child of index.manifests) {
      const known = await store.hasBlob(child.digest);
      const next = known ? await compressStoredImage(store, child, options) : child;
      if (next.digest !== child.digest) changed = true;
      manifests.push(next);
    }
    if (!changed) return desc;
    return put(store, { ...index, manifests }, mediaType, desc);
  }
  if (!childDescriptors(raw).some((c) => compressionOfMediaType(c.mediaType) === 'none')) return desc;
  const manifest = JSON.parse(raw.toString('utf8')) as ImageManifest;
  const flavour = mediaType === MediaType.DockerManifest ? 'docker' : 'oci';
  const layers: Descriptor[] = [];
  for (const l of manifest.layers) {
    if (compressionOfMediaType(l.mediaType) !== 'none') {
      layers.push(l);
      continue;
    }
    const out = new PassThrough();
    // destroyed with the error below, maybe before putBlob has piped it anywhere: an 'error'
    // event with no listener would end the process (putBlob still sees the stream fail)
    out.on('error', () => {});
    const stored = store.putBlob(out);
    const compressed = (async () => {
      try {
        return await compressLayer(await store.openBlob(l.digest), compression, out, options.level !== undefined ? { level: options.level } : {});
      } catch (err) {
        out.destroy(err as Error); // ends putBlob too (it removes its temp file), even when openBlob failed
        throw err;
      }
    })();
    // Both settle before anything is reported: a failure on either side ends the other, and
    // neither rejection may go unawaited.
    const [s, c] = await Promise.allSettled([stored, compressed]);
    if (c.status === 'rejected') {
      // A failing putBlob (a full disk) leaves compression only a premature close: report putBlob's.
      throw s.status === 'rejected' && (c.reason as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE' ? s.reason : c.reason;
    }
    if (s.status === 'rejected') throw s.reason;
    const d = c.value;
    if (d.diffId !== l.digest) throw new Error(`layer ${l.digest} does not match its digest (read ${d.diffId})`);
    const { digest: _d, size: _s, mediaType: _m, ...rest } = l;
    layers.push({ ...rest, mediaType: layerMediaType(compression, flavour), digest: d.digest, size: d.size });
  }
  return put(store, { ...manifest, layers }, mediaType, desc);
}

async function put(store: Store, doc: ImageManifest | ImageIndex, mediaType: string, old: Descriptor): Promise<Descriptor> {
  const bytes = Buffer.from(JSON.stringify(doc));
  const { digest, size } = await store.putBlob(bytes);
  return { ...old, mediaType, digest: digest as Digest, size };
}
