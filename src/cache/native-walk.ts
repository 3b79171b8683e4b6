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
import { spawn } from 'node:child_process';
import { lstatSync, readdirSync, readlinkSync, type BigIntStats } from 'node:fs';
import { DEFAULT_HELPER_PATH, ensureHelper } from '../runtime/helper.js';

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
export async function nativeListing(root: string, start = '', skip: readonly string[] = [], helper = DEFAULT_HELPER_PATH): Promise<Listing | undefined> {
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

/** A record for one entry, from node's `lstat` (bigint: nanoseconds and 64-bit inodes as they are). */
export function encodeRecord(rel: string, st: BigIntStats, target?: Buffer): Buffer {
  const path = Buffer.from(rel);
  const type = st.isFile() ? T_FILE : st.isDirectory() ? T_DIR : st.isSymbolicLink() ? T_LINK : 0x6f;
  const stat = type === T_FILE ? Buffer.from(`${st.size} ${st.mtimeNs} ${st.ino} `) : Buffer.alloc(0);
  const t = type === T_LINK ? (target ?? Buffer.alloc(0)) : undefined;
  const out = Buffer.allocUnsafe(HEAD + path.length + 1 + stat.length + (t ? 2 + t.length : 0));
  out[0] = type;
  out.writeUInt16LE(path.length, 1);
  out.writeUInt16LE(stat.length, 3);
  out.writeUInt32LE(Number(st.mode), 5);
  path.copy(out, HEAD);
  out[HEAD + path.length] = 0;
  stat.copy(out, HEAD + path.length + 1);
  if (t) {
    const at = HEAD + path.length + 1 + stat.length;
    out.writeUInt16LE(t.length, at);
    t.copy(out, at + 2);
  }
  return out;
}

/**
 * The same listing as `nativeListing` made with node's fs, in JavaScript's string order (a
 * directory's contents where `name/` sorts), not descending into directories `prune` says to
 * skip (at any depth; `rel` relative to root). Throws when a directory cannot be read.
 */
export function nodeListing(root: string, start: string, prune?: (rel: string) => boolean): Listing {
  const records: Buffer[] = [];
  const walk = (rel: string): void => {
    const dirAbs = rel === '' ? root : `${root}/${rel}`;
    let names: string[];
    try {
      names = readdirSync(dirAbs).sort();
    } catch (err) {
      const head = Buffer.alloc(HEAD);
      const p = Buffer.from(rel === '' ? '' : `${rel}/`);
      head[0] = T_ERROR;
      head.writeUInt16LE(p.length, 1);
      head.writeUInt32LE(Math.abs((err as NodeJS.ErrnoException).errno ?? 5), 5); // node's errno is negative
      records.push(head, p, Buffer.alloc(1));
      return;
    }
    // Entries in name order, a subdirectory's contents where `name/` sorts (after `name.txt`,
    // before `name0`): the records come out in sorted path order.
    const subdirs: { rel: string; k: string }[] = [];
    for (const name of names) {
      while (subdirs.length > 0 && subdirs[0]!.k < name) walk(subdirs.shift()!.rel);
      const child = rel === '' ? name : `${rel}/${name}`;
      let st: BigIntStats;
      try {
        st = lstatSync(`${dirAbs}/${name}`, { bigint: true });
      } catch {
        continue; // gone since listed
      }
      records.push(encodeRecord(child, st, st.isSymbolicLink() ? readlinkSync(`${dirAbs}/${name}`, { encoding: 'buffer' }) : undefined));
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
  const buf = Buffer.concat(records);
  return { buf, starts: startsOf(buf, 0)!, unordered: false };
}
