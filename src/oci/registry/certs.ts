/**
 * A registry's TLS files, where docker and podman keep them: `certs.d/<host[:port]>/` with
 * `*.crt` CA certificates (trusted in addition to the system's) and `<name>.cert` + `<name>.key`
 * client certificate pairs. Directories, first match wins per host: `$TSBUILD_CERTS_D`, then
 * `/etc/docker/certs.d`, `$HOME/.config/docker/certs.d` (rootless docker), `/etc/containers/certs.d`
 * and `$HOME/.config/containers/certs.d` (podman, skopeo, buildah).
 */
import { readdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import type { TlsSettings } from './http.js';

/** The certs.d directories searched, in order, for an environment. */
export function defaultCertsDirs(env: Readonly<Record<string, string | undefined>> = process.env): string[] {
  const home = env.HOME ?? homedir();
  return [
    ...(env.TSBUILD_CERTS_D ? [env.TSBUILD_CERTS_D] : []),
    '/etc/docker/certs.d',
    path.join(home, '.config/docker/certs.d'),
    '/etc/containers/certs.d',
    path.join(home, '.config/containers/certs.d'),
  ];
}

/**
 * The TLS settings for `host` (as in a reference: `registry.example.com:5000`) from the first
 * of `dirs` that has a directory for it; undefined when none has. A `.cert` without its `.key`
 * (or the reverse) is an error, as in docker.
 */
export async function registryTls(host: string, dirs: readonly string[]): Promise<TlsSettings | undefined> {
  for (const base of dirs) {
    const dir = path.join(base, host);
    let names: string[];
    try {
      names = (await readdir(dir)).sort();
    } catch {
      continue;
    }
    const ca: string[] = [];
    let cert: string | undefined;
    let key: string | undefined;
    for (const n of names) {
      if (n.endsWith('.crt')) ca.push(await readFile(path.join(dir, n), 'utf8'));
      else if (n.endsWith('.cert')) {
        const keyName = `${n.slice(0, -'.cert'.length)}.key`;
        if (!names.includes(keyName)) throw new Error(`missing key ${keyName} for client certificate ${path.join(dir, n)}`);
        if (cert === undefined) {
          cert = await readFile(path.join(dir, n), 'utf8');
          key = await readFile(path.join(dir, keyName), 'utf8');
        }
      } else if (n.endsWith('.key') && !names.includes(`${n.slice(0, -'.key'.length)}.cert`)) {
        throw new Error(`missing client certificate ${n.slice(0, -'.key'.length)}.cert for key ${path.join(dir, n)}`);
      }
    }
    return { id: dir, ...(ca.length > 0 ? { ca } : {}), ...(cert !== undefined && key !== undefined ? { cert, key } : {}) };
  }
  return undefined;
}
