import type * as Http from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import type * as Https from 'node:https';
import type { Readable } from 'node:stream';
import type * as Tls from 'node:tls';
import { secureContextFor, type TlsTrust } from '../../util/extra-ca.js';
import { bulkGet } from './bulk.js';

type HttpModule = typeof Http;
type HttpsModule = typeof Https;
type Transport = { readonly mod: HttpModule | HttpsModule; readonly agent: Http.Agent };

/** TLS settings of a registry beyond the system's (docker's `certs.d/<host>/`: see certs.ts). */
export type TlsSettings = TlsTrust;

/**
 * node:http and node:https (with net and TLS) are loaded on the first request of each kind: a
 * build from local images never needs them (about 6 ms less to start), a loopback registry never
 * needs TLS. One keep-alive agent per kind, and per set of extra TLS settings, is shared by every
 * client in the process (a registry is talked to many times).
 */
let httpTransport: Promise<Transport> | undefined;
const httpsTransports = new Map<string, Promise<Transport>>();
function transport(kind: 'http' | 'https', tls?: TlsSettings): Promise<Transport> {
  if (kind === 'http') {
    return (httpTransport ??= import('node:http').then((m) => {
      const mod = ((m as { default?: HttpModule }).default ?? m) as HttpModule;
      return { mod, agent: new mod.Agent({ keepAlive: true, maxSockets: 32 }) };
    }));
  }
  const id = tls?.id ?? '';
  let t = httpsTransports.get(id);
  if (!t) {
    t = Promise.all([import('node:https'), import('node:tls')]).then(([m, tlsModule]) => {
      const mod = ((m as { default?: HttpsModule }).default ?? m) as HttpsModule;
      // node's roots, the command line's deferred NODE_EXTRA_CA_CERTS and certs.d (util/extra-ca.ts)
      const secureContext = secureContextFor(((tlsModule as { default?: typeof Tls }).default ?? tlsModule) as typeof Tls, tls);
      return { mod, agent: new mod.Agent({ keepAlive: true, maxSockets: 32, ...(secureContext ? { secureContext } : {}) }) };
    });
    httpsTransports.set(id, t);
  }
  return t;
}

export interface HttpRequest {
  readonly method: string;
  readonly url: URL;
  readonly headers?: Readonly<Record<string, string>>;
  /** A buffer, or a stream (send Content-Length in `headers` when known; else chunked). */
  readonly body?: Buffer | Readable;
  readonly signal?: AbortSignal | undefined;
  /** Socket idle timeout in ms (default 60 000). */
  readonly timeoutMs?: number;
  /** Skip TLS verification (only for registries the user named insecure). */
  readonly rejectUnauthorized?: boolean;
  /** Extra CA certificates / a client certificate for an https request. */
  readonly tls?: TlsSettings;
  /** A GET of a large body: read on a connection of its own (bulk.ts), node:http if it cannot. */
  readonly bulk?: boolean;
}

/** A response body: node's IncomingMessage, or a bulk GET's (bulk.ts). */
export interface HttpBody extends AsyncIterable<Buffer> {
  /** Whether every byte the head announced has arrived. */
  readonly complete: boolean;
  /** Drops the rest of the body. */
  resume(): unknown;
  destroy(error?: Error): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
}

export interface HttpResponse {
  readonly status: number;
  /** The reason phrase, when the server sent one. */
  readonly statusText?: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: HttpBody;
  readonly url: URL;
}

/** One HTTP exchange, no redirects, no retries: resolves when the response head arrives. */
export async function httpRequest(req: HttpRequest): Promise<HttpResponse> {
  const tls = req.url.protocol === 'https:';
  if (req.bulk && req.method === 'GET' && req.body === undefined) {
    const res = await bulkGet(req);
    if (res) return res;
  }
  return transport(tls ? 'https' : 'http', req.tls).then((t) => exchange(req, t, tls));
}

/** Redirects followed at most, as Go's http client (and so BuildKit's ADD) does. */
const MAX_REDIRECTS = 10;

/**
 * A GET or HEAD of a URL that follows redirects (ADD's downloads): resolves with the final
 * response head; `url` is where it came from. TLS as every request here (util/extra-ca.ts).
 */
