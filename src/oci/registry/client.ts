import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { digestAlgorithm, isDigest, type Digest } from '../digest.js';
import { MediaType } from '../types.js';
import { RegistryAuth, repositoryScope, type Credentials } from './auth.js';
import { dockerCredentials, type DockerConfigOptions } from './credentials.js';
import { RegistryError, errorFromResponse, type RegistryErrorTarget } from './errors.js';
import { defaultCertsDirs, registryTls } from './certs.js';
import { discard, header, httpRequest, isTransientNetworkError, readBody, readErrorText, type HttpResponse, type TlsSettings } from './http.js';
import { isCertificateError } from '../../util/extra-ca.js';

/**
 * Blob bytes are handed on in pieces of about this size: the socket's 16-64 KiB reads, joined,
 * make one file write and one hash update per piece instead of per read (measured on a 189 MB
 * pull into the store: about 10% less CPU at 512 KiB, 15% at 1 MiB; 1 MiB pieces raise peak
 * RSS by ~15 MB of garbage between collections, so 512 KiB).
 */
const BLOB_CHUNK = 512 * 1024;
/** Blobs (or the rest of one) at least this large are downloaded by a bulk GET (bulk.ts). */
const BULK_MIN = 1024 * 1024;

/** Joins small chunks into pieces of at least `min` bytes (the last may be smaller). */
async function* coalesce(chunks: AsyncIterable<Buffer>, min: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let n = 0;
  for await (const c of chunks) {
    parts.push(c);
    n += c.length;
    if (n >= min) {
      yield parts.length === 1 ? parts[0]! : Buffer.concat(parts, n);
      parts = [];
      n = 0;
    }
  }
  if (n > 0) yield parts.length === 1 ? parts[0]! : Buffer.concat(parts, n);
}

/** Accept header for manifests: OCI and Docker, single-platform and index. */
export const MANIFEST_ACCEPT = [MediaType.OciIndex, MediaType.OciManifest, MediaType.DockerManifestList, MediaType.DockerManifest].join(', ');

/** Largest manifest we read (distribution-spec suggests registries accept at least 4 MiB). */
const MANIFEST_LIMIT = 4 * 1024 * 1024;

/** Where blob bytes come from for an upload: re-openable, so a failed upload can restart or resume. */
export interface BlobSource {
  readonly size: number;
  /** The bytes [start, end) (end defaults to size). */
  open(start: number, end?: number): Readable;
}

/** A blob source over bytes in memory (manifests, configs, tests). */
export function bufferSource(bytes: Uint8Array): BlobSource {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { size: b.length, open: (start, end) => Readable.from([b.subarray(start, end ?? b.length)]) };
}

export type AuthSetting =
  /** Fixed credentials for this registry. */
  | Credentials
  /** Never send credentials (tokens are still fetched anonymously when a registry asks). */
  | 'anonymous'
  /** Look credentials up per host. */
  | ((host: string) => Promise<Credentials | undefined>);

export interface RegistryClientOptions {
  /** Credentials; default: docker config (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`). */
  readonly auth?: AuthSetting;
  /** Where to find docker config when `auth` is not given. */
  readonly dockerConfig?: DockerConfigOptions;
  /** Use plain HTTP (and accept any TLS certificate on token servers). Default: true only for localhost/127.0.0.0/8/::1. */
  readonly insecure?: boolean;
  /** Retries of idempotent requests on 5xx, 429 and dropped connections (default 4). */
  readonly retries?: number;
  /** First backoff delay in ms, doubled per retry, with jitter (default 200). */
  readonly retryDelayMs?: number;
  /** Upload in PATCH chunks of this many bytes (0: one monolithic PUT; default 0). */
  readonly chunkSize?: number;
  /** Socket idle timeout in ms (default 60 000). */
  readonly timeoutMs?: number;
  /**
   * Directories holding `<host[:port]>/` folders of TLS files (`*.crt` CAs, `*.cert`/`*.key`
   * client pairs), as docker's `/etc/docker/certs.d`. Default: see `defaultCertsDirs`.
   */
  readonly certsDirs?: readonly string[];
  readonly signal?: AbortSignal | undefined;
}

export interface ManifestResult {
  /** The bytes exactly as served (what the digest covers). */
  readonly bytes: Buffer;
  readonly mediaType: string;
  readonly digest: Digest;
}

