/**
 * Content hashes of the context files a step reads, with a persisted stat index so that an
 * unchanged tree is not read again: an entry (size, mtime, inode, mode) that still matches the
 * file's `lstat` gives its digest without opening it.
 *
 * A file's digest string says what a copy of it would reproduce and nothing else:
 * `f:<mode>:<sha256 hex>` for a regular file, `l:<target>` for a symlink, `d:<mode>` for a
 * directory, `missing` for a named source that does not exist. Never the mtime, owner or inode.
 *
 * Racy writes (a file changed within the same clock tick as it was hashed) are handled as git
 * does: an index entry is trusted only if the file's mtime was at least a second older than the
 * moment it was hashed.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, lstatSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import pLimit from 'p-limit';
import { TsbuildError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import { PatternMatcher, resolveInRoot } from '../builder/context.js';
import { expandSourcePath } from '../builder/copy.js';
import { filesDigest } from './keys.js';

export class ContextHashError extends TsbuildError {}

/** `f:<mode>:<hex>` | `l:<target>` | `d:<mode>` | `missing`. */
export type FileDigest = string;

/** A root to hash from: a build context (ignore rules apply) or any directory. */
export interface HashRoot {
  readonly root: string;
  readonly isHidden?: (rel: string, isDir: boolean) => boolean;
}

const INDEX_VERSION = 1;
/** size, mtimeMs, ino, mode, hashedAtMs, sha256 hex */
type IndexEntry = [number, number, number, number, number, string];

interface IndexFile {
  readonly version: number;
  readonly root: string;
  readonly entries: Record<string, IndexEntry>;
}

export interface HashStats {
  /** Files read and hashed. */
  hashed: number;
  /** Files answered from the stat index. */
  fromIndex: number;
  /** Bytes read. */
  bytes: number;
}

export interface HashSourcesOptions {
  /** `--exclude` patterns, matched relative to each source (as COPY applies them). */
  readonly exclude?: readonly string[];
  /** Concurrent file reads; default 8. */
  readonly concurrency?: number;
  readonly signal?: AbortSignal;
}

function indexPath(cacheDir: string, root: string): string {
  return path.join(cacheDir, 'context-index', `${createHash('sha256').update(root).digest('hex')}.json`);
}

/** Context hashing with a persisted stat index for one root directory. */
export class ContextHasher {
  readonly root: string;
  readonly #file: string;
  readonly #entries: Map<string, IndexEntry>;
  #dirty = false;
  readonly stats: HashStats = { hashed: 0, fromIndex: 0, bytes: 0 };

  private constructor(root: string, file: string, entries: Map<string, IndexEntry>) {
    this.root = root;
    this.#file = file;
    this.#entries = entries;
  }

  /** Load (or start) the index of `root` kept under `cacheDir` (`<root>/cache` of the tsbuild root). */
  static async open(cacheDir: string, root: string): Promise<ContextHasher> {
    const abs = path.resolve(root);
    const file = indexPath(cacheDir, abs);
    let entries = new Map<string, IndexEntry>();
    try {
      const parsed = JSON.parse(await readFile(file, 'utf8')) as IndexFile;
      if (parsed.version === INDEX_VERSION && parsed.root === abs) entries = new Map(Object.entries(parsed.entries));
    } catch {
      // absent or unreadable: start empty (the index is only an accelerator)
    }
    return new ContextHasher(abs, file, entries);
  }

  /** The digest of one regular file (relative to root), from the index when its stat still matches. */
  async fileDigest(rel: string, st: Stats): Promise<string> {
    const e = this.#entries.get(rel);
    if (e && e[0] === st.size && e[1] === st.mtimeMs && e[2] === st.ino && e[3] === st.mode && st.mtimeMs < e[4] - 1000) {
      this.stats.fromIndex++;
      return e[5];
    }
    const startedAt = Date.now();
    const h = createHash('sha256');
    const abs = path.join(this.root, rel);
    for await (const chunk of createReadStream(abs)) {
      h.update(chunk as Buffer);
      this.stats.bytes += (chunk as Buffer).length;
    }
    const hex = h.digest('hex');
    this.stats.hashed++;
    this.#entries.set(rel, [st.size, st.mtimeMs, st.ino, st.mode, startedAt, hex]);
    this.#dirty = true;
    return hex;
  }

