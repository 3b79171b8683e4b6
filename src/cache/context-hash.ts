/**
 * Content hashes of the context files a step reads, with a persisted stat index so that an
 * unchanged tree is not read again: an entry (size, mtime, inode, mode) that still matches the
 * file's `lstat` gives its digest without opening it.
 *
 * A file's digest string says what a copy of it would reproduce and nothing else:
 * `f:<mode>:<sha256 hex>` for a regular file, `l:<target>` for a symlink, `d:<mode>` for a
 * directory, `missing` for a named source that does not exist. Never the mtime, owner or inode.
 *
 * How an unchanged tree costs little, two ways. A big one (its index has `NATIVE_WALK_MIN`
 * files or more) is listed in one go by the native helper (native-walk.ts: binary records in
 * path order), the index is kept as the file's bytes (entries in the same order, each one a
 * listing record plus the digest), and each listed file is compared with the index entry at a
 * cursor, as bytes. The digest lines (`path \0 digest \n`, what the step's key digests:
 * keys.ts `FileSet`) are copied from the listing and the index; strings are made only for what
 * needs them (ignore and exclude rules, a file to read, a record to explain a miss). A tree
 * without an index (a cold build: its size unknown) is listed the same way. A small one (an
 * index under `NATIVE_WALK_MIN` files) is walked with node's `lstat` and compared as strings
 * with a map made from the index: in a fresh process, where this code runs uncompiled, a few
 * hundred entries cost less that way.
 *
 * Racy writes (a file changed within the same clock tick as it was hashed) are handled as git
 * does: an index entry is trusted only if the file's mtime was at least a second older than the
 * moment it was hashed.
 */
import { createHash, randomBytes } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync, type BigIntStats } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { getSystemErrorName } from 'node:util';
import pLimit from 'p-limit';
import { TsbuildError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import { cleanPath, PatternMatcher, resolveInRoot } from '../builder/context.js';
import { FileSet } from './keys.js';
import { encodeRecord, HEAD, nativeListing, nodeListing, pathLength, recordMode, statLength, T_DIR, T_ERROR, T_FILE, T_LINK, targetAt, type Listing } from './native-walk.js';

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
 * The index file: a header line `tsbuild-context-index 3 <root as JSON>\n`, then one entry per
 * file in the byte order of its path: the file's listing record up to its stat text (native-walk.ts:
 * type 'f', path and stat lengths, st_mode, path, NUL, `<size> <mtime ns> <ino> `) and the 64
 * hex digits of its sha256. An entry is kept only when the file's mtime was at least a second
 * older than the moment hashing started (as git does), since only such an entry can ever be
 * trusted.
 */
const INDEX_MAGIC = 'tsbuild-context-index 3 ';
const HEX = 64;

/** Files up to this size are read and hashed inline (one synchronous read); larger ones are streamed. */
const INLINE_MAX = 1 << 20;
/**
 * Index size (files seen before under this root) from which directory sources are listed by the
 * native helper: it costs a process spawn (a few ms) and saves about 5 us per entry. Without an
 * index (a cold build) they are listed by it too: the tree's size is not known, every file is
 * read anyway, and the listing way keeps nothing per file but bytes (see `#ubuf`).
 */
const NATIVE_WALK_MIN = 2000;
/** The index is written through one buffer of this size. */
const INDEX_WRITE_BUFFER = 1 << 18;

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

const EMPTY = Buffer.alloc(0);

/** Removes the index kept for the context at `root` (a context that will not be seen again: one unpacked from stdin). */
export async function forgetContextIndex(cacheDir: string, root: string): Promise<void> {
  const abs = path.resolve(root);
  await Promise.all((['idx', 'json'] as const).map((ext) => rm(indexPath(cacheDir, abs, ext), { force: true })));
}

/** The type of an entry this hasher made for a file it hashed racily: it drops the index's entry and is not written. */
const T_DROP = 0x2d; // '-'

/** Length of the index entry (or `T_DROP` entry) at `at` of `b`: record head, stat text, hex. */
const entryLength = (b: Buffer, at: number): number => HEAD + pathLength(b, at) + 1 + statLength(b, at) + HEX;

/** The entries of an index file for `root` and where each starts (then the end); undefined if it is not one. */
function parseIndex(file: Buffer, root: string): { index: Buffer; starts: number[] } | undefined {
  const nl = file.indexOf(0x0a);
  if (nl < 0 || file.toString('latin1', 0, INDEX_MAGIC.length) !== INDEX_MAGIC) return undefined;
  try {
    if (JSON.parse(file.toString('utf8', INDEX_MAGIC.length, nl)) !== root) return undefined;
  } catch {
    return undefined;
  }
  const index = file.subarray(nl + 1);
  const starts: number[] = [];
  for (let at = 0; at < index.length; ) {
    // a torn or foreign tail cannot happen with atomic writes; an index that has one is not used
    if (at + HEAD > index.length || index[at] !== T_FILE) return undefined;
    const end = at + HEAD + pathLength(index, at) + 1 + statLength(index, at) + HEX;
    if (end > index.length) return undefined;
    starts.push(at);
    at = end;
  }
  starts.push(index.length);
  return { index, starts };
}

/** The bytes after a path in a digest line, for a mode: `\0f:644:` or `\0d:755\n`; memoized, there are few. */
const tags = new Map<number, Buffer>();
function tag(kind: 'f' | 'd', mode: number): Buffer {
  const k = (mode & 0o7777) | (kind === 'd' ? 0o10000 : 0);
  let t = tags.get(k);
  if (t === undefined) tags.set(k, (t = Buffer.from(kind === 'f' ? `\0f:${(mode & 0o7777).toString(8)}:` : `\0d:${(mode & 0o7777).toString(8)}\n`)));
  return t;
}
const LINK_TAG = Buffer.from('\0l:');

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

