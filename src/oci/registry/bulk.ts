import type * as Net from 'node:net';
import type * as Tls from 'node:tls';
import type { IncomingHttpHeaders } from 'node:http';
import { secureContextFor } from '../../util/extra-ca.js';
import type { HttpBody, HttpRequest, HttpResponse } from './http.js';

/**
 * A GET whose body is large (a layer blob), on a connection that reads into one reused buffer
 * (`onread` of node:net / node:tls).
 *
 * Why not node:http: its client reads 64 KiB per call into a fresh buffer and copies every body
 * piece once more into another. Receiving a 190 MB image over loopback took 450-500 ms that way,
 * 300 ms on a plain socket, and 180 ms reading into one 1 MiB buffer; curl takes 200 ms.
 *
 * Only what a blob download needs is spoken here: a request, a response head (status line and
 * fields, RFC 9112 §2-§5) and a body framed by Content-Length. A response framed any other way
 * (chunked, or until close) resolves `undefined`, and the caller sends the request again through
 * node:http; so does anything this module refuses to parse. Redirects, auth challenges and
 * retries stay with the caller, which sees an ordinary HttpResponse.
 *
 * Connections are kept alive between GETs to the same origin (with the same TLS settings), as
 * node's agent keeps its own: a pull over the internet does not pay a TLS handshake per layer.
 * A kept connection the server closed meanwhile is replaced once, quietly.
 */
export async function bulkGet(req: HttpRequest): Promise<HttpResponse | undefined> {
  if (req.signal?.aborted) throw req.signal.reason ?? new Error('aborted');
  const request = requestHead(req); // refuses what would split the request before connecting
  const https = req.url.protocol === 'https:';
  const [net, tls] = await Promise.all([netModule(), https ? tlsModule() : undefined]);
  const host = req.url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = Number(req.url.port) || (https ? 443 : 80);
  // node's roots, the command line's deferred NODE_EXTRA_CA_CERTS and certs.d (util/extra-ca.ts)
  const secureContext = tls ? secureContextFor(tls, req.tls) : undefined;
  const key = `${https ? 'https' : 'http'}://${host}:${port}|${req.tls?.id ?? ''}|${req.rejectUnauthorized === false ? 'unverified' : ''}`;
  for (let attempt = 0; ; attempt++) {
    const kept = attempt === 0 ? takeIdle(key) : undefined;
    const conn =
      kept ??
      new Connection(key, (onread) =>
        tls
          ? tls.connect({
              host,
              port,
              onread,
              ...(net.isIP(host) ? {} : { servername: host }),
              ...(req.rejectUnauthorized === false ? { rejectUnauthorized: false } : {}),
              ...(secureContext ? { secureContext } : {}),
            } as Tls.ConnectionOptions)
          : net.connect({ host, port, onread } as Net.NetConnectOpts),
      );
    try {
      return await exchange(conn, req, request);
    } catch (err) {
      if (kept && (err as { [SILENT]?: boolean })[SILENT]) continue; // closed while it was kept
      throw err;
    }
  }
}

/** Bytes read at once. */
const READ_BUFFER = 1024 * 1024;
/** What one body piece holds at most (fresh memory costs page faults: smaller blocks are reused by malloc). */
const BLOCK = 256 * 1024;
/** Bytes waiting for the consumer before the socket is paused, and below which it reads again. */
const HIGH_WATER = 2 * 1024 * 1024;
const LOW_WATER = 512 * 1024;
const HEAD_LIMIT = 64 * 1024;
/** What a body dropped by its reader may still have to come for its connection to be kept (else it is closed). */
const DRAIN_LIMIT = 64 * 1024;
/** Kept connections per origin, and how long one is kept unused. */
const IDLE_PER_ORIGIN = 8;
const IDLE_MS = 30_000;

/** Marks an error of a connection that failed before any byte of the response came. */
const SILENT = Symbol('closed before the response');

let netPromise: Promise<typeof Net> | undefined;
let tlsPromise: Promise<typeof Tls> | undefined;
const netModule = () => (netPromise ??= import('node:net').then((m) => ((m as { default?: typeof Net }).default ?? m) as typeof Net));
const tlsModule = () => (tlsPromise ??= import('node:tls').then((m) => ((m as { default?: typeof Tls }).default ?? m) as typeof Tls));

