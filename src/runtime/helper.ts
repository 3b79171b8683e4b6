import { spawn } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { platform } from 'node:os';
import { packageFile } from '../util/package-root.js';
import { RuntimeUnavailableError } from './errors.js';

/** Where `npm install` builds the helper (scripts/build-native.mjs). */
export const DEFAULT_HELPER_PATH = packageFile('native/build/tsbuild-sandbox');

const checked = new Map<string, Promise<void>>();

/** Resolves when the helper exists and is executable; else a RuntimeUnavailableError saying why and what to do. */
export function ensureHelper(path: string): Promise<void> {
  let p = checked.get(path);
  if (!p) {
    p = check(path);
    checked.set(path, p);
    p.catch(() => checked.delete(path));
  }
  return p;
}

async function check(path: string): Promise<void> {
  if (platform() !== 'linux') {
    throw new RuntimeUnavailableError(`RUN needs Linux namespaces; this is ${platform()}`);
  }
  try {
    await access(path, constants.X_OK);
  } catch (cause) {
    throw new RuntimeUnavailableError(
      `the sandbox helper ${path} is missing: it is built when the package installs, which needs a C compiler ` +
        `(install gcc or clang, then run \`node scripts/build-native.mjs\` in the package, or reinstall). ` +
        `If runc or crun is installed it can be named as an alternative runtime.`,
      { cause },
    );
  }
}

/** Runs `helper xattrs DIR` and returns every entry's extended attributes, keyed by '/'-rooted relative path. */
export async function readXattrs(helperPath: string, dir: string): Promise<Map<string, Map<string, Buffer>>> {
  await ensureHelper(helperPath);
  const child = spawn(helperPath, ['xattrs', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let err = '';
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.on('data', (b: Buffer) => { err += String(b); });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  if (code !== 0) throw new RuntimeUnavailableError(`cannot read extended attributes under ${dir}: ${err.trim() || `exit ${code}`}`);
  const buf = Buffer.concat(out);
  const result = new Map<string, Map<string, Buffer>>();
  let i = 0;
  const next = (): string => {
    const z = buf.indexOf(0, i);
    const s = buf.toString('utf8', i, z < 0 ? buf.length : z);
    i = z < 0 ? buf.length : z + 1;
    return s;
  };
  while (i < buf.length) {
    const path = next();
    const attrs = new Map<string, Buffer>();
    for (;;) {
      const name = next();
      if (name === '') break;
      attrs.set(name, Buffer.from(next(), 'hex'));
    }
    result.set(path, attrs);
  }
  return result;
}
