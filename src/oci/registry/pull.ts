import pLimit from 'p-limit';
import { TsbuildError } from '../../errors.js';
import type { Digest } from '../digest.js';
import { parseIndex, parseManifest } from '../image.js';
import { formatPlatform, hostPlatform, parsePlatform, selectManifest } from '../platform.js';
import { formatReference, parseReference, repositoryName, type Reference } from '../reference.js';
import { Store } from '../store.js';
import { MediaType, type Descriptor, type Platform } from '../types.js';
import { RegistryClient, type AuthSetting } from './client.js';
import type { DockerConfigOptions } from './credentials.js';
import { RegistryError } from './errors.js';

/** Progress of a pull or push, one event per state change of a blob or manifest. */
export type TransferEvent =
  | { readonly type: 'resolved'; readonly reference: string; readonly digest: Digest; readonly mediaType: string }
  | { readonly type: 'blob'; readonly digest: Digest; readonly size: number; readonly status: 'exists' | 'started' | 'done' | 'mounted' }
  | { readonly type: 'bytes'; readonly digest: Digest; readonly size: number; readonly done: number }
  | { readonly type: 'manifest'; readonly reference: string; readonly digest: Digest; readonly status: 'pushed' | 'stored' };

/** Options shared by pull and push. */
export interface TransferOptions {
  /** The tsbuild root (store under `<root>/store`); default `TSBUILD_ROOT` from `env`, else ~/.local/share/tsbuild. */
  readonly root?: string;
  /** An open store; overrides `root`. */
  readonly store?: Store;
  /** Environment for TSBUILD_ROOT/HOME/DOCKER_CONFIG lookups (default: none for the root, process.env for docker config). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Credentials; default: docker config. */
  readonly auth?: AuthSetting;
  readonly dockerConfig?: DockerConfigOptions;
  /** Plain HTTP for this registry (loopback registries use it without being told). */
  readonly insecure?: boolean;
  /** Blobs transferred at once (default 4). */
  readonly concurrency?: number;
  readonly retries?: number;
  readonly signal?: AbortSignal;
  readonly onProgress?: (event: TransferEvent) => void;
}

export interface PullOptions extends TransferOptions {
  /** Platform to select from an index (`linux/arm64` or an object); default: this host's. */
  readonly platform?: Platform | string;
  /** Fetch every platform of an index and tag the index itself. */
  readonly allPlatforms?: boolean;
}

export interface PullResult {
  /** The normalized reference that was pulled. */
  readonly reference: string;
  /** What the local tag now points at: the platform manifest (or the index with allPlatforms). */
  readonly descriptor: Descriptor;
  /** The digest the registry resolved the reference to (an index digest for multi-platform images). */
  readonly registryDigest: Digest;
  readonly platform?: Platform;
  /** Blobs downloaded / already in the store. */
  readonly downloaded: number;
  readonly skipped: number;
  readonly bytes: number;
}

export function clientFor(ref: Reference, opts: TransferOptions): RegistryClient {
  return new RegistryClient(ref.domain, {
    ...(opts.auth !== undefined ? { auth: opts.auth } : {}),
    dockerConfig: opts.dockerConfig ?? (opts.env ? { env: opts.env } : {}),
    ...(opts.insecure !== undefined ? { insecure: opts.insecure } : {}),
    ...(opts.retries !== undefined ? { retries: opts.retries } : {}),
    signal: opts.signal,
  });
}

export async function openStore(opts: TransferOptions): Promise<Store> {
  return opts.store ?? Store.open({ ...(opts.root !== undefined ? { root: opts.root } : {}), ...(opts.env ? { env: opts.env } : {}) });
}

function isIndex(mediaType: string): boolean {
  return mediaType === MediaType.OciIndex || mediaType === MediaType.DockerManifestList;
}

const SCHEMA1 = /^application\/vnd\.docker\.distribution\.manifest\.v1\+(prettyj|j)son$/;

/**
 * Pulls an image into the local store: resolves the reference (tag or digest), picks the
 * platform's manifest from an index, fetches config and layers in parallel (verified while they
 * stream, skipped when present), stores the manifests, and only then tags it.
 */
export async function pull(reference: string, opts: PullOptions = {}): Promise<PullResult> {
  const { controller, dispose } = linkedAbort(opts.signal);
  try {
    return await pullWith(reference, opts, controller);
  } finally {
    dispose();
  }
}

