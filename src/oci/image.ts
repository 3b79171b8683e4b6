import { Readable, Transform, type TransformCallback } from 'node:stream';
import { createHash } from 'node:crypto';
import pLimit from 'p-limit';
import { TsbuildError } from '../errors.js';
import { parseDigest, sha256, type Digest } from './digest.js';
import { autoDecompress, compressStream, compressionOfMediaType, digestLayerBlob, layerMediaType, type Compression, type CompressOptions, type LayerDigests } from './compress.js';
import { hostPlatform, formatPlatform, selectManifest } from './platform.js';
import type { BlobSink, BlobSource } from './store.js';
import { MediaType, type Descriptor, type History, type ImageConfig, type ImageIndex, type ImageManifest, type Platform } from './types.js';

export class ManifestError extends TsbuildError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('TSBUILD_INVALID_MANIFEST', message, options);
  }
}

export class PlatformNotFoundError extends TsbuildError {
  constructor(what: string, want: Platform, available: readonly Descriptor[]) {
    const have = available.filter((d) => d.platform).map((d) => formatPlatform(d.platform!));
    super('TSBUILD_PLATFORM_NOT_FOUND', `${what} has no manifest for ${formatPlatform(want)}; it has ${have.length ? have.join(', ') : 'no platform entries'}`);
  }
}

/** Lazy memo of an async computation: runs once, on first call. */
function once<T>(fn: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => (p ??= fn());
}

/**
 * One layer. Digests and sizes are computed when first asked, then remembered; `open()` gives a
 * fresh stream of the blob (compressed as `mediaType()` says) each time it is called.
 */
export interface Layer {
  digest(): Promise<Digest>;
  diffId(): Promise<Digest>;
  size(): Promise<number>;
  mediaType(): Promise<string>;
  /** The blob: compressed bytes as stored or sent. */
  open(): Promise<Readable>;
  /** The tar inside. */
  openUncompressed(): Promise<Readable>;
  descriptor(): Promise<Descriptor>;
  /** Size of the tar inside (may need a pass over the blob). */
  uncompressedSize(): Promise<number>;
  /** True when `digest()` and `size()` are free (known without reading the blob). */
  digestKnown(): boolean;
}

/** A layer stored as a blob in a store, layout or registry, described by its descriptor. */
export function blobLayer(source: BlobSource, desc: Descriptor, diffId?: Digest): Layer {
  const scan = once(async (): Promise<LayerDigests> => digestLayerBlob(await source.openBlob(desc.digest)));
  const compression = compressionOfMediaType(desc.mediaType);
  return {
    digest: async () => desc.digest,
    size: async () => desc.size,
    mediaType: async () => desc.mediaType,
    diffId: async () => diffId ?? (compression === 'none' ? desc.digest : (await scan()).diffId),
    uncompressedSize: async () => (compression === 'none' ? desc.size : (await scan()).uncompressedSize),
    open: () => source.openBlob(desc.digest),
    openUncompressed: async () => pipeThrough(await source.openBlob(desc.digest), autoDecompress()),
    descriptor: async () => desc,
    digestKnown: () => true,
  };
}

function pipeThrough(src: Readable, t: Transform | import('node:stream').Duplex): Readable {
  src.on('error', (e) => t.destroy(e));
  t.on('close', () => {
    if (!src.destroyed) src.destroy();
  });
  return src.pipe(t);
}

export interface TarLayerOptions extends CompressOptions {
  /** Default gzip. */
  readonly compression?: Compression;
  /** Media type flavour (default oci). */
  readonly flavour?: 'oci' | 'docker';
  readonly annotations?: Readonly<Record<string, string>>;
}

/**
 * A layer from an uncompressed tar that can be re-opened (`openTar` is called once per pass).
 * Compression happens when the blob is opened; the first full `open()` (or a digest query)
 * records digest, size and diffId in one pass, so writing the layer to a store or layout
 * compresses it only once.
 */