const modeTexts = new Map<number, string>();
/** Permission bits in octal, as digests show them (`644`); memoized, there are few. */
function modeText(mode: number): string {
  const m = mode & 0o7777;
  let t = modeTexts.get(m);
  if (t === undefined) modeTexts.set(m, (t = m.toString(8)));
  return t;
}
/** `f:<mode>:`, the start of a regular file's digest text. */
function fileTag(mode: number): string {
  return `f:${modeText(mode)}:`;
}

/**
 * Copies `src[from, to)` into `dst` at `at`; returns the bytes copied. Short runs (most paths,
 * the tags) by a loop: `Buffer.copy` makes a typed-array view per call, which costs more than
 * the copy itself and feeds the GC, once or twice per file of the context. Longer ones (the 64
 * hex digits) natively: a loop of that length costs more uncompiled, in a fresh process.
 */
function copyBytes(src: Buffer, from: number, to: number, dst: Buffer, at: number): number {
  const n = to - from;
  if (n > 40) return src.copy(dst, at, from, to);
  for (let k = 0; k < n; k++) dst[at + k] = src[from + k]!;
  return n;
}

/** Digest lines being written: one buffer, and per line its start and NUL (keys.ts `FileSet`). */
class Lines {
  buf = Buffer.allocUnsafe(1 << 16);
  n = 0;
  readonly marks: number[] = [];

  room(k: number): void {
    if (this.n + k <= this.buf.length) return;
    this.#grow(Math.max(this.buf.length * 2, this.n + k));
  }

  /**
   * Room for `k` more bytes, made at once and to size: a buffer grown by doubling leaves each
   * earlier copy behind as garbage, external memory that only a full collection frees.
   */
  reserve(k: number): void {
    if (this.n + k > this.buf.length) this.#grow(this.n + k);
  }

  #grow(size: number): void {
    const b = Buffer.allocUnsafeSlow(size);
    this.buf.copy(b, 0, 0, this.n);
    this.buf = b;
  }

  /** Starts a line with `prefix` and `src[from, to)` as its path; the caller writes the rest. */
  path(prefix: Buffer | undefined, src: Buffer, from: number, to: number, rest: number): void {
    this.room((prefix?.length ?? 0) + (to - from) + rest);
    this.marks.push(this.n);
    if (prefix !== undefined) this.n += copyBytes(prefix, 0, prefix.length, this.buf, this.n);
    this.n += copyBytes(src, from, to, this.buf, this.n);
    this.marks.push(this.n);
  }

  put(src: Buffer, from = 0, to = src.length): void {
    this.n += copyBytes(src, from, to, this.buf, this.n);
  }

  /** A whole line from strings. */
  text(p: string, digest: string): void {
    const len = Buffer.byteLength(p);
    this.room(len + Buffer.byteLength(digest) + 2);
    this.marks.push(this.n);
    this.n += this.buf.write(p, this.n);
    this.marks.push(this.n);
    this.buf[this.n++] = 0;
    this.n += this.buf.write(digest, this.n);
    this.buf[this.n++] = 0x0a;
  }

  /** Path of line `i`, as text. */
  pathOf(i: number): string {
    return this.buf.toString('utf8', this.marks[2 * i]!, this.marks[2 * i + 1]!);
  }
}

/** A file over `INLINE_MAX` bytes whose digest is read after the walk (`#hashLarge`). */
interface LargeFile {
  readonly rel: string;
  /** Its record up to the stat text: the head of its index entry. */
  readonly head: Buffer;
  readonly mtimeMs: number;
}

/** A large file of the listing way: its hex goes at `pos` of the lines. */
type LargeInLines = LargeFile & { readonly pos: number };

/** What a directory source's records are checked against (undefined: nothing is hidden). */
interface Rules {
  readonly isHidden: HashRoot['isHidden'];
  readonly exclude: PatternMatcher | undefined;
}

/** Size and mtime (ms) from a file record's stat text `<size> <mtime ns> <ino> `. */
function sizeAndMtime(b: Buffer, at: number): { size: number; mtimeMs: number } {
  const s = at + HEAD + pathLength(b, at) + 1;
  const text = b.toString('latin1', s, s + statLength(b, at));
  const [size, ns] = text.split(' ');
  return { size: Number(size), mtimeMs: Number(ns) / 1e6 };
}

/** Context hashing with a persisted stat index for one root directory. */
export class ContextHasher {
  readonly root: string;
  readonly #cacheDir: string;
  /** The index file's entries, as read (sorted by path bytes), and where each starts (then the end). */
  readonly #index: Buffer;
  readonly #starts: readonly number[];
  /** The entry the next lookup tries first: listings come in the index's order. */
  #cursor = 0;
  /**
   * Entries of files hashed by this hasher, written by `save`: index entries (head and hex) back
   * to back in `#ubuf`, in the order they were made, with their starts. A racy one (never to be
   * trusted: it drops the old entry) has `T_DROP` for its type. No object or string per entry:
   * a cold build of a 20,000-file context keeps them all until the end, and objects kept that
   * long make V8 grow its young generation (it doubles when what survives its collections adds
   * up to its size).
   */
  #ubuf = EMPTY;
  #un = 0;
  readonly #ustarts: number[] = [];
  /** Where each run of `#ustarts` sorted by path (byte order) starts; the last run is the newest. */
  readonly #runs: number[] = [];
  readonly stats: HashStats = { hashed: 0, fromIndex: 0, bytes: 0 };
  /** The index as read, as strings (path → `<st_mode> <stat text><hex>`), for small trees (`#smallSet`); made on first use. */
  #map: Map<string, string> | undefined;
  #prefetched: { readonly skip: readonly string[]; readonly listing: Promise<Listing | undefined> } | undefined;