/** What the connection's reads and events go to while a GET uses it. */
interface Exchange {
  data(n: number, buf: Uint8Array): boolean;
  failed(err: Error): void;
  closed(): void;
  timedOut(): void;
}

type OnRead = { buffer: Uint8Array; callback: (n: number, buf: Uint8Array) => boolean };

/** A socket with its read buffer, used by one GET at a time and kept between them. */
class Connection {
  readonly socket: Net.Socket;
  readonly key: string;
  exchange: Exchange | undefined;
  /** Whether a GET has used it before (a kept connection may have been closed by the server). */
  reused = false;

  constructor(key: string, open: (onread: OnRead) => Net.Socket) {
    this.key = key;
    this.socket = open({
      buffer: Buffer.allocUnsafeSlow(READ_BUFFER),
      callback: (n, buf) => {
        if (this.exchange) return this.exchange.data(n, buf);
        this.socket.destroy(); // bytes nobody asked for: the connection cannot be trusted
        return false;
      },
    });
    this.socket.on('error', (err) => this.exchange?.failed(err));
    this.socket.on('close', () => {
      forget(this);
      this.exchange?.closed();
    });
    this.socket.on('timeout', () => {
      if (this.exchange) this.exchange.timedOut();
      else this.socket.destroy(); // kept too long unused
    });
  }
}

const idle = new Map<string, Connection[]>();

function takeIdle(key: string): Connection | undefined {
  const list = idle.get(key);
  const conn = list?.pop();
  if (list && list.length === 0) idle.delete(key);
  if (conn) conn.socket.ref();
  return conn;
}

/** Keeps a connection whose last response was read to its end, for the next GET to its origin. */
function keep(conn: Connection): void {
  conn.exchange = undefined;
  const list = idle.get(conn.key) ?? [];
  if (conn.socket.destroyed || list.length >= IDLE_PER_ORIGIN) {
    conn.socket.destroy();
    return;
  }
  conn.reused = true;
  conn.socket.setTimeout(IDLE_MS);
  conn.socket.unref(); // a kept connection never holds the process open
  conn.socket.resume();
  list.push(conn);
  idle.set(conn.key, list);
}

function forget(conn: Connection): void {
  const list = idle.get(conn.key);
  const i = list?.indexOf(conn) ?? -1;
  if (i >= 0) list!.splice(i, 1);
  if (list && list.length === 0) idle.delete(conn.key);
}

