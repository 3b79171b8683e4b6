/**
 * Test harness: a real CNCF distribution registry (Debian's /usr/bin/docker-registry) on
 * 127.0.0.1 with a random port and a temporary storage directory, in one of three auth modes:
 * anonymous, htpasswd (Basic), or token (Bearer JWTs from a tiny token server started here and
 * signed with a self-signed certificate the registry trusts). Plus a fault-injecting proxy.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, sign, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type RegistryMode = 'anonymous' | 'htpasswd' | 'token';

export interface TokenRequestLog {
  readonly method: string;
  readonly user: string | undefined;
  readonly scopes: string[];
  readonly grantType?: string;
}

export interface TestRegistry {
  /** `127.0.0.1:PORT` — use as the registry part of references. */
  readonly host: string;
  readonly port: number;
  readonly mode: RegistryMode;
  /** Users accepted in htpasswd and token mode. */
  readonly users: Readonly<Record<string, string>>;
  readonly storageDir: string;
  /** Token mode: every token request the issuer saw. */
  readonly tokenRequests: TokenRequestLog[];
  /** Token mode: refresh tokens the issuer accepts (grant_type=refresh_token) → user. */
  readonly refreshTokens: Map<string, string>;
  /** With `tls`: the registry's self-signed certificate (PEM), which a client must trust. */
  readonly certificate?: string;
  /** The registry's log so far (for failing tests). */
  logs(): string;
  stop(): Promise<void>;
}

export const DEFAULT_USERS: Readonly<Record<string, string>> = { alice: 'wonderland', bob: 'builder' };

