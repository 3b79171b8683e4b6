/**
 * The cache record store: cache key → result record, under `<root>/cache`.
 *
 * Layout:
 *   records/<hex>.json   one record per key; its mtime is the last use
 *   steps/<hex>.json     the key last stored for a step id (to explain the next miss)
 *   files/<hex>.json     a key manifest's file list (path → FileDigest), named by its
 *                        `filesDigest`; kept out of the record so that a hit reads a small file,
 *                        read only by `previous` to explain a miss; swept by `prune`
 *   tmp/                 temp files, named `<pid>-<random>`; a dead writer's are swept
 *   lock                 `{pid, host, createdAt}`; held while writing or pruning
 *
 * Every write is temp file + fsync + rename (+ fsync of the directory), so a reader sees a
 * whole record or none, and a killed writer leaves no partial record. Two builds may share the
 * directory: writers and pruners serialize on the lock; a lock whose owner died is taken over.
 */
import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { mkdirSync, readdirSync, readFileSync, readlinkSync, utimesSync } from 'node:fs';
import { link, lstat, open, readdir, readFile, rename, rm, unlink } from 'node:fs/promises';
import path from 'node:path';
import { TsbuildError } from '../errors.js';
import { digestHex, isDigest, type Digest } from '../oci/digest.js';
import type { FileSet, Json, KeyManifest } from './keys.js';

export class CacheStoreError extends TsbuildError {}

/** What a cache hit gives back: the caller's result (layer digests, config changes …) and bookkeeping. */
export interface CacheRecord<R extends Json = Json> {
  readonly key: Digest;
  readonly result: R;
  /** Bytes this record keeps alive (e.g. its layer blob's size), for `du` and `--keep-storage`. */
  readonly size: number;
  /** ISO time the record was written. */
  readonly createdAt: string;
  /** A stable name of the step (e.g. `stage-name#3` or the Dockerfile path + stage + step), for `explain`. */
  readonly stepId?: string;
  /** Human text (the step's name) for `du`. */
  readonly description?: string;
  /**
   * What the key was made from (keys.ts), for `explain`. `get` gives it without `files` (the
   * list is stored beside the record); `previous` gives it whole.
   */
  readonly manifest?: KeyManifest;
}

export interface PutRecord<R extends Json = Json> {
  readonly key: Digest;
  readonly result: R;
  readonly size?: number;
  readonly stepId?: string;
  readonly description?: string;
  readonly manifest?: KeyManifest;
  /** The manifest's file list when it has none (keys.ts `filesToKeep`): written from the set's lines, no record made. */
  readonly files?: FileSet;
}

export interface CacheEntryInfo {
  readonly key: Digest;
  readonly size: number;
  readonly createdAt: Date;
  readonly lastUsedAt: Date;
  readonly description?: string;
  readonly result: Json;
}

export interface PruneOptions {
  /** Remove every record (`prune --all`). */
  readonly all?: boolean;
  /** Only records not used for this many milliseconds (`--filter until=24h`). */
  readonly olderThanMs?: number;
  /** Keep this many bytes: remove least recently used candidates until the total fits (`--keep-storage`). */
  readonly keepStorage?: number;
  /** Report what would be removed without removing it. */
  readonly dryRun?: boolean;
}

export interface PruneResult {
  readonly removed: readonly CacheEntryInfo[];
  readonly reclaimed: number;
}

export interface DuResult {
  readonly entries: readonly CacheEntryInfo[];
  readonly count: number;
  readonly totalSize: number;
}

export interface CacheStoreOptions {
  /** Give up waiting for the lock after this long; default 60 s. */
  readonly lockTimeoutMs?: number;
  /** A lock older than this whose owner cannot be checked (another host) is stale; default 10 min. */
  readonly staleLockMs?: number;
}

interface LockInfo {
  readonly pid: number;
  readonly host: string;
  readonly createdAt: number;
  readonly nonce: string;
}

function selfPid(): number {
  // The library does not touch `process`; /proc/self names our pid.
  return Number(readlinkSync('/proc/self'));
}

