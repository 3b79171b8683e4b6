/**
 * Listings of a directory tree for context hashing: every entry below a directory with what its
 * `lstat` says, as one buffer of binary records in path order, made either by the native
 * helper's `list` mode (native/tsbuild-sandbox.c: `fstatat` relative to each directory, by a few
 * threads, about 2.5x less kernel time than node's `lstat` of full paths) or, for small trees
 * and where the helper is missing, by node's fs in the same format.
 *
 * A record (numbers little-endian):
 *
 *     u8 type ('f' file, 'd' directory, 'l' symlink, 'o' other, 'x' unreadable directory)
 *     u16 path length · u16 stat text length · u32 st_mode (the errno for 'x')
 *     path (relative to the root; for 'x' the directory's path and '/', '' for the root) · NUL
 *     stat text: `<size> <mtime ns> <ino> ` (regular files only, else empty)
 *     for 'l': u16 target length · target
 *
 * A file's record up to its stat text is also the head of its entry in the context index
 * (context-hash.ts), so that an unchanged file is recognized by comparing bytes: no object, no
 * string is made for it. Paths stay bytes until something needs them as text (ignore rules, a
 * file to read).
 */
import { lstatSync, readdirSync, readlinkSync, type BigIntStats } from 'node:fs';

/** The records of a listing, their start offsets, and whether their order is JavaScript's. */
export interface Listing {
  readonly buf: Buffer;
  /** Start of each record in `buf`, then `buf.length`. */
  readonly starts: readonly number[];
  /**
   * True when the records are in byte order and that is not JavaScript's string order (a name
   * that is not UTF-8 or holds a code point from U+E000 up): a consumer must sort by string.
   */
  readonly unordered: boolean;
}

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

export const T_FILE = 0x66; // 'f'
export const T_DIR = 0x64; // 'd'
export const T_LINK = 0x6c; // 'l'
export const T_ERROR = 0x78; // 'x'

/** Bytes before a record's path. */
export const HEAD = 9;

export const pathLength = (b: Buffer, at: number): number => b[at + 1]! | (b[at + 2]! << 8);
export const statLength = (b: Buffer, at: number): number => b[at + 3]! | (b[at + 4]! << 8);
export const recordMode = (b: Buffer, at: number): number => (b[at + 5]! | (b[at + 6]! << 8) | (b[at + 7]! << 16) | (b[at + 8]! << 24)) >>> 0;

/** Where a symlink record's target length is (after its path, NUL and stat text). */
export const targetAt = (b: Buffer, at: number): number => at + HEAD + pathLength(b, at) + 1 + statLength(b, at);

function startsOf(buf: Buffer, from: number): number[] | undefined {
  const starts: number[] = [];
  let at = from;
  while (at < buf.length) {
    if (at + HEAD > buf.length) return undefined;
    starts.push(at);
    let end = at + HEAD + pathLength(buf, at) + 1 + statLength(buf, at);
    if (buf[at] === T_LINK) end += 2 + (buf[end]! | (buf[end + 1]! << 8));
    if (end > buf.length) return undefined;
    at = end;
  }
  starts.push(buf.length);
  return starts;
}

/**
 * The tree below `start` (relative to `root`, '' for the root itself; paths in the records stay
 * relative to `root`), not descending into the `skip` directories (relative to `root`), from the
 * native helper. Undefined when the helper cannot do it (then `nodeListing` does).
 */
export async function nativeListing(root: string, start = '', skip: readonly string[] = [], helper?: string): Promise<Listing | undefined> {
  // Loaded here, not with this module: a build whose context is listed by node never loads them.
  const [{ spawn }, { DEFAULT_HELPER_PATH, ensureHelper }] = await Promise.all([import('node:child_process'), import('../runtime/helper.js')]);
  helper ??= DEFAULT_HELPER_PATH;
  // The runtime's check (Linux, the helper built and executable), memoized per helper path.
  if (!(await ensureHelper(helper).then(() => true, () => false))) return undefined;
  const child = spawn(helper, ['list', root, start, ...skip], { stdio: ['ignore', 'pipe', 'ignore'] });
  const chunks: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => chunks.push(b));
  const code = await new Promise<number | null>((resolve) => {
    child.on('error', () => resolve(null));
    child.on('close', resolve);
  });
  if (code !== 0) return undefined; // an older helper without `list` (usage, exit 2), or a failure: list with node
  const buf = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
  if (buf.length < 8 || buf.toString('latin1', 0, 4) !== 'TSL1') return undefined;
  const starts = startsOf(buf, 8);
  return starts && { buf, starts, unordered: (buf.readUInt32LE(4) & 1) !== 0 };
}

/** Records written into one growing buffer, with their starts. */
class RecordWriter {
  buf: Buffer;
  n = 0;
  readonly starts: number[] = [];

  constructor(capacity = 1 << 14) {
    this.buf = Buffer.allocUnsafe(capacity);
  }

