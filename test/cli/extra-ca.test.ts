/**
 * NODE_EXTRA_CA_CERTS with the `tsbuild` command (src/util/extra-ca.ts): the command starts
 * node without it (node would parse the file before anything runs) and tsbuild's own TLS
 * connections trust it when they are made: ADD's https downloads and registries.
 * The command is run as a command (dist/cli.cjs, the package's bin), built by `npm test`.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pull } from '../../src/oci/registry/pull.js';
import { push } from '../../src/oci/registry/push.js';
import { Store } from '../../src/oci/store.js';
import { deferExtraCaCertificates } from '../../src/util/extra-ca.js';
import { makeBusyboxImage, repoRoot } from '../helpers/base-images.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';

const cli = path.join(repoRoot, 'dist/cli.cjs');
const tmp = mkdtempSync(path.join(tmpdir(), 'tsbuild-extra-ca-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The environment of a command run here, without this machine's own NODE_EXTRA_CA_CERTS. */
function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, HOME: tmp, TSBUILD_CERTS_D: path.join(tmp, 'no-certs.d'), ...extra };
  if (!('NODE_EXTRA_CA_CERTS' in extra)) delete e.NODE_EXTRA_CA_CERTS;
  return e;
}

describe('the tsbuild command and NODE_EXTRA_CA_CERTS', () => {
  it('starts node without it: a command that makes no TLS connection never reads the file', () => {
    const missing = path.join(tmp, 'missing-ca.pem');
    const root = path.join(tmp, 'root-images');
    // node itself reads the file as it starts, and says so when it cannot
    const direct = spawnSync(process.execPath, [cli, 'images', '--root', root], { encoding: 'utf8', env: env({ NODE_EXTRA_CA_CERTS: missing }) });
    expect(direct.status).toBe(0);
    expect(direct.stderr).toContain(`Ignoring extra certs from \`${missing}\``);
    const command = spawnSync(cli, ['images', '--root', root], { encoding: 'utf8', env: env({ NODE_EXTRA_CA_CERTS: missing }) });
    expect(command.status).toBe(0);
    expect(command.stderr).toBe('');
    expect(command.stdout).toBe(direct.stdout);
  });

  describe('ADD of an https URL whose server only NODE_EXTRA_CA_CERTS vouches for', () => {
    let server: Server;
    let base: string;
    let ca: string;
    beforeAll(async () => {
      const dir = path.join(tmp, 'tls');
      mkdirSync(dir);
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'), '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-addext', 'basicConstraints=critical,CA:TRUE'], { stdio: 'ignore' });
      ca = path.join(dir, 'cert.pem');
      server = createServer({ key: readFileSync(path.join(dir, 'key.pem')), cert: readFileSync(ca) }, (req, res) => {
        if (req.url === '/moved/notes.txt') {
          res.writeHead(302, { Location: '/files/notes.txt' });
          res.end();
          return;
        }
        if (req.url !== '/files/notes.txt') {
          res.writeHead(404);
          res.end();
          return;
        }
        res.writeHead(200, { 'Last-Modified': 'Wed, 21 Oct 2015 07:28:00 GMT', ETag: '"n1"', 'Content-Type': 'text/plain' });
        res.end(req.method === 'HEAD' ? undefined : 'served over TLS\n');
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    // spawned without blocking: the server answering it runs in this process
    const buildAdd = async (name: string, url: string, extra: Record<string, string>) => {
      const ctx = path.join(tmp, `ctx-${name}`);
      mkdirSync(ctx);
      writeFileSync(path.join(ctx, 'Dockerfile'), `FROM scratch\nADD ${url} /dl/\n`);
      const out = path.join(tmp, `out-${name}`);
      const child = spawn(cli, ['build', '--root', path.join(tmp, `root-${name}`), '--progress', 'plain', '--output', `type=local,dest=${out}`, ctx], { env: env(extra), stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const [status] = (await once(child, 'close')) as [number | null];
      return { status, stderr, out };
    };

    it('downloads it, through a redirect, when NODE_EXTRA_CA_CERTS names the CA', async () => {
      const r = await buildAdd('trusted', `${base}/moved/notes.txt`, { NODE_EXTRA_CA_CERTS: ca });
      expect(r.stderr).not.toMatch(/Ignoring extra certs|error/i);
      expect(r.status).toBe(0);
      expect(readFileSync(path.join(r.out, 'dl/notes.txt'), 'utf8')).toBe('served over TLS\n');
      const st = statSync(path.join(r.out, 'dl/notes.txt'));
      expect(st.mode & 0o777).toBe(0o600);
      expect(st.mtime.toISOString()).toBe('2015-10-21T07:28:00.000Z');
    });

    it('refuses the certificate without it, naming the URL and the cause', async () => {
      const r = await buildAdd('untrusted', `${base}/files/notes.txt`, {});
      expect(r.status).not.toBe(0);
      expect(r.stderr).toContain(`failed to fetch ${base}/files/notes.txt`);
      expect(r.stderr).toMatch(/self.signed certificate \(to trust its certificate authority, name a file holding its certificate in NODE_EXTRA_CA_CERTS\)/i);
    });

    it('a missing file is reported as such, with the status', async () => {
      const r = await buildAdd('404', `${base}/files/none.txt`, { NODE_EXTRA_CA_CERTS: ca });
      expect(r.status).not.toBe(0);
      expect(r.stderr).toContain(`failed to fetch ${base}/files/none.txt: HTTP 404 Not Found`);
    });
  });
});

describe('a registry client in a process that deferred NODE_EXTRA_CA_CERTS', () => {
  let reg: TestRegistry;
  let dir: string;
  beforeAll(async () => {
    reg = await startRegistry({ mode: 'anonymous', tls: true });
    dir = mkdtempSync(path.join(tmpdir(), 'tsbuild-extra-ca-reg-'));
  });
  afterAll(async () => {
    await reg?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('pushes and pulls over https trusting the deferred file (manifests through the agent, blobs through bulk GETs)', async () => {
    const ca = path.join(dir, 'ca.pem');
    writeFileSync(ca, reg.certificate!);
    // as the command line does at start, before any TLS connection
    deferExtraCaCertificates(ca);
    const noCertsD = { TSBUILD_CERTS_D: path.join(dir, 'empty'), HOME: dir };
    const src = await Store.open({ root: path.join(dir, 'src') });
    const busybox = (await makeBusyboxImage(src)).descriptor.digest;
    const pushed = await push(`${reg.host}/deferred/busybox:1`, { store: src, source: 'busybox:latest', insecure: false, env: noCertsD });
    expect(pushed.digest).toBe(busybox);
    const dst = await Store.open({ root: path.join(dir, 'dst') });
    const pulled = await pull(`${reg.host}/deferred/busybox:1`, { store: dst, insecure: false, env: noCertsD });
    expect(pulled.descriptor.digest).toBe(busybox);
    const manifest = JSON.parse((await dst.readBlob(busybox)).toString()) as { layers: { digest: string }[] };
    for (const l of manifest.layers) expect((await dst.readBlob(l.digest as typeof busybox)).equals(await src.readBlob(l.digest as typeof busybox))).toBe(true);
  });
});
