import { httpRequest, readBody, readErrorText, type TlsSettings } from './http.js';
import { RegistryError, parseErrorBody } from './errors.js';

/** Credentials for one registry, as docker config and credential helpers give them. */
export type Credentials =
  | { readonly username: string; readonly password: string }
  /** An OAuth2 refresh token (docker config `identitytoken`); exchanged with POST grant_type=refresh_token. */
  | { readonly identityToken: string; readonly username?: string }
  /** A bearer token used as is (docker config `registrytoken`). */
  | { readonly registryToken: string };

/** One `WWW-Authenticate` challenge: scheme (lower-cased) and its auth-params (keys lower-cased). */
export interface Challenge {
  readonly scheme: string;
  readonly params: Readonly<Record<string, string>>;
}

/**
 * Parses a `WWW-Authenticate` header (RFC 7235): several challenges, quoted strings with
 * backslash escapes, commas inside quotes (Docker's `scope="repository:a:pull,push"`).
 */
export function parseWwwAuthenticate(value: string): Challenge[] {
  const out: { scheme: string; params: Record<string, string> }[] = [];
  let i = 0;
  const n = value.length;
  const skipWs = () => {
    while (i < n && (value[i] === ' ' || value[i] === '\t')) i++;
  };
  const token = () => {
    const start = i;
    while (i < n && /[!#$%&'*+\-.^_`|~0-9A-Za-z]/.test(value[i]!)) i++;
    return value.slice(start, i);
  };
  while (i < n) {
    skipWs();
    if (value[i] === ',') {
      i++;
      continue;
    }
    const word = token();
    if (!word) {
      i++;
      continue;
    }
    skipWs();
    // Is this `name=value` (a param of the current challenge) or a new scheme?
    if (value[i] === '=' && out.length > 0 && value[i + 1] !== '=') {
      i++;
      skipWs();
      let v = '';
      if (value[i] === '"') {
        i++;
        while (i < n && value[i] !== '"') {
          if (value[i] === '\\' && i + 1 < n) i++;
          v += value[i];
          i++;
        }
        i++;
      } else {
        v = token();
      }
      out[out.length - 1]!.params[word.toLowerCase()] = v;
      continue;
    }
    const ch = { scheme: word.toLowerCase(), params: {} as Record<string, string> };
    out.push(ch);
    // token68 form: `Basic abc==` — kept as params.token68
    const save = i;
    const t = value.slice(i).match(/^([A-Za-z0-9\-._~+/]+=*)\s*(,|$)/);
    if (t && !/=[^=]/.test(t[1]!) && value[i + t[1]!.length] !== '=') {
      ch.params.token68 = t[1]!;
      i += t[0].length;
    } else i = save;
  }
  return out;
}

interface CachedToken {
  readonly header: string;
  readonly expiresAt: number;
}

export interface AuthOptions {
  /** Returns credentials for the registry host, or undefined for anonymous. Called at most once. */
  readonly credentials?: () => Promise<Credentials | undefined>;
  readonly signal?: AbortSignal | undefined;
  /** OAuth2 client_id sent to token servers. */
  readonly clientId?: string;
  /** Allow plain-http realms and self-signed TLS on the token server. */
  readonly insecure?: boolean;
  /** Extra CAs / a client certificate for an https token server (the registry's certs.d files). */
  readonly tls?: (repository: string) => Promise<TlsSettings | undefined>;
}

/**
 * Authorization for one registry host: answers challenges (Bearer with per-scope token cache,
 * Basic), remembers what worked, and hands out the header for the next request.
 */
export class RegistryAuth {
  readonly #host: string;
  readonly #opts: AuthOptions;
  #creds: Promise<Credentials | undefined> | undefined;
  #basic: string | undefined;
  #bearer: Challenge | undefined;
  readonly #tokens = new Map<string, CachedToken>();
  readonly #pending = new Map<string, Promise<CachedToken>>();

  constructor(host: string, opts: AuthOptions = {}) {
    this.#host = host;
    this.#opts = opts;
  }

  get host(): string {
    return this.#host;
  }

  credentials(): Promise<Credentials | undefined> {
    this.#creds ??= this.#opts.credentials ? this.#opts.credentials() : Promise.resolve(undefined);
    return this.#creds;
  }

  /** The Authorization header to send for these scopes now, if any is known. */
  headerFor(scopes: readonly string[]): string | undefined {
    if (this.#basic) return this.#basic;
    if (!this.#bearer) return undefined;
    const t = this.#tokens.get(scopeKey(scopes));
    if (t && t.expiresAt > Date.now()) return t.header;
    return undefined;
  }

  /** True when a Bearer challenge was seen, so a fresh token can be fetched before a request. */
  get usesBearer(): boolean {
    return this.#bearer !== undefined;
  }

  /** Fetches (or reuses) a bearer token for the scopes, for the last challenge seen. */
  async bearerFor(scopes: readonly string[], repository: string): Promise<string | undefined> {
    if (!this.#bearer) return undefined;
    const cached = this.headerFor(scopes);
    if (cached) return cached;
    return (await this.#fetchToken(this.#bearer, scopes, repository)).header;
  }

  /**
   * Handles a 401: parses the challenge and returns the header to retry with.
   * Throws a RegistryError (naming the repository) when credentials are missing or refused.
   */
  async answer(wwwAuthenticate: string | undefined, scopes: readonly string[], repository: string, object?: string): Promise<string> {
    const target = object === undefined ? { repository } : { repository, object };
    const challenges = parseWwwAuthenticate(wwwAuthenticate ?? '');
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (bearer) {
      // Scopes from the challenge (for an operation the registry knows better) join ours.
      const all = [...new Set([...scopes, ...(bearer.params.scope ? bearer.params.scope.split(' ') : [])])];
      this.#bearer = bearer;
      this.#tokens.delete(scopeKey(scopes));
      const t = await this.#fetchToken(bearer, all, repository, object);
      this.#tokens.set(scopeKey(scopes), t);
      return t.header;
    }
    if (basic) {
      const creds = await this.credentials();
      if (!creds || !('password' in creds)) {
        throw new RegistryError('TSBUILD_REGISTRY_UNAUTHORIZED', target, `authentication required (Basic realm ${JSON.stringify(basic.params.realm ?? '')}) and no username/password is configured for ${this.#host}; run 'docker login ${this.#host}' or pass credentials`);
      }
      this.#basic = basicHeader(creds.username, creds.password);
      return this.#basic;
    }
    throw new RegistryError('TSBUILD_REGISTRY_UNAUTHORIZED', target, `HTTP 401 with ${wwwAuthenticate ? `an unsupported challenge ${JSON.stringify(wwwAuthenticate)}` : 'no WWW-Authenticate challenge'}`);
  }

  /** Forget a rejected Basic header / token so the next answer() starts over. */
  reset(scopes: readonly string[]): void {
    this.#basic = undefined;
    this.#tokens.delete(scopeKey(scopes));
  }

  async #fetchToken(ch: Challenge, scopes: readonly string[], repository: string, object?: string): Promise<CachedToken> {
    const key = `${ch.params.realm}\n${scopeKey(scopes)}`;
    const inflight = this.#pending.get(key);
    if (inflight) return inflight;
    const p = this.#requestToken(ch, scopes, repository, object).finally(() => this.#pending.delete(key));
    this.#pending.set(key, p);
    return p;
  }

  async #requestToken(ch: Challenge, scopes: readonly string[], repository: string, object?: string): Promise<CachedToken> {
    const target = object === undefined ? { repository } : { repository, object };
    const realm = ch.params.realm;
    if (!realm) throw new RegistryError('TSBUILD_REGISTRY_AUTH', target, 'Bearer challenge without a realm');
    let url: URL;
    try {
      url = new URL(realm);
    } catch (cause) {
      throw new RegistryError('TSBUILD_REGISTRY_AUTH', target, `Bearer challenge realm ${JSON.stringify(realm)} is not a URL`, { cause });
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new RegistryError('TSBUILD_REGISTRY_AUTH', target, `token realm ${realm} is not http(s)`);
    const creds = await this.credentials();
    if (creds && 'registryToken' in creds) return { header: `Bearer ${creds.registryToken}`, expiresAt: Number.POSITIVE_INFINITY };
    const service = ch.params.service;
    const started = Date.now();
    let res;
    let via: string;
    try {
      const settings = url.protocol === 'https:' ? await this.#opts.tls?.(repository) : undefined;
      const tls = settings ? { tls: settings } : {};
      if (creds && 'identityToken' in creds) {
        via = 'refresh token (OAuth2 POST)';
        const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: this.#opts.clientId ?? 'tsbuild' });
        if (service) form.set('service', service);
        if (scopes.length) form.set('scope', scopes.join(' '));
        res = await httpRequest({ method: 'POST', url, body: Buffer.from(form.toString()), headers: { 'content-type': 'application/x-www-form-urlencoded' }, ...tls, signal: this.#opts.signal, rejectUnauthorized: !this.#opts.insecure });
      } else {
        via = creds ? `username ${JSON.stringify(creds.username)}` : 'anonymous';
        const u = new URL(url);
        if (service) u.searchParams.set('service', service);
        for (const s of scopes) u.searchParams.append('scope', s);
        if (creds && 'password' in creds) u.searchParams.set('account', creds.username);
        const headers: Record<string, string> = {};
        if (creds && 'password' in creds) headers.authorization = basicHeader(creds.username, creds.password);
        res = await httpRequest({ method: 'GET', url: u, headers, ...tls, signal: this.#opts.signal, rejectUnauthorized: !this.#opts.insecure });
      }
    } catch (cause) {
      if (cause instanceof RegistryError) throw cause;
      throw new RegistryError('TSBUILD_REGISTRY_AUTH', target, `token server ${url.origin} unreachable: ${(cause as Error).message}`, { cause });
    }
    if (res.status !== 200) {
      const text = await readErrorText(res.body);
      const errs = parseErrorBody(text);
      const said = errs.length ? errs.map((e) => e.message ?? e.code).join('; ') : text.trim().slice(0, 200);
      const code = res.status === 401 || res.status === 403 ? 'TSBUILD_REGISTRY_UNAUTHORIZED' : 'TSBUILD_REGISTRY_AUTH';
      throw new RegistryError(code, target, `token server ${url.origin} refused ${via} for scope ${JSON.stringify(scopes.join(' '))}: HTTP ${res.status}${said ? ` (${said})` : ''}`, { status: res.status, errors: errs });
    }
    const body = await readBody(res.body, 1024 * 1024);
    let json: { token?: unknown; access_token?: unknown; expires_in?: unknown; issued_at?: unknown };
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch (cause) {
      throw new RegistryError('TSBUILD_REGISTRY_AUTH', target, `token server ${url.origin} answered with invalid JSON`, { cause });
    }
    const token = typeof json.token === 'string' && json.token ? json.token : typeof json.access_token === 'string' ? json.access_token : undefined;
    if (!token) throw new RegistryError('TSBUILD_REGISTRY_AUTH', target, `token server ${url.origin} answered without token or access_token`);
    // The spec's default lifetime is 60 s; refresh a little early.
    const expiresIn = typeof json.expires_in === 'number' && json.expires_in > 0 ? json.expires_in : 60;
    const issued = typeof json.issued_at === 'string' ? Date.parse(json.issued_at) : NaN;
    const base = Number.isFinite(issued) && Math.abs(issued - started) < 10 * 60_000 ? Math.min(issued, started) : started;
    return { header: `Bearer ${token}`, expiresAt: base + expiresIn * 1000 - Math.min(10_000, expiresIn * 100) };
  }
}

export function basicHeader(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`;
}

/** `repository:NAME:ACTIONS`. */
export function repositoryScope(repository: string, actions: 'pull' | 'push' | 'pull,push' | string): string {
  return `repository:${repository}:${actions}`;
}

function scopeKey(scopes: readonly string[]): string {
  return [...scopes].sort().join(' ');
}