/** One GET on `conn`: resolves at the response head; the body streams on, then the connection is kept or closed. */
function exchange(conn: Connection, req: HttpRequest, request: string): Promise<HttpResponse | undefined> {
  return new Promise<HttpResponse | undefined>((resolve, reject) => {
    const { socket } = conn;
    const signal = req.signal;
    const timeoutMs = req.timeoutMs ?? 60_000;
    let head: Buffer | undefined = Buffer.alloc(0);
    let body: BulkBody | undefined;
    let received = false;
    let settled = false;
    const settle = (fn: () => void) => {
      if (!settled) {
        settled = true;
        fn();
      }
    };
    const onAbort = () => ex.failed(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
    const release = (reusable: boolean) => {
      signal?.removeEventListener('abort', onAbort);
      if (conn.exchange !== ex) return;
      if (reusable) keep(conn);
      else {
        conn.exchange = undefined;
        socket.destroy();
      }
    };
    /** Hands the exchange back to node:http: this connection's state is unknown, so it is closed. */
    const decline = () => {
      release(false);
      settle(() => resolve(undefined));
      return false;
    };

    const ex: Exchange = {
      data(n, buf) {
        received = true;
        if (body) return body.push(buf, 0, n);
        let text: Buffer = Buffer.concat([head!, buf.subarray(0, n)]);
        for (;;) {
          const end = text.indexOf('\r\n\r\n');
          if (end < 0) {
            head = text;
            if (text.length > HEAD_LIMIT) ex.failed(Object.assign(new Error(`response head larger than ${HEAD_LIMIT} bytes`), { code: 'HPE_HEADER_OVERFLOW' }));
            return true;
          }
          const parsed = parseHead(text.subarray(0, end).toString('latin1'));
          const rest: Buffer = text.subarray(end + 4);
          if (!parsed) return decline();
          if (parsed.status >= 100 && parsed.status < 200) {
            text = rest; // 100 Continue and friends: the real head follows
            continue;
          }
          const length = bodyLength(parsed.status, parsed.headers);
          if (length === undefined) return decline();
          head = undefined;
          const persistent = parsed.version === '1.1' && !/(^|,)\s*close\s*(,|$)/i.test(String(parsed.headers.connection ?? ''));
          body = new BulkBody(length, {
            pause: () => socket.pause(),
            resume: () => socket.resume(),
            end: (clean) => release(clean && persistent),
            abandon: () => release(false),
          });
          settle(() => resolve({ status: parsed.status, headers: parsed.headers, body: body!, url: req.url }));
          return rest.length > 0 ? body.push(rest, 0, rest.length) : true;
        }
      },
      closed() {
        ex.failed(Object.assign(new Error(body ? `connection closed with ${body.left} bytes of the body still to come` : 'socket hang up'), { code: 'ECONNRESET' }));
      },
      timedOut() {
        ex.failed(Object.assign(new Error(`no data from ${req.url.host} for ${timeoutMs / 1000} s`), { code: 'ETIMEDOUT' }));
      },
      failed(err) {
        release(false);
        if (body) body.fail(err);
        else settle(() => reject(conn.reused && !received ? Object.assign(err, { [SILENT]: true }) : err));
      },
    };

    conn.exchange = ex;
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.setTimeout(timeoutMs);
    socket.write(request, 'latin1');
  });
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** The request line and fields; refuses a name or value that would split the message. */
function requestHead(req: HttpRequest): string {
  const target = `${req.url.pathname || '/'}${req.url.search}`; // URL has percent-encoded any space
  let text = `GET ${target} HTTP/1.1\r\nHost: ${req.url.host}\r\nUser-Agent: tsbuild\r\n`;
  for (const [name, value] of Object.entries(req.headers ?? {})) {
    const lower = name.toLowerCase();
    if (lower === 'host' || lower === 'connection' || lower === 'user-agent') continue;
    if (!TOKEN.test(name) || /[\r\n\0]/.test(value)) throw Object.assign(new TypeError(`invalid header ${JSON.stringify(name)}`), { code: 'ERR_INVALID_CHAR' });
    text += `${name}: ${value}\r\n`;
  }
  return `${text}\r\n`;
}

/**
 * The version, status and fields of a response head, names lower-cased and repeated fields
 * joined with ", " as node:http gives them (`set-cookie` as a list); undefined for what is not
 * HTTP/1.x or uses obsolete line folding.
 */
export function parseHead(text: string): { version: '1.0' | '1.1'; status: number; headers: IncomingHttpHeaders } | undefined {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.([01]) (\d{3})(?: .*)?$/.exec(lines[0]!);
  if (!m) return undefined;
  const headers: Record<string, string | string[]> = {};
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon <= 0 || line[0] === ' ' || line[0] === '\t') return undefined;
    const name = line.slice(0, colon).toLowerCase();
    if (!TOKEN.test(name)) return undefined;
    const value = line.slice(colon + 1).trim();
    const had = headers[name];
    if (name === 'set-cookie') headers[name] = [...((had as string[] | undefined) ?? []), value];
    else headers[name] = had === undefined ? value : `${had as string}, ${value}`;
  }
  return { version: m[1] === '1' ? '1.1' : '1.0', status: Number(m[2]), headers };
}

/** The body's length as the head frames it (RFC 9112 §6.3); undefined when only node:http should read it. */
function bodyLength(status: number, headers: IncomingHttpHeaders): number | undefined {
  if (status === 204 || status === 304) return 0;
  if (headers['transfer-encoding'] !== undefined) return undefined;
  const cl = headers['content-length'];
  if (typeof cl !== 'string' || !/^\d{1,15}$/.test(cl)) return undefined; // absent, repeated ("1, 1") or not a number
  return Number(cl);
}

/** What a body tells its connection. */
interface BodyIo {
  pause(): void;
  resume(): void;
  /** Every byte came; `clean` when no byte beyond the body did. */
  end(clean: boolean): void;
  /** The reader dropped the body before its end. */
  abandon(): void;
}

