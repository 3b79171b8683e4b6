/**
 * Bulk GETs (bulk.ts): blob bodies read on a connection of their own. Against the real registry
 * (http and https), and against raw TCP servers for the framings a registry may send.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net, { type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256 } from '../../../src/oci/digest.js';
import { bulkGet, parseHead } from '../../../src/oci/registry/bulk.js';
import { bufferSource, RegistryClient } from '../../../src/oci/registry/client.js';
import { httpRequest, readBody } from '../../../src/oci/registry/http.js';
import { startRegistry, type TestRegistry } from '../../helpers/registry.js';

async function collect(s: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c);
  return Buffer.concat(parts);
}

/** A TCP server that answers every request head with `reply` (several per connection when kept alive). */
async function rawServer(reply: (socket: net.Socket, request: string, nth: number) => void): Promise<{ port: number; requests: string[]; connections(): number; close(): Promise<void> }> {
  const requests: string[] = [];
  let connections = 0;
  const server = net.createServer((socket) => {
    connections++;
    let text = '';
    socket.on('data', (d) => {
      text += d.toString('latin1');
      if (text.includes('\r\n\r\n')) {
        requests.push(text);
        reply(socket, text, requests.length);
        text = '';
      }
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    connections: () => connections,
    close: () => {
      server.close();
      return new Promise((r) => setImmediate(r));
    },
  };
}

describe('bulk GET against the real registry', () => {
  const blob = randomBytes(5 * 1024 * 1024 + 123);
  const digest = sha256(blob);
  let plain: TestRegistry;
  let secure: TestRegistry;
  let certsD: string;
  beforeAll(async () => {
    [plain, secure] = await Promise.all([startRegistry({ mode: 'anonymous' }), startRegistry({ mode: 'anonymous', tls: true })]);
    await new RegistryClient(plain.host, { auth: 'anonymous' }).uploadBlob('bulk/app', digest, bufferSource(blob));
    certsD = mkdtempSync(join(tmpdir(), 'tsbuild-bulk-certs-'));
    mkdirSync(join(certsD, secure.host));
    writeFileSync(join(certsD, secure.host, 'ca.crt'), secure.certificate!);
    await new RegistryClient(secure.host, { auth: 'anonymous', insecure: false, certsDirs: [certsD] }).uploadBlob('bulk/app', digest, bufferSource(blob));
  });
  afterAll(async () => {
    await Promise.all([plain?.stop(), secure?.stop()]);
    if (certsD) rmSync(certsD, { recursive: true, force: true });
  });

  it('reads a blob over http: status, fields and every byte', async () => {
    const res = await bulkGet({ method: 'GET', url: new URL(`http://${plain.host}/v2/bulk/app/blobs/${digest}`) });
    expect(res).toBeDefined();
    expect(res!.status).toBe(200);
    expect(res!.headers['content-length']).toBe(String(blob.length));
    expect(res!.headers['docker-content-digest']).toBe(digest);
    const got = await collect(res!.body);
    expect(res!.body.complete).toBe(true);
    expect(got.equals(blob)).toBe(true);
  });

  it('resumes with Range: 206 and the rest of the bytes', async () => {
    const res = await bulkGet({ method: 'GET', url: new URL(`http://${plain.host}/v2/bulk/app/blobs/${digest}`), headers: { range: 'bytes=1000000-' } });
    expect(res!.status).toBe(206);
    expect((await collect(res!.body)).equals(blob.subarray(1_000_000))).toBe(true);
  });

  it('reads a blob over https with the CA given, and refuses the certificate without it', async () => {
    const url = new URL(`https://${secure.host}/v2/bulk/app/blobs/${digest}`);
    const res = await bulkGet({ method: 'GET', url, tls: { id: 'test', ca: [secure.certificate!] } });
    expect(res!.status).toBe(200);
    expect((await collect(res!.body)).equals(blob)).toBe(true);
    const err = (await bulkGet({ method: 'GET', url }).catch((e: unknown) => e)) as { code?: string };
    expect(err.code).toMatch(/SELF_SIGNED|CERT/);
  });

  it('an error status comes back with its body for the caller to read', async () => {
    const res = await bulkGet({ method: 'GET', url: new URL(`http://${plain.host}/v2/bulk/app/blobs/sha256:${'0'.repeat(64)}`) });
    expect(res!.status).toBe(404);
    expect(JSON.parse((await readBody(res!.body)).toString()).errors[0].code).toBe('BLOB_UNKNOWN');
  });

  it('the registry client downloads through it, verified, over http and https', async () => {
    const client = new RegistryClient(plain.host, { auth: 'anonymous' });
    expect((await collect(client.blobChunks('bulk/app', digest, { size: blob.length }))).equals(blob)).toBe(true);
    const wrongSize = await collect(client.blobChunks('bulk/app', digest, { size: blob.length - 1 })).catch((e: unknown) => e);
    expect((wrongSize as Error).message).toContain('more than');
  });
});

describe('bulk GET framing, against raw servers', () => {
  it('skips 1xx heads, joins repeated fields, and ends at Content-Length', async () => {
    const srv = await rawServer((s) => s.end('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX-A: 1\r\nx-a: 2\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 5\r\n\r\nhello'));
    try {
      const res = await bulkGet({ method: 'GET', url: new URL(`http://127.0.0.1:${srv.port}/x?y=1`), headers: { authorization: 'Bearer t' } });
      expect(res!.headers['x-a']).toBe('1, 2');
      expect(res!.headers['set-cookie']).toEqual(['a=1', 'b=2']);
      expect((await collect(res!.body)).toString()).toBe('hello');
      expect(srv.requests[0]).toMatch(/^GET \/x\?y=1 HTTP\/1\.1\r\nHost: 127\.0\.0\.1:\d+\r\n/);
      expect(srv.requests[0]).toContain('\r\nauthorization: Bearer t\r\n');
    } finally {
      await srv.close();
    }
  });

  it('keeps the connection for the next GET to the origin, and replaces one the server closed meanwhile', async () => {
    const srv = await rawServer((s, _req, nth) => {
      if (nth === 3) s.destroy(); // the kept connection dies as the third request arrives
      else s.write(`HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n${nth}!`);
    });
    try {
      const url = new URL(`http://127.0.0.1:${srv.port}/`);
      for (const want of ['1!', '2!', '4!']) {
        const res = await bulkGet({ method: 'GET', url });
        expect((await collect(res!.body)).toString()).toBe(want);
      }
      expect(srv.requests.length).toBe(4);
      expect(srv.connections()).toBe(2);
    } finally {
      await srv.close();
    }
  });

  it('closes the connection after "Connection: close", an unread long body, or bytes beyond the body', async () => {
    const srv = await rawServer((s, _req, nth) => {
      if (nth === 1) s.write('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\na');
      else if (nth === 2) s.write(`HTTP/1.1 200 OK\r\nContent-Length: 300000\r\n\r\n${'x'.repeat(300000)}`);
      else if (nth === 3) s.write('HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found');
      else s.write('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nbEXTRA');
    });
    try {
      const url = new URL(`http://127.0.0.1:${srv.port}/`);
      const get = () => bulkGet({ method: 'GET', url });
      await collect((await get())!.body); // 1: Connection: close
      (await get())!.body.resume(); // 2: 300 KB left unread
      const notFound = (await get())!; // 3: a short error body, dropped: the connection stays
      notFound.body.resume();
      await new Promise((r) => setTimeout(r, 20));
      await collect((await get())!.body); // 4: on the same connection as 3; then closed for its extra bytes
      await collect((await get())!.body);
      expect(srv.requests.length).toBe(5);
      expect(srv.connections()).toBe(4);
    } finally {
      await srv.close();
    }
  });

  it('a body cut short fails with a resumable error, and complete stays false', async () => {
    const srv = await rawServer((s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabcd'));
    try {
      const res = await bulkGet({ method: 'GET', url: new URL(`http://127.0.0.1:${srv.port}/`) });
      const err = (await collect(res!.body).catch((e: unknown) => e)) as { code?: string; message: string };
      expect(err.code).toBe('ECONNRESET');
      expect(err.message).toContain('6 bytes of the body still to come');
      expect(res!.body.complete).toBe(false);
    } finally {
      await srv.close();
    }
  });

  it('a connection closed before the head is a resumable error', async () => {
    const srv = await rawServer((s) => s.destroy());
    try {
      const err = (await bulkGet({ method: 'GET', url: new URL(`http://127.0.0.1:${srv.port}/`) }).catch((e: unknown) => e)) as { code?: string };
      expect(err.code).toBe('ECONNRESET');
    } finally {
      await srv.close();
    }
  });

  it('leaves a chunked response to node:http, which gets the same bytes', async () => {
    const body = randomBytes(3 * 1024 * 1024);
    let hits = 0;
    const server = http.createServer((_req, res) => {
      hits++;
      res.writeHead(200, { 'content-type': 'application/octet-stream' }); // no length: chunked
      res.end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/blob`);
      expect(await bulkGet({ method: 'GET', url })).toBeUndefined();
      const res = await httpRequest({ method: 'GET', url, bulk: true });
      expect((await collect(res.body)).equals(body)).toBe(true);
      expect(hits).toBe(3);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('a slow consumer gets every byte of a body larger than what is buffered', async () => {
    const body = randomBytes(24 * 1024 * 1024);
    const srv = await rawServer((s) => {
      s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`);
      s.end(body);
    });
    try {
      const res = await bulkGet({ method: 'GET', url: new URL(`http://127.0.0.1:${srv.port}/`) });
      const parts: Buffer[] = [];
      for await (const c of res!.body) {
        parts.push(Buffer.from(c));
        if (parts.length % 4 === 0) await new Promise((r) => setTimeout(r, 2));
      }
      expect(Buffer.concat(parts).equals(body)).toBe(true);
    } finally {
      await srv.close();
    }
  });

  it('refuses a header that would split the request', async () => {
    const err = (await bulkGet({ method: 'GET', url: new URL('http://127.0.0.1:9/'), headers: { authorization: 'Bearer x\r\nX-Evil: 1' } }).catch((e: unknown) => e)) as { code?: string };
    expect(err.code).toBe('ERR_INVALID_CHAR');
  });

  it('parses heads as node:http names them, and refuses what is not HTTP/1.x or folds lines', () => {
    expect(parseHead('HTTP/1.1 307 Temporary Redirect\r\nLocation: https://cdn/x\r\nContent-Length: 0')).toEqual({ version: '1.1', status: 307, headers: { location: 'https://cdn/x', 'content-length': '0' } });
    expect(parseHead('HTTP/1.0 200')).toEqual({ version: '1.0', status: 200, headers: {} });
    expect(parseHead('HTTP/2 200 OK')).toBeUndefined();
    expect(parseHead('HTTP/1.1 200 OK\r\nX-A: 1\r\n  folded')).toBeUndefined();
    expect(parseHead('HTTP/1.1 200 OK\r\nno colon')).toBeUndefined();
  });
});
