import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import pLimit from 'p-limit';
import { didYouMean } from '../../util/suggest.js';
import type { Digest } from '../digest.js';
import { formatReference, parseReference, repositoryName } from '../reference.js';
import { childDescriptors, mediaTypeOf, TagNotFoundError, type Store } from '../store.js';
import { compressStoredImage } from '../recompress.js';
import { MediaType, type Descriptor } from '../types.js';
import type { BlobSource } from './client.js';
import { RegistryError } from './errors.js';
import { clientFor, linkedAbort, openStore, settleAll, type TransferOptions } from './pull.js';

export interface PushOptions extends TransferOptions {
  /** The local image to push (a store reference); default: the destination reference itself. */
  readonly source?: string;
  /**
   * Repositories on the destination registry to mount blobs from. Default: the repositories of
   * the store's tags on that registry whose images hold the blob.
   */
  readonly mountFrom?: readonly string[];
  /** Upload in PATCH chunks of this many bytes (default: one monolithic PUT per blob). */
  readonly chunkSize?: number;
  /**
   * What to do with uncompressed layers (a locally built image keeps its layers uncompressed):
   * compress them first, gzip by default, as `docker push` does; 'uncompressed' pushes them as
   * they are. Compressed layers are always pushed as stored.
   */
  readonly compression?: 'gzip' | 'zstd' | 'uncompressed';
}

export interface PushResult {
  /** The normalized destination reference. */
  readonly reference: string;
  /** Digest of the top manifest or index as pushed. */
  readonly digest: Digest;
  readonly descriptor: Descriptor;
  readonly uploaded: number;
  readonly mounted: number;
  readonly existing: number;
  /** Bytes uploaded (mounted and existing blobs not counted). */
  readonly bytes: number;
}

function isIndex(mediaType: string): boolean {
  return mediaType === MediaType.OciIndex || mediaType === MediaType.DockerManifestList;
}

/** A store blob as an upload source (re-openable at any offset). */
function storeSource(store: Store, digest: Digest, size: number): BlobSource {
  return {
    size,
    open: (start, end = size) => (end <= start ? Readable.from([]) : createReadStream(store.blobPath(digest), { start, end: end - 1, highWaterMark: 1024 * 1024 })),
  };
}

/**
 * Pushes an image or index from the local store: every blob (in parallel; skipped when the
 * registry has it; mounted from another repository of the same registry when one holds it),
 * then child manifests by digest, then the top manifest or index under the tag — so the tag
 * never points at something incomplete.
 */
export async function push(reference: string, opts: PushOptions = {}): Promise<PushResult> {
  const { controller, dispose } = linkedAbort(opts.signal);
  try {
    return await pushWith(reference, opts, controller);
  } finally {
    dispose();
  }
}

