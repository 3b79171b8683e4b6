import type { Digest } from '../oci/digest.js';
import type { Platform } from '../oci/types.js';
import type { ExtraHost } from '../runtime/spec.js';

/**
 * How the layers a build makes are compressed in an image output (`compression=` of buildx).
 * Layers are stored uncompressed while building and compressed once, when an output needs it:
 * a local image (`type=image` without push) keeps them uncompressed, as dockerd's image store
 * does; oci, docker, registry and pushed outputs gzip them unless told otherwise. Layers of the
 * base image are kept as they came.
 */
export interface LayerCompression {
  readonly compression?: 'gzip' | 'zstd' | 'uncompressed';
  /** gzip 1–9 (default 6), zstd 1–19 (default 3). */
  readonly compressionLevel?: number;
}

/** Where a build's image goes. Several outputs may be given. */
export type OutputSpec =
  /** Tag the image in the local store (the default when `tags` are given). */
  | ({ readonly type: 'image'; readonly name?: readonly string[]; readonly push?: boolean } & LayerCompression)
  /** Push to a registry under every name. */
  | ({ readonly type: 'registry'; readonly name?: readonly string[] } & LayerCompression)
  /**
   * OCI image layout: a directory, or a tar of one when `tar` is true (the default for
   * `--output type=oci,dest=x.tar`, and for a stream). `dest` is a path, or a stream the tar is
   * written to (ended when done): the CLI gives its standard output for `dest=-`.
   */
  | ({ readonly type: 'oci'; readonly dest: string | NodeJS.WritableStream; readonly tar?: boolean; readonly name?: readonly string[] } & LayerCompression)
  /** `docker save` format archive (docker load can read it), to a path or a stream. */
  | ({ readonly type: 'docker'; readonly dest: string | NodeJS.WritableStream; readonly name?: readonly string[] } & LayerCompression)
  /** The target stage's root filesystem as a directory. */
  | { readonly type: 'local'; readonly dest: string }
  /** The target stage's root filesystem as a tar, to a path or a stream. */
  | { readonly type: 'tar'; readonly dest: string | NodeJS.WritableStream };

export interface SecretSpec {
  readonly id: string;
  /** File with the secret's bytes. */
  readonly src?: string;
  /** Environment variable holding the secret (read from `env` of the options). */
  readonly env?: string;
}

export interface SshSpec {
  readonly id: string;
  /** Agent socket paths; default `$SSH_AUTH_SOCK`. */
  readonly paths: readonly string[];
}

/**
 * Progress events; the library never prints, the CLI renders these. A step stopped because
 * another failed, or because the build was aborted, ends with `status: 'error'` and
 * `error: 'CANCELED'`.
 */
export type ProgressEvent =
  | { readonly type: 'step'; readonly id: string; readonly name: string; readonly status: 'started' | 'cached' | 'done' | 'error'; readonly durationMs?: number; readonly reason?: string; readonly error?: string }
  | { readonly type: 'output'; readonly id: string; readonly name: string; readonly stream: 'stdout' | 'stderr'; readonly data: string }
  | { readonly type: 'log'; readonly level: 'info' | 'warning'; readonly message: string };

export interface BuildOptions {
  /** The build context directory. */
  readonly context: string;
  /** Dockerfile path; default `<context>/Dockerfile`. `-` is not accepted here: pass `dockerfileText`. */
  readonly dockerfile?: string;
  /** The Dockerfile's text, overriding `dockerfile` (which is then only used for messages and `.dockerignore` lookup). */
  readonly dockerfileText?: string;
  /** Stage to build; default the last stage. */
  readonly target?: string;
  readonly buildArgs?: Readonly<Record<string, string>>;
  /** Target platform, e.g. `linux/amd64`; default the host's. */
  readonly platform?: string;
  /** Extra labels for the final image. */
  readonly labels?: Readonly<Record<string, string>>;
  /** Image names to tag in the local store (like `-t`). */
  readonly tags?: readonly string[];
  readonly outputs?: readonly OutputSpec[];
  /** Store, cache and runtime state root; default `$TSBUILD_ROOT` or `~/.local/share/tsbuild`. */
  readonly root?: string;
  /** Ignore the cache for every step. */
  readonly noCache?: boolean;
  /** Ignore the cache for these stages. */
  readonly noCacheFilter?: readonly string[];
  /** Always resolve base images from the registry, even when present in the store. */
  readonly pull?: boolean;
  readonly secrets?: readonly SecretSpec[];
  readonly ssh?: readonly SshSpec[];
  /** Named contexts: `--build-context name=path|docker-image://ref`. */
  readonly buildContexts?: Readonly<Record<string, string>>;
  /** Default network mode for RUN; default 'default' (the host network, see README). */
  readonly network?: 'default' | 'none' | 'host';
  /**
   * Extra /etc/hosts entries for every RUN step (`--add-host host:ip`), appended in order as
   * `<ip>\t<host>` lines. `ip` is an IPv4 or IPv6 address (brackets allowed) or `host-gateway`,
   * which maps to 127.0.0.1 (RUN steps share the host's network). Part of each RUN step's cache
   * key, as in BuildKit: a different list re-runs RUN steps. Default none.
   */
  readonly addHosts?: readonly ExtraHost[];
  /** Clamp timestamps for reproducible images (seconds since epoch). */
  readonly sourceDateEpoch?: number;
  /** Environment for `TSBUILD_ROOT`, `--secret env=`, `DOCKER_CONFIG` and credential helpers. Default: `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Maximum number of steps run at once; default twice the number of CPUs, at least 8. */
  readonly parallelism?: number;
  readonly signal?: AbortSignal;
  readonly onProgress?: (event: ProgressEvent) => void;
}

export interface BuildResult {
  /**
   * Digest of the image manifest as the outputs wrote it: with compressed layers when an output
   * compressed them (oci, docker, registry, push), else the local image's (uncompressed layers).
   */
  readonly manifestDigest: Digest;
  /** Digest of the image config (the image ID, as `docker images` shows). */
  readonly configDigest: Digest;
  readonly platform: Platform;
  readonly tags: readonly string[];
  /** The image config as written (its digest is `configDigest`). */
  readonly config: import('../oci/types.js').ImageConfig;
  /** The image's layers, bottom first, as in `manifestDigest`'s manifest. */
  readonly layers: readonly import('../oci/types.js').Descriptor[];
  /** Every step the build solved, in the order they finished, with cache status and timing. */
  readonly steps: readonly StepResult[];
  /** Steps answered from the cache / run, for reporting. */
  readonly cachedSteps: number;
  readonly executedSteps: number;
  readonly diagnostics: readonly import('../parser/diagnostics.js').Diagnostic[];
}

/** One solved step of a build. */
export interface StepResult {
  /** The step as progress shows it, e.g. `[build 2/5] RUN make`. */
  readonly name: string;
  /** The step's cache key. */
  readonly key: string;
  /** 1-based Dockerfile line of the instruction. */
  readonly line: number;
  readonly status: 'cached' | 'executed';
  /** For an executed step: why the cache missed (`file src/a.ts changed`, `build arg V changed`, `first build`…). */
  readonly reason?: string;
  readonly durationMs: number;
}
