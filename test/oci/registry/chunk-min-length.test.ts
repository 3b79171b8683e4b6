/**
 * OCI-Chunk-Min-Length (distribution-spec v1.1): a registry may answer the POST that opens an
 * upload session with this header, and then every PATCH but the last must carry at least that
 * many bytes. A proxy in front of the real registry adds the header to POST answers (a different
 * value per session, to follow restarts) and records each PATCH as the registry received it.
 */
import { execFile } from 'node:child_process';
import { createReadStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { digestHex, type Digest } from '../../../src/oci/digest.js';
import { parseManifest } from '../../../src/oci/image.js';
import { RegistryClient } from '../../../src/oci/registry/client.js';
import { pull } from '../../../src/oci/registry/pull.js';
import { push } from '../../../src/oci/registry/push.js';
import { Store } from '../../../src/oci/store.js';
import { startRegistry, type TestRegistry } from '../../helpers/registry.js';
import { randomImage, storeImage } from './images.js';

interface Patch {
  /** The upload session (the UUID in the upload path). */
  readonly session: string;
  readonly contentRange: string | undefined;
  /** Body bytes the proxy read from the client. */
  readonly bytes: number;
  /** Whether the proxy cut the connection instead of forwarding. */
  readonly reset: boolean;
}

interface ChunkProxy {
  readonly host: string;
  /** OCI-Chunk-Min-Length for the n-th POST (0-based); undefined: no header. */
  minFor: (post: number) => number | undefined;
  /** Cut the connection of these PATCHes (0-based, counted in `patchesSeen`) before forwarding. */
  resetPatches: Set<number>;
  patchesSeen: number;
  readonly patches: Patch[];
  /** Upload sessions closed by a successful PUT ?digest=, with the digest. */
  readonly completed: Map<string, string>;
  posts: number;
  stop(): Promise<void>;
}

const sessionOf = (path: string) => /\/blobs\/uploads\/([^/?]+)/.exec(path)?.[1] ?? '';

async function startChunkProxy(target: string): Promise<ChunkProxy> {
  const [thost, tport] = target.split(':') as [string, string];
  const state: ChunkProxy = {
    host: '',
    minFor: () => undefined,
    resetPatches: new Set(),
    patchesSeen: 0,
    patches: [],
    completed: new Map(),
    posts: 0,
    stop: async () => {},
  };
  const server = http.createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = req.url ?? '/';
    const isPost = req.method === 'POST' && /\/blobs\/uploads\/?(\?|$)/.test(path);
    const post = isPost ? state.posts++ : -1;
    const isPatch = req.method === 'PATCH';
    const n = isPatch ? state.patchesSeen++ : -1;
    let bytes = 0;
    if (isPatch && state.resetPatches.has(n)) {
      req.on('data', (c: Buffer) => (bytes += c.length));
      req.on('end', () => {
        state.patches.push({ session: sessionOf(path), contentRange: req.headers['content-range'], bytes, reset: true });
        req.socket.destroy();
      });
      return;
    }
    const up = http.request({ host: thost, port: Number(tport), method: req.method, path, headers: req.headers, agent: false }, (ures) => {
      const headers = { ...ures.headers };
      const min = isPost && ures.statusCode === 202 ? state.minFor(post) : undefined;
      if (min !== undefined) headers['oci-chunk-min-length'] = String(min);
      if (isPatch && ures.statusCode === 202) state.patches.push({ session: sessionOf(path), contentRange: req.headers['content-range'], bytes, reset: false });
      if (req.method === 'PUT' && ures.statusCode === 201 && sessionOf(path)) state.completed.set(sessionOf(path), new URL(path, 'http://x').searchParams.get('digest') ?? '');
      res.writeHead(ures.statusCode ?? 502, headers);
      ures.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.on('data', (c: Buffer) => {
      bytes += c.length;
    });
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return Object.assign(state, {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    stop: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  });
}

function skopeo(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('skopeo', args, { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => (err ? reject(new Error(`skopeo ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout)));
  });
}

/** The PATCHes of each session that a PUT completed, in order. */
function completedSessions(proxy: ChunkProxy): Map<string, Patch[]> {
  const out = new Map<string, Patch[]>();
  for (const p of proxy.patches) {
    if (p.reset || !proxy.completed.has(p.session)) continue;
    out.set(p.session, [...(out.get(p.session) ?? []), p]);
  }
  return out;
}

/** Every non-final PATCH of a session is at least `min` bytes; the ranges are contiguous from 0. */
function expectChunksRespect(patches: Patch[], min: number): void {
  let offset = 0;
  for (const [i, p] of patches.entries()) {
    if (i < patches.length - 1) expect(p.bytes, `PATCH ${i + 1} of ${patches.length}`).toBeGreaterThanOrEqual(min);
    expect(p.contentRange).toBe(`${offset}-${offset + p.bytes - 1}`);
    offset += p.bytes;
  }
}

describe('chunked push honours OCI-Chunk-Min-Length', () => {
  let reg: TestRegistry;
  let proxy: ChunkProxy;
  let dir: string;
  let src: Store;
  beforeAll(async () => {
    reg = await startRegistry({ mode: 'anonymous' });
    proxy = await startChunkProxy(reg.host);
    dir = mkdtempSync(join(tmpdir(), 'tsbuild-chunkmin-'));
    src = await Store.open({ root: join(dir, 'src') });
  });
  beforeEach(() => {
    proxy.patches.length = 0;
    proxy.completed.clear();
    proxy.resetPatches.clear();
    proxy.patchesSeen = 0;
    proxy.posts = 0;
  });
  afterAll(async () => {
    await proxy?.stop();
    await reg?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('sends chunks of at least the minimum (not the smaller --chunk-size), and the image reads back byte-identical', async () => {
    const MIN = 256 * 1024;
    proxy.minFor = () => MIN;
    const desc = await storeImage(src, 'chunkmin/app:1', await randomImage([1_000_000, 600_000]));
    const manifest = parseManifest(await src.readBlob(desc.digest));
    const blobs = [manifest.config, ...manifest.layers];

    const r = await push(`${proxy.host}/chunkmin/app:1`, { store: src, source: 'chunkmin/app:1', chunkSize: 100_000 });
    expect(r.digest).toBe(desc.digest);
    expect(r.uploaded).toBe(blobs.length);

    const sessions = completedSessions(proxy);
    expect(sessions.size).toBe(blobs.length);
    expect([...proxy.completed.values()].sort()).toEqual(blobs.map((b) => b.digest).sort());
    for (const [session, patches] of sessions) {
      const blob = blobs.find((b) => b.digest === proxy.completed.get(session))!;
      // ceil(size / MIN) PATCHes: with the 100 000-byte chunks asked for it would be ceil(size / 100 000).
      expect(patches.length).toBe(Math.ceil(blob.size / MIN));
      expectChunksRespect(patches, MIN);
      expect(patches.reduce((n, p) => n + p.bytes, 0)).toBe(blob.size);
    }
    // The layers really were split (the check above is not vacuous).
    expect(Math.max(...[...sessions.values()].map((p) => p.length))).toBeGreaterThanOrEqual(4);

    // Read back past the proxy: skopeo (an independent client) and our pull.
    const seen = JSON.parse(await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/chunkmin/app:1`])) as { layers: { digest: string }[] };
    expect(seen.layers.map((l) => l.digest)).toEqual(manifest.layers.map((l) => l.digest));
    const layoutDir = join(dir, 'layout');
    await skopeo(['copy', '-q', '--src-tls-verify=false', `docker://${reg.host}/chunkmin/app:1`, `oci:${layoutDir}:app`]);
    for (const b of blobs) expect(readFileSync(join(layoutDir, 'blobs', 'sha256', digestHex(b.digest as Digest))).equals(await src.readBlob(b.digest))).toBe(true);
    const dst = await Store.open({ root: join(dir, 'dst') });
    const pulled = await pull(`${reg.host}/chunkmin/app:1`, { store: dst });
    expect(pulled.descriptor.digest).toBe(desc.digest);
    for (const d of [desc.digest, ...blobs.map((b) => b.digest)]) expect((await dst.readBlob(d)).equals(await src.readBlob(d))).toBe(true);
  });

  it('keeps the asked chunk size when it is above the minimum', async () => {
    proxy.minFor = () => 50_000;
    const desc = await storeImage(src, 'chunkmin/big:1', await randomImage([700_000]));
    const layer = parseManifest(await src.readBlob(desc.digest)).layers[0]!;
    await push(`${proxy.host}/chunkmin/big:1`, { store: src, source: 'chunkmin/big:1', chunkSize: 200_000 });
    const patches = [...completedSessions(proxy)].find(([s]) => proxy.completed.get(s) === layer.digest)![1];
    expect(patches.map((p) => p.bytes)).toEqual([200_000, 200_000, 200_000, layer.size - 600_000]);
  });

  it('a session restarted after a dropped PATCH is chunked by its own minimum', async () => {
    // The first session asks for 128 KiB chunks; its first PATCH is cut, the registry has
    // nothing (Range 0-0), so the client opens a new session, which asks for 384 KiB.
    proxy.minFor = (post) => (post === 0 ? 128 * 1024 : 384 * 1024);
    proxy.resetPatches = new Set([0]);
    const desc = await storeImage(src, 'chunkmin/restart:1', await randomImage([1_200_000]));
    const layer = parseManifest(await src.readBlob(desc.digest)).layers[0]!;
    // The layer alone, through the client, so that POST number 0 is its session.
    const client = new RegistryClient(proxy.host, { auth: 'anonymous', retryDelayMs: 5, chunkSize: 64 * 1024 });
    const size = layer.size;
    const source = { size, open: (start: number, end = size) => createReadStream(src.blobPath(layer.digest), { start, end: end - 1 }) };
    const res = await client.uploadBlob('chunkmin/restart', layer.digest, source);
    expect(res).toBe('uploaded');
    expect(proxy.patches[0]).toMatchObject({ reset: true, bytes: 128 * 1024 });
    expect(proxy.posts).toBe(2);
    const [patches] = [...completedSessions(proxy).values()];
    expect(patches!.length).toBe(Math.ceil(size / (384 * 1024)));
    expectChunksRespect(patches!, 384 * 1024);
    const back = await new Promise<Buffer>((resolve, reject) => {
      http.get(`http://${reg.host}/v2/chunkmin/restart/blobs/${layer.digest}`, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => resolve(Buffer.concat(parts)));
      }).on('error', reject);
    });
    expect(back.equals(await src.readBlob(layer.digest))).toBe(true);
  });
});