/**
 * The body of a bulk GET: pieces copied out of the connection's read buffer into 256 KiB blocks
 * that are handed to the reader as views (each block is written once, front to back, so a view
 * stays valid), read with `for await`. The socket pauses while 2 MiB wait.
 */
class BulkBody implements HttpBody {
  #io: BodyIo;
  #left: number;
  #queue: Buffer[] = [];
  #queued = 0;
  #block: Buffer | undefined;
  #blockStart = 0;
  #blockEnd = 0;
  #paused = false;
  /** The reader dropped the body: bytes still coming are counted, not kept. */
  #draining = false;
  #error: Error | undefined;
  #done = false;
  #wake: (() => void) | undefined;
  #errorListeners: ((err: Error) => void)[] = [];
  complete = false;

  /** Bytes of the body still to come. */
  get left(): number {
    return this.#left;
  }

  constructor(length: number, io: BodyIo) {
    this.#io = io;
    this.#left = length;
    if (length === 0) this.#finish(true);
  }

  /** Takes `buf[start, end)` from the read buffer; false asks the socket to pause. */
  push(buf: Uint8Array, start: number, end: number): boolean {
    if (this.complete) return false;
    const extra = end - start > this.#left;
    let n = Math.min(end - start, this.#left);
    this.#left -= n;
    if (this.#draining) n = 0;
    while (n > 0) {
      if (!this.#block || this.#blockEnd === this.#block.length) {
        this.#flushBlock();
        this.#block = Buffer.allocUnsafeSlow(BLOCK);
        this.#blockStart = this.#blockEnd = 0;
      }
      const k = Math.min(n, this.#block.length - this.#blockEnd);
      this.#block.set(buf.subarray(start, start + k), this.#blockEnd);
      this.#blockEnd += k;
      this.#queued += k;
      start += k;
      n -= k;
    }
    if (this.#left === 0) {
      this.#finish(!extra);
      this.#wakeUp();
      return true;
    }
    this.#wakeUp();
    if (this.#queued >= HIGH_WATER && !this.#draining) {
      this.#paused = true;
      return false;
    }
    return true;
  }

  /** The connection failed (closed, reset, timed out, aborted) before the body's end. */
  fail(err: Error): void {
    if (this.complete || this.#error) return;
    this.#error = err;
    this.#done = true;
    for (const l of this.#errorListeners) l(err);
    this.#wakeUp();
  }

  #finish(clean: boolean): void {
    this.complete = true;
    this.#done = true;
    this.#io.end(clean);
  }

  #flushBlock(): void {
    if (this.#block && this.#blockEnd > this.#blockStart) {
      this.#queue.push(this.#block.subarray(this.#blockStart, this.#blockEnd));
      this.#blockStart = this.#blockEnd;
    }
  }

  #wakeUp(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    try {
      for (;;) {
        this.#flushBlock();
        const piece = this.#queue.shift();
        if (piece) {
          this.#queued -= piece.length;
          if (this.#paused && this.#queued <= LOW_WATER) {
            this.#paused = false;
            this.#io.resume();
          }
          yield piece;
          continue;
        }
        if (this.#error) throw this.#error;
        if (this.#done) return;
        await new Promise<void>((r) => (this.#wake = r));
      }
    } finally {
      if (!this.#done) this.destroy();
    }
  }

  /** Drops the rest of the body: a short rest is read and the connection kept, a long one closes it. */
  resume(): this {
    this.#queue = [];
    this.#queued = 0;
    this.#block = undefined;
    if (this.#done) return this;
    if (this.#left > DRAIN_LIMIT) return this.destroy();
    this.#draining = true;
    if (this.#paused) {
      this.#paused = false;
      this.#io.resume();
    }
    return this;
  }

  destroy(err?: Error): this {
    if (!this.#done) {
      this.#done = true;
      this.#io.abandon();
      if (err) {
        this.#error = err;
        for (const l of this.#errorListeners) l(err);
      }
      this.#wakeUp();
    }
    this.#queue = [];
    this.#block = undefined;
    return this;
  }

  on(event: 'error', listener: (err: Error) => void): this {
    if (event === 'error') this.#errorListeners.push(listener);
    return this;
  }
}