async function pushWith(reference: string, opts: PushOptions, abort: AbortController): Promise<PushResult> {
  const dst = parseReference(reference);
  const src = parseReference(opts.source ?? reference);
  const store = await openStore(opts);
  const entry = await store.resolve(src);
  if (!entry) {
    const names = (await store.listTags()).map((t) => t.name);
    throw new TagNotFoundError(formatReference(src), didYouMean(formatReference(src), names));
  }
  const client = clientFor(dst, { ...opts, signal: abort.signal }).forPush(dst.path);
  const repo = dst.path;
  const dstName = formatReference(dst);
  const target = (object: string) => ({ repository: repositoryName(dst), object });

  // Walk the local tree: manifests children-first, blobs deduplicated.
  const manifests: { desc: Descriptor; bytes: Buffer }[] = [];
  const blobs = new Map<Digest, Descriptor>();
  const remoteOnly = new Set<Digest>();
  const visited = new Set<Digest>();
  const walk = async (desc: Descriptor): Promise<void> => {
    if (visited.has(desc.digest)) return;
    visited.add(desc.digest);
    const size = await store.statBlob(desc.digest);
    if (size === undefined) {
      // Not here: fine only when the registry already has it (e.g. other platforms of a partial pull).
      if (isIndex(desc.mediaType) || /manifest/.test(desc.mediaType)) {
        if (await client.headManifest(repo, desc.digest)) return void remoteOnly.add(desc.digest);
        throw new RegistryError('TSBUILD_REGISTRY_NOT_FOUND', target(`manifest ${desc.digest}`), `it is missing from the local store ${store.dir} and from the registry; pull it with all platforms first`);
      }
      if ((await client.blobSize(repo, desc.digest)) !== undefined) return void remoteOnly.add(desc.digest);
      throw new RegistryError('TSBUILD_REGISTRY_NOT_FOUND', target(`blob ${desc.digest}`), `it is missing from the local store ${store.dir} and from the registry`);
    }
    const bytes = await store.readBlob(desc.digest);
    const mediaType = desc.mediaType || mediaTypeOf(bytes);
    for (const child of childDescriptors(bytes)) {
      if (isIndex(child.mediaType) || child.mediaType === MediaType.OciManifest || child.mediaType === MediaType.DockerManifest) await walk(child);
      else if (!child.urls?.length || (await store.hasBlob(child.digest))) blobs.set(child.digest, child);
      // Foreign layers (with urls) that are not stored are not pushed, like docker.
    }
    manifests.push({ desc: { mediaType, digest: desc.digest, size: bytes.length }, bytes });
  };
  const compression = opts.compression ?? 'gzip';
  const pushed = compression === 'uncompressed' ? entry.descriptor : await compressStoredImage(store, entry.descriptor, { compression });
  await walk(pushed);

  // Which other repositories of this registry hold which blobs (for cross-repository mounts).
  const mountMap = new Map<Digest, string[]>();
  if (!opts.mountFrom) {
    for (const t of await store.listTags()) {
      if (t.reference.domain !== dst.domain || t.reference.path === dst.path) continue;
      for (const d of await store.reachable([t.descriptor])) {
        const list = mountMap.get(d) ?? [];
        if (!list.includes(t.reference.path)) list.push(t.reference.path);
        mountMap.set(d, list);
      }
    }
  }

  const limit = pLimit(opts.concurrency ?? 4);
  let uploaded = 0;
  let mounted = 0;
  let existing = 0;
  let bytes = 0;
  await settleAll(
    [...blobs.values()].map((desc) =>
      limit(async () => {
        const size = await store.statBlob(desc.digest);
        if (size === undefined || size !== desc.size) {
          if ((await client.blobSize(repo, desc.digest)) !== undefined) {
            existing++;
            return;
          }
          throw new RegistryError('TSBUILD_REGISTRY_NOT_FOUND', target(`blob ${desc.digest}`), size === undefined ? `it is missing from the local store ${store.dir}` : `the local store holds ${size} bytes, the manifest says ${desc.size}`);
        }
        opts.onProgress?.({ type: 'blob', digest: desc.digest, size, status: 'started' });
        const mountFrom = opts.mountFrom ?? mountMap.get(desc.digest) ?? [];
        const res = await client.uploadBlob(repo, desc.digest, storeSource(store, desc.digest, size), {
          mountFrom,
          ...(opts.chunkSize !== undefined ? { chunkSize: opts.chunkSize } : {}),
          ...(opts.onProgress ? { onProgress: (done: number) => opts.onProgress!({ type: 'bytes', digest: desc.digest, size, done }) } : {}),
        });
        if (res === 'uploaded') {
          uploaded++;
          bytes += size;
        } else if (res === 'mounted') mounted++;
        else existing++;
        opts.onProgress?.({ type: 'blob', digest: desc.digest, size, status: res === 'uploaded' ? 'done' : res });
      }),
    ),
    abort,
  );

  // Manifests: children by digest, then the top one under the tag (or its digest).
  const top = manifests[manifests.length - 1]!;
  for (const m of manifests.slice(0, -1)) {
    if (remoteOnly.has(m.desc.digest)) continue;
    await client.putManifest(repo, m.desc.digest, m.bytes, m.desc.mediaType);
    opts.onProgress?.({ type: 'manifest', reference: `${repositoryName(dst)}@${m.desc.digest}`, digest: m.desc.digest, status: 'pushed' });
  }
  if (dst.digest !== undefined && dst.digest !== top.desc.digest) {
    throw new RegistryError('TSBUILD_REGISTRY_DIGEST_MISMATCH', target(`manifest ${dst.digest}`), `the local image is ${top.desc.digest}`);
  }
  const digest = await client.putManifest(repo, dst.tag ?? top.desc.digest, top.bytes, top.desc.mediaType);
  opts.onProgress?.({ type: 'manifest', reference: dstName, digest, status: 'pushed' });
  return { reference: dstName, digest, descriptor: top.desc, uploaded, mounted, existing, bytes };
}
