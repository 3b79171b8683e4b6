import { Readable, Transform, type TransformCallback, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { TsbuildError } from '../errors.js';
import { detectCompression, layerMediaType, type Compression } from './compress.js';
import { digestHex, type Digest } from './digest.js';
import type { Image } from './image.js';
import { packInto, TarWriter, type ArchiveOptions } from './layout.js';
import { familiarName, parseReference } from './reference.js';
import type { BlobSink, BlobSource } from './store.js';
import { MediaType, type Descriptor, type ImageConfig, type ImageManifest } from './types.js';

export class DockerArchiveError extends TsbuildError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('TSBUILD_DOCKER_ARCHIVE', message, options);
  }
}

/** One entry of a docker archive's manifest.json. */
export interface DockerArchiveManifestEntry {
  readonly Config: string;
  readonly RepoTags: readonly string[] | null;
  readonly Layers: readonly string[];
}

function familiarTag(ref: string): string {
  const r = parseReference(ref);
  return `${familiarName(r)}:${r.tag ?? 'latest'}`;
}

/**
 * Streams a `docker save` archive (as `docker load` and `skopeo docker-archive:` read it):
 * `<config hex>.json`, one uncompressed `<diffId hex>/layer.tar` per layer, `manifest.json`
 * and `repositories`. Tags are written in docker's short form (`busybox:latest`).
 */
export async function writeDockerArchive(out: Writable, entries: readonly { image: Image; tags?: readonly string[] }[], options: ArchiveOptions = {}): Promise<void> {
  const w = new TarWriter(options);
  const manifest: DockerArchiveManifestEntry[] = [];
  const repositories: Record<string, Record<string, string>> = {};
  const written = new Set<string>();
  await packInto(w.pack, out, async () => {
    for (const e of entries) {
      const cfgDesc = await e.image.configDescriptor();
      const configName = `${digestHex(cfgDesc.digest)}.json`;
      if (!written.has(configName)) {
        w.file(configName, await e.image.rawConfig());
        written.add(configName);
      }
      const layerNames: string[] = [];
      for (const layer of await e.image.layers()) {
        const diffId = await layer.diffId();
        const id = digestHex(diffId);
        const name = `${id}/layer.tar`;
        layerNames.push(name);
        if (written.has(name)) continue;
        written.add(name);
        w.dir(`${id}/`);
        w.file(`${id}/VERSION`, '1.0');
        await w.stream(name, await layer.uncompressedSize(), await layer.openUncompressed());
      }
      const tags = (e.tags ?? []).map(familiarTag);
      manifest.push({ Config: configName, RepoTags: tags, Layers: layerNames });
      const top = layerNames.length ? layerNames[layerNames.length - 1]!.split('/')[0]! : digestHex(cfgDesc.digest);
      for (const t of tags) {
        const i = t.lastIndexOf(':');
        (repositories[t.slice(0, i)] ??= {})[t.slice(i + 1)] = top;
      }
    }
    w.file('manifest.json', JSON.stringify(manifest));
    if (Object.keys(repositories).length) w.file('repositories', JSON.stringify(repositories));
  });
}

/** One image read from a docker archive: the OCI manifest made for it and its tags. */
export interface DockerArchiveImage {
  readonly descriptor: Descriptor;
  readonly tags: readonly string[];
}

const SMALL = /(^|\/)(manifest\.json|repositories|index\.json|oci-layout|json|VERSION)$|\.json$/;

/**
 * Reads a docker archive (classic `docker save`, skopeo's, or the OCI-shaped one of Docker ≥ 25)
 * from a stream into `sink`: layers are streamed in and hashed on the way (compressed or not, by
 * magic bytes), configs kept, and an OCI manifest is written for each image. Tags are returned
 * normalized (`docker.io/library/busybox:latest`).
 */
