import { TsbuildError } from '../../errors.js';

/** One entry of a distribution-spec error body: `{"errors":[{"code","message","detail"}]}`. */
export interface RegistryErrorEntry {
  readonly code: string;
  readonly message?: string;
  readonly detail?: unknown;
}

/** What a registry operation was about, named in every error message. */
export interface RegistryErrorTarget {
  /** `host[:port]/repository`, or the bare host for registry-wide requests. */
  readonly repository: string;
  /** e.g. `manifest latest`, `blob sha256:…`, `upload of blob sha256:…`, `tag list`. */
  readonly object?: string;
}

export type RegistryErrorCode =
  | 'TSBUILD_REGISTRY_UNAUTHORIZED'
  | 'TSBUILD_REGISTRY_DENIED'
  | 'TSBUILD_REGISTRY_NOT_FOUND'
  | 'TSBUILD_REGISTRY_DIGEST_MISMATCH'
  | 'TSBUILD_REGISTRY_NETWORK'
  | 'TSBUILD_REGISTRY_TOO_MANY_REQUESTS'
  | 'TSBUILD_REGISTRY_UNSUPPORTED'
  | 'TSBUILD_REGISTRY_INVALID_RESPONSE'
  | 'TSBUILD_REGISTRY_HTTP'
  | 'TSBUILD_REGISTRY_AUTH'
  | 'TSBUILD_REGISTRY_CREDENTIALS'
  | 'TSBUILD_REGISTRY_PLATFORM'
  | 'TSBUILD_REGISTRY_TLS';

/** Every registry failure: names the repository and the manifest/blob it was about, and why. */
export class RegistryError extends TsbuildError {
  override readonly code: RegistryErrorCode;
  readonly repository: string;
  readonly object: string | undefined;
  /** HTTP status, when the failure came from a response. */
  readonly status: number | undefined;
  /** The registry's own `errors` entries, when its body had them. */
  readonly errors: readonly RegistryErrorEntry[];
  constructor(
    code: RegistryErrorCode,
    target: RegistryErrorTarget,
    reason: string,
    options: { cause?: unknown; status?: number; errors?: readonly RegistryErrorEntry[] } = {},
  ) {
    const what = target.object ? `${target.object} in ${target.repository}` : target.repository;
    super(code, `${what}: ${reason}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.repository = target.repository;
    this.object = target.object;
    this.status = options.status;
    this.errors = options.errors ?? [];
  }
}

/** Parses a distribution-spec error body; returns [] when it is not one. */
export function parseErrorBody(body: string): RegistryErrorEntry[] {
  try {
    const v = JSON.parse(body) as { errors?: unknown; details?: unknown; error?: unknown };
    if (Array.isArray(v.errors)) {
      return v.errors
        .filter((e): e is Record<string, unknown> => typeof e === 'object' && e !== null)
        .map((e) => ({
          code: typeof e.code === 'string' ? e.code : 'UNKNOWN',
          ...(typeof e.message === 'string' ? { message: e.message } : {}),
          ...(e.detail !== undefined ? { detail: e.detail } : {}),
        }));
    }
    // Token servers (and Docker Hub) sometimes answer {"details": "..."} or {"error": "..."}.
    if (typeof v.details === 'string') return [{ code: 'UNKNOWN', message: v.details }];
    if (typeof v.error === 'string') return [{ code: 'UNKNOWN', message: v.error }];
  } catch {
    /* not JSON */
  }
  return [];
}

/** Turns a failed response into a RegistryError with a code that callers can branch on. */
export function errorFromResponse(target: RegistryErrorTarget, status: number, body: string, retryAfter?: string): RegistryError {
  const errors = parseErrorBody(body);
  const codes = new Set(errors.map((e) => e.code));
  const said = errors.length
    ? errors.map((e) => `${e.code}${e.message ? `: ${e.message}` : ''}${detailText(e.detail)}`).join('; ')
    : body.trim().slice(0, 200);
  const reason = `HTTP ${status}${said ? ` (${said})` : ''}`;
  let code: RegistryErrorCode = 'TSBUILD_REGISTRY_HTTP';
  if (status === 401 || codes.has('UNAUTHORIZED')) code = 'TSBUILD_REGISTRY_UNAUTHORIZED';
  else if (status === 403 || codes.has('DENIED')) code = 'TSBUILD_REGISTRY_DENIED';
  else if (status === 404 || codes.has('MANIFEST_UNKNOWN') || codes.has('BLOB_UNKNOWN') || codes.has('NAME_UNKNOWN')) code = 'TSBUILD_REGISTRY_NOT_FOUND';
  else if (status === 429 || codes.has('TOOMANYREQUESTS')) code = 'TSBUILD_REGISTRY_TOO_MANY_REQUESTS';
  else if (codes.has('UNSUPPORTED')) code = 'TSBUILD_REGISTRY_UNSUPPORTED';
  const extra = status === 429 && retryAfter ? `, retry after ${retryAfter}` : '';
  return new RegistryError(code, target, reason + extra, { status, errors });
}

function detailText(detail: unknown): string {
  if (detail === undefined || detail === null) return '';
  if (typeof detail === 'string') return ` [${detail}]`;
  try {
    const s = JSON.stringify(detail);
    return s.length > 160 ? ` [${s.slice(0, 160)}…]` : ` [${s}]`;
  } catch {
    return '';
  }
}