async function pidAlive(pid: number): Promise<boolean> {
  try {
    await lstat(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export class CacheStore {
  readonly dir: string;
  readonly #options: CacheStoreOptions;
  readonly #pid: number;
  readonly #host = hostname();
  /** Calls of `withLock` running now; the file lock is held while this is above 0. */
  #held = 0;
  #heldNonce: string | undefined;
  #acquiring: Promise<void> | undefined;

  private constructor(dir: string, pid: number, options: CacheStoreOptions) {
    this.dir = dir;
    this.#pid = pid;
    this.#options = options;
  }

  /**
   * Open (creating) the store in `dir` (the `cache` directory of a tsbuild root). Sweeps dead
   * writers' temp files. Its few metadata calls are synchronous: on a small machine each awaited
   * one costs a trip through the threadpool and a wake-up of a pool thread that competes with
   * this one for a CPU, more than the call itself.
   */
  static async open(dir: string, options: CacheStoreOptions = {}): Promise<CacheStore> {
    const abs = path.resolve(dir);
    for (const sub of ['records', 'steps', 'files', 'tmp']) mkdirSync(path.join(abs, sub), { recursive: true });
    const store = new CacheStore(abs, selfPid(), options);
    await store.#sweepTemp();
    return store;
  }

  #recordPath(key: Digest): string {
    if (!isDigest(key) || !key.startsWith('sha256:')) throw new CacheStoreError('TSBUILD_CACHE_BAD_KEY', `invalid cache key ${JSON.stringify(key)}`);
    return path.join(this.dir, 'records', `${digestHex(key)}.json`);
  }

  #filesPath(filesDigest: Digest): string | undefined {
    return isDigest(filesDigest) && filesDigest.startsWith('sha256:') ? path.join(this.dir, 'files', `${digestHex(filesDigest)}.json`) : undefined;
  }

  #stepPath(stepId: string): string {
    return path.join(this.dir, 'steps', `${createHash('sha256').update(stepId).digest('hex')}.json`);
  }

  async #sweepTemp(): Promise<void> {
    const tmp = path.join(this.dir, 'tmp');
    let names: string[];
    try {
      names = readdirSync(tmp);
    } catch {
      return;
    }
    for (const name of names) {
      const pid = Number(name.split('-')[0]);
      if (Number.isInteger(pid) && pid > 0 && pid !== this.#pid && !(await pidAlive(pid))) await rm(path.join(tmp, name), { force: true });
    }
  }

  /**
   * Write `data` to `dest` atomically: temp file in tmp/, fsync, rename. The directory is not
   * synced (a few ms per record on a VM's disk, three records per step): a crash of the machine
   * may lose the newest records, which only costs their steps being run again, and a record
   * whose layer blob was lost is a miss (`hasBlob` is checked on every hit).
   */
  async #writeAtomic(dest: string, data: string | Iterable<Buffer>): Promise<void> {
    const tmp = path.join(this.dir, 'tmp', `${this.#pid}-${randomBytes(8).toString('hex')}`);
    const fh = await open(tmp, 'wx', 0o644);
    try {
      if (typeof data === 'string') await fh.writeFile(data);
      else for (const b of data) for (let off = 0; off < b.length; ) off += (await fh.write(b, off, b.length - off)).bytesWritten;
      await fh.datasync();
      await fh.close();
    } catch (err) {
      await fh.close().catch(() => {});
      await rm(tmp, { force: true });
      throw new CacheStoreError('TSBUILD_CACHE_WRITE', `cannot write cache record ${path.basename(dest)}`, { cause: err });
    }
    await rename(tmp, dest);
  }

  // -------------------------------------------------------------------------------------------
  // Lock

  async #tryLock(): Promise<boolean> {
    const lockFile = path.join(this.dir, 'lock');
    const info: LockInfo = { pid: this.#pid, host: this.#host, createdAt: Date.now(), nonce: randomBytes(8).toString('hex') };
    try {
      const fh = await open(lockFile, 'wx', 0o644);
      try {
        // Not synced: a lock only matters while its owner lives; after a crash it is judged
        // stale by its owner's pid (or its age), whatever the disk kept of it.
        await fh.writeFile(JSON.stringify(info));
      } finally {
        await fh.close();
      }
      this.#heldNonce = info.nonce;
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    // Held: by a live owner, or stale?
    let owner: LockInfo | undefined;
    try {
      owner = JSON.parse(await readFile(lockFile, 'utf8')) as LockInfo;
    } catch {
      // Being written right now, or a crash between create and write: judge by age.
      const st = await lstat(lockFile).catch(() => undefined);
      if (st && Date.now() - st.mtimeMs > 5000) await this.#steal(lockFile, undefined);
      return false;
    }
    const stale =
      owner.host === this.#host ? owner.pid !== this.#pid && !(await pidAlive(owner.pid)) : Date.now() - owner.createdAt > (this.#options.staleLockMs ?? 600_000);
    if (stale) await this.#steal(lockFile, owner.nonce);
    return false;
  }

  /** Move a stale lock aside; if it turns out to be someone's fresh lock, put it back. */
  async #steal(lockFile: string, nonce: string | undefined): Promise<void> {
    const aside = `${lockFile}.stale-${randomBytes(6).toString('hex')}`;
    try {
      await rename(lockFile, aside);
    } catch {
      return; // someone else took it first
    }
    try {
      const got = JSON.parse(await readFile(aside, 'utf8')) as LockInfo;
      if (nonce !== undefined && got.nonce !== nonce) await link(aside, lockFile).catch(() => {});
    } catch {
      /* unreadable: it was the stale one */
    }
    await unlink(aside).catch(() => {});
  }

  /**
   * Run `fn` holding the store's lock. The lock keeps other processes out; within this store
   * object, calls share it (the parallel steps of one build write records side by side): the
   * first takes the file lock, later ones wait for that, and the last one to finish gives it up.
   * (A count that let a later call in as "reentrant" and gave the lock up when the first call
   * ended left the others writing unlocked, beside another build's prune.)
   */
  async withLock<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#held === 0) {
      this.#acquiring ??= this.#acquire().finally(() => {
        this.#acquiring = undefined;
      });
      await this.#acquiring;
    }
    this.#held++;
    try {
      return await fn();
    } finally {
      if (--this.#held === 0) await this.#release();
    }
  }

  async #acquire(): Promise<void> {
    const deadline = Date.now() + (this.#options.lockTimeoutMs ?? 60_000);
    let wait = 2;
    while (!(await this.#tryLock())) {
      if (Date.now() > deadline) throw new CacheStoreError('TSBUILD_CACHE_LOCKED', `cache ${this.dir} is locked by another build (lock file ${path.join(this.dir, 'lock')})`);
      await sleep(wait + Math.random() * wait);
      wait = Math.min(wait * 2, 100);
    }
  }

  async #release(): Promise<void> {
    const nonce = this.#heldNonce;
    this.#heldNonce = undefined;
    const lockFile = path.join(this.dir, 'lock');
    try {
      const cur = JSON.parse(await readFile(lockFile, 'utf8')) as LockInfo;
      if (cur.nonce === nonce) await unlink(lockFile);
    } catch {
      /* already gone */
    }
  }

  // -------------------------------------------------------------------------------------------
  // Records

  /**
   * The record for `key`, or undefined. A hit marks the record used (for LRU pruning).
   *
   * The record (a small file) is read, and marked, with synchronous calls: a build asks for a
   * record per step, and an awaited `readFile` costs four round trips through the threadpool
   * (open, stat, read, close), more than the read itself.
   */
  async get<R extends Json = Json>(key: Digest): Promise<CacheRecord<R> | undefined> {
    const p = this.#recordPath(key);
    let text: string;
    try {
      text = readFileSync(p, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new CacheStoreError('TSBUILD_CACHE_READ', `cannot read cache record ${key}`, { cause: err });
    }
    let rec: CacheRecord<R>;
    try {
      rec = JSON.parse(text) as CacheRecord<R>;
    } catch {
      return undefined; // cannot happen with atomic writes; treat as a miss
    }
    if (rec.key !== key) return undefined;
    try {
      const now = new Date();
      utimesSync(p, now, now);
    } catch {
      // removed meanwhile by a prune: still a hit for this build
    }
    return rec;
  }

  /** Store a record (replacing one with the same key) and remember it as its step's latest. */
  async put<R extends Json>(record: PutRecord<R>): Promise<void> {
    // The manifest's file list goes to files/, named by its digest; the record keeps the rest.
    let manifest = record.manifest;
    let filesFile: string | undefined;
    let filesBody: string | Iterable<Buffer> | undefined;
    if (manifest?.files) {
      const { files, ...rest } = manifest;
      filesFile = this.#filesPath(rest.filesDigest);
      if (filesFile) {
        filesBody = JSON.stringify(files);
        manifest = rest;
      }
    } else if (manifest && record.files) {
      filesFile = this.#filesPath(manifest.filesDigest);
      if (filesFile) filesBody = record.files.jsonChunks(); // made while written, a piece at a time
    }
    const full: CacheRecord<R> = {
      key: record.key,
      result: record.result,
      size: record.size ?? 0,
      createdAt: new Date().toISOString(),
      ...(record.stepId !== undefined ? { stepId: record.stepId } : {}),
      ...(record.description !== undefined ? { description: record.description } : {}),
      ...(manifest !== undefined ? { manifest } : {}),
    };
    const dest = this.#recordPath(record.key);
    const body = JSON.stringify(full);
    await this.withLock(async () => {
      // The file list first (content-addressed: written once), so no record names a missing one.
      if (filesFile && filesBody !== undefined && !(await lstat(filesFile).catch(() => undefined))) await this.#writeAtomic(filesFile, filesBody);
      await this.#writeAtomic(dest, body);
      if (record.stepId !== undefined) await this.#writeAtomic(this.#stepPath(record.stepId), JSON.stringify({ stepId: record.stepId, key: record.key }));
    });
  }

  /** The record last stored for `stepId` (whatever its key), to explain why a new key missed. */
  async previous(stepId: string): Promise<CacheRecord | undefined> {
    try {
      const { key } = JSON.parse(await readFile(this.#stepPath(stepId), 'utf8')) as { key: Digest };
      const p = this.#recordPath(key);
      const rec = JSON.parse(await readFile(p, 'utf8')) as CacheRecord;
      const m = rec.manifest;
      const filesFile = m && !m.files ? this.#filesPath(m.filesDigest) : undefined;
      if (!m || !filesFile) return rec;
      let files: Record<string, string>;
      try {
        files = JSON.parse(await readFile(filesFile, 'utf8')) as Record<string, string>;
      } catch {
        return rec; // pruned meanwhile: explain says "source files changed" without naming them
      }
      return { ...rec, manifest: { ...m, files } };
    } catch {
      return undefined;
    }
  }

  async delete(key: Digest): Promise<boolean> {
    return this.withLock(async () => {
      try {
        await unlink(this.#recordPath(key));
        return true;
      } catch {
        return false;
      }
    });
  }

  /** Every record with its size and times (`tsbuild du`). */
  async list(): Promise<CacheEntryInfo[]> {
    return (await this.#scan()).entries;
  }

  /** Every record, and the file lists (`files/` names) they refer to. */
  async #scan(): Promise<{ entries: CacheEntryInfo[]; fileLists: Map<Digest, string> }> {
    const dir = path.join(this.dir, 'records');
    const out: CacheEntryInfo[] = [];
    const fileLists = new Map<Digest, string>();
    for (const name of await readdir(dir)) {
      if (!name.endsWith('.json')) continue;
      const p = path.join(dir, name);
      try {
        const [text, st] = await Promise.all([readFile(p, 'utf8'), lstat(p)]);
        const rec = JSON.parse(text) as CacheRecord;
        const fl = rec.manifest?.filesDigest ? this.#filesPath(rec.manifest.filesDigest) : undefined;
        if (fl) fileLists.set(rec.key, path.basename(fl));
        out.push({
          key: rec.key,
          size: rec.size,
          createdAt: new Date(rec.createdAt),
          lastUsedAt: st.mtime,
          result: rec.result,
          ...(rec.description !== undefined ? { description: rec.description } : {}),
        });
      } catch {
        // removed meanwhile by a prune
      }
    }
    out.sort((a, b) => b.lastUsedAt.getTime() - a.lastUsedAt.getTime() || (a.key < b.key ? -1 : 1));
    return { entries: out, fileLists };
  }

  async du(): Promise<DuResult> {
    const entries = await this.list();
    return { entries, count: entries.length, totalSize: entries.reduce((n, e) => n + e.size, 0) };
  }

  /**
   * Remove records as `buildx prune` does: candidates are all records (or those unused for
   * `olderThanMs`); with `keepStorage`, least recently used candidates go until the total fits.
   * Returns what was removed so the caller can drop blobs nothing else references.
   */
  async prune(options: PruneOptions = {}): Promise<PruneResult> {
    return this.withLock(async () => {
      const { entries, fileLists } = await this.#scan(); // most recently used first
      const now = Date.now();
      let candidates = options.all || options.olderThanMs === undefined ? entries : entries.filter((e) => now - e.lastUsedAt.getTime() > options.olderThanMs!);
      if (options.keepStorage !== undefined && !options.all) {
        let total = entries.reduce((n, e) => n + e.size, 0);
        const pick: CacheEntryInfo[] = [];
        for (const e of [...candidates].reverse()) {
          if (total <= options.keepStorage) break;
          pick.push(e);
          total -= e.size;
        }
        candidates = pick;
      }
      if (!options.dryRun) {
        for (const e of candidates) await rm(this.#recordPath(e.key), { force: true });
        if (candidates.length > 0) await fsyncDir(path.join(this.dir, 'records'));
        // File lists no remaining record refers to.
        const gone = new Set(candidates.map((e) => e.key));
        const kept = new Set([...fileLists].filter(([k]) => !gone.has(k)).map(([, name]) => name));
        const filesDir = path.join(this.dir, 'files');
        for (const name of await readdir(filesDir).catch(() => [] as string[])) {
          if (name.endsWith('.json') && !kept.has(name)) await rm(path.join(filesDir, name), { force: true });
        }
        await this.#sweepTemp();
      }
      return { removed: candidates, reclaimed: candidates.reduce((n, e) => n + e.size, 0) };
    });
  }
}

/** Parse `--keep-storage` sizes as buildx does: `10gb`, `512mb`, `1.5GB`, bytes. */
export function parseSize(text: string): number {
  const m = /^\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?i?b?)?\s*$/i.exec(text);
  if (!m) throw new CacheStoreError('TSBUILD_BAD_SIZE', `invalid size ${JSON.stringify(text)}: want e.g. 512mb, 10gb`);
  const unit = (m[2] ?? '').toLowerCase().replace(/i?b$/, '');
  const mult = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : unit === 't' ? 1024 ** 4 : 1;
  return Math.round(Number(m[1]) * mult);
}

/** Parse `until=24h` durations (Go style: `1h30m`, `90s`, `2d` is not Go but accepted). */
export function parseDuration(text: string): number {
  const re = /([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)/g;
  let total = 0;
  let consumed = 0;
  for (const m of text.matchAll(re)) {
    const n = Number(m[1]);
    const u = m[2]!;
    total += n * (u === 'ms' ? 1 : u === 's' ? 1000 : u === 'm' ? 60_000 : u === 'h' ? 3_600_000 : 86_400_000);
    consumed += m[0].length;
  }
  if (consumed === 0 || consumed !== text.trim().length) throw new CacheStoreError('TSBUILD_BAD_DURATION', `invalid duration ${JSON.stringify(text)}: want e.g. 24h, 90m, 1h30m`);
  return total;
}