export async function readDockerArchive(input: Readable, sink: BlobSink & BlobSource): Promise<DockerArchiveImage[]> {
  const small = new Map<string, Buffer>();
  const blobs = new Map<string, { digest: Digest; size: number; compression: Compression }>();
  const extract = tar.extract();
  const done = new Promise<void>((resolve, reject) => {
    extract.on('entry', (header, stream, next) => {
      const name = header.name.replace(/^\.?\/+/, '').replace(/^\.\//, '');
      const handle = async () => {
        if (header.type !== 'file' && header.type !== 'contiguous-file') {
          stream.resume();
          return;
        }
        if (SMALL.test(name) && (header.size ?? 0) < 64 * 1024 * 1024) {
          const chunks: Buffer[] = [];
          for await (const c of stream) chunks.push(c as Buffer);
          small.set(name, Buffer.concat(chunks));
          return;
        }
        let head = Buffer.alloc(0);
        const peek = new Transform({
          transform(c: Buffer, _e, cb: TransformCallback) {
            if (head.length < 4) head = Buffer.concat([head, c.subarray(0, 4 - head.length)]);
            cb(null, c);
          },
        });
        // pipeline, not pipe: a truncated archive fails the entry's stream, and the wrapper's
        // 'error' (pipe() does not pass it on) would have no listener. Its rejection is taken
        // with putBlob's, which meets the same failure as `peek` is destroyed.
        const copied = pipeline(Readable.from(stream), peek);
        const [r] = await Promise.all([sink.putBlob(peek), copied]);
        blobs.set(name, { ...r, compression: detectCompression(head) });
      };
      handle().then(
        () => next(),
        (err: unknown) => {
          reject(err);
          extract.destroy(err as Error);
        },
      );
    });
    extract.on('finish', resolve);
    extract.on('error', reject);
  });
  const results = await Promise.allSettled([done, pipeline(input, extract as unknown as NodeJS.WritableStream)]);
  for (const r of results) if (r.status === 'rejected') throw new DockerArchiveError(`cannot read docker archive: ${(r.reason as Error).message}`, { cause: r.reason });
  const manifestRaw = small.get('manifest.json');
  if (!manifestRaw) throw new DockerArchiveError('docker archive has no manifest.json');
  let entries: DockerArchiveManifestEntry[];
  try {
    entries = JSON.parse(manifestRaw.toString('utf8')) as DockerArchiveManifestEntry[];
    if (!Array.isArray(entries)) throw new Error('not an array');
  } catch (err) {
    throw new DockerArchiveError(`docker archive manifest.json is invalid: ${(err as Error).message}`, { cause: err });
  }
  const out: DockerArchiveImage[] = [];
  for (const e of entries) {
    let configRaw = small.get(e.Config);
    if (!configRaw) {
      const b = blobs.get(e.Config);
      if (!b) throw new DockerArchiveError(`docker archive: config ${e.Config} named in manifest.json is missing`);
      configRaw = await sink.readBlob(b.digest);
    }
    const config = JSON.parse(configRaw.toString('utf8')) as ImageConfig;
    const diffIds = config.rootfs?.diff_ids ?? [];
    if (diffIds.length !== e.Layers.length) throw new DockerArchiveError(`docker archive: config ${e.Config} has ${diffIds.length} diff_ids for ${e.Layers.length} layers`);
    const layers: Descriptor[] = e.Layers.map((l, i) => {
      const b = blobs.get(l);
      if (!b) throw new DockerArchiveError(`docker archive: layer ${l} named in manifest.json is missing`);
      if (b.compression === 'none' && b.digest !== diffIds[i]) throw new DockerArchiveError(`docker archive: layer ${l} hashes to ${b.digest}, but the config says ${String(diffIds[i])}`);
      return { mediaType: layerMediaType(b.compression), digest: b.digest, size: b.size };
    });
    const cfg = await sink.putBlob(configRaw);
    const manifest: ImageManifest = { schemaVersion: 2, mediaType: MediaType.OciManifest, config: { mediaType: MediaType.OciConfig, digest: cfg.digest, size: cfg.size }, layers };
    const raw = Buffer.from(JSON.stringify(manifest));
    const m = await sink.putBlob(raw);
    const tags = (e.RepoTags ?? []).map((t) => {
      const r = parseReference(t);
      return `${r.domain}/${r.path}:${r.tag ?? 'latest'}`;
    });
    out.push({ descriptor: { mediaType: MediaType.OciManifest, digest: m.digest, size: m.size }, tags });
  }
  return out;
}