/** A free TCP port on 127.0.0.1 (bind to 0, read, close). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export async function startRegistry(opts: { mode?: RegistryMode; users?: Record<string, string>; /** Serve https with a self-signed certificate for 127.0.0.1. */ tls?: boolean } = {}): Promise<TestRegistry> {
  const mode = opts.mode ?? 'anonymous';
  const users = opts.users ?? { ...DEFAULT_USERS };
  const dir = mkdtempSync(join(tmpdir(), 'tsbuild-registry-'));
  const storageDir = join(dir, 'storage');
  const tokenRequests: TokenRequestLog[] = [];
  const refreshTokens = new Map<string, string>();
  let tlsYaml = '';
  let certificate: string | undefined;
  if (opts.tls) {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'tls.key'), '-out', join(dir, 'tls.crt'), '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-addext', 'basicConstraints=critical,CA:TRUE'], { stdio: 'ignore' });
    certificate = readFileSync(join(dir, 'tls.crt'), 'utf8');
    tlsYaml = `  tls:\n    certificate: ${join(dir, 'tls.crt')}\n    key: ${join(dir, 'tls.key')}\n`;
  }
  let tokenServer: http.Server | undefined;
  let authYaml = '';
  if (mode === 'htpasswd') {
    const lines = Object.entries(users).map(([u, p]) => execFileSync('htpasswd', ['-Bbn', u, p], { encoding: 'utf8' }).trim());
    writeFileSync(join(dir, 'htpasswd'), lines.join('\n') + '\n');
    authYaml = `auth:\n  htpasswd:\n    realm: tsbuild-test\n    path: ${join(dir, 'htpasswd')}\n`;
  } else if (mode === 'token') {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'token.key'), '-out', join(dir, 'token.crt'), '-days', '2', '-subj', '/CN=tsbuild-test-token-issuer'], { stdio: 'ignore' });
    const issuer = { key: readFileSync(join(dir, 'token.key'), 'utf8'), cert: new X509Certificate(readFileSync(join(dir, 'token.crt'))) };
    const tokenPort = await freePort();
    // With tls, the token issuer is served over https with the registry's certificate, as a
    // private registry and its auth server usually share one certificate authority.
    tokenServer = startTokenServer(issuer, users, tokenRequests, refreshTokens, opts.tls ? { key: readFileSync(join(dir, 'tls.key')), cert: readFileSync(join(dir, 'tls.crt')) } : undefined);
    await new Promise<void>((r) => tokenServer!.listen(tokenPort, '127.0.0.1', r));
    authYaml = `auth:\n  token:\n    realm: ${opts.tls ? 'https' : 'http'}://127.0.0.1:${tokenPort}/token\n    service: tsbuild-test-registry\n    issuer: tsbuild-test-issuer\n    rootcertbundle: ${join(dir, 'token.crt')}\n`;
  }
  const port = await freePort();
  const config = `version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${storageDir}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${port}
  secret: ${randomBytes(16).toString('hex')}
${tlsYaml}${authYaml}`;
  writeFileSync(join(dir, 'config.yml'), config);
  const child: ChildProcess = spawn('/usr/bin/docker-registry', ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (log += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (log += d));
  let exited = false;
  child.on('exit', () => (exited = true));
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (exited) throw new Error(`docker-registry exited at start:\n${log}`);
    const status = await new Promise<number>((resolve) => {
      const req = (opts.tls ? https : http).get({ host: '127.0.0.1', port, path: '/v2/', agent: false, rejectUnauthorized: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', () => resolve(0));
    });
    if (status === 200 || status === 401) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`docker-registry did not answer on 127.0.0.1:${port}:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    host: `127.0.0.1:${port}`,
    port,
    mode,
    users,
    storageDir,
    tokenRequests,
    refreshTokens,
    ...(certificate ? { certificate } : {}),
    logs: () => log,
    async stop() {
      if (!exited) {
        const done = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([done, new Promise((r) => setTimeout(r, 3000))]);
        if (!exited) child.kill('SIGKILL');
      }
      if (tokenServer) {
        tokenServer.closeAllConnections();
        await new Promise((r) => tokenServer!.close(r));
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

/** A JWT the registry accepts: RS256, the issuer certificate in `x5c`, access claims per scope. */
function issueJwt(issuer: { key: string; cert: X509Certificate }, subject: string, access: { type: string; name: string; actions: string[] }[]): string {
  const now = Math.floor(Date.now() / 1000);
  const headerObj = { alg: 'RS256', typ: 'JWT', x5c: [issuer.cert.raw.toString('base64')] };
  const claims = { iss: 'tsbuild-test-issuer', sub: subject, aud: 'tsbuild-test-registry', exp: now + 300, nbf: now - 10, iat: now, jti: randomBytes(8).toString('hex'), access };
  const input = `${b64url(JSON.stringify(headerObj))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${b64url(sign('sha256', Buffer.from(input), issuer.key))}`;
}

function startTokenServer(issuer: { key: string; cert: X509Certificate }, users: Record<string, string>, logArr: TokenRequestLog[], refresh: Map<string, string>, tls?: { key: Buffer; cert: Buffer }): http.Server {
  const grant = (user: string | undefined, scopes: string[]) =>
    scopes.flatMap((s) => {
      const m = s.match(/^(repository|registry):(.+):([a-z*,]+)$/);
      if (!m) return [];
      // Anonymous callers get nothing; every user gets what it asks for.
      return user ? [{ type: m[1]!, name: m[2]!, actions: m[3]!.split(',') }] : [];
    });
  const deny = (res: ServerResponse, why: string) => {
    res.writeHead(401, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ details: why }));
  };
  const answer = (res: ServerResponse, user: string | undefined, scopes: string[], withRefresh: boolean) => {
    const token = issueJwt(issuer, user ?? '', grant(user, scopes));
    const body: Record<string, unknown> = { token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() };
    if (withRefresh && user) {
      const rt = randomBytes(16).toString('hex');
      refresh.set(rt, user);
      body.refresh_token = rt;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== '/token') {
      res.writeHead(404).end();
      return;
    }
    if (req.method === 'GET') {
      let user: string | undefined;
      const auth = req.headers.authorization;
      const scopes = url.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean);
      if (auth?.startsWith('Basic ')) {
        const dec = Buffer.from(auth.slice(6), 'base64').toString('utf8');
        const i = dec.indexOf(':');
        const [u, p] = [dec.slice(0, i), dec.slice(i + 1)];
        logArr.push({ method: 'GET', user: u, scopes });
        if (users[u] === undefined || users[u] !== p) return deny(res, 'invalid username or password');
        user = u;
      } else logArr.push({ method: 'GET', user: undefined, scopes });
      return answer(res, user, scopes, url.searchParams.get('offline_token') === 'true');
    }
    if (req.method === 'POST') {
      let body = '';
      req.setEncoding('utf8').on('data', (d: string) => (body += d));
      req.on('end', () => {
        const form = new URLSearchParams(body);
        const scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
        const gt = form.get('grant_type') ?? '';
        if (gt === 'password') {
          const u = form.get('username') ?? '';
          logArr.push({ method: 'POST', user: u, scopes, grantType: gt });
          if (users[u] === undefined || users[u] !== form.get('password')) return deny(res, 'invalid username or password');
          return answer(res, u, scopes, true);
        }
        if (gt === 'refresh_token') {
          const u = refresh.get(form.get('refresh_token') ?? '');
          logArr.push({ method: 'POST', user: u, scopes, grantType: gt });
          if (!u) return deny(res, 'invalid refresh token');
          return answer(res, u, scopes, false);
        }
        res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'unsupported_grant_type' }));
      });
      return;
    }
    res.writeHead(405).end();
  };
  return tls ? https.createServer(tls, handler) : http.createServer(handler);
}

