import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Credentials } from './auth.js';
import { RegistryError } from './errors.js';

/** The docker config key Docker uses for Docker Hub. */
export const DOCKER_HUB_CONFIG_KEY = 'https://index.docker.io/v1/';

export interface DockerConfigOptions {
  /** Directory holding config.json; default `$DOCKER_CONFIG`, else `~/.docker`. */
  readonly configDir?: string;
  /** Environment to read DOCKER_CONFIG, HOME and PATH from (default: process.env). */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

interface DockerConfigFile {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string; registrytoken?: string }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

/** Path of the docker config.json these options point at. */
export function dockerConfigPath(opts: DockerConfigOptions = {}): string {
  const env = opts.env ?? process.env;
  const dir = opts.configDir ?? env.DOCKER_CONFIG ?? join(env.HOME || homedir(), '.docker');
  return join(dir, 'config.json');
}

/** The keys a registry host may be filed under in docker config. */
function configKeys(host: string): string[] {
  if (host === 'docker.io' || host === 'index.docker.io' || host === 'registry-1.docker.io') {
    return [DOCKER_HUB_CONFIG_KEY, 'index.docker.io', 'docker.io', 'registry-1.docker.io', 'https://index.docker.io/v1'];
  }
  return [host, `https://${host}`, `http://${host}`, `https://${host}/v1/`, `https://${host}/v2/`, `http://${host}/v1/`, `http://${host}/v2/`];
}

/** Normalizes an `auths` key (`https://host/v1/` → `host`) for a loose match. */
function keyHost(key: string): string {
  return key.replace(/^[a-z]+:\/\//, '').replace(/\/.*$/, '');
}

/**
 * Credentials for a registry host from docker config, in Docker's order: `credHelpers[host]`,
 * then `credsStore`, then `auths[host]` (`auth` base64 `user:pass`, `identitytoken`,
 * `registrytoken`). Returns undefined when nothing is configured (anonymous).
 */
export async function dockerCredentials(host: string, opts: DockerConfigOptions = {}): Promise<Credentials | undefined> {
  const path = dockerConfigPath(opts);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new RegistryError('TSBUILD_REGISTRY_CREDENTIALS', { repository: host }, `cannot read docker config ${path}: ${(err as Error).message}`, { cause: err });
  }
  let cfg: DockerConfigFile;
  try {
    cfg = JSON.parse(text) as DockerConfigFile;
  } catch (cause) {
    throw new RegistryError('TSBUILD_REGISTRY_CREDENTIALS', { repository: host }, `docker config ${path} is not valid JSON`, { cause });
  }
  const keys = configKeys(host);
  const hubKey = keys[0] === DOCKER_HUB_CONFIG_KEY ? DOCKER_HUB_CONFIG_KEY : host;
  const helper = keys.map((k) => cfg.credHelpers?.[k]).find((h) => h) ?? (cfg.credsStore || undefined);
  if (helper) {
    const fromHelper = await runCredentialHelper(helper, hubKey, opts.env);
    if (fromHelper) return fromHelper;
  }
  const auths = cfg.auths ?? {};
  let entry = keys.map((k) => auths[k]).find((e) => e);
  if (!entry) {
    const loose = Object.keys(auths).find((k) => keyHost(k) === host);
    entry = loose ? auths[loose] : undefined;
  }
  if (!entry) return undefined;
  let username = entry.username;
  let password = entry.password;
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw new RegistryError('TSBUILD_REGISTRY_CREDENTIALS', { repository: host }, `docker config ${path}: auths[${JSON.stringify(host)}].auth is not base64 of "user:password"`);
    username = decoded.slice(0, colon);
    password = decoded.slice(colon + 1);
  }
  if (entry.registrytoken) return { registryToken: entry.registrytoken };
  if (entry.identitytoken) return username ? { identityToken: entry.identitytoken, username } : { identityToken: entry.identitytoken };
  if (username !== undefined && password !== undefined && (username || password)) return { username, password };
  return undefined;
}

/**
 * Runs `docker-credential-<name> get` with the server URL on stdin (the docker credential helper
 * protocol). Returns undefined when the helper has no credentials for the server.
 */
export async function runCredentialHelper(name: string, serverUrl: string, env?: Readonly<Record<string, string | undefined>>): Promise<Credentials | undefined> {
  const program = `docker-credential-${name}`;
  // Loaded on first use: most pulls and pushes never run a helper (saves start-up time).
  const { spawn } = await import('node:child_process');
  return new Promise((resolve, reject) => {
    const child = spawn(program, ['get'], { stdio: ['pipe', 'pipe', 'pipe'], env: (env ?? process.env) as NodeJS.ProcessEnv });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('error', (cause) =>
      reject(new RegistryError('TSBUILD_REGISTRY_CREDENTIALS', { repository: serverUrl }, `cannot run credential helper ${program}: ${cause.message}`, { cause })),
    );
    child.on('close', (code) => {
      const said = (out.trim() || err.trim()).slice(0, 300);
      if (code !== 0) {
        // The protocol's "not found" answer is a failure exit with this message.
        if (/credentials not found/i.test(said)) resolve(undefined);
        else reject(new RegistryError('TSBUILD_REGISTRY_CREDENTIALS', { repository: serverUrl }, `credential helper ${program} failed (exit ${code})${said ? `: ${said}` : ''}`));
        return;
      }
      try {
        const v = JSON.parse(out) as { Username?: string; Secret?: string };
        if (!v.Secret) return resolve(undefined);
        // Docker's convention: Username "<token>" means Secret is an identity token.
        if (v.Username === '<token>') resolve({ identityToken: v.Secret });
        else resolve({ username: v.Username ?? '', password: v.Secret });
      } catch (cause) {
        reject(new RegistryError('TSBUILD_REGISTRY_CREDENTIALS', { repository: serverUrl }, `credential helper ${program} printed invalid JSON`, { cause }));
      }
    });
    child.stdin.on('error', () => {});
    child.stdin.end(serverUrl);
  });
}