export interface UploadOptions {
  /** Repositories on the same registry to try a cross-repository mount from, in order. */
  readonly mountFrom?: readonly string[];
  /** Overrides the client's chunkSize for this blob. */
  readonly chunkSize?: number;
  /** Skip the HEAD that checks whether the blob is already there. */
  readonly skipExistsCheck?: boolean;
  /** Bytes sent so far for this blob (may go back on a restart). */
  readonly onProgress?: (sent: number) => void;
}

export type UploadResult = 'exists' | 'mounted' | 'uploaded';

interface SendSpec {
  readonly method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';
  readonly url: URL;
  readonly headers?: Record<string, string>;
  /** Recreated for every attempt. */
  readonly body?: () => Buffer | Readable;
  readonly scopes: readonly string[];
  readonly target: RegistryErrorTarget;
  /** Retry on 5xx/429/network errors. */
  readonly retry: boolean;
  /** Follow 3xx (GET/HEAD only). */
  readonly redirect?: boolean;
  /** A GET of a large body: read it on a connection of its own (http.ts `bulk`). */
  readonly bulk?: boolean;
  /** Statuses returned to the caller; anything else becomes a RegistryError. */
  readonly ok: (status: number) => boolean;
}

const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::\d+)?$/i;

/** True for registries that Docker talks to over plain HTTP without being told (loopback). */
export function isLoopbackRegistry(host: string): boolean {
  return LOOPBACK.test(host);
}

/** The API host of a registry name (Docker Hub's `docker.io` is served by `registry-1.docker.io`). */
export function registryApiHost(registry: string): string {
  return registry === 'docker.io' || registry === 'index.docker.io' ? 'registry-1.docker.io' : registry;
}

/**
 * A distribution-spec v1.1 client for one registry: manifests, blobs (verified, resumable),
 * uploads (monolithic, chunked, cross-repository mount), tags; auth, redirects and retries.
 */
export class RegistryClient {
  readonly registry: string;
  readonly base: URL;
  readonly #auth: RegistryAuth;
  readonly #opts: RegistryClientOptions;
  readonly #retries: number;
  /** Repositories this client pushes to (their scopes ask for push). */
  readonly #pushRepos = new Set<string>();
  /** This registry's certs.d files, read on the first https request. */
  #tls: Promise<TlsSettings | undefined> | undefined;

  constructor(registry: string, opts: RegistryClientOptions = {}) {
    this.registry = registry;
    this.#opts = opts;
    this.#retries = opts.retries ?? 4;
    const host = registryApiHost(registry);
    const insecure = opts.insecure ?? isLoopbackRegistry(host);
    this.base = new URL(`${insecure ? 'http' : 'https'}://${host}/v2/`);
    const auth = opts.auth;
    const credentials =
      auth === 'anonymous'
        ? async () => undefined
        : typeof auth === 'function'
          ? () => auth(registry)
          : auth !== undefined
            ? async () => auth
            : () => dockerCredentials(registry, opts.dockerConfig);
    // Token servers are reached with the registry's certs.d files, as docker's transport does.
    this.#auth = new RegistryAuth(registry, { credentials, signal: opts.signal, insecure, tls: (repository) => this.#tlsSettings(repository) });
  }

  /** Declares that requests for `repository` will push, so tokens are asked with `pull,push`. */
  forPush(repository: string): this {
    this.#pushRepos.add(repository);
    return this;
  }

  #scope(repository: string): string {
    return repositoryScope(repository, this.#pushRepos.has(repository) ? 'pull,push' : 'pull');
  }