  #room(k: number): void {
    if (this.n + k <= this.buf.length) return;
    const b = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.n + k));
    this.buf.copy(b, 0, 0, this.n);
    this.buf = b;
  }

  /** A record from node's `lstat` (bigint: nanoseconds and 64-bit inodes as they are). */
  entry(rel: string, st: BigIntStats, target?: Buffer): void {
    const mode = Number(st.mode);
    const fmt = mode & S_IFMT;
    const type = fmt === S_IFREG ? T_FILE : fmt === S_IFDIR ? T_DIR : fmt === S_IFLNK ? T_LINK : 0x6f;
    const stat = type === T_FILE ? `${st.size} ${st.mtimeNs} ${st.ino} ` : '';
    const t = type === T_LINK ? (target ?? EMPTY) : undefined;
    this.#room(HEAD + 3 * rel.length + 1 + stat.length + (t ? 2 + t.length : 0));
    const b = this.buf;
    const at = this.n;
    this.starts.push(at);
    const plen = b.write(rel, at + HEAD);
    // Numbers stored byte by byte: Buffer's writeUInt* check their arguments in JavaScript,
    // which costs more than this in a fresh process, where this runs uncompiled.
    b[at] = type;
    b[at + 1] = plen & 0xff;
    b[at + 2] = plen >>> 8;
    b[at + 3] = stat.length;
    b[at + 4] = 0;
    b[at + 5] = mode & 0xff;
    b[at + 6] = (mode >>> 8) & 0xff;
    b[at + 7] = (mode >>> 16) & 0xff;
    b[at + 8] = mode >>> 24;
    let p = at + HEAD + plen;
    b[p++] = 0;
    if (stat.length > 0) p += b.write(stat, p, 'latin1');
    if (t) {
      b[p] = t.length & 0xff;
      b[p + 1] = t.length >>> 8;
      p += 2 + t.copy(b, p + 2);
    }
    this.n = p;
  }

  /** An 'x' record: the directory `rel` could not be read. */
  error(rel: string, errno: number): void {
    const p = rel === '' ? '' : `${rel}/`;
    this.#room(HEAD + 3 * p.length + 1);
    const b = this.buf;
    const at = this.n;
    this.starts.push(at);
    b[at] = T_ERROR;
    const plen = b.write(p, at + HEAD);
    b.writeUInt16LE(plen, at + 1);
    b.writeUInt16LE(0, at + 3);
    b.writeUInt32LE(errno, at + 5);
    b[at + HEAD + plen] = 0;
    this.n = at + HEAD + plen + 1;
  }

  listing(): Listing {
    this.starts.push(this.n);
    return { buf: this.buf.subarray(0, this.n), starts: this.starts, unordered: false };
  }
}

const EMPTY = Buffer.alloc(0);

/** A record for one entry, from node's `lstat` (bigint: nanoseconds and 64-bit inodes as they are). */
export function encodeRecord(rel: string, st: BigIntStats, target?: Buffer): Buffer {
  // Sized to fit (small: from node's pool), since the caller may keep it.
  const w = new RecordWriter(HEAD + 3 * rel.length + 1 + 64 + (target ? 2 + target.length : 0));
  w.entry(rel, st, target);
  return w.buf.subarray(0, w.n);
}

/**
 * The same listing as `nativeListing` made with node's fs, in JavaScript's string order (a
 * directory's contents where `name/` sorts), not descending into directories `prune` says to
 * skip (at any depth; `rel` relative to root). Throws when a directory cannot be read.
 */
export function nodeListing(root: string, start: string, prune?: (rel: string) => boolean): Listing {
  const w = new RecordWriter();
  const walk = (rel: string): void => {
    const dirAbs = rel === '' ? root : `${root}/${rel}`;
    let names: string[];
    try {
      names = readdirSync(dirAbs).sort();
    } catch (err) {
      w.error(rel, Math.abs((err as NodeJS.ErrnoException).errno ?? 5)); // node's errno is negative
      return;
    }
    // Entries in name order, a subdirectory's contents where `name/` sorts (after `name.txt`,
    // before `name0`): the records come out in sorted path order.
    const subdirs: { rel: string; k: string }[] = [];
    for (const name of names) {
      while (subdirs.length > 0 && subdirs[0]!.k < name) walk(subdirs.shift()!.rel);
      const child = rel === '' ? name : `${rel}/${name}`;
      const abs = `${dirAbs}/${name}`;
      let st: BigIntStats;
      try {
        st = lstatSync(abs, { bigint: true });
      } catch {
        continue; // gone since listed
      }
      w.entry(child, st, st.isSymbolicLink() ? readlinkSync(abs, { encoding: 'buffer' }) : undefined);
      if (st.isDirectory() && !prune?.(child)) {
        const item = { rel: child, k: `${name}/` };
        let j = subdirs.length;
        while (j > 0 && subdirs[j - 1]!.k > item.k) j--;
        subdirs.splice(j, 0, item);
      }
    }
    for (const d of subdirs) walk(d.rel);
  };
  walk(start);
  return w.listing();
}