async function pullWith(reference: string, opts: PullOptions, abort: AbortController): Promise<PullResult> {
  const ref = parseReference(reference);
  const name = formatReference(ref);
  const repo = ref.path;
  const client = clientFor(ref, { ...opts, signal: abort.signal });
  const store = await openStore(opts);
  const want = opts.platform === undefined ? hostPlatform() : typeof opts.platform === 'string' ? parsePlatform(opts.platform) : opts.platform;
  const target = (object: string) => ({ repository: repositoryName(ref), object });
  const limit = pLimit(opts.concurrency ?? 4);
  let downloaded = 0;
  let skipped = 0;
  let bytes = 0;
  const fetched = new Map<string, Promise<void>>();

  const fetchBlob = (desc: Descriptor): Promise<void> => {
    let p = fetched.get(desc.digest);
    if (!p) {
      p = limit(async () => {
        if ((await store.statBlob(desc.digest)) === desc.size) {
          skipped++;
          opts.onProgress?.({ type: 'blob', digest: desc.digest, size: desc.size, status: 'exists' });
          return;
        }
        opts.onProgress?.({ type: 'blob', digest: desc.digest, size: desc.size, status: 'started' });
        // The store hashes while it writes and refuses a mismatch; the client resumes dropped connections.
        // Chunks straight from the socket into the store's batched writes: no stream in between.
        const chunks = client.blobChunks(repo, desc.digest, { size: desc.size, verify: false });
        const input = opts.onProgress ? countingChunks(chunks, (done) => opts.onProgress!({ type: 'bytes', digest: desc.digest, size: desc.size, done })) : chunks;
        try {
          await store.putBlob(input, { digest: desc.digest, size: desc.size });
        } catch (err) {
          if (err instanceof RegistryError) throw err;
          const code = (err as TsbuildError).code;
          if (code === 'TSBUILD_DIGEST_MISMATCH' || code === 'TSBUILD_SIZE_MISMATCH') {
            throw new RegistryError('TSBUILD_REGISTRY_DIGEST_MISMATCH', target(`blob ${desc.digest}`), `downloaded bytes do not match: ${(err as Error).message}`, { cause: err });
          }
          throw new RegistryError('TSBUILD_REGISTRY_NETWORK', target(`blob ${desc.digest}`), `storing the download failed: ${(err as Error).message}`, { cause: err });
        }
        downloaded++;
        bytes += desc.size;
        opts.onProgress?.({ type: 'blob', digest: desc.digest, size: desc.size, status: 'done' });
      });
      fetched.set(desc.digest, p);
    }
    return p;
  };

  /** Fetches a manifest by digest or tag, stores its bytes, returns descriptor and bytes. */
  const fetchManifest = async (reference: string, expect?: Descriptor) => {
    const m = await client.getManifest(repo, reference);
    if (SCHEMA1.test(m.mediaType)) throw new RegistryError('TSBUILD_REGISTRY_UNSUPPORTED', target(`manifest ${reference}`), `Docker schema1 manifests (${m.mediaType}) are not supported; push the image again with a current client`);
    if (expect && m.bytes.length !== expect.size) throw new RegistryError('TSBUILD_REGISTRY_DIGEST_MISMATCH', target(`manifest ${reference}`), `manifest is ${m.bytes.length} bytes, the index says ${expect.size}`);
    const desc: Descriptor = { mediaType: expect?.mediaType ?? m.mediaType, digest: m.digest, size: m.bytes.length };
    return { desc, bytes: m.bytes };
  };

  /** Fetches an image manifest's blobs, then stores the manifest. */
  const fetchImage = async (desc: Descriptor, raw: Buffer) => {
    let manifest;
    try {
      manifest = parseManifest(raw, `manifest ${desc.digest}`);
    } catch (cause) {
      throw new RegistryError('TSBUILD_REGISTRY_INVALID_RESPONSE', target(`manifest ${desc.digest}`), (cause as Error).message, { cause });
    }
    await settleAll([manifest.config, ...manifest.layers].map((d) => fetchBlob(d)), abort);
    await store.putBlob(raw, { digest: desc.digest, size: desc.size });
  };

  const top = await fetchManifest(ref.digest ?? ref.tag ?? 'latest');
  opts.onProgress?.({ type: 'resolved', reference: name, digest: top.desc.digest, mediaType: top.desc.mediaType });
  let tagged: Descriptor;
  let platform: Platform | undefined;
  if (isIndex(top.desc.mediaType)) {
    const index = parseIndexOrThrow(top.bytes, target(`index ${top.desc.digest}`));
    if (opts.allPlatforms) {
      const walk = async (idxBytes: Buffer, idxDesc: Descriptor): Promise<void> => {
        const idx = parseIndexOrThrow(idxBytes, target(`index ${idxDesc.digest}`));
        await settleAll(
          idx.manifests.map(async (d) => {
            const child = await fetchManifest(d.digest, d);
            if (isIndex(child.desc.mediaType)) await walk(child.bytes, child.desc);
            else if (/manifest/.test(child.desc.mediaType) || d.mediaType.includes('manifest')) await fetchImage(child.desc, child.bytes);
          }),
          abort,
        );
        await store.putBlob(idxBytes, { digest: idxDesc.digest, size: idxDesc.size });
      };
      await walk(top.bytes, top.desc);
      tagged = top.desc;
    } else {
      let idx = index;
      let chosen = selectManifest(idx.manifests, want);
      let idxBytes = top.bytes;
      let idxDesc = top.desc;
      // Nested indexes: descend into the first one when no direct entry fits.
      for (let depth = 0; !chosen && depth < 4; depth++) {
        const nested = idx.manifests.find((d) => isIndex(d.mediaType));
        if (!nested) break;
        await store.putBlob(idxBytes, { digest: idxDesc.digest, size: idxDesc.size });
        const n = await fetchManifest(nested.digest, nested);
        idxBytes = n.bytes;
        idxDesc = n.desc;
        idx = parseIndexOrThrow(n.bytes, target(`index ${n.desc.digest}`));
        chosen = selectManifest(idx.manifests, want);
      }
      if (!chosen) {
        const have = idx.manifests.filter((d) => d.platform).map((d) => formatPlatform(d.platform!));
        throw new RegistryError('TSBUILD_REGISTRY_PLATFORM', target(`index ${top.desc.digest}`), `no manifest for platform ${formatPlatform(want)}; it has ${have.length ? have.join(', ') : 'no platform entries'} (choose one with --platform)`);
      }
      const child = await fetchManifest(chosen.digest, chosen);
      await fetchImage(child.desc, child.bytes);
      await store.putBlob(idxBytes, { digest: idxDesc.digest, size: idxDesc.size });
      if (idxDesc.digest !== top.desc.digest) await store.putBlob(top.bytes, { digest: top.desc.digest, size: top.desc.size });
      platform = chosen.platform;
      tagged = { mediaType: child.desc.mediaType, digest: child.desc.digest, size: child.desc.size, ...(chosen.platform ? { platform: chosen.platform } : {}) };
    }
  } else {
    await fetchImage(top.desc, top.bytes);
    tagged = top.desc;
  }
  // Only now, with every blob in place, does the tag move.
  if (ref.tag !== undefined && ref.digest === undefined) await store.tag(ref, tagged);
  opts.onProgress?.({ type: 'manifest', reference: name, digest: tagged.digest, status: 'stored' });
  return { reference: name, descriptor: tagged, registryDigest: top.desc.digest, ...(platform ? { platform } : {}), downloaded, skipped, bytes };
}