  #target(repository: string, object?: string): RegistryErrorTarget {
    const repo = `${this.registry}/${repository}`;
    return object === undefined ? { repository: repo } : { repository: repo, object };
  }

  #url(path: string): URL {
    return new URL(path, this.base);
  }

  /** GET /v2/: checks the registry speaks the API (and that credentials are accepted). */
  async ping(): Promise<void> {
    const res = await this.#send({ method: 'GET', url: this.base, scopes: [], target: { repository: this.registry, object: 'API version check' }, retry: true, ok: (s) => s === 200 });
    discard(res.body);
  }

  // ---------------------------------------------------------------- manifests

  /** GET a manifest or index by tag or digest; verifies the digest of the bytes. */
  async getManifest(repository: string, reference: string, opts: { accept?: string } = {}): Promise<ManifestResult> {
    const target = this.#target(repository, `manifest ${reference}`);
    const res = await this.#send({
      method: 'GET',
      url: this.#url(`${repository}/manifests/${reference}`),
      headers: { accept: opts.accept ?? MANIFEST_ACCEPT },
      scopes: [this.#scope(repository)],
      target,
      retry: true,
      ok: (s) => s === 200,
    });
    let bytes: Buffer;
    try {
      bytes = await readBody(res.body, MANIFEST_LIMIT);
    } catch (cause) {
      throw new RegistryError('TSBUILD_REGISTRY_INVALID_RESPONSE', target, `reading the manifest failed: ${(cause as Error).message}`, { cause });
    }
    const served = header(res.headers, 'docker-content-digest');
    const want = isDigest(reference) ? reference : served && isDigest(served) ? served : undefined;
    const algorithm = want ? digestAlgorithm(want) : 'sha256';
    const digest = `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}` as Digest;
    if (want && digest !== want) {
      throw new RegistryError('TSBUILD_REGISTRY_DIGEST_MISMATCH', target, `manifest bytes hash to ${digest}, but ${isDigest(reference) ? 'the reference' : 'the registry (Docker-Content-Digest)'} says ${want}`);
    }
    let mediaType = '';
    try {
      const parsed = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown; manifests?: unknown };
      if (typeof parsed.mediaType === 'string') mediaType = parsed.mediaType;
      else if (Array.isArray(parsed.manifests)) mediaType = MediaType.OciIndex;
    } catch (cause) {
      throw new RegistryError('TSBUILD_REGISTRY_INVALID_RESPONSE', target, 'manifest is not valid JSON', { cause });
    }
    if (!mediaType) mediaType = (header(res.headers, 'content-type') ?? '').split(';')[0]!.trim() || MediaType.OciManifest;
    return { bytes, mediaType, digest };
  }

  /** HEAD a manifest: its descriptor, or undefined when the registry does not have it. */
  async headManifest(repository: string, reference: string): Promise<{ digest: Digest; mediaType: string; size: number } | undefined> {
    const res = await this.#send({
      method: 'HEAD',
      url: this.#url(`${repository}/manifests/${reference}`),
      headers: { accept: MANIFEST_ACCEPT },
      scopes: [this.#scope(repository)],
      target: this.#target(repository, `manifest ${reference}`),
      retry: true,
      ok: (s) => s === 200 || s === 404,
    });
    discard(res.body);
    if (res.status === 404) return undefined;
    const d = header(res.headers, 'docker-content-digest');
    return {
      digest: (d && isDigest(d) ? d : isDigest(reference) ? reference : undefined) as Digest,
      mediaType: (header(res.headers, 'content-type') ?? '').split(';')[0]!.trim(),
      size: Number(header(res.headers, 'content-length') ?? -1),
    };
  }

  /** PUT a manifest/index under a tag or its digest, with Content-Type equal to its media type. */
  async putManifest(repository: string, reference: string, bytes: Buffer, mediaType: string): Promise<Digest> {
    const target = this.#target(repository, `manifest ${reference}`);
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest;
    if (isDigest(reference) && reference !== digest && digestAlgorithm(reference) === 'sha256') {
      throw new RegistryError('TSBUILD_REGISTRY_DIGEST_MISMATCH', target, `manifest bytes hash to ${digest}, not ${reference}`);
    }
    this.forPush(repository);
    const res = await this.#send({
      method: 'PUT',
      url: this.#url(`${repository}/manifests/${reference}`),
      headers: { 'content-type': mediaType },
      body: () => bytes,
      scopes: [this.#scope(repository)],
      target,
      retry: true,
      ok: (s) => s === 201 || s === 200,
    });
    discard(res.body);
    const served = header(res.headers, 'docker-content-digest');
    if (served && isDigest(served) && digestAlgorithm(served) === 'sha256' && served !== digest) {
      throw new RegistryError('TSBUILD_REGISTRY_DIGEST_MISMATCH', target, `registry stored the manifest as ${served}, but we sent ${digest}`);
    }
    return digest;
  }

  /** All tags of a repository (follows `Link` pagination). */
  async listTags(repository: string): Promise<string[]> {
    const tags: string[] = [];
    let url: URL | undefined = this.#url(`${repository}/tags/list`);
    const target = this.#target(repository, 'tag list');
    while (url) {
      const res = await this.#send({ method: 'GET', url, scopes: [this.#scope(repository)], target, retry: true, ok: (s) => s === 200 });
      const body = await readBody(res.body, 64 * 1024 * 1024);
      let parsed: { tags?: unknown };
      try {
        parsed = JSON.parse(body.toString('utf8')) as { tags?: unknown };
      } catch (cause) {
        throw new RegistryError('TSBUILD_REGISTRY_INVALID_RESPONSE', target, 'tag list is not valid JSON', { cause });
      }
      if (Array.isArray(parsed.tags)) for (const t of parsed.tags) if (typeof t === 'string') tags.push(t);
      const link = header(res.headers, 'link');
      const m = link?.match(/<([^>]+)>\s*;\s*rel="?next"?/);
      url = m ? new URL(m[1]!, url) : undefined;
    }
    return tags;
  }

  // ---------------------------------------------------------------- blobs

  /** HEAD a blob: its size, or undefined when the repository does not have it. */
  async blobSize(repository: string, digest: Digest): Promise<number | undefined> {
    const res = await this.#send({
      method: 'HEAD',
      url: this.#url(`${repository}/blobs/${digest}`),
      scopes: [this.#scope(repository)],
      target: this.#target(repository, `blob ${digest}`),
      retry: true,
      redirect: true,
      ok: (s) => s === 200 || s === 404,
    });
    discard(res.body);
    if (res.status === 404) return undefined;
    const n = Number(header(res.headers, 'content-length'));
    return Number.isFinite(n) ? n : -1;
  }

  /**
   * A stream of a blob's bytes. Follows redirects (dropping Authorization on another origin),
   * resumes with `Range` when the connection drops, and fails the stream with
   * TSBUILD_REGISTRY_DIGEST_MISMATCH unless the bytes hash to `digest` (and `size`, when given).
   */
  openBlob(repository: string, digest: Digest, opts: { size?: number; verify?: boolean } = {}): Readable {
    return Readable.from(coalesce(this.#blobChunks(repository, digest, opts.size, opts.verify ?? true), BLOB_CHUNK), { objectMode: false, highWaterMark: BLOB_CHUNK });
  }

  /**
   * A blob's bytes as the socket delivers them, with the redirects, resumes and checks of
   * `openBlob` but no stream around them: for a consumer that batches its own writes, such as
   * the store's putBlob (a Readable adds a copy and a few ticks per piece).
   */
  blobChunks(repository: string, digest: Digest, opts: { size?: number; verify?: boolean } = {}): AsyncGenerator<Buffer> {
    return this.#blobChunks(repository, digest, opts.size, opts.verify ?? true);
  }

  /** Reads a (small) blob fully into memory, verified. For configs. */
  async getBlobBytes(repository: string, digest: Digest, limit = 64 * 1024 * 1024): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of this.#blobChunks(repository, digest, undefined, true)) {
      n += c.length;
      if (n > limit) throw new RegistryError('TSBUILD_REGISTRY_INVALID_RESPONSE', this.#target(repository, `blob ${digest}`), `blob is larger than ${limit} bytes`);
      chunks.push(c);
    }
    return Buffer.concat(chunks);
  }

  async *#blobChunks(repository: string, digest: Digest, size: number | undefined, verify: boolean): AsyncGenerator<Buffer> {
    const target = this.#target(repository, `blob ${digest}`);
    const hash = verify ? createHash(digestAlgorithm(digest)) : undefined;
    let offset = 0;
    let resumes = 0;
    for (;;) {
      const res = await this.#send({
        method: 'GET',
        url: this.#url(`${repository}/blobs/${digest}`),
        headers: offset > 0 ? { range: `bytes=${offset}-` } : {},
        scopes: [this.#scope(repository)],
        target,
        retry: true,
        redirect: true,
        bulk: size !== undefined && size - offset >= BULK_MIN,
        ok: (s) => s === 200 || s === 206,
      });
      // A server that ignores Range sends everything again: skip what we already have.
      let skip = 0;
      if (offset > 0) {
        if (res.status === 200) skip = offset;
        else {
          const cr = header(res.headers, 'content-range');
          const m = cr?.match(/bytes\s+(\d+)-/);
          if (!m || Number(m[1]) !== offset) {
            discard(res.body);
            throw new RegistryError('TSBUILD_REGISTRY_INVALID_RESPONSE', target, `resuming at byte ${offset}, the registry answered Content-Range ${JSON.stringify(cr ?? '')}`);
          }
        }
      }
      try {
        for await (const raw of res.body) {
          let chunk = raw;
          if (skip > 0) {
            if (chunk.length <= skip) {
              skip -= chunk.length;
              continue;
            }
            chunk = chunk.subarray(skip);
            skip = 0;
          }
          offset += chunk.length;
          if (size !== undefined && offset > size) {
            res.body.destroy();
            throw new RegistryError('TSBUILD_REGISTRY_DIGEST_MISMATCH', target, `registry sent more than the ${size} bytes the descriptor declares`);
          }
          hash?.update(chunk);
          yield chunk;
        }
        // IncomingMessage ends quietly on some truncations: compare with what was promised.
        if (!res.body.complete) throw Object.assign(new Error('connection closed mid-body'), { code: 'ECONNRESET' });
        if (size !== undefined && offset < size) throw Object.assign(new Error(`connection closed after ${offset} of ${size} bytes`), { code: 'ECONNRESET' });
        break;
      } catch (err) {
        if (err instanceof RegistryError) throw err;
        if (this.#opts.signal?.aborted) throw err;
        if (isTransientNetworkError(err) && resumes < this.#retries + 4) {
          resumes++;
          await sleep(this.#backoff(resumes - 1));
          continue;
        }
        throw new RegistryError('TSBUILD_REGISTRY_NETWORK', target, `download failed after ${offset} bytes: ${(err as Error).message}`, { cause: err });
      }
    }
    if (size !== undefined && offset !== size) {
      throw new RegistryError('TSBUILD_REGISTRY_DIGEST_MISMATCH', target, `registry sent ${offset} bytes, the descriptor declares ${size}`);
    }
    if (hash) {
      const got = `${digestAlgorithm(digest)}:${hash.digest('hex')}`;
      if (got !== digest) throw new RegistryError('TSBUILD_REGISTRY_DIGEST_MISMATCH', target, `downloaded bytes hash to ${got}`);
    }
  }

  /**
   * Uploads a blob unless the repository has it: tries a cross-repository mount first (when
   * `mountFrom` names repositories), then a monolithic PUT or PATCH chunks. A failed upload is
   * resumed (chunked: from the registry's reported Range) or restarted with a new session.
   */
  async uploadBlob(repository: string, digest: Digest, source: BlobSource, opts: UploadOptions = {}): Promise<UploadResult> {
    this.forPush(repository);
    const target = this.#target(repository, `blob ${digest}`);
    if (!opts.skipExistsCheck && (await this.blobSize(repository, digest)) !== undefined) return 'exists';
    const mountFrom = (opts.mountFrom ?? []).filter((r) => r !== repository);
    let mountTried = false;
    let lastErr: unknown;
    for (let attempt = 0; attempt <= this.#retries; attempt++) {
      try {
        let session: { location: URL; minChunk: number };
        if (!mountTried && mountFrom.length > 0) {
          mountTried = true;
          const m = await this.#startMount(repository, digest, mountFrom[0]!, target);
          if (m === 'mounted') return 'mounted';
          session = m ?? (await this.#startUpload(repository, target));
        } else {
          session = await this.#startUpload(repository, target);
        }
        const chunk = opts.chunkSize ?? this.#opts.chunkSize ?? 0;
        if (chunk > 0 && source.size > 0) await this.#uploadChunked(repository, digest, source, session, chunk, target, opts.onProgress);
        else await this.#uploadMonolithic(repository, digest, source, session.location, target, opts.onProgress);
        return 'uploaded';
      } catch (err) {
        lastErr = err;
        if (this.#opts.signal?.aborted) throw err;
        const transient = isTransientNetworkError(err) || (err instanceof RegistryError && (err.code === 'TSBUILD_REGISTRY_NETWORK' || (err.status !== undefined && (err.status >= 500 || err.status === 429 || err.status === 416))));
        if (!transient || attempt === this.#retries) break;
        await sleep(this.#backoff(attempt));
      }
    }
    if (lastErr instanceof RegistryError) throw lastErr;
    throw new RegistryError('TSBUILD_REGISTRY_NETWORK', target, `upload failed: ${(lastErr as Error).message}`, { cause: lastErr });
  }

  async #startUpload(repository: string, target: RegistryErrorTarget): Promise<{ location: URL; minChunk: number }> {
    const res = await this.#send({
      method: 'POST',
      url: this.#url(`${repository}/blobs/uploads/`),
      scopes: [this.#scope(repository)],
      target: { ...target, object: `upload of ${target.object}` },
      retry: true,
      ok: (s) => s === 202,
    });
    discard(res.body);
    return this.#session(res, target);
  }

  #session(res: HttpResponse, target: RegistryErrorTarget): { location: URL; minChunk: number } {
    const loc = header(res.headers, 'location');
    if (!loc) throw new RegistryError('TSBUILD_REGISTRY_INVALID_RESPONSE', target, `upload session answer (HTTP ${res.status}) has no Location header`);
    const min = Number(header(res.headers, 'oci-chunk-min-length') ?? 0);
    return { location: new URL(loc, res.url), minChunk: Number.isFinite(min) && min > 0 ? min : 0 };
  }

  /** POST ?mount=&from=: 'mounted', or an upload session when the registry declined, or undefined when the mount request itself was refused. */
  async #startMount(repository: string, digest: Digest, from: string, target: RegistryErrorTarget): Promise<'mounted' | { location: URL; minChunk: number } | undefined> {
    const url = this.#url(`${repository}/blobs/uploads/`);
    url.searchParams.set('mount', digest);
    url.searchParams.set('from', from);
    let res: HttpResponse;
    try {
      res = await this.#send({
        method: 'POST',
        url,
        scopes: [this.#scope(repository), repositoryScope(from, 'pull')],
        target: { ...target, object: `mount of ${target.object} from ${from}` },
        retry: true,
        ok: (s) => s === 201 || s === 202,
      });
    } catch (err) {
      // No pull access to the source repository (or a registry without mounts): upload instead.
      if (err instanceof RegistryError && (err.code === 'TSBUILD_REGISTRY_UNAUTHORIZED' || err.code === 'TSBUILD_REGISTRY_DENIED' || err.code === 'TSBUILD_REGISTRY_UNSUPPORTED' || err.code === 'TSBUILD_REGISTRY_NOT_FOUND')) return undefined;
      throw err;
    }
    discard(res.body);
    if (res.status === 201) return 'mounted';
    return this.#session(res, target);
  }

  async #uploadMonolithic(repository: string, digest: Digest, source: BlobSource, location: URL, target: RegistryErrorTarget, onProgress?: (n: number) => void): Promise<void> {
    const url = withQuery(location, 'digest', digest);
    const res = await this.#send({
      method: 'PUT',
      url,
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(source.size) },
      body: () => progress(source.open(0), 0, onProgress),
      scopes: [this.#scope(repository)],
      target: { ...target, object: `upload of ${target.object}` },
      retry: false,
      ok: (s) => s === 201 || s === 204,
    });
    discard(res.body);
    this.#checkStoredDigest(res, digest, target);
  }

  /**
   * PATCHes `source` in chunks of `wanted` bytes, or of the session's OCI-Chunk-Min-Length when
   * that is larger (every chunk but the last must be at least that long; a session restarted
   * after a failure brings its own minimum), then PUTs `?digest=` to close the session.
   */
  async #uploadChunked(repository: string, digest: Digest, source: BlobSource, session: { location: URL; minChunk: number }, wanted: number, target: RegistryErrorTarget, onProgress?: (n: number) => void): Promise<void> {
    const utarget = { ...target, object: `upload of ${target.object}` };
    let location = session.location;
    let chunkSize = Math.max(wanted, session.minChunk);
    let offset = 0;
    let failures = 0;
    const resume = async () => {
      const at = await this.#resumePoint(location, repository, utarget);
      location = at.location;
      offset = at.offset;
      if (at.minChunk !== undefined) chunkSize = Math.max(wanted, at.minChunk);
    };
    while (offset < source.size) {
      const end = Math.min(source.size, offset + chunkSize);
      try {
        const res = await this.#send({
          method: 'PATCH',
          url: location,
          headers: { 'content-type': 'application/octet-stream', 'content-length': String(end - offset), 'content-range': `${offset}-${end - 1}` },
          body: () => progress(source.open(offset, end), offset, onProgress),
          scopes: [this.#scope(repository)],
          target: utarget,
          retry: false,
          ok: (s) => s === 202 || s === 416,
        });
        discard(res.body);
        if (res.status === 416) {
          // Out of step with the registry: ask where it is and continue from there.
          if (++failures > this.#retries) throw new RegistryError('TSBUILD_REGISTRY_HTTP', utarget, `registry kept rejecting chunk ranges (HTTP 416) at byte ${offset}`, { status: 416 });
          await resume();
          continue;
        }
        const loc = header(res.headers, 'location');
        if (loc) location = new URL(loc, location);
        const range = header(res.headers, 'range');
        const m = range?.match(/^(?:bytes=)?0-(\d+)$/);
        offset = m ? Number(m[1]) + 1 : end;
      } catch (err) {
        if (this.#opts.signal?.aborted || !(isTransientNetworkError(err) || (err instanceof RegistryError && err.status !== undefined && err.status >= 500)) || ++failures > this.#retries) throw err;
        await sleep(this.#backoff(failures - 1));
        await resume();
      }
    }
    const url = withQuery(location, 'digest', digest);
    const res = await this.#send({
      method: 'PUT',
      url,
      scopes: [this.#scope(repository)],
      target: utarget,
      retry: true,
      ok: (s) => s === 201 || s === 204,
    });
    discard(res.body);
    this.#checkStoredDigest(res, digest, target);
  }

  /**
   * Where to continue a chunked upload: GET the session for its Range. `0-0` is ambiguous
   * (distribution says it for 0 bytes and for 1 byte), and so is a missing Range: then start a
   * new session from byte 0 (and with that session's minimum chunk length).
   */
  async #resumePoint(location: URL, repository: string, target: RegistryErrorTarget): Promise<{ location: URL; offset: number; minChunk?: number }> {
    const res = await this.#send({ method: 'GET', url: location, scopes: [this.#scope(repository)], target, retry: true, ok: (s) => s === 204 || s === 200 || s === 404 });
    discard(res.body);
    const m = header(res.headers, 'range')?.match(/^(?:bytes=)?0-(\d+)$/);
    if (res.status === 404 || !m || m[1] === '0') {
      const fresh = await this.#startUpload(repository, { repository: target.repository, object: target.object?.replace(/^upload of /, '') ?? '' });
      return { location: fresh.location, offset: 0, minChunk: fresh.minChunk };
    }
    const loc = header(res.headers, 'location');
    return { location: loc ? new URL(loc, location) : location, offset: Number(m[1]) + 1 };
  }

  #checkStoredDigest(res: HttpResponse, digest: Digest, target: RegistryErrorTarget): void {
    const served = header(res.headers, 'docker-content-digest');
    if (served && isDigest(served) && digestAlgorithm(served) === digestAlgorithm(digest) && served !== digest) {
      throw new RegistryError('TSBUILD_REGISTRY_DIGEST_MISMATCH', target, `registry stored the upload as ${served}`);
    }
  }

  // ---------------------------------------------------------------- transport

  #backoff(attempt: number, retryAfter?: string): number {
    if (retryAfter) {
      const secs = Number(retryAfter);
      const ms = Number.isFinite(secs) ? secs * 1000 : Date.parse(retryAfter) - Date.now();
      if (Number.isFinite(ms) && ms >= 0) return Math.min(ms, 60_000);
    }
    const base = (this.#opts.retryDelayMs ?? 200) * 2 ** attempt;
    return Math.min(base, 10_000) * (0.75 + Math.random() * 0.5);
  }

  #tlsSettings(repository: string): Promise<TlsSettings | undefined> {
    this.#tls ??= registryTls(this.base.host, this.#opts.certsDirs ?? defaultCertsDirs(this.#opts.dockerConfig?.env)).catch((cause: unknown) => {
      throw new RegistryError('TSBUILD_REGISTRY_TLS', { repository }, `reading the TLS files of ${this.base.host}: ${(cause as Error).message}`, { cause });
    });
    return this.#tls;
  }

  async #send(spec: SendSpec): Promise<HttpResponse> {
    let url = spec.url;
    let attempt = 0;
    let authAnswered = false;
    let dropAuth = false;
    let redirects = 0;
    for (;;) {
      const headers: Record<string, string> = { ...spec.headers };
      if (!dropAuth) {
        let auth = this.#auth.headerFor(spec.scopes);
        if (!auth && this.#auth.usesBearer && spec.scopes.length > 0) auth = await this.#auth.bearerFor(spec.scopes, spec.target.repository);
        if (auth) headers.authorization = auth;
      }
      let res: HttpResponse;
      try {
        const tls = url.protocol === 'https:' && url.host === this.base.host ? await this.#tlsSettings(spec.target.repository) : undefined;
        res = await httpRequest({ method: spec.method, url, headers, ...(spec.body ? { body: spec.body() } : {}), ...(tls ? { tls } : {}), ...(spec.bulk ? { bulk: true } : {}), signal: this.#opts.signal, timeoutMs: this.#opts.timeoutMs ?? 60_000 });
      } catch (err) {
        if (this.#opts.signal?.aborted || err instanceof RegistryError) throw err;
        if (spec.retry && isTransientNetworkError(err) && attempt < this.#retries) {
          await sleep(this.#backoff(attempt++));
          continue;
        }
        throw new RegistryError('TSBUILD_REGISTRY_NETWORK', spec.target, `${spec.method} ${url.origin}${url.pathname} failed: ${(err as Error).message}${tlsHint(err, url.host)}`, { cause: err });
      }
      const status = res.status;
      if (status === 401 && !dropAuth && !authAnswered) {
        const challenge = header(res.headers, 'www-authenticate');
        discard(res.body);
        authAnswered = true;
        await this.#auth.answer(challenge, spec.scopes, spec.target.repository, spec.target.object);
        continue;
      }
      if (spec.redirect && (status === 301 || status === 302 || status === 303 || status === 307 || status === 308)) {
        const loc = header(res.headers, 'location');
        discard(res.body);
        if (!loc) throw new RegistryError('TSBUILD_REGISTRY_INVALID_RESPONSE', spec.target, `HTTP ${status} redirect without Location`);
        if (++redirects > 10) throw new RegistryError('TSBUILD_REGISTRY_INVALID_RESPONSE', spec.target, 'more than 10 redirects');
        const next = new URL(loc, url);
        // Never forward credentials to another origin (a blob store, a CDN).
        if (next.origin !== url.origin) dropAuth = true;
        url = next;
        continue;
      }
      if (spec.retry && (status >= 500 || status === 429) && attempt < this.#retries) {
        const ra = header(res.headers, 'retry-after');
        discard(res.body);
        await sleep(this.#backoff(attempt++, ra));
        continue;
      }
      if (spec.ok(status)) return res;
      const text = spec.method === 'HEAD' ? '' : await readErrorText(res.body);
      if (spec.method === 'HEAD') discard(res.body);
      const err = errorFromResponse(spec.target, status, text, header(res.headers, 'retry-after'));
      if (status === 401 && authAnswered) {
        const creds = await this.#auth.credentials();
        throw new RegistryError(err.code, spec.target, `${creds ? 'credentials were rejected' : 'authentication required and no credentials are configured'} (${err.message.slice(err.message.indexOf(': ') + 2)})`, { status, errors: err.errors, cause: err });
      }
      throw err;
    }
  }
}

/**
 * The upload Location with one more query parameter appended to its text: the registry's own
 * parameters (`_state=…`) stay byte for byte as it sent them (URLSearchParams would re-encode them).
 */
export function withQuery(location: URL, name: string, value: string): URL {
  const url = new URL(location.href);
  const add = `${encodeURIComponent(name)}=${encodeURIComponent(value)}`;
  url.search = url.search.length > 1 ? `${url.search.slice(1)}&${add}` : add;
  return url;
}

function progress(stream: Readable, start: number, onProgress?: (n: number) => void): Readable {
  if (!onProgress) return stream;
  let n = start;
  stream.on('data', (c: Buffer) => onProgress((n += c.length)));
  return stream;
}

/** What to do about a certificate the system does not trust (appended to the error). */
function tlsHint(err: unknown, host: string): string {
  if (!isCertificateError(err)) return '';
  return ` (to trust this registry's certificate authority, put its certificate in /etc/docker/certs.d/${host}/ca.crt, or in $TSBUILD_CERTS_D/${host}/)`;
}
