import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, chown, mkdir, open, readFile, readlink, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CacheMount } from './spec.js';

/** A cache directory in use by one run; `release()` frees its lock, if it holds one. */
export interface CacheLease {
  readonly dir: string;
  release(): Promise<void>;
}

/** The persistent directory of cache mounts with this id: `<stateDir>/cache/<sha256(id)>`. */
export function cacheRoot(stateDir: string, id: string): string {
  return join(stateDir, 'cache', createHash('sha256').update(id).digest('hex').slice(0, 32));
}

async function alive(pid: number): Promise<boolean> {
  return stat(`/proc/${pid}`).then(() => true, () => false);
}

/** Takes `<path>` as a lock file (O_EXCL), breaking a lock whose process is gone. False when held. */
async function tryLock(path: string, owner: string): Promise<boolean> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(path, 'wx');
      await fh.writeFile(owner);
      await fh.close();
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const held = await readFile(path, 'utf8').catch(() => '');
      const pid = Number(held.split(' ')[0]);
      if (held && Number.isInteger(pid) && pid > 0 && !(await alive(pid))) {
        await rm(path, { force: true });
        continue;
      }
      return false;
    }
  }
  return false;
}

/** Creates the directory once, atomically (mkdir), with the mount's mode and owner. */
async function ensureDir(dir: string, m: CacheMount): Promise<void> {
  if (m.seed !== undefined && !(await stat(dir).then((st) => st.isDirectory(), () => false))) {
    // A seeded cache is made beside its place and renamed into it: a run that finds the
    // directory finds it filled. Another run's seeded copy may win the rename; ours goes.
    const tmp = `${dir}.seed-${await ownPid()}-${++counter}`;
    try {
      await copyTree(m.seed, tmp);
      await rename(tmp, dir).catch(async (err: NodeJS.ErrnoException) => {
        if ((err.code === 'ENOTEMPTY' || err.code === 'EEXIST') && (await stat(dir)).isDirectory()) return;
        throw err;
      });
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
    return;
  }
  // mkdir is the atomic step: the first run creates the directory, the others find it. (A temp
  // dir renamed into place is not: rename replaces an empty directory, so a second run starting
  // at the same moment replaced the first one's directory after the first had mounted it.)
  try {
    await mkdir(dir, { mode: m.mode ?? 0o755 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST' && (await stat(dir)).isDirectory()) return;
    throw err;
  }
  await chown(dir, m.uid ?? 0, m.gid ?? 0);
  await chmod(dir, m.mode ?? 0o755);
}

/** `cp -a src/. dest`: the tree with owners, modes, times, links and devices as they are. */
function copyTree(src: string, dest: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('cp', ['-a', '--', `${src}/.`, dest], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`seeding the cache mount from ${src}: ${err.trim() || `cp exited ${code}`}`))));
  });
}

let counter = 0;
let selfPid: Promise<string> | undefined;
/** Our pid, for lock files (read from /proc/self so this module does not touch `process`). */
const ownPid = () => (selfPid ??= readlink('/proc/self'));

/**
 * Picks the directory for a cache mount. `shared`: one directory for everyone. `locked`: the
 * same directory, one run at a time (others wait, polling the lock, until `signal` aborts).
 * `private`: the first directory instance no other run holds; a new one when all are busy.
 */
export async function acquireCache(stateDir: string, m: CacheMount, signal?: AbortSignal): Promise<CacheLease> {
  const root = cacheRoot(stateDir, m.id ?? m.target);
  await mkdir(root, { recursive: true });
  const sharing = m.sharing ?? 'shared';
  const owner = `${await ownPid()} ${++counter}`;
  if (sharing === 'shared') {
    const dir = join(root, '0');
    await ensureDir(dir, m);
    return { dir, release: async () => {} };
  }
  for (let n = 0; ; n++) {
    const index = sharing === 'locked' ? 0 : n;
    const lock = join(root, `${index}.lock`);
    if (await tryLock(lock, owner)) {
      const dir = join(root, String(index));
      try {
        await ensureDir(dir, m);
      } catch (err) {
        await rm(lock, { force: true });
        throw err;
      }
      return { dir, release: () => rm(lock, { force: true }) };
    }
    if (sharing === 'locked') {
      signal?.throwIfAborted();
      await sleep(25, undefined, signal ? { signal } : {});
    }
  }
}