export function tarLayer(openTar: () => Readable | Promise<Readable>, options: TarLayerOptions = {}): Layer {
  const compression = options.compression ?? 'gzip';
  const mediaType = layerMediaType(compression, options.flavour);
  let known: LayerDigests | undefined;
  const open = async (): Promise<Readable> => {
    const tar = await openTar();
    const inner = createHash('sha256');
    const outer = createHash('sha256');
    let innerSize = 0;
    let outerSize = 0;
    const countIn = new Transform({
      transform(c: Buffer, _e, cb: TransformCallback) {
        inner.update(c);
        innerSize += c.length;
        cb(null, c);
      },
    });
    const countOut = new Transform({
      transform(c: Buffer, _e, cb: TransformCallback) {
        outer.update(c);
        outerSize += c.length;
        cb(null, c);
      },
      flush(cb: TransformCallback) {
        const diffId = `sha256:${inner.digest('hex')}` as Digest;
        known ??= { digest: compression === 'none' ? diffId : (`sha256:${outer.digest('hex')}` as Digest), size: outerSize, diffId, uncompressedSize: innerSize, compression };
        cb();
      },
    });
    return pipeThrough(pipeThrough(pipeThrough(tar, countIn), compressStream(compression, options)), countOut);
  };
  const scan = once(async (): Promise<LayerDigests> => {
    if (known) return known;
    const s = await open();
    for await (const _ of s) {
      /* drain */
    }
    return known!;
  });
  const descriptor = once(async (): Promise<Descriptor> => {
    const k = await scan();
    return { mediaType, digest: k.digest, size: k.size, ...(options.annotations ? { annotations: options.annotations } : {}) };
  });
  return {
    digest: async () => (await scan()).digest,
    size: async () => (await scan()).size,
    diffId: async () => (await scan()).diffId,
    uncompressedSize: async () => (await scan()).uncompressedSize,
    mediaType: async () => mediaType,
    open,
    openUncompressed: async () => openTar(),
    descriptor,
    digestKnown: () => known !== undefined,
  };
}

/**
 * Streams an uncompressed tar into a sink (store or layout), compressing and hashing in one
 * pass, and returns the stored layer. Use this when a layer is made once (a build step).
 */
export async function importTarLayer<S extends BlobSink & BlobSource>(sink: S, tar: Readable, options: TarLayerOptions = {}): Promise<Layer> {
  const compression = options.compression ?? 'gzip';
  const inner = createHash('sha256');
  const count = new Transform({
    transform(c: Buffer, _e, cb: TransformCallback) {
      inner.update(c);
      cb(null, c);
    },
  });
  const compressed = pipeThrough(pipeThrough(tar, count), compressStream(compression, options));
  const { digest, size } = await sink.putBlob(compressed);
  const diffId = `sha256:${inner.digest('hex')}` as Digest;
  const desc: Descriptor = { mediaType: layerMediaType(compression, options.flavour), digest, size, ...(options.annotations ? { annotations: options.annotations } : {}) };
  return blobLayer(sink, desc, diffId);
}

// ---- images -------------------------------------------------------------------------------

/** An image: one manifest, one config, its layers. Raw bytes are what was digested. */
export interface Image {
  readonly kind: 'image';
  mediaType(): Promise<string>;
  rawManifest(): Promise<Buffer>;
  manifest(): Promise<ImageManifest>;
  digest(): Promise<Digest>;
  descriptor(): Promise<Descriptor>;
  rawConfig(): Promise<Buffer>;
  config(): Promise<ImageConfig>;
  configDescriptor(): Promise<Descriptor>;
  layers(): Promise<readonly Layer[]>;
}

/** An image index (or Docker manifest list). */
export interface Index {
  readonly kind: 'index';
  mediaType(): Promise<string>;
  rawManifest(): Promise<Buffer>;
  manifest(): Promise<ImageIndex>;
  digest(): Promise<Digest>;
  descriptor(): Promise<Descriptor>;
  /** The child manifests with their descriptors (platform, annotations). Nested indexes are returned as Index. */
  children(): Promise<readonly { descriptor: Descriptor; item: Image | Index }[]>;
}

export type ImageOrIndex = Image | Index;

function isIndexMediaType(mt: string): boolean {
  return mt === MediaType.OciIndex || mt === MediaType.DockerManifestList;
}