export async function httpFetch(method: 'GET' | 'HEAD', url: URL, signal?: AbortSignal): Promise<HttpResponse> {
  for (let hops = 0; ; hops++) {
    const res = await httpRequest({ method, url, ...(signal ? { signal } : {}) });
    const location = header(res.headers, 'location');
    if (![301, 302, 303, 307, 308].includes(res.status) || location === undefined) return res;
    discard(res.body);
    if (hops === MAX_REDIRECTS) throw new Error(`stopped after ${MAX_REDIRECTS} redirects`);
    url = new URL(location, url);
  }
}

function exchange(req: HttpRequest, t: Transport, tls: boolean): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    if (req.signal?.aborted) {
      reject(req.signal.reason ?? new Error('aborted'));
      return;
    }
    const headers: Record<string, string> = { 'user-agent': 'tsbuild', ...req.headers };
    if (Buffer.isBuffer(req.body)) headers['content-length'] = String(req.body.length);
    else if (req.body === undefined && (req.method === 'PUT' || req.method === 'POST' || req.method === 'PATCH')) headers['content-length'] = '0';
    const options: Https.RequestOptions = {
      method: req.method,
      headers,
      agent: t.agent,
      timeout: req.timeoutMs ?? 60_000,
    };
    if (tls && req.rejectUnauthorized === false) {
      options.rejectUnauthorized = false;
      options.agent = new (t.mod as HttpsModule).Agent({ keepAlive: false, rejectUnauthorized: false });
    }
    const cr = t.mod.request(req.url, options);
    let settled = false;
    const onAbort = () => cr.destroy(req.signal?.reason instanceof Error ? req.signal.reason : new Error('aborted'));
    req.signal?.addEventListener('abort', onAbort, { once: true });
    cr.on('timeout', () => cr.destroy(Object.assign(new Error(`no data from ${req.url.host} for ${(req.timeoutMs ?? 60_000) / 1000} s`), { code: 'ETIMEDOUT' })));
    cr.on('error', (err) => {
      req.signal?.removeEventListener('abort', onAbort);
      if (!settled) {
        settled = true;
        reject(err);
      }
    });
    cr.on('response', (res) => {
      settled = true;
      res.on('close', () => req.signal?.removeEventListener('abort', onAbort));
      resolve({ status: res.statusCode ?? 0, ...(res.statusMessage ? { statusText: res.statusMessage } : {}), headers: res.headers, body: res, url: req.url });
    });
    const body = req.body;
    if (body === undefined) cr.end();
    else if (Buffer.isBuffer(body)) cr.end(body);
    else {
      body.on('error', (err) => cr.destroy(err));
      body.pipe(cr);
    }
  });
}

/** Reads a (small) response body; refuses more than `limit` bytes. */
export async function readBody(res: HttpBody, limit = 8 * 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of res) {
    n += chunk.length;
    if (n > limit) {
      res.destroy();
      throw new Error(`response body larger than ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Reads up to 64 KiB of an error body as text; never throws. */
export async function readErrorText(res: HttpBody): Promise<string> {
  try {
    return (await readBody(res, 64 * 1024)).toString('utf8');
  } catch {
    return '';
  }
}

/** Discards a body so the socket goes back to the pool. */
export function discard(res: HttpBody): void {
  res.resume();
  res.on('error', () => {});
}

export function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** Network errors worth a retry (dropped connections, resets, timeouts). */
export function isTransientNetworkError(err: unknown): boolean {
  const code = (err as { code?: string } | undefined)?.code;
  return (
    code === 'ECONNRESET' || code === 'ECONNREFUSED' || code === 'EPIPE' || code === 'ETIMEDOUT' ||
    code === 'ECONNABORTED' || code === 'EAI_AGAIN' || code === 'ENETUNREACH' || code === 'EHOSTUNREACH' ||
    code === 'UND_ERR_SOCKET' || code === 'ERR_STREAM_PREMATURE_CLOSE' ||
    (err instanceof Error && /socket hang up|aborted/i.test(err.message) && code !== 'ABORT_ERR')
  );
}
