/**
 * A directory tree's entries with their lstat, from the native helper's `walk` mode
 * (native/tsbuild-sandbox.c): `fstatat` relative to each directory, one path component per
 * call, about 2.5x less kernel time than node's `lstat` of full paths and no `Stats` object per
 * entry. Context hashing uses it for big trees (a no-op rebuild of a 20,000-file context spends
 * most of its time in those calls). Undefined when the helper is not there (no C compiler at
 * install, not Linux, an older helper): callers walk with node's fs instead.
 */
import { spawn } from 'node:child_process';
import { DEFAULT_HELPER_PATH, ensureHelper } from '../runtime/helper.js';

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

/** The fields of `fs.Stats` that context hashing reads, with the same values node gives. */
export class WalkStat {
  constructor(
    readonly mode: number,
    readonly size: number,
    readonly ino: number,
    /** As node computes `Stats.mtimeMs` from the seconds and nanoseconds (so index entries compare equal). */
    readonly mtimeMs: number,
  ) {}
  isDirectory(): boolean {
    return (this.mode & S_IFMT) === S_IFDIR;
  }
  isFile(): boolean {
    return (this.mode & S_IFMT) === S_IFREG;
  }
  isSymbolicLink(): boolean {
    return (this.mode & S_IFMT) === S_IFLNK;
  }
}

export interface WalkEntry {
  readonly name: string;
  readonly stat: WalkStat;
}

/** Directories (absolute paths, as `${root}/${a}/${b}`) to their entries; unreadable ones to their errno. */
export type WalkListing = Map<string, WalkEntry[] | { readonly errno: number }>;

/**
 * Every directory under `root` (itself included) with its entries, not descending into the
 * `skip` directories (paths relative to root). Undefined when the helper cannot do it.
 */
export async function nativeWalk(root: string, skip: readonly string[] = [], helper = DEFAULT_HELPER_PATH): Promise<WalkListing | undefined> {
  // The runtime's check (Linux, the helper built and executable), memoized per helper path.
  if (!(await ensureHelper(helper).then(() => true, () => false))) return undefined;
  const child = spawn(helper, ['walk', root, ...skip], { stdio: ['ignore', 'pipe', 'ignore'] });
  const chunks: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => chunks.push(b));
  const code = await new Promise<number | null>((resolve) => {
    child.on('error', () => resolve(null));
    child.on('close', resolve);
  });
  if (code !== 0) return undefined; // an older helper without `walk` (usage, exit 2), or a failure: walk in node
  return parseWalk(Buffer.concat(chunks), root);
}

/** Parses the helper's records (see native/tsbuild-sandbox.c, `walk`). */
export function parseWalk(buf: Buffer, root: string): WalkListing {
  const out: WalkListing = new Map();
  let at = 0;
  let current: WalkEntry[] | undefined;
  const str = (): string => {
    const n = buf.readUInt32LE(at + 1);
    const s = buf.toString('utf8', at + 5, at + 5 + n);
    at += 5 + n;
    return s;
  };
  while (at < buf.length) {
    const tag = buf[at];
    if (tag === 0x44 /* D */) {
      const rel = str();
      current = [];
      out.set(rel === '' ? root : `${root}/${rel}`, current);
    } else if (tag === 0x45 /* E */) {
      const name = str();
      const mode = buf.readUInt32LE(at);
      const size = buf.readDoubleLE(at + 4);
      const ino = buf.readDoubleLE(at + 12);
      const sec = buf.readDoubleLE(at + 20);
      const nsec = buf.readDoubleLE(at + 28);
      at += 36;
      // node: msFromTimeSpec(sec, nsec) = sec * 1e3 + nsec / 1e6
      current!.push({ name, stat: new WalkStat(mode, size, ino, sec * 1e3 + nsec / 1e6) });
    } else if (tag === 0x58 /* X */) {
      const rel = str();
      const errno = buf.readInt32LE(at);
      at += 4;
      out.set(rel === '' ? root : `${root}/${rel}`, { errno });
      current = undefined;
    } else {
      throw new Error(`walk: bad record ${tag} at ${at}`);
    }
  }
  return out;
}
