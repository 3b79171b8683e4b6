/**
 * A small HTTP proxy between a client and a test registry that injects faults: error statuses
 * (500, 429 with Retry-After), connections dropped mid-body or before answering, corrupted
 * bytes, and redirects of blob GETs to a second listener on another origin (`localhost:PORT2`)
 * that records whether Authorization was forwarded.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type FaultAction =
  | { readonly kind: 'status'; readonly status: number; readonly retryAfter?: string }
  /** Forward, then cut the connection after `fraction` of the response body. */
  | { readonly kind: 'drop-mid-body'; readonly fraction?: number }
  /** Cut the connection before answering (after reading the request body). */
  | { readonly kind: 'reset' }
  /** Forward, flipping one byte of the body. */
  | { readonly kind: 'corrupt' }
  /** 307 to the redirect listener (another origin). */
  | { readonly kind: 'redirect' };

export interface FaultRule {
  readonly method?: string;
  /** Matched against the request path (with query). */
  readonly path?: RegExp;
  readonly action: FaultAction;
  /** How many times the rule fires (default 1). */
  times?: number;
  /** Let this many matching requests through before firing (default 0). */
  skip?: number;
  /** Fire with this probability per matching request (default 1), from a seeded generator. */
  readonly probability?: number;
}

export interface ProxyLogEntry {
  readonly method: string;
  readonly path: string;
  readonly range: string | undefined;
  readonly fault: string | undefined;
}

export interface FaultProxy {
  /** `127.0.0.1:PORT` of the proxy (plain http). */
  readonly host: string;
  readonly log: ProxyLogEntry[];
  /** Requests the redirect target saw, with the Authorization header they carried. */
  readonly redirected: { path: string; authorization: string | undefined }[];
  rules: FaultRule[];
  stop(): Promise<void>;
}

/**
 * Starts the proxy in front of `target` (`127.0.0.1:PORT`). `upstreamAuthorization` is what the
 * redirect listener sends upstream itself (it stands in for a blob store with its own access).
 */
export async function startFaultProxy(target: string, opts: { rules?: FaultRule[]; upstreamAuthorization?: string; seed?: number } = {}): Promise<FaultProxy> {
  const [thost, tport] = target.split(':') as [string, string];
  const log: ProxyLogEntry[] = [];
  const redirected: FaultProxy['redirected'] = [];
  let seed = opts.seed ?? 42;
  const random = () => {
    // mulberry32
    seed = (seed + 0x6d2b79f5) | 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const state: { rules: FaultRule[] } = { rules: opts.rules ?? [] };
  let redirectPort = 0;

  const forward = (req: IncomingMessage, res: ServerResponse, onBody?: (upstream: IncomingMessage) => void, extraHeaders?: Record<string, string>) => {
    const headers = { ...req.headers, ...extraHeaders };
    const up = http.request({ host: thost, port: Number(tport), method: req.method, path: req.url, headers, agent: false }, (ures) => {
      if (onBody) return onBody(ures);
      res.writeHead(ures.statusCode ?? 502, ures.headers);
      ures.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  };

  const server = http.createServer((req, res) => {
    const path = req.url ?? '/';
    const rule = state.rules.find((r) => {
      if ((r.times ?? 1) <= 0 || (r.method && r.method !== req.method) || (r.path && !r.path.test(path))) return false;
      if (r.skip) {
        r.skip--;
        return false;
      }
      return r.probability === undefined || random() < r.probability;
    });
    if (rule) rule.times = (rule.times ?? 1) - 1;
    const a = rule?.action;
    log.push({ method: req.method ?? '', path, range: req.headers.range, fault: a?.kind === 'status' ? `status ${a.status}` : a?.kind });
    if (!a) return forward(req, res);
    switch (a.kind) {
      case 'status':
        req.resume();
        req.on('end', () => {
          res.writeHead(a.status, { 'content-type': 'application/json', ...(a.retryAfter !== undefined ? { 'retry-after': a.retryAfter } : {}) });
          res.end(JSON.stringify({ errors: [{ code: a.status === 429 ? 'TOOMANYREQUESTS' : 'UNKNOWN', message: 'injected fault' }] }));
        });
        return;
      case 'reset':
        req.resume();
        req.on('end', () => req.socket.destroy());
        return;
      case 'redirect':
        req.resume();
        res.writeHead(307, { location: `http://localhost:${redirectPort}${path}` });
        res.end();
        return;
      case 'drop-mid-body':
        return forward(req, res, (ures) => {
          const total = Number(ures.headers['content-length'] ?? 0);
          const cut = Math.max(1, Math.floor(total * (a.fraction ?? 0.5)));
          res.writeHead(ures.statusCode ?? 502, ures.headers);
          let sent = 0;
          ures.on('data', (c: Buffer) => {
            if (sent >= cut) return;
            const part = c.subarray(0, cut - sent);
            sent += part.length;
            res.write(part);
            if (sent >= cut) {
              ures.destroy();
              // Let the bytes reach the client, then cut the connection.
              setTimeout(() => res.socket?.destroy(), 20);
            }
          });
        });
      case 'corrupt':
        return forward(req, res, (ures) => {
          res.writeHead(ures.statusCode ?? 502, ures.headers);
          let first = true;
          ures.on('data', (c: Buffer) => {
            if (first && c.length > 0) {
              first = false;
              const copy = Buffer.from(c);
              copy[0] = copy[0]! ^ 0xff;
              res.write(copy);
            } else res.write(c);
          });
          ures.on('end', () => res.end());
        });
    }
  });
  const redirectServer = http.createServer((req, res) => {
    redirected.push({ path: req.url ?? '/', authorization: req.headers.authorization });
    const headers: Record<string, string> = { host: target };
    if (opts.upstreamAuthorization) headers.authorization = opts.upstreamAuthorization;
    delete req.headers.authorization;
    forward(req, res, undefined, headers);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  await new Promise<void>((r) => redirectServer.listen(0, '127.0.0.1', r));
  redirectPort = (redirectServer.address() as AddressInfo).port;
  const port = (server.address() as AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    log,
    redirected,
    get rules() {
      return state.rules;
    },
    set rules(r: FaultRule[]) {
      state.rules = r;
    },
    async stop() {
      server.closeAllConnections();
      redirectServer.closeAllConnections();
      await Promise.all([new Promise((r) => server.close(r)), new Promise((r) => redirectServer.close(r))]);
    },
  };
}