  /**
   * Digests of everything the given COPY sources read, keyed by the path as the copy sees it
   * (`src`, `src/a.txt`; `.` for the root): wildcards expanded, top-level symlinks followed,
   * ignore rules and `exclude` applied, directory contents walked without following links.
   */
  async hashSources(from: HashRoot, sources: readonly string[], options: HashSourcesOptions = {}): Promise<Record<string, FileDigest>> {
    const out: Record<string, FileDigest> = {};
    const limit = pLimit(options.concurrency ?? 8);
    const jobs: Promise<void>[] = [];
    const exclude = options.exclude && options.exclude.length > 0 ? PatternMatcher.from(options.exclude) : undefined;
    const isHidden = from.isHidden;
    const srcRoot = { root: this.root, ...(isHidden ? { isHidden } : {}) };
    for (const raw of sources) {
      const matches = await expandSourcePath(srcRoot, raw);
      for (const m of matches) {
        const key = m === '' ? '.' : m;
        const r = await resolveInRoot(this.root, m, { isHidden });
        if (!r.exists) {
          out[key] = 'missing';
          continue;
        }
        let st: Stats;
        try {
          st = lstatSync(r.abs);
          if (st.isSymbolicLink()) throw new Error('unresolved link');
        } catch (cause) {
          throw new ContextHashError('TSBUILD_CONTEXT_HASH', `cannot read ${m} in ${this.root}`, { cause });
        }
        const visit = (realRel: string, shownRel: string, relInSource: string, s: Stats): void => {
          if (options.signal?.aborted) throw new ContextHashError('TSBUILD_ABORTED', 'context hashing aborted', { cause: options.signal.reason });
          if (s.isDirectory()) {
            out[shownRel] = `d:${(s.mode & 0o7777).toString(8)}`;
            const dirAbs = realRel === '' ? this.root : path.join(this.root, realRel);
            for (const name of readdirSync(dirAbs).sort()) {
              const childReal = realRel === '' ? name : `${realRel}/${name}`;
              const childShown = shownRel === '.' ? name : `${shownRel}/${name}`;
              const childInSource = relInSource === '' ? name : `${relInSource}/${name}`;
              const cs = lstatSync(path.join(dirAbs, name));
              if (exclude && exclude.matches(childInSource) && (!cs.isDirectory() || exclude.canSkipDir(childInSource))) continue;
              if (isHidden?.(childReal, cs.isDirectory())) continue;
              visit(childReal, childShown, childInSource, cs);
            }
          } else if (s.isSymbolicLink()) {
            out[shownRel] = `l:${readlinkSync(path.join(this.root, realRel))}`;
          } else if (s.isFile()) {
            const mode = (s.mode & 0o7777).toString(8);
            jobs.push(
              limit(async () => {
                out[shownRel] = `f:${mode}:${await this.fileDigest(realRel, s)}`;
              }),
            );
          }
          // sockets, fifos, devices: not copied, not keyed
        };
        visit(r.rel, key, '', st);
      }
    }
    await Promise.all(jobs);
    const sorted: Record<string, FileDigest> = {};
    for (const k of Object.keys(out).sort()) sorted[k] = out[k]!;
    return sorted;
  }

  /** Write the index back (atomically) if anything was hashed. */
  async save(): Promise<void> {
    if (!this.#dirty) return;
    const dir = path.dirname(this.#file);
    await mkdir(dir, { recursive: true });
    const tmp = `${this.#file}.tmp-${randomBytes(6).toString('hex')}`;
    const body: IndexFile = { version: INDEX_VERSION, root: this.root, entries: Object.fromEntries(this.#entries) };
    const fh = await open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(JSON.stringify(body));
      await fh.sync();
    } catch (err) {
      await fh.close();
      await rm(tmp, { force: true });
      throw err;
    } finally {
      await fh.close().catch(() => {});
    }
    await rename(tmp, this.#file);
    this.#dirty = false;
  }
}


/**
 * One call for a solver (a build that hashes many steps should instead keep one `ContextHasher`
 * per context, share it across steps, and `save()` it once at the end): the files a COPY from `from` reads and their combined digest, using
 * (and updating) the stat index under `cacheDir`.
 */
export async function hashContextSources(
  cacheDir: string,
  from: HashRoot,
  sources: readonly string[],
  options: HashSourcesOptions = {},
): Promise<{ digest: Digest; files: Record<string, FileDigest>; stats: HashStats }> {
  const hasher = await ContextHasher.open(cacheDir, from.root);
  const files = await hasher.hashSources(from, sources, options);
  await hasher.save();
  return { digest: filesDigest(files), files, stats: hasher.stats };
}