function parseJson(raw: Buffer, what: string): Record<string, unknown> {
  let j: unknown;
  try {
    j = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw new ManifestError(`${what} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (typeof j !== 'object' || j === null || Array.isArray(j)) throw new ManifestError(`${what} is not a JSON object`);
  return j as Record<string, unknown>;
}

function checkDescriptor(d: unknown, what: string): Descriptor {
  if (typeof d !== 'object' || d === null) throw new ManifestError(`${what}: missing descriptor`);
  const x = d as Record<string, unknown>;
  if (typeof x.mediaType !== 'string') throw new ManifestError(`${what}: descriptor has no mediaType`);
  if (typeof x.digest !== 'string') throw new ManifestError(`${what}: descriptor has no digest`);
  try {
    parseDigest(x.digest);
  } catch (err) {
    throw new ManifestError(`${what}: ${(err as Error).message}`, { cause: err });
  }
  if (typeof x.size !== 'number' || !Number.isSafeInteger(x.size) || x.size < 0) throw new ManifestError(`${what}: descriptor size must be a non-negative integer`);
  return d as Descriptor;
}

/** Parses and checks an image manifest (OCI or Docker schema2). Unknown fields are kept. */
export function parseManifest(raw: Buffer, what = 'manifest'): ImageManifest {
  const j = parseJson(raw, what);
  if (j.schemaVersion !== 2) throw new ManifestError(`${what}: schemaVersion ${JSON.stringify(j.schemaVersion)} is not supported (want 2; Docker schema1 is deprecated)`);
  if (Array.isArray(j.manifests)) throw new ManifestError(`${what} is an index, not an image manifest`);
  checkDescriptor(j.config, `${what} config`);
  if (!Array.isArray(j.layers)) throw new ManifestError(`${what}: layers must be an array`);
  j.layers.forEach((l, i) => checkDescriptor(l, `${what} layer ${i}`));
  return j as unknown as ImageManifest;
}

/** Parses and checks an image index or Docker manifest list. */
export function parseIndex(raw: Buffer, what = 'index'): ImageIndex {
  const j = parseJson(raw, what);
  if (j.schemaVersion !== 2) throw new ManifestError(`${what}: schemaVersion ${JSON.stringify(j.schemaVersion)} is not supported`);
  if (!Array.isArray(j.manifests)) throw new ManifestError(`${what}: manifests must be an array`);
  j.manifests.forEach((m, i) => checkDescriptor(m, `${what} entry ${i}`));
  return j as unknown as ImageIndex;
}

/** Parses an image config; checks architecture, os and rootfs. */
export function parseConfig(raw: Buffer, what = 'config'): ImageConfig {
  const j = parseJson(raw, what);
  const rootfs = j.rootfs as { type?: unknown; diff_ids?: unknown } | undefined;
  if (!rootfs || !Array.isArray(rootfs.diff_ids)) throw new ManifestError(`${what}: rootfs.diff_ids is missing`);
  for (const d of rootfs.diff_ids) {
    if (typeof d !== 'string') throw new ManifestError(`${what}: rootfs.diff_ids holds a non-string`);
    parseDigest(d);
  }
  return j as unknown as ImageConfig;
}

/** Loads a manifest or index by descriptor from a source. Bytes are verified against the digest. */
export async function loadManifest(source: BlobSource, desc: Descriptor): Promise<ImageOrIndex> {
  const raw = await source.readBlob(desc.digest);
  if (isIndexMediaType(desc.mediaType) || isIndexMediaType(sniffMediaType(raw))) return indexFromRaw(source, raw, desc.digest);
  return imageFromRaw(source, raw, desc.digest);
}

function sniffMediaType(raw: Buffer): string {
  try {
    const j = JSON.parse(raw.toString()) as { mediaType?: unknown; manifests?: unknown };
    if (typeof j.mediaType === 'string') return j.mediaType;
    return Array.isArray(j.manifests) ? MediaType.OciIndex : MediaType.OciManifest;
  } catch {
    return 'application/octet-stream';
  }
}

/** An image over a source, from its raw manifest bytes. */
export function imageFromRaw(source: BlobSource, raw: Buffer, digest: Digest = sha256(raw)): Image {
  const manifest = parseManifest(raw, `manifest ${digest}`);
  const mediaType = manifest.mediaType ?? MediaType.OciManifest;
  const rawConfig = once(() => source.readBlob(manifest.config.digest));
  const config = once(async () => parseConfig(await rawConfig(), `config ${manifest.config.digest}`));
  const layers = once(async () => {
    const isImage = manifest.config.mediaType === MediaType.OciConfig || manifest.config.mediaType === MediaType.DockerConfig;
    const diffIds = isImage ? (await config()).rootfs.diff_ids : [];
    if (isImage && diffIds.length !== manifest.layers.length) throw new ManifestError(`image ${digest}: config has ${diffIds.length} diff_ids for ${manifest.layers.length} layers`);
    return manifest.layers.map((d, i) => blobLayer(source, d, diffIds[i]));
  });
  return {
    kind: 'image',
    mediaType: async () => mediaType,
    rawManifest: async () => raw,
    manifest: async () => manifest,
    digest: async () => digest,
    descriptor: async () => ({ mediaType, digest, size: raw.length }),
    rawConfig,
    config,
    configDescriptor: async () => manifest.config,
    layers,
  };
}

/** An index over a source, from its raw bytes. */
export function indexFromRaw(source: BlobSource, raw: Buffer, digest: Digest = sha256(raw)): Index {
  const index = parseIndex(raw, `index ${digest}`);
  const mediaType = index.mediaType ?? MediaType.OciIndex;
  return {
    kind: 'index',
    mediaType: async () => mediaType,
    rawManifest: async () => raw,
    manifest: async () => index,
    digest: async () => digest,
    descriptor: async () => ({ mediaType, digest, size: raw.length }),
    children: once(async () => Promise.all(index.manifests.map(async (d) => ({ descriptor: d, item: await loadManifest(source, d) })))),
  };
}

/**
 * The image for a platform: an image is returned as is (when its config matches or no platform
 * was asked for), an index is searched (nested indexes too) for the best match.
 */
export async function resolveImage(source: BlobSource, desc: Descriptor, platform?: Platform): Promise<Image> {
  const item = await loadManifest(source, desc);
  return selectImage(source, item, platform);
}

export async function selectImage(source: BlobSource, item: ImageOrIndex, platform?: Platform): Promise<Image> {
  if (item.kind === 'image') return item;
  const want = platform ?? hostPlatform();
  const idx = await item.manifest();
  const chosen = selectManifest(idx.manifests, want);
  if (!chosen) {
    const nested = idx.manifests.find((d) => isIndexMediaType(d.mediaType));
    if (nested) return resolveImage(source, nested, want);
    throw new PlatformNotFoundError(`index ${await item.digest()}`, want, idx.manifests);
  }
  return resolveImage(source, chosen, want);
}

// ---- building and transforming ----------------------------------------------------------

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** What a computed image is made of. */
interface ImageParts {
  readonly manifestMediaType: string;
  readonly configMediaType: string;
  readonly config: ImageConfig;
  readonly layers: readonly Layer[];
  readonly annotations?: Readonly<Record<string, string>>;
  readonly extra?: Readonly<Record<string, unknown>>;
}

function computedImage(parts: ImageParts): Image {
  const docker = parts.manifestMediaType === MediaType.DockerManifest;
  const rawConfig = once(async () => Buffer.from(JSON.stringify(parts.config)));
  const configDescriptor = once(async (): Promise<Descriptor> => {
    const raw = await rawConfig();
    return { mediaType: parts.configMediaType, digest: sha256(raw), size: raw.length };
  });
  const manifest = once(async (): Promise<ImageManifest> => {
    const layerDescs = await Promise.all(
      parts.layers.map(async (l) => {
        const d = await l.descriptor();
        if (docker && d.mediaType === MediaType.OciLayerGzip) return { ...d, mediaType: MediaType.DockerLayerGzip };
        if (!docker && d.mediaType === MediaType.DockerLayerGzip) return { ...d, mediaType: MediaType.OciLayerGzip };
        return d;
      }),
    );
    const m: Record<string, unknown> = { ...parts.extra, schemaVersion: 2, mediaType: parts.manifestMediaType, config: await configDescriptor(), layers: layerDescs };
    if (parts.annotations && Object.keys(parts.annotations).length > 0) m.annotations = parts.annotations;
    return m as unknown as ImageManifest;
  });
  const rawManifest = once(async () => Buffer.from(JSON.stringify(await manifest())));
  return {
    kind: 'image',
    mediaType: async () => parts.manifestMediaType,
    rawManifest,
    manifest,
    digest: async () => sha256(await rawManifest()),
    descriptor: async () => {
      const raw = await rawManifest();
      return { mediaType: parts.manifestMediaType, digest: sha256(raw), size: raw.length };
    },
    rawConfig,
    config: async () => parts.config,
    configDescriptor,
    layers: async () => parts.layers,
  };
}

async function partsOf(img: Image): Promise<ImageParts> {
  const m = await img.manifest();
  const { schemaVersion: _s, mediaType: _m, config: _c, layers: _l, annotations, ...extra } = m as ImageManifest & Record<string, unknown>;
  return {
    manifestMediaType: await img.mediaType(),
    configMediaType: m.config.mediaType,
    config: await img.config(),
    layers: await img.layers(),
    ...(annotations ? { annotations } : {}),
    extra,
  };
}

/** An image with no layers (`FROM scratch`). */
export function emptyImage(options: { platform?: Platform; flavour?: 'oci' | 'docker' } = {}): Image {
  const p = options.platform ?? hostPlatform();
  const config: Mutable<ImageConfig> = { architecture: p.architecture, os: p.os, config: {}, rootfs: { type: 'layers', diff_ids: [] } };
  if (p.variant) config.variant = p.variant;
  const docker = options.flavour === 'docker';
  return computedImage({ manifestMediaType: docker ? MediaType.DockerManifest : MediaType.OciManifest, configMediaType: docker ? MediaType.DockerConfig : MediaType.OciConfig, config, layers: [] });
}

/** A layer to append, with its history entry (default: an entry with no fields beyond `created` when given). */
export interface Addendum {
  readonly layer: Layer;
  readonly history?: History;
}

/** A new image: `base` plus layers (diff_ids and history appended). `base` is unchanged. */
export async function appendLayers(base: Image, ...adds: readonly (Layer | Addendum)[]): Promise<Image> {
  const parts = await partsOf(base);
  const items = adds.map((a) => ('layer' in a ? a : { layer: a }));
  const diffIds = await Promise.all(items.map((a) => a.layer.diffId()));
  const cfg = parts.config;
  const history = [...(cfg.history ?? []), ...items.map((a) => a.history ?? {})];
  const config: ImageConfig = { ...cfg, rootfs: { type: 'layers', diff_ids: [...cfg.rootfs.diff_ids, ...diffIds] }, history };
  return computedImage({ ...parts, config, layers: [...parts.layers, ...items.map((a) => a.layer)] });
}

/** A new image with history entries for steps that made no layer (`empty_layer: true` is set). */
export async function appendHistory(base: Image, ...entries: readonly History[]): Promise<Image> {
  const parts = await partsOf(base);
  const config: ImageConfig = { ...parts.config, history: [...(parts.config.history ?? []), ...entries.map((h) => ({ ...h, empty_layer: true }))] };
  return computedImage({ ...parts, config });
}

/** A new image with another config: an object, or a function of the old one. rootfs must stay consistent with the layers. */
export async function withConfig(base: Image, update: ImageConfig | ((old: ImageConfig) => ImageConfig)): Promise<Image> {
  const parts = await partsOf(base);
  const config = typeof update === 'function' ? update(parts.config) : update;
  if (config.rootfs.diff_ids.length !== parts.layers.length) throw new ManifestError(`withConfig: config has ${config.rootfs.diff_ids.length} diff_ids for ${parts.layers.length} layers`);
  return computedImage({ ...parts, config });
}

/** A new image with manifest annotations merged in (`undefined` values remove keys). */
export async function withAnnotations(base: Image, annotations: Readonly<Record<string, string | undefined>>): Promise<Image> {
  const parts = await partsOf(base);
  const merged: Record<string, string> = { ...parts.annotations };
  for (const [k, v] of Object.entries(annotations)) {
    if (v === undefined) delete merged[k];
    else merged[k] = v;
  }
  return computedImage({ ...parts, annotations: merged });
}

/** A new image in OCI or Docker schema2 media types (layers and config converted alike). */
export async function withFlavour(base: Image, flavour: 'oci' | 'docker'): Promise<Image> {
  const parts = await partsOf(base);
  const docker = flavour === 'docker';
  return computedImage({ ...parts, manifestMediaType: docker ? MediaType.DockerManifest : MediaType.OciManifest, configMediaType: docker ? MediaType.DockerConfig : MediaType.OciConfig });
}

/** An index over images (multi-platform). Platforms come from each config unless given. */
export function buildIndex(entries: readonly { item: ImageOrIndex; platform?: Platform; annotations?: Readonly<Record<string, string>> }[], options: { flavour?: 'oci' | 'docker'; annotations?: Readonly<Record<string, string>> } = {}): Index {
  const mediaType = options.flavour === 'docker' ? MediaType.DockerManifestList : MediaType.OciIndex;
  const manifest = once(async (): Promise<ImageIndex> => {
    const manifests = await Promise.all(
      entries.map(async (e) => {
        const d = await e.item.descriptor();
        let platform = e.platform;
        if (!platform && e.item.kind === 'image') {
          const c = await e.item.config();
          platform = { architecture: c.architecture, os: c.os, ...(c.variant ? { variant: c.variant } : {}) };
        }
        return { ...d, ...(platform ? { platform } : {}), ...(e.annotations ? { annotations: e.annotations } : {}) };
      }),
    );
    return { schemaVersion: 2, mediaType, manifests, ...(options.annotations ? { annotations: options.annotations } : {}) };
  });
  const raw = once(async () => Buffer.from(JSON.stringify(await manifest())));
  return {
    kind: 'index',
    mediaType: async () => mediaType,
    rawManifest: raw,
    manifest,
    digest: async () => sha256(await raw()),
    descriptor: async () => {
      const r = await raw();
      return { mediaType, digest: sha256(r), size: r.length };
    },
    children: async () => Promise.all(entries.map(async (e) => ({ descriptor: await e.item.descriptor(), item: e.item }))),
  };
}

// ---- writing ------------------------------------------------------------------------------

export interface WriteImageOptions {
  /** Layers written at once (default 4). */
  readonly concurrency?: number;
}

/**
 * Writes an image or index into a sink (store, layout): layers, config, manifest; for an index
 * its children first. Blobs already present are skipped without being opened. Returns the
 * descriptor of the top manifest.
 */
export async function writeImage(sink: BlobSink, item: ImageOrIndex, options: WriteImageOptions = {}): Promise<Descriptor> {
  const limit = pLimit(options.concurrency ?? 4);
  return writeItem(sink, item, limit);
}

async function writeItem(sink: BlobSink, item: ImageOrIndex, limit: ReturnType<typeof pLimit>): Promise<Descriptor> {
  if (item.kind === 'index') {
    for (const c of await item.children()) await writeItem(sink, c.item, limit);
  } else {
    const layers = await item.layers();
    await Promise.all(
      layers.map((l) =>
        limit(async () => {
          if (l.digestKnown()) {
            const [digest, size] = await Promise.all([l.digest(), l.size()]);
            if (await sink.hasBlob(digest)) return;
            await sink.putBlob(() => l.open(), { digest, size });
          } else {
            await sink.putBlob(() => l.open());
          }
        }),
      ),
    );
    const cd = await item.configDescriptor();
    await sink.putBlob(await item.rawConfig(), { digest: cd.digest, size: cd.size });
  }
  const raw = await item.rawManifest();
  const desc = await item.descriptor();
  await sink.putBlob(raw, { digest: desc.digest, size: desc.size });
  return desc;
}

/** Every blob an image or index refers to, with descriptors (layers, config, manifests), children first. */
export async function collectBlobs(item: ImageOrIndex): Promise<{ descriptor: Descriptor; open: () => Promise<Readable> }[]> {
  const out: { descriptor: Descriptor; open: () => Promise<Readable> }[] = [];
  const seen = new Set<string>();
  const add = (descriptor: Descriptor, open: () => Promise<Readable>) => {
    if (seen.has(descriptor.digest)) return;
    seen.add(descriptor.digest);
    out.push({ descriptor, open });
  };
  const walk = async (it: ImageOrIndex): Promise<void> => {
    if (it.kind === 'index') {
      for (const c of await it.children()) await walk(c.item);
    } else {
      for (const l of await it.layers()) add(await l.descriptor(), () => l.open());
      const raw = await it.rawConfig();
      add(await it.configDescriptor(), async () => Readable.from([raw]));
    }
    const raw = await it.rawManifest();
    add(await it.descriptor(), async () => Readable.from([raw]));
  };
  await walk(item);
  return out;
}
