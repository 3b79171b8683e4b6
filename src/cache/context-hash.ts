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
import { createReadStream, lstatSync, readdirSync, readFileSync, readlinkSync, type Stats } from 'node:fs';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { getSystemErrorName } from 'node:util';
import pLimit from 'p-limit';
import { TsbuildError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import { flatString, PatternMatcher, resolveInRoot } from '../builder/context.js';
import { expandSourcePath } from '../builder/copy.js';
import { filesDigest, sealFiles } from './keys.js';
import { nativeWalk, type WalkListing } from './native-walk.js';

export class ContextHashError extends TsbuildError {}

/** `f:<mode>:<hex>` | `l:<target>` | `d:<mode>` | `missing`. */
export type FileDigest = string;

/** A root to hash from: a build context (ignore rules apply) or any directory. */
export interface HashRoot {
  readonly root: string;
  /** Omit it when nothing is ignored: the walk then skips the per-entry call. */
  readonly isHidden?: (rel: string, isDir: boolean) => boolean;
}

/**
 * The index file: a header line `tsbuild-context-index 2 <root as JSON>\n`, then per file
 * `<path>\0<size> <mtimeMs> <ino> <mode> <sha256 hex>\n` (a path may hold a newline, never a
 * NUL). In memory an entry stays that text after the NUL: a lookup compares it with the same
 * text made from the file's `lstat`, nothing is parsed.
 *
 * Racy writes: an entry is kept only when the file's mtime was at least a second older than the
 * moment hashing started (as git does), since only such an entry can ever be trusted.
 */
const INDEX_MAGIC = 'tsbuild-context-index 2 ';

/** Files up to this size are read and hashed inline (one synchronous read); larger ones are streamed. */
const INLINE_MAX = 1 << 20;
/**
 * Index size (files seen before under this root) from which directory sources are listed by the
 * native helper: it costs a process spawn (a few ms) and saves about 5 us per entry.
 */
const NATIVE_WALK_MIN = 2000;
/** The index is written through one buffer of this size. */
const INDEX_WRITE_BUFFER = 1 << 18;

/** What hashing reads of an entry's lstat: `fs.Stats`, or the native walk's `WalkStat`. */
type FileStat = Pick<Stats, 'mode' | 'size' | 'ino' | 'mtimeMs' | 'isDirectory' | 'isFile' | 'isSymbolicLink'>;

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
  /** Concurrent reads of large files (over 1 MiB; smaller ones are read inline); default 4. */
  readonly concurrency?: number;
  readonly signal?: AbortSignal;
}

function indexPath(cacheDir: string, root: string, ext: 'idx' | 'json'): string {
  return path.join(cacheDir, 'context-index', `${createHash('sha256').update(root).digest('hex')}.${ext}`);
}

function parseIndex(text: string, root: string): Map<string, string> {
  const entries = new Map<string, string>();
  const nl = text.indexOf('\n');
  if (!text.startsWith(INDEX_MAGIC) || nl < 0) return entries;
  try {
    if (JSON.parse(text.slice(INDEX_MAGIC.length, nl)) !== root) return entries;
  } catch {
    return entries;
  }
  let at = nl + 1;
  for (;;) {
    const nul = text.indexOf('\0', at);
    if (nul < 0) break;
    const end = text.indexOf('\n', nul);
    if (end < 0) break; // a torn tail cannot happen with atomic writes; ignore it anyway
    entries.set(text.slice(at, nul), text.slice(nul + 1, end));
    at = end + 1;
  }
  return entries;
}

/** An entry's text up to the digest: what a lookup compares. */
function statText(st: FileStat): string {
  return `${st.size} ${st.mtimeMs} ${st.ino} ${st.mode} `;
}

const flat = flatString;

const filePrefixes = new Map<number, string>();
/** `f:<mode>:<hex>`, flat, for a regular file. */
function fileDigestText(mode: number, hex: string): string {
  const m = mode & 0o7777;
  let p = filePrefixes.get(m);
  if (p === undefined) filePrefixes.set(m, (p = `f:${m.toString(8)}:`));
  return flat(p + hex);
}

const modeTexts = new Map<number, string>();
/** Permission bits in octal, as digests show them (`644`); memoized, there are few. */
function modeText(mode: number): string {
  const m = mode & 0o7777;
  let t = modeTexts.get(m);
  if (t === undefined) modeTexts.set(m, (t = m.toString(8)));
  return t;
}