  private constructor(root: string, cacheDir: string, index: Buffer, starts: readonly number[]) {
    this.root = root;
    this.#cacheDir = cacheDir;
    this.#index = index;
    this.#starts = starts;
  }

  /** Load (or start) the index of `root` kept under `cacheDir` (`<root>/cache` of the tsbuild root). */
  static async open(cacheDir: string, root: string): Promise<ContextHasher> {
    const abs = path.resolve(root);
    let parsed: { index: Buffer; starts: number[] } | undefined;
    try {
      parsed = parseIndex(readFileSync(indexPath(cacheDir, abs, 'idx')), abs);
    } catch {
      // absent or unreadable: start empty (the index is only an accelerator)
    }
    return new ContextHasher(abs, cacheDir, parsed?.index ?? EMPTY, parsed?.starts ?? [0]);
  }

  /** Files in the index as read. */
  get #indexed(): number {
    return this.#starts.length - 1;
  }

  /**
   * Where the 64 hex digits of the file of record `at` in `b` are in `this.#hit` (the index, or
   * an entry this hasher made), when an entry matches the record up to its stat text (path,
   * mode, size, mtime, inode); else -1.
   */
  #lookup(b: Buffer, at: number, plen: number, len: number): number {
    const idx = this.#index;
    const starts = this.#starts;
    const n = starts.length - 1;
    let i = this.#cursor;
    // The entry at the cursor, or one of the next few (files deleted since the index was written).
    for (let k = 0; k < 4 && i < n; k++, i++) {
      const s = starts[i]!;
      if (starts[i + 1]! - s === len + HEX && b.compare(idx, s, s + len, at, at + len) === 0) return this.#found(idx, i + 1, s + len);
      const c = idx.compare(b, at + HEAD, at + HEAD + plen, s + HEAD, s + HEAD + pathLength(idx, s));
      if (c === 0) {
        this.#cursor = i + 1;
        return this.#updated(b, at, plen, len); // this file, changed
      }
      if (c > 0) break; // the index has no entry for it here
    }
    // Elsewhere (a source that starts further on, a new file): binary search for the path.
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const s = starts[mid]!;
      if (idx.compare(b, at + HEAD, at + HEAD + plen, s + HEAD, s + HEAD + pathLength(idx, s)) < 0) lo = mid + 1;
      else hi = mid;
    }
    this.#cursor = lo;
    if (lo < n) {
      const s = starts[lo]!;
      if (starts[lo + 1]! - s === len + HEX && b.compare(idx, s, s + len, at, at + len) === 0) return this.#found(idx, lo + 1, s + len);
    }
    return this.#updated(b, at, plen, len);
  }

  #hit: Buffer = EMPTY;

  #found(buf: Buffer, cursor: number, hexAt: number): number {
    if (buf === this.#index) this.#cursor = cursor;
    this.#hit = buf;
    this.stats.fromIndex++;
    return hexAt;
  }

  /** The entry this hasher made for the file (hashed earlier in this process), if it still matches. */
  #updated(b: Buffer, at: number, plen: number, len: number): number {
    const s = this.#newest(b, at + HEAD, at + HEAD + plen);
    if (s < 0) return -1;
    const u = this.#ubuf;
    if (entryLength(u, s) === len + HEX && b.compare(u, s, s + len, at, at + len) === 0) return this.#found(u, 0, s + len);
    return -1;
  }

  /** Where in `#ubuf` the newest entry this hasher made for the path `p[from, to)` starts; -1 if none. */
  #newest(p: Buffer, from: number, to: number): number {
    const u = this.#ubuf;
    const starts = this.#ustarts;
    const runs = this.#runs;
    for (let r = runs.length - 1; r >= 0; r--) {
      let lo = runs[r]!;
      let hi = r + 1 < runs.length ? runs[r + 1]! : starts.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        const s = starts[mid]!;
        if (u.compare(p, from, to, s + HEAD, s + HEAD + pathLength(u, s)) < 0) lo = mid + 1;
        else hi = mid;
      }
      if (lo < (r + 1 < runs.length ? runs[r + 1]! : starts.length)) {
        const s = starts[lo]!;
        if (u.compare(p, from, to, s + HEAD, s + HEAD + pathLength(u, s)) === 0) return s;
      }
    }
    return -1;
  }

  /** A source path resolved in the context (links followed) and its lstat; undefined when it does not exist. */
  async #source(m: string, isHidden: HashRoot['isHidden']): Promise<{ rel: string; st: BigIntStats } | undefined> {
    const r = await resolveInRoot(this.root, m, { isHidden });
    if (!r.exists) return undefined;
    try {
      const st = lstatSync(r.abs, { bigint: true });
      if (st.isSymbolicLink()) throw new Error('unresolved link');
      return { rel: r.rel, st };
    } catch (cause) {
      throw new ContextHashError('TSBUILD_CONTEXT_HASH', `cannot read ${m} in ${this.root}`, { cause });
    }
  }

  /** Room in `#ubuf` for `k` more bytes, made at once and to size (see `Lines.reserve`). */
  #reserve(k: number): void {
    if (this.#un + k <= this.#ubuf.length) return;
    const b = Buffer.allocUnsafeSlow(this.#un + k);
    this.#ubuf.copy(b, 0, 0, this.#un);
    this.#ubuf = b;
  }

  /**
   * Keeps the entry of a file just hashed: its record up to the stat text (`src[at, at + len)`)
   * and its hex, copied into `#ubuf` (a buffer of its own: a small Buffer would be a slice of
   * node's shared 8 KiB pool, which the files read for hashing fill too, and would pin a whole
   * block each).
   */
  #remember(src: Buffer, at: number, len: number, mtimeMs: number, startedAt: number, hex: string, bytes: number): void {
    this.stats.hashed++;
    this.stats.bytes += bytes;
    if (this.#un + len + HEX > this.#ubuf.length) this.#reserve(Math.max(64 << 10, 2 * this.#ubuf.length, this.#un + len + HEX) - this.#un);
    const u = this.#ubuf;
    const s = this.#un;
    copyBytes(src, at, at + len, u, s);
    // Racy (changed within a second of hashing): never trusted, so not kept (the old entry is dropped).
    if (!(mtimeMs < startedAt - 1000)) u[s] = T_DROP;
    u.write(hex, s + len, 'latin1');
    this.#un = s + len + HEX;
    const k = this.#ustarts.length;
    const prev = k > 0 ? this.#ustarts[k - 1]! : -1;
    if (prev < 0 || u.compare(u, s + HEAD, s + HEAD + pathLength(u, s), prev + HEAD, prev + HEAD + pathLength(u, prev)) >= 0) this.#runs.push(k);
    this.#ustarts.push(s);
  }

  /** An index entry (`Buffer`: head and hex) as `#map` keeps it: `<st_mode> <stat text><hex>`. */
  static #entryText(e: Buffer, at: number, end: number): string {
    return `${recordMode(e, at)} ${e.toString('latin1', at + HEAD + pathLength(e, at) + 1, end)}`;
  }

  /**
   * The digest `#map` or this hasher's own entries (`#updates`) give for a file whose mode and
   * stat text are `text` (`<st_mode> <size> <mtime ns> <ino> `), if one matches.
   */
  #smallLookup(rel: string, text: string): string | undefined {
    this.#map ??= this.#indexMap();
    let e = this.#map.get(rel);
    if ((e === undefined || !e.startsWith(text)) && this.#ustarts.length > 0) {
      const p = Buffer.from(rel);
      const s = this.#newest(p, 0, p.length);
      const u = this.#ubuf;
      e = s >= 0 && u[s] === T_FILE ? ContextHasher.#entryText(u, s, s + entryLength(u, s)) : undefined;
    }
    if (e === undefined || e.length !== text.length + HEX || !e.startsWith(text)) return undefined;
    this.stats.fromIndex++;
    return e.slice(text.length);
  }

  /** The index as read, as strings. */
  #indexMap(): Map<string, string> {
    const map = new Map<string, string>();
    const idx = this.#index;
    const starts = this.#starts;
    for (let i = 0; i + 1 < starts.length; i++) {
      const s = starts[i]!;
      map.set(idx.toString('utf8', s + HEAD, s + HEAD + pathLength(idx, s)), ContextHasher.#entryText(idx, s, starts[i + 1]!));
    }
    return map;
  }

  /**
   * Starts listing the whole root with the native helper now, when it is big (see
   * NATIVE_WALK_MIN), so that the walk runs beside whatever the caller does before hashing (the
   * builder: planning, resolving base images): `hashSources` then takes its directories from
   * this listing. `isHidden` must apply the same rules as the one later calls pass (it decides
   * which top-level directories are not walked). Returns at once.
   */
  prefetch(isHidden?: HashRoot['isHidden']): void {
    if (this.#prefetched !== undefined || this.#indexed < NATIVE_WALK_MIN) return;
    const skip = this.#hiddenDirsIn('', isHidden);
    this.#prefetched = { skip, listing: nativeListing(this.root, '', skip).catch(() => undefined) };
  }

  /** The directories directly in `rel` (relative to the root) that the ignore rules hide: their contents are never read. */
  #hiddenDirsIn(rel: string, isHidden: HashRoot['isHidden']): string[] {
    const skip: string[] = [];
    if (!isHidden) return skip;
    try {
      for (const d of readdirSync(rel === '' ? this.root : path.join(this.root, rel), { withFileTypes: true })) {
        const child = rel === '' ? d.name : `${rel}/${d.name}`;
        if (d.isDirectory() && isHidden(child, true)) skip.push(child);
      }
    } catch {
      // the listing reports it
    }
    return skip;
  }

  /**
   * The records of the tree below `rel` (a directory, relative to the root): a range of the
   * prefetched listing when it has them, else a listing of its own (the native helper's for a
   * big tree, node's otherwise).
   */
  async #listing(rel: string, rules: Rules | undefined): Promise<{ listing: Listing; from: number; to: number }> {
    const pre = this.#prefetched ? await this.#prefetched.listing : undefined;
    if (pre && (rel === '' || !this.#prefetched!.skip.some((s) => rel === s || rel.startsWith(`${s}/`)))) {
      if (rel === '') return { listing: pre, from: 0, to: pre.starts.length - 1 };
      const p = Buffer.from(`${rel}/`);
      const from = lowerBound(pre, p);
      p[p.length - 1] = 0x30; // '0', the byte after '/': the end of the range
      return { listing: pre, from, to: lowerBound(pre, p) };
    }
    let listing: Listing | undefined;
    if (this.#indexed >= NATIVE_WALK_MIN || this.#indexed === 0) listing = await nativeListing(this.root, rel, this.#hiddenDirsIn(rel, rules?.isHidden));
    if (!listing) {
      const prefix = rel === '' ? 0 : rel.length + 1;
      const prune = rules
        ? (child: string) => {
            if (rules.isHidden?.(child, true)) return true;
            const inSource = child.slice(prefix);
            return rules.exclude !== undefined && rules.exclude.matches(inSource) && rules.exclude.canSkipDir(inSource);
          }
        : undefined;
      listing = nodeListing(this.root, rel, prune);
    }
    return { listing, from: 0, to: listing.starts.length - 1 };
  }

  /**
   * Digests of everything the given COPY sources read, keyed by the path as the copy sees it
   * (`src`, `src/a.txt`; `.` for the root): wildcards expanded, top-level symlinks followed,
   * ignore rules and `exclude` applied, directory contents walked without following links.
   * The record comes back frozen, keys in sorted order, its `filesDigest` already computed.
   */
  async hashSources(from: HashRoot, sources: readonly string[], options: HashSourcesOptions = {}): Promise<Readonly<Record<string, FileDigest>>> {
    return (await this.fileSet(from, sources, options)).record();
  }

  /**
   * `hashSources` as the builder uses it: the digest lines of the sources (keys.ts `FileSet`),
   * whose record is made only if asked for. Files up to 1 MiB that the index does not answer are
   * read inline, larger ones streamed afterwards.
   */
  async fileSet(from: HashRoot, sources: readonly string[], options: HashSourcesOptions = {}): Promise<FileSet> {
    if (this.#prefetched === undefined && this.#indexed > 0 && this.#indexed < NATIVE_WALK_MIN) return this.#smallSet(from, sources, options);
    const lines = new Lines();
    const large: LargeInLines[] = [];
    const exclude = options.exclude && options.exclude.length > 0 ? PatternMatcher.from(options.exclude) : undefined;
    const isHidden = from.isHidden;
    const rules: Rules | undefined = isHidden || exclude ? { isHidden, exclude } : undefined;
    const signal = options.signal;
    const srcRoot = { root: this.root, ...(isHidden ? { isHidden } : {}) };
    // Line ranges of the sources, in order: each is sorted; `ordered` false when its listing was
    // not in JavaScript's order (then all lines are sorted as strings at the end).
    let ordered = true;
    const segments: number[] = [];

    for (const raw of sources) {
      for (const m of await this.#expand(srcRoot, raw)) {
        signal?.throwIfAborted();
        segments.push(lines.marks.length >> 1);
        const key = m === '' ? '.' : m;
        const r = await this.#source(m, isHidden);
        if (!r) {
          lines.text(key, 'missing');
          continue;
        }
        const { st } = r;
        if (st.isDirectory()) {
          const { listing, from: i0, to: i1 } = await this.#listing(r.rel, rules);
          if (listing.unordered) ordered = false;
          this.#directory(listing, i0, i1, r.rel, key, Number(st.mode), rules, lines, large, signal);
        } else if (st.isFile()) {
          const rec = encodeRecord(r.rel, st);
          this.#file(rec, 0, Buffer.from(key), pathLength(rec, 0), lines, large);
        }
        // sockets, fifos, devices: not copied, not keyed
      }
    }

    await this.#hashLarge(large, options, (f, hex) => lines.buf.write(hex, f.pos, 'latin1'));

    const count = lines.marks.length >> 1;
    lines.marks.push(lines.n);
    // Each source's lines are sorted; together they are when each starts after the previous one ends.
    for (let s = 1; ordered && s < segments.length; s++) {
      const first = segments[s]!;
      if (first > 0 && first < count && !(lines.pathOf(first - 1) < lines.pathOf(first))) ordered = false;
    }
    if (ordered) return FileSet.fromSortedLines(lines.buf.subarray(0, lines.n), lines.marks);
    // Sorted as strings; a path named twice keeps its last digest.
    const set = FileSet.fromSortedLines(lines.buf.subarray(0, lines.n), lines.marks);
    const keys: string[] = [];
    const vals: string[] = [];
    for (let i = 0; i < count; i++) {
      const [k, v] = set.line(i);
      keys.push(k);
      vals.push(v);
    }
    return FileSet.of(keys, vals);
  }

  /**
   * Reads and hashes the files a walk left for later (over `INLINE_MAX`), `concurrency` at once,
   * keeping each one's index entry; `done` puts each one's hex where that walk wants it.
   */
  async #hashLarge<F extends LargeFile>(large: readonly F[], options: HashSourcesOptions, done: (f: F, hex: string) => void): Promise<void> {
    if (large.length === 0) return;
    const limit = pLimit(options.concurrency ?? 4);
    await Promise.all(
      large.map((f) =>
        limit(async () => {
          options.signal?.throwIfAborted();
          const startedAt = Date.now();
          const { hex, bytes } = await hashFile(path.join(this.root, f.rel));
          this.#remember(f.head, 0, f.head.length, f.mtimeMs, startedAt, hex, bytes);
          done(f, hex);
        }),
      ),
    );
  }

  /** The sources the expansion of `raw` names (wildcards expanded). */
  async #expand(srcRoot: HashRoot, raw: string): Promise<string[]> {
    // A path without wildcards or escapes is itself (what copy.ts's expandSourcePath gives):
    // the copier's module is loaded only for a pattern.
    const plain = cleanPath('/' + raw).slice(1);
    return /[*?[\\]/.test(plain) ? (await import('../builder/copy.js')).expandSourcePath(srcRoot, raw) : [plain];
  }

  /**
   * `fileSet` for a small tree: walked with node's `lstat`, entries compared with `#map` as
   * strings, the lines kept as two arrays. The same lines as the listing way gives (tested).
   */
  async #smallSet(from: HashRoot, sources: readonly string[], options: HashSourcesOptions): Promise<FileSet> {
    // Parallel arrays in walk order; the walk visits each directory's entries in the order
    // their full paths sort (a directory's contents sort as `name/`), so that they usually
    // come out sorted and the final sort is a check.
    const keys: string[] = [];
    const vals: string[] = [];
    const large: (LargeFile & { readonly i: number; readonly mode: number })[] = [];
    const exclude = options.exclude && options.exclude.length > 0 ? PatternMatcher.from(options.exclude) : undefined;
    const isHidden = from.isHidden;
    const signal = options.signal;
    const srcRoot = { root: this.root, ...(isHidden ? { isHidden } : {}) };

    const visitFile = (realRel: string, shown: string, abs: string, st: BigIntStats): void => {
      keys.push(shown);
      const mode = Number(st.mode);
      let hex = this.#smallLookup(realRel, `${mode} ${st.size} ${st.mtimeNs} ${st.ino} `);
      if (hex === undefined && st.size > INLINE_MAX) {
        large.push({ i: vals.length, rel: realRel, head: encodeRecord(realRel, st), mtimeMs: Number(st.mtimeNs / 1000000n), mode: Number(st.mode) });
        vals.push('');
        return;
      }
      if (hex === undefined) {
        const startedAt = Date.now();
        let data: Buffer;
        try {
          data = readFileSync(abs);
        } catch (cause) {
          throw new ContextHashError('TSBUILD_CONTEXT_HASH', `cannot read ${realRel} in ${this.root}`, { cause });
        }
        hex = createHash('sha256').update(data).digest('hex');
        const head = encodeRecord(realRel, st);
        this.#remember(head, 0, head.length, Number(st.mtimeNs / 1000000n), startedAt, hex, data.length);
      }
      vals.push(`${fileTag(mode)}${hex}`);
    };

    const walkDir = (realRel: string, shownRel: string, relInSource: string, dirAbs: string): void => {
      if (signal?.aborted) throw new ContextHashError('TSBUILD_ABORTED', 'context hashing aborted', { cause: signal.reason });
      let names: string[];
      try {
        names = readdirSync(dirAbs).sort();
      } catch (cause) {
        const code = (cause as NodeJS.ErrnoException).code;
        throw new ContextHashError('TSBUILD_CONTEXT_HASH', `cannot read directory ${realRel || '.'} in ${this.root}${code ? `: ${code}` : ''}`, { cause });
      }
      // Entries in name order, a subdirectory's contents where `name/` sorts (after `name.txt`,
      // before `name0`): so the walk's output is in sorted path order.
      let subdirs: { name: string; k: string }[] | undefined;
      const descend = (name: string): void => {
        walkDir(realRel === '' ? name : `${realRel}/${name}`, shownRel === '.' ? name : `${shownRel}/${name}`, relInSource === '' ? name : `${relInSource}/${name}`, `${dirAbs}/${name}`);
      };
      for (const name of names) {
        while (subdirs !== undefined && subdirs.length > 0 && subdirs[0]!.k < name) descend(subdirs.shift()!.name);
        const childReal = realRel === '' ? name : `${realRel}/${name}`;
        const childAbs = `${dirAbs}/${name}`;
        let cs: BigIntStats;
        try {
          cs = lstatSync(childAbs, { bigint: true });
        } catch {
          continue; // gone since listed
        }
        const fmt = Number(cs.mode) & S_IFMT;
        const isDir = fmt === S_IFDIR;
        if (exclude) {
          const childInSource = relInSource === '' ? name : `${relInSource}/${name}`;
          if (exclude.matches(childInSource) && (!isDir || exclude.canSkipDir(childInSource))) continue;
        }
        if (isHidden?.(childReal, isDir)) continue;
        // One string for both when the source is the directory itself (`COPY . .`): kept once.
        const childShown = shownRel === realRel || (shownRel === '.' && realRel === '') ? childReal : shownRel === '.' ? name : `${shownRel}/${name}`;
        if (isDir) {
          keys.push(childShown);
          vals.push(`d:${modeText(Number(cs.mode))}`);
          const item = { name, k: `${name}/` };
          if (subdirs === undefined) subdirs = [item];
          else {
            // keep sorted by `name/` (usually an append)
            let j = subdirs.length;
            while (j > 0 && subdirs[j - 1]!.k > item.k) j--;
            subdirs.splice(j, 0, item);
          }
        } else if (fmt === S_IFLNK) {
          keys.push(childShown);
          vals.push(`l:${readlinkSync(childAbs)}`);
        } else if (fmt === S_IFREG) {
          visitFile(childReal, childShown, childAbs, cs);
        }
        // sockets, fifos, devices: not copied, not keyed
      }
      if (subdirs !== undefined) for (const d of subdirs) descend(d.name);
    };

    for (const raw of sources) {
      for (const m of await this.#expand(srcRoot, raw)) {
        signal?.throwIfAborted();
        const key = m === '' ? '.' : m;
        const r = await this.#source(m, isHidden);
        if (!r) {
          keys.push(key);
          vals.push('missing');
          continue;
        }
        const { st } = r;
        if (st.isDirectory()) {
          keys.push(key);
          vals.push(`d:${modeText(Number(st.mode))}`);
          walkDir(r.rel, key, '', r.rel === '' ? this.root : path.join(this.root, r.rel));
        } else if (st.isFile()) visitFile(r.rel, key, path.join(this.root, r.rel), st);
      }
    }

    await this.#hashLarge(large, options, (f, hex) => (vals[f.i] = `${fileTag(f.mode)}${hex}`));
    return FileSet.of(keys, vals);
  }

  /**
   * The lines of a directory source: its own (`key`, `d:<mode>`), then one per record of
   * `listing` in [i0, i1) that the rules let through, shown below `key` instead of `rel`.
   */
  #directory(listing: Listing, i0: number, i1: number, rel: string, key: string, mode: number, rules: Rules | undefined, lines: Lines, large: LargeInLines[], signal: AbortSignal | undefined): void {
    const { buf: b, starts } = listing;
    // Paths are shown as `key/...` where they are `rel/...`: `strip` bytes of each path are
    // replaced by `prefix` (nothing to do when they are the same: `COPY . .`, `COPY src/ x`).
    const same = key === rel || (key === '.' && rel === '');
    const prefix = same ? undefined : Buffer.from(rel === '' ? `${key}/` : key);
    const strip = same ? 0 : Buffer.byteLength(rel);
    const inSource = rel === '' ? 0 : rel.length + 1;
    const own = tag('d', mode);
    const keyBytes = Buffer.from(key);
    // Records not to look at: the contents of a directory the rules skip (from → to).
    const jumps = rules ? new Map<number, number>() : undefined;
    // The source's own line where it sorts: first, except `.` (after `-x`, before `.a` and `a`).
    let ownPending = true;
    // Room for the lines (and, without an index, where every file is read, for the entries
    // to keep), reserved once from the records: an upper bound, close for files.
    let lineBytes = keyBytes.length + own.length;
    let entryBytes = 0;
    const extra = Math.max(0, (prefix?.length ?? 0) - strip);
    for (let i = i0; i < i1; i++) {
      const at = starts[i]!;
      const plen = pathLength(b, at);
      lineBytes += plen + extra + 9;
      if (b[at] === T_FILE) {
        lineBytes += HEX + 1;
        entryBytes += HEAD + plen + 1 + statLength(b, at) + HEX;
      } else if (b[at] === T_LINK) {
        const t = targetAt(b, at);
        lineBytes += LINK_TAG.length + (b[t]! | (b[t + 1]! << 8)) + 1;
      }
    }
    lines.reserve(lineBytes);
    if (this.#indexed === 0) this.#reserve(entryBytes);
    if (key !== '.') {
      lines.path(undefined, keyBytes, 0, keyBytes.length, own.length);
      lines.put(own);
      ownPending = false;
    }
    for (let i = i0; i < i1; i++) {
      if ((i & 1023) === 0 && signal?.aborted) throw new ContextHashError('TSBUILD_ABORTED', 'context hashing aborted', { cause: signal.reason });
      const at = starts[i]!;
      const type = b[at]!;
      const plen = pathLength(b, at);
      if (ownPending && (plen === 0 || b[at + HEAD]! >= 0x2e)) {
        lines.path(undefined, keyBytes, 0, 1, own.length);
        lines.put(own);
        ownPending = false;
      }
      if (type === T_ERROR) {
        const dir = b.toString('utf8', at + HEAD, at + HEAD + Math.max(0, plen - 1));
        throw new ContextHashError('TSBUILD_CONTEXT_HASH', `cannot read directory ${dir || '.'} in ${this.root}: ${getSystemErrorName(-recordMode(b, at))}`);
      }
      if (rules) {
        const to = jumps!.get(i);
        if (to !== undefined) {
          i = to - 1;
          continue;
        }
        const child = b.toString('utf8', at + HEAD, at + HEAD + plen);
        const isDir = type === T_DIR;
        let skip = false;
        if (rules.exclude) {
          const rest = child.slice(inSource);
          skip = rules.exclude.matches(rest) && (!isDir || rules.exclude.canSkipDir(rest));
        }
        if (!skip && rules.isHidden?.(child, isDir)) skip = true;
        if (skip) {
          if (isDir) {
            // Its contents sort as `dir/…`, a range further on (the rules would hide each of them anyway).
            const p = Buffer.allocUnsafe(plen + 1);
            b.copy(p, 0, at + HEAD, at + HEAD + plen);
            p[plen] = 0x2f;
            const lo = lowerBound(listing, p, i + 1, i1);
            p[plen] = 0x30; // '0', the byte after '/'
            const hi = lowerBound(listing, p, lo, i1);
            if (hi > lo) jumps!.set(lo, hi);
          }
          continue;
        }
      }
      if (type === T_FILE) this.#file(b, at, prefix, strip, lines, large);
      else if (type === T_DIR) {
        const d = tag('d', recordMode(b, at));
        lines.path(prefix, b, at + HEAD + strip, at + HEAD + plen, d.length);
        lines.put(d);
      } else if (type === T_LINK) {
        const t = targetAt(b, at);
        const tlen = b[t]! | (b[t + 1]! << 8);
        lines.path(prefix, b, at + HEAD + strip, at + HEAD + plen, LINK_TAG.length + tlen + 1);
        lines.put(LINK_TAG);
        lines.put(b, t + 2, t + 2 + tlen);
        lines.buf[lines.n++] = 0x0a;
      }
      // sockets, fifos, devices: not copied, not keyed
    }
    if (ownPending) {
      lines.path(undefined, keyBytes, 0, 1, own.length);
      lines.put(own);
    }
  }

  /**
   * The line of the file of record `at` in `b` (its path with `strip` bytes replaced by
   * `prefix`): its digest from the index when an entry matches its stat, else read now (or
   * queued in `large`).
   */
  #file(b: Buffer, at: number, prefix: Buffer | undefined, strip: number, lines: Lines, large: LargeInLines[]): void {
    const plen = pathLength(b, at);
    const len = HEAD + plen + 1 + statLength(b, at);
    const t = tag('f', recordMode(b, at));
    lines.path(prefix, b, at + HEAD + strip, at + HEAD + plen, t.length + HEX + 1);
    lines.put(t);
    const hexAt = this.#lookup(b, at, plen, len);
    if (hexAt >= 0) {
      lines.put(this.#hit, hexAt, hexAt + HEX);
    } else {
      const rel = b.toString('utf8', at + HEAD, at + HEAD + plen);
      const { size, mtimeMs } = sizeAndMtime(b, at);
      if (size > INLINE_MAX) {
        large.push({ pos: lines.n, rel, head: Buffer.from(b.subarray(at, at + len)), mtimeMs });
        lines.n += HEX; // written once read
      } else {
        const startedAt = Date.now();
        let data: Buffer;
        try {
          data = readFileSync(path.join(this.root, rel));
        } catch (cause) {
          throw new ContextHashError('TSBUILD_CONTEXT_HASH', `cannot read ${rel} in ${this.root}`, { cause });
        }
        const hex = createHash('sha256').update(data).digest('hex');
        this.#remember(b, at, len, mtimeMs, startedAt, hex, data.length);
        lines.n += lines.buf.write(hex, lines.n, 'latin1');
      }
    }
    lines.buf[lines.n++] = 0x0a;
  }

  /** Write the index back (atomically: temp file, fsync, rename) if anything was hashed. */
  async save(): Promise<void> {
    if (this.#ustarts.length === 0) return;
    const file = indexPath(this.#cacheDir, this.root, 'idx');
    const dir = path.dirname(file);
    await mkdir(dir, { recursive: true });
    // The new entries in path byte order, the newest first for a path hashed twice: already so
    // when they came in one run (listing order); else sorted, runs merged (a stable sort of
    // numbers: no object per entry).
    const u = this.#ubuf;
    const ustarts = this.#ustarts;
    const pathCompare = (x: number, y: number): number => u.compare(u, y + HEAD, y + HEAD + pathLength(u, y), x + HEAD, x + HEAD + pathLength(u, x));
    let ups: readonly number[] = ustarts;
    if (this.#runs.length > 1) ups = ustarts.slice().sort((x, y) => pathCompare(x, y) || y - x);
    const tmp = `${file}.tmp-${randomBytes(6).toString('hex')}`;
    const fh = await open(tmp, 'wx', 0o644);
    try {
      // Encoded straight into one reused buffer, written whenever it fills: no copy of the
      // whole index is made, for a context of any size.
      const buf = Buffer.allocUnsafe(INDEX_WRITE_BUFFER);
      let n = 0;
      const flush = async (b: Buffer): Promise<void> => {
        for (let off = 0; off < b.length; ) off += (await fh.write(b, off, b.length - off)).bytesWritten;
      };
      const put = async (src: Buffer, from: number, to: number): Promise<void> => {
        if (n + (to - from) > buf.length) {
          await flush(buf.subarray(0, n));
          n = 0;
        }
        if (to - from > buf.length) await flush(src.subarray(from, to));
        else n += src.copy(buf, n, from, to);
      };
      const header = Buffer.from(`${INDEX_MAGIC}${JSON.stringify(this.root)}\n`);
      await put(header, 0, header.length);
      // Merged with the entries read: a path in both takes the new entry (or none, if racy).
      const idx = this.#index;
      const starts = this.#starts;
      let i = 0;
      let j = 0;
      while (i < starts.length - 1 || j < ups.length) {
        let c: number;
        if (i >= starts.length - 1) c = 1;
        else if (j >= ups.length) c = -1;
        else {
          const s = starts[i]!;
          const e = ups[j]!;
          c = idx.compare(u, e + HEAD, e + HEAD + pathLength(u, e), s + HEAD, s + HEAD + pathLength(idx, s));
        }
        if (c < 0) {
          await put(idx, starts[i]!, starts[i + 1]!);
          i++;
        } else {
          const e = ups[j]!;
          if (u[e] === T_FILE) await put(u, e, e + entryLength(u, e));
          // older entries for the same path (hashed twice): skipped
          for (j++; j < ups.length && pathCompare(e, ups[j]!) === 0; j++);
          if (c === 0) i++;
        }
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
    this.#ubuf = EMPTY;
    this.#un = 0;
    this.#ustarts.length = 0;
    this.#runs.length = 0;
  }
}

/** The first record of `l` in [from, to) whose path is not before `p` (byte order). */
function lowerBound(l: Listing, p: Buffer, from = 0, to = l.starts.length - 1): number {
  const { buf, starts } = l;
  let lo = from;
  let hi = to;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const s = starts[mid]!;
    if (buf.compare(p, 0, p.length, s + HEAD, s + HEAD + pathLength(buf, s)) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
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
  const set = await hasher.fileSet(from, sources, options);
  await hasher.save();
  return { digest: set.digest, files: set.record(), stats: hasher.stats };
}

/** The sha256 (hex) and length of a file's content, streamed (files too big to read whole). */
async function hashFile(abs: string): Promise<{ hex: string; bytes: number }> {
  // Read into a reused 1 MiB buffer: a stream's fresh 64 KiB pieces left 25-30 MB of garbage
  // behind four concurrent 5 MiB files before a collection.
  const buf = readBuffers.pop() ?? Buffer.allocUnsafeSlow(1 << 20);
  const fh = await open(abs, 'r');
  try {
    const h = createHash('sha256');
    let bytes = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
      bytes += bytesRead;
    }
    return { hex: h.digest('hex'), bytes };
  } finally {
    readBuffers.push(buf);
    await fh.close();
  }
}
/** Read buffers of hashFile, reused across files (as many as run at once). */
const readBuffers: Buffer[] = [];
