import { TsbuildError } from '../errors.js';

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
  /**
   * A host directory whose contents fill the cache directory when it is first made
   * (`--mount=type=cache,from=…,source=…`): copied with owners, modes and times; the mount's
   * mode and owner then do not apply. Give each seed its own `id` (BuildKit keeps one cache per
   * id and base).
   */
  readonly seed?: string;
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

/** A line of the run's /etc/hosts beyond the default ones (`--add-host host:ip`). */
export interface ExtraHost {
  /** One host name (no whitespace: aliases are separate entries). */
  readonly host: string;
  /** IPv4 or IPv6 address, without brackets or zone. */
  readonly ip: string;
}

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
  /**
   * `KEY=value` strings, passed as is (the caller adds PATH and build args); HOME is added from
   * the user's passwd entry (`/` without one) when absent or empty, as runc does.
   */
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
  /**
   * Lines `<ip>\t<host>` appended, in order, to the run's /etc/hosts after the default lines
   * (localhost and the hostname), as BuildKit writes `--add-host` entries. Checked with
   * `checkExtraHost`; default none.
   */
  readonly extraHosts?: readonly ExtraHost[];
  /** Kill the run after this many milliseconds (`SandboxTimeoutError`). */
  readonly timeoutMs?: number;
  /** Abort kills the whole pid namespace (`SandboxAbortedError`). */
  readonly signal?: AbortSignal;
  /** Live output, chunk by chunk, in the order each stream produced it. */
  /**
   * What the process reads on its standard input (`docker run -i`); default none (/dev/null).
   * A descriptor is given to the process as it is (a file, a pipe or a terminal of the caller);
   * a stream is copied into a pipe, whose end is the stream's end.
   */
  readonly stdin?: NodeJS.ReadableStream | number;
  readonly onStdout?: (chunk: Buffer) => void;
  readonly onStderr?: (chunk: Buffer) => void;
  /** `auto` (default): overlayfs, else a private copy of the layers; or force one. */
  readonly rootfsMode?: 'auto' | 'overlay' | 'copy';
}

/** The argv for a shell-form command: `shellCommand(['/bin/sh', '-c'], 'echo hi')`. */
export function shellCommand(shell: readonly string[], command: string): string[] {
  return [...shell, command];
}

/** `host-gateway`: docker's name for "the host, as seen from the container". */
export const HOST_GATEWAY = 'host-gateway';

/**
 * What `host-gateway` maps to. RUN steps and `tsbuild run` share the host's network namespace
 * (tsbuild has no bridge), so the host is its own loopback address.
 */
export const HOST_GATEWAY_IP = '127.0.0.1';

/**
 * An extra host checked and normalized: a non-empty host name without whitespace or `#` (it
 * becomes one /etc/hosts line), and an IP address (brackets around it are dropped, IPv6 is
 * written in its canonical form, `host-gateway` becomes `HOST_GATEWAY_IP`). Throws a
 * `TsbuildError` (`TSBUILD_INVALID_HOST`) naming the bad value.
 */
export function checkExtraHost(entry: ExtraHost): ExtraHost {
  return checked(entry.host, entry.ip, `${entry.host}:${entry.ip}`);
}

/** `shown`: the value as the user gave it, for messages. */
function checked(host: string, given: string, shown: string): ExtraHost {
  let ip = given;
  if (host === '' || /[\s#]/.test(host)) throw new TsbuildError('TSBUILD_INVALID_HOST', `invalid host ${JSON.stringify(shown)}: the host name ${JSON.stringify(host)} ${host === '' ? 'is empty' : 'contains whitespace or #'}`);
  if (ip === HOST_GATEWAY) return { host, ip: HOST_GATEWAY_IP };
  if (ip.length > 2 && ip.startsWith('[') && ip.endsWith(']')) ip = ip.slice(1, -1);
  if (IPV4.test(ip)) return { host, ip };
  const v6 = ip.includes(':') ? canonicalIPv6(ip) : undefined;
  if (v6 !== undefined) return { host, ip: v6 };
  throw new TsbuildError('TSBUILD_INVALID_HOST', `invalid host ${JSON.stringify(shown)}: ${JSON.stringify(given)} is not an IP address`);
}

/** Dotted decimal, no leading zeros (as Go's `net.ParseIP` wants it). */
const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/**
 * IPv6 in its canonical text (RFC 5952), an IPv4-mapped address as plain IPv4 (as Go prints it);
 * undefined when `ip` is not an IPv6 address (WHATWG URL's parser decides: no zones). The URL
 * parser is used, not `node:net`, which would cost every CLI start a few milliseconds.
 */
function canonicalIPv6(ip: string): string | undefined {
  if (!/^[0-9A-Fa-f:.]+$/.test(ip)) return undefined;
  let canonical: string;
  try {
    canonical = new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  } catch {
    return undefined;
  }
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (!mapped) return canonical;
  const hi = parseInt(mapped[1]!, 16);
  const lo = parseInt(mapped[2]!, 16);
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

/**
 * One `--add-host` value as docker/buildx spell it: `host:ip` or `host=ip` (`=` first, so
 * `host=::1` and `host:::1` both work), the IP possibly in brackets (`host:[::1]`), a
 * comma-separated list of IPs giving one entry each, or `host-gateway`. Throws a `TsbuildError`
 * (`TSBUILD_INVALID_HOST`) naming the bad value.
 */
export function parseAddHost(text: string): ExtraHost[] {
  let i = text.indexOf('=');
  if (i < 0) i = text.indexOf(':');
  const host = i < 0 ? '' : text.slice(0, i);
  const ips = i < 0 ? '' : text.slice(i + 1);
  if (host === '' || ips === '') throw new TsbuildError('TSBUILD_INVALID_HOST', `invalid host ${JSON.stringify(text)}: want host:ip or host=ip`);
  return ips.split(',').map((ip) => checked(host, ip, text));
}