/** Context hashing with a persisted stat index for one root directory. */
export class ContextHasher {
  readonly root: string;
  readonly #cacheDir: string;
  readonly #entries: Map<string, string>;
  #dirty = false;
  readonly stats: HashStats = { hashed: 0, fromIndex: 0, bytes: 0 };

  private constructor(root: string, cacheDir: string, entries: Map<string, string>) {
    this.root = root;
    this.#cacheDir = cacheDir;
    this.#entries = entries;
  }

  /** Load (or start) the index of `root` kept under `cacheDir` (`<root>/cache` of the tsbuild root). */
  static async open(cacheDir: string, root: string): Promise<ContextHasher> {
    const abs = path.resolve(root);
    let entries = new Map<string, string>();
    try {
      entries = parseIndex(await readFile(indexPath(cacheDir, abs, 'idx'), 'utf8'), abs);
    } catch {
      // absent or unreadable: start empty (the index is only an accelerator)
    }
    return new ContextHasher(abs, cacheDir, entries);
  }

  /** The index entry's digest when it still describes the file and was not hashed racily. */
  #lookup(rel: string, st: FileStat): string | undefined {
    const e = this.#entries.get(rel);
    if (e === undefined) return undefined;
    const pre = statText(st);
    if (e.length !== pre.length + 64 || !e.startsWith(pre)) return undefined;
    this.stats.fromIndex++;
    return e.slice(pre.length);
  }

  #remember(rel: string, st: FileStat, startedAt: number, hex: string, bytes: number): void {
    this.stats.hashed++;
    this.stats.bytes += bytes;
    // Racy (changed within a second of hashing): never trusted, so not kept.
    if (st.mtimeMs < startedAt - 1000) this.#entries.set(flat(rel), flat(statText(st) + hex));
    else this.#entries.delete(rel);
    this.#dirty = true;
  }

  /** The digest of one regular file (relative to root), from the index when its stat still matches. */
  async fileDigest(rel: string, st: FileStat): Promise<string> {
    const known = this.#lookup(rel, st);
    if (known !== undefined) return known;
    const startedAt = Date.now();
    const h = createHash('sha256');
    let bytes = 0;
    for await (const chunk of createReadStream(path.join(this.root, rel))) {
      h.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
    }
    const hex = h.digest('hex');
    this.#remember(rel, st, startedAt, hex, bytes);
    return hex;
  }

  /** Like `fileDigest`, synchronously, for a file of at most `INLINE_MAX` bytes. */
  #smallFileDigest(rel: string, abs: string, st: FileStat): string {
    const known = this.#lookup(rel, st);
    if (known !== undefined) return known;
    const startedAt = Date.now();
    const data = readFileSync(abs);
    const hex = createHash('sha256').update(data).digest('hex');
    this.#remember(rel, st, startedAt, hex, data.length);
    return hex;
  }

  /**
   * Starts listing the whole root with the native helper now, when it is big (see
   * NATIVE_WALK_MIN), so that the walk runs beside whatever the caller does before hashing (the
   * builder: planning, resolving base images): `hashSources` then takes its directories from
   * this listing. `isHidden` must apply the same rules as the one later calls pass (it decides
   * which top-level directories are not walked). Returns at once.
   */
  prefetch(isHidden?: HashRoot['isHidden']): void {
    if (this.#prefetched !== undefined || this.#entries.size < NATIVE_WALK_MIN) return;
    this.#prefetched = { listing: this.#nativeListing(this.root, '', isHidden).catch(() => undefined) };
  }

  #prefetched: { listing: Promise<WalkListing | undefined> } | undefined;

  /**
   * The native listing of the tree at `dirAbs` (`rel` from the root), without descending into
   * its top-level directories that the ignore rules hide (node_modules, .git): their contents
   * are never read. Undefined when the helper cannot walk (then node's fs does).
   */
  async #nativeListing(dirAbs: string, rel: string, isHidden: HashRoot['isHidden']): Promise<WalkListing | undefined> {
    const skip: string[] = [];
    if (isHidden) {
      for (const d of readdirSync(dirAbs, { withFileTypes: true })) {
        if (d.isDirectory() && isHidden(rel === '' ? d.name : `${rel}/${d.name}`, true)) skip.push(d.name);
      }
    }
    return nativeWalk(dirAbs, skip);
  }

  /**
   * Digests of everything the given COPY sources read, keyed by the path as the copy sees it
   * (`src`, `src/a.txt`; `.` for the root): wildcards expanded, top-level symlinks followed,
   * ignore rules and `exclude` applied, directory contents walked without following links.
   *
   * The walk is synchronous (one `lstat` per entry, no promise per file); files up to 1 MiB
   * that the index does not answer are read inline, larger ones streamed afterwards. The
   * record comes back frozen, keys in sorted order, its `filesDigest` already computed.
   */
  async hashSources(from: HashRoot, sources: readonly string[], options: HashSourcesOptions = {}): Promise<Readonly<Record<string, FileDigest>>> {
    // Parallel arrays in walk order; the walk visits each directory's entries in the order
    // their full paths sort (a directory's contents sort as `name/`), so that they usually
    // come out sorted and the final sort is a check.
    const keys: string[] = [];
    const vals: string[] = [];
    const large: { i: number; rel: string; st: FileStat }[] = [];
    const exclude = options.exclude && options.exclude.length > 0 ? PatternMatcher.from(options.exclude) : undefined;
    const isHidden = from.isHidden;
    const signal = options.signal;
    const srcRoot = { root: this.root, ...(isHidden ? { isHidden } : {}) };

    const visitFile = (realRel: string, shownRel: string, abs: string, s: FileStat): void => {
      if (s.size > INLINE_MAX) {
        large.push({ i: keys.length, rel: realRel, st: s });
        keys.push(shownRel);
        vals.push('');
        return;
      }
      keys.push(shownRel);
      vals.push(fileDigestText(s.mode, this.#smallFileDigest(realRel, abs, s)));
    };

    // A big tree is listed by the native helper in one go (see native-walk.ts); what it did not
    // list (or a small tree) is read with readdir and lstat.
    let listing: WalkListing | undefined;
    const walkDir = (realRel: string, shownRel: string, relInSource: string, dirAbs: string): void => {
      if (signal?.aborted) throw new ContextHashError('TSBUILD_ABORTED', 'context hashing aborted', { cause: signal.reason });
      const listed = listing?.get(dirAbs);
      if (listed !== undefined && 'errno' in listed) {
        throw new ContextHashError('TSBUILD_CONTEXT_HASH', `cannot read directory ${realRel || '.'} in ${this.root}: ${getSystemErrorName(-listed.errno)}`);
      }
      // Names in sorted order, each with its stat when the listing has it (else lstat below).
      let names: string[];
      let stats: (FileStat | undefined)[] | undefined;
      try {
        if (listed !== undefined) {
          listed.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
          names = listed.map((e) => e.name);
          stats = listed.map((e) => e.stat);
        } else names = readdirSync(dirAbs).sort();
      } catch (cause) {
        throw new ContextHashError('TSBUILD_CONTEXT_HASH', `cannot read directory ${realRel || '.'} in ${this.root}`, { cause });
      }
      // Entries in name order, a subdirectory's contents where `name/` sorts (after `name.txt`,
      // before `name0`): so the walk's output is in sorted path order.
      let subdirs: { name: string; k: string }[] | undefined;
      const descend = (name: string): void => {
        walkDir(realRel === '' ? name : `${realRel}/${name}`, shownRel === '.' ? name : `${shownRel}/${name}`, relInSource === '' ? name : `${relInSource}/${name}`, `${dirAbs}/${name}`);
      };
      for (let n = 0; n < names.length; n++) {
        const name = names[n]!;
        while (subdirs !== undefined && subdirs.length > 0 && subdirs[0]!.k < name) descend(subdirs.shift()!.name);
        const childReal = realRel === '' ? name : `${realRel}/${name}`;
        const childAbs = `${dirAbs}/${name}`;
        let cs: FileStat;
        try {
          cs = stats?.[n] ?? lstatSync(childAbs);
        } catch (cause) {
          throw new ContextHashError('TSBUILD_CONTEXT_HASH', `cannot read ${childReal} in ${this.root}`, { cause });
        }
        const isDir = cs.isDirectory();
        if (exclude) {
          const childInSource = relInSource === '' ? name : `${relInSource}/${name}`;
          if (exclude.matches(childInSource) && (!isDir || exclude.canSkipDir(childInSource))) continue;
        }
        if (isHidden?.(childReal, isDir)) continue;
        // One string for both when the source is the directory itself (`COPY . .`): kept once.
        const childShown = shownRel === realRel || (shownRel === '.' && realRel === '') ? childReal : shownRel === '.' ? name : `${shownRel}/${name}`;
        if (isDir) {
          keys.push(childShown);
          vals.push(`d:${modeText(cs.mode)}`);
          const item = { name, k: `${name}/` };
          if (subdirs === undefined) subdirs = [item];
          else {
            // keep sorted by `name/` (usually an append)
            let j = subdirs.length;
            while (j > 0 && subdirs[j - 1]!.k > item.k) j--;
            subdirs.splice(j, 0, item);
          }
        } else if (cs.isSymbolicLink()) {
          keys.push(childShown);
          vals.push(`l:${readlinkSync(childAbs)}`);
        } else if (cs.isFile()) {
          visitFile(childReal, childShown, childAbs, cs);
        }
        // sockets, fifos, devices: not copied, not keyed
      }
      if (subdirs !== undefined) for (const d of subdirs) descend(d.name);
    };

    for (const raw of sources) {
      const matches = await expandSourcePath(srcRoot, raw);
      for (const m of matches) {
        const key = m === '' ? '.' : m;
        const r = await resolveInRoot(this.root, m, { isHidden });
        if (!r.exists) {
          keys.push(key);
          vals.push('missing');
          continue;
        }
        let st: Stats;
        try {
          st = lstatSync(r.abs);
          if (st.isSymbolicLink()) throw new Error('unresolved link');
        } catch (cause) {
          throw new ContextHashError('TSBUILD_CONTEXT_HASH', `cannot read ${m} in ${this.root}`, { cause });
        }
        if (st.isDirectory()) {
          keys.push(key);
          vals.push(`d:${modeText(st.mode)}`);
          const dirAbs = r.rel === '' ? this.root : path.join(this.root, r.rel);
          const pre = await this.#prefetched?.listing;
          if (pre?.has(dirAbs)) listing = pre;
          else listing = this.#entries.size >= NATIVE_WALK_MIN ? await this.#nativeListing(dirAbs, r.rel, isHidden) : undefined;
          walkDir(r.rel, key, '', dirAbs);
          listing = undefined;
        } else if (st.isSymbolicLink()) {
          keys.push(key);
          vals.push(`l:${readlinkSync(r.abs)}`);
        } else if (st.isFile()) {
          visitFile(r.rel, key, path.join(this.root, r.rel), st);
        }
      }
    }

    if (large.length > 0) {
      const limit = pLimit(options.concurrency ?? 4);
      await Promise.all(
        large.map((f) =>
          limit(async () => {
            signal?.throwIfAborted();
            vals[f.i] = fileDigestText(f.st.mode, await this.fileDigest(f.rel, f.st));
          }),
        ),
      );
    }
    return sealFiles(keys, vals);
  }

  /** Write the index back (atomically: temp file, fsync, rename) if anything was hashed. */
  async save(): Promise<void> {
    if (!this.#dirty) return;
    const file = indexPath(this.#cacheDir, this.root, 'idx');
    const dir = path.dirname(file);
    await mkdir(dir, { recursive: true });
    const tmp = `${file}.tmp-${randomBytes(6).toString('hex')}`;
    const fh = await open(tmp, 'wx', 0o644);
    try {
      // Encoded straight into one reused buffer, written whenever it fills: no text of the
      // whole index (and none of its pieces) is ever held, for a context of any size.
      const buf = Buffer.allocUnsafe(INDEX_WRITE_BUFFER);
      let n = 0;
      const flush = async (b: Buffer): Promise<void> => {
        for (let off = 0; off < b.length; ) off += (await fh.write(b, off, b.length - off)).bytesWritten;
      };
      const put = async (text: string): Promise<void> => {
        const len = Buffer.byteLength(text);
        if (n + len > buf.length) {
          await flush(buf.subarray(0, n));
          n = 0;
        }
        if (len > buf.length) await flush(Buffer.from(text));
        else n += buf.write(text, n);
      };
      await put(`${INDEX_MAGIC}${JSON.stringify(this.root)}\n`);
      for (const [rel, e] of this.#entries) {
        if (n + Buffer.byteLength(rel) + Buffer.byteLength(e) + 2 > buf.length) {
          await put(`${rel}\0${e}\n`);
          continue;
        }
        n += buf.write(rel, n);
        buf[n++] = 0;
        n += buf.write(e, n);
        buf[n++] = 0x0a;
      }
      await flush(buf.subarray(0, n));
      await fh.sync();
    } catch (err) {
      await fh.close();
      await rm(tmp, { force: true });
      throw err;
    } finally {
      await fh.close().catch(() => {});
    }
    await rename(tmp, file);
    await rm(indexPath(this.#cacheDir, this.root, 'json'), { force: true }); // the version 1 index, if any
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
): Promise<{ digest: Digest; files: Readonly<Record<string, FileDigest>>; stats: HashStats }> {
  const hasher = await ContextHasher.open(cacheDir, from.root);
  const files = await hasher.hashSources(from, sources, options);
  await hasher.save();
  return { digest: filesDigest(files), files, stats: hasher.stats };
}
