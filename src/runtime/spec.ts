/** The root filesystem of a run. */
export type RootfsSpec =
  /**
   * Unpacked layer directories, bottom first (overlayfs format: whiteouts are 0/0 character
   * devices, opaque directories carry `trusted.overlay.opaque=y`). They are never modified:
   * writes land in the run's upper directory (overlayfs) or in a private copy (the fallback).
   */
  | { readonly lowerDirs: readonly string[] }
  /** A directory used as the root as is: writes land in it. No diff is produced. */
  | { readonly dir: string };

/** A persistent cache directory (`RUN --mount=type=cache`), kept under the runtime's state root. */
export interface CacheMount {
  readonly type: 'cache';
  readonly target: string;
  /** Cache id; default the target. */
  readonly id?: string;
  /** `shared` (default): used by concurrent runs at once; `private`: a concurrent run gets a fresh directory; `locked`: concurrent runs wait. */
  readonly sharing?: 'shared' | 'private' | 'locked';
  /** Mode, uid and gid of the directory when it is first created; default 0755, 0, 0. */
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
  readonly readonly?: boolean;
}

/** A host directory or file (a stage's rootfs, the context). Read-only unless `readwrite`; writes are then discarded unless `writeThrough`. */
export interface BindMount {
  readonly type: 'bind';
  readonly source: string;
  readonly target: string;
  readonly readwrite?: boolean;
  /** With `readwrite`: writes land in the host source itself (`docker run -v`), not in a throwaway overlay. */
  readonly writeThrough?: boolean;
}

export interface TmpfsMount {
  readonly type: 'tmpfs';
  readonly target: string;
  /** Size limit in bytes; default the kernel's (half of RAM). */
  readonly size?: number;
  /** Default 01777. */
  readonly mode?: number;
}

/** A secret: a file on a private tmpfs (never in the rootfs), or an environment variable. */
export interface SecretMount {
  readonly type: 'secret';
  readonly id: string;
  /** The secret's bytes; when undefined and `required` is false the mount is skipped. */
  readonly data: Uint8Array | undefined;
  /** Default `/run/secrets/<id>` (unless `env` is given alone). */
  readonly target?: string;
  /** Also (or only) expose the secret as this environment variable. */
  readonly env?: string;
  readonly required?: boolean;
  /** Default 0400, 0, 0. */
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
}

/** An SSH agent socket given by the caller, bound at `target` (default `/run/buildkit/ssh_agent.0`); sets `SSH_AUTH_SOCK`. */
export interface SshMount {
  readonly type: 'ssh';
  readonly socket: string | undefined;
  readonly id?: string;
  readonly target?: string;
  readonly required?: boolean;
}

export type MountSpec = CacheMount | BindMount | TmpfsMount | SecretMount | SshMount;

/**
 * Network of a run. `default` is the host's network, as `docker build` gives RUN steps by
 * default; `host` is the same; `none` is a fresh network namespace with only `lo` up.
 */
export type NetworkMode = 'default' | 'host' | 'none';

/** One process to run in a sandbox. Plain, readonly data. */
export interface RunSpec {
  readonly rootfs: RootfsSpec;
  /**
   * Where changes go for a `lowerDirs` root: an empty (or missing) directory on the same kind of
   * filesystem as the state root; default a fresh directory under the state root, removed by
   * `RunResult.dispose()`.
   */
  readonly upperDir?: string;
  readonly mounts?: readonly MountSpec[];
  /** `KEY=value` strings, passed as is (the caller adds PATH and build args). */
  readonly env?: readonly string[];
  /** Dockerfile USER: `name`, `uid`, `name:group`, `uid:gid`; resolved from the rootfs's /etc/passwd and /etc/group. Default root. */
  readonly user?: string;
  /** Working directory inside the rootfs, created (root-owned, 0755) if missing. Default `/`. */
  readonly cwd?: string;
  /** argv; exec form as is. For shell form use `shellCommand(shell, cmd)`. */
  readonly args: readonly string[];
  readonly network?: NetworkMode;
  /** Default `tsbuild`. */
  readonly hostname?: string;
  /** Kill the run after this many milliseconds (`SandboxTimeoutError`). */
  readonly timeoutMs?: number;
  /** Abort kills the whole pid namespace (`SandboxAbortedError`). */
  readonly signal?: AbortSignal;
  /** Live output, chunk by chunk, in the order each stream produced it. */
  readonly onStdout?: (chunk: Buffer) => void;
  readonly onStderr?: (chunk: Buffer) => void;
  /** `auto` (default): overlayfs, else a private copy of the layers; or force one. */
  readonly rootfsMode?: 'auto' | 'overlay' | 'copy';
}

/** The argv for a shell-form command: `shellCommand(['/bin/sh', '-c'], 'echo hi')`. */
export function shellCommand(shell: readonly string[], command: string): string[] {
  return [...shell, command];
}