/**
 * Like Promise.all, but waits for every task to settle before rejecting with the first error,
 * so no download or upload is still writing when the caller returns.
 */
export async function settleAll<T>(tasks: readonly Promise<T>[], abort?: AbortController): Promise<T[]> {
  let first: { error: unknown } | undefined;
  const results = await Promise.allSettled(
    tasks.map((t) =>
      t.catch((error: unknown) => {
        if (!first) {
          first = { error };
          // Stop the siblings: their requests fail fast, and nothing runs on after we return.
          abort?.abort(error);
        }
        throw error;
      }),
    ),
  );
  if (first) throw first.error;
  return results.map((r) => (r as PromiseFulfilledResult<T>).value);
}

/** An AbortController that also aborts when `parent` does; `dispose` unhooks it. */
export function linkedAbort(parent: AbortSignal | undefined): { controller: AbortController; dispose: () => void } {
  const controller = new AbortController();
  if (!parent) return { controller, dispose: () => {} };
  const onAbort = () => controller.abort(parent.reason);
  if (parent.aborted) onAbort();
  else parent.addEventListener('abort', onAbort, { once: true });
  return { controller, dispose: () => parent.removeEventListener('abort', onAbort) };
}

function parseIndexOrThrow(raw: Buffer, t: { repository: string; object: string }) {
  try {
    return parseIndex(raw, t.object);
  } catch (cause) {
    throw new RegistryError('TSBUILD_REGISTRY_INVALID_RESPONSE', t, (cause as Error).message, { cause });
  }
}

/** Chunks of `src`, reporting the running byte count. */
async function* countingChunks(src: AsyncIterable<Buffer>, report: (done: number) => void): AsyncGenerator<Buffer> {
  let done = 0;
  for await (const chunk of src) {
    report((done += chunk.length));
    yield chunk;
  }
}
