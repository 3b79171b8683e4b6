/**
 * COPY and ADD with BuildKit's semantics (dockerfile2llb `dispatchCopy` + fileop `docopy` +
 * fsutil `copy`), applied to a destination root directory. Every write stays inside the
 * destination root; every read stays inside the source root.
 *
 * The result lists the paths written (relative to the destination root, after following the
 * destination's symlinks), which `layer.ts` turns into a layer with their parent directories.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  copyFileSync,
  createReadStream,
  createWriteStream,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  rmSync,
  statSync,
  symlinkSync,
  type Stats,
} from 'node:fs';
import { copyFile, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, Readable, pipeline as streamPipeline } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { TsbuildError } from '../errors.js';
import { discard, header, httpFetch, type HttpResponse } from '../oci/registry/http.js';
import { isCertificateError } from '../util/extra-ca.js';
import { cleanPath, escapeLiteral, flatString, goBracket, PatternMatcher, resolveInRoot, type Resolved } from './context.js';

export class CopyError extends TsbuildError {}

/** One source of a COPY/ADD. */
export type CopySource =
  /** A path (after variable expansion) in the source root; may hold wildcards. */
  | { readonly kind: 'path'; readonly path: string }
  /** A heredoc file (`COPY <<EOF name`), content already expanded by the planner. */
  | { readonly kind: 'inline'; readonly name: string; readonly content: string | Uint8Array }
  /** ADD only: an http(s) URL. */
  | { readonly kind: 'url'; readonly url: string };

export interface CopySpec {
  readonly kind: 'COPY' | 'ADD';
  readonly sources: readonly CopySource[];
  /** Destination as written (after expansion); relative to `workdir` unless absolute. */
  readonly dest: string;
  /** The stage's WORKDIR; default `/`. */
  readonly workdir?: string;
  /** `--chown=user[:group]`. */
  readonly chown?: string;
  /** `--chmod=` octal or symbolic. */
  readonly chmod?: string;
  readonly parents?: boolean;
  readonly exclude?: readonly string[];
  /** ADD: `--unpack`; default true for local sources, false for URLs. */
  readonly unpack?: boolean;
  /** ADD URL: `--checksum=sha256:<hex>`. */
  readonly checksum?: string;
}

/** Where the sources are read from: a build context (with ignore rules) or a stage's rootfs. */
export interface CopySourceRoot {
  readonly root: string;
  /** Ignore rules of a context: hidden paths behave as absent (`intermediate`: a directory on the way). */
  readonly isHidden?: (rel: string, intermediate: boolean) => boolean;
  /** Keep the source's uid/gid (true for `--from` stages); a context's files land as 0:0. */
  readonly preserveOwnership?: boolean;
}

/** Resolves names for `--chown`; `undefined` means not found. */
export interface IdLookup {
  user(name: string): Promise<{ uid: number; gid: number } | undefined>;
  group(name: string): Promise<number | undefined>;
  /** Whether the lookup has any database at all (no /etc/passwd: unknown names map to 0). */
  readonly hasDatabase?: () => Promise<boolean>;
}

export interface CopyEnv {
  readonly source: CopySourceRoot;
  /** The destination root filesystem directory; changed in place. */
  readonly destRoot: string;
  /** Name lookup for --chown; default reads `/etc/passwd` and `/etc/group` inside destRoot. */
  readonly ids?: IdLookup;
  /** mtime of directories and inline files this copy creates; default now. */
  readonly createdTime?: Date;
  readonly signal?: AbortSignal;
  /**
   * Reuse of a previous result: `from` is an immutable directory (an earlier snapshot of this
   * step) and `upper` the directory that receives what is written under `destRoot` (its overlay
   * upper dir), both on one filesystem. A regular file that this copy would write into a
   * directory it created itself, and that `from` holds at the same path with the same bytes,
   * mode, owner and mtime, is hard-linked from `from` into `upper` instead of copied: no new
   * inode, no data written. Both stay read-only afterwards (snapshots are never modified).
   */
  readonly reuse?: { readonly from: string; readonly upper: string };
}

export interface CopyResult {
  /** Paths written or created, relative to destRoot (slash-separated, sorted, unique). */
  readonly changed: readonly string[];
  /** How many of the files were hard-linked from `CopyEnv.reuse.from` instead of copied. */
  readonly reused: number;
}

// ---------------------------------------------------------------------------------------------
// --chmod and --chown

export type ModeSpec =
  | { readonly kind: 'octal'; readonly mode: number }
  | { readonly kind: 'symbolic'; readonly text: string; readonly apply: (mode: number, isDir: boolean) => number };

const SYMBOLIC_CLAUSE = /^([ugoa]*)((?:[-+=](?:[rwxXst]*|[ugo]))+)$/;

function chmodError(s: string): CopyError {
  return new CopyError('TSBUILD_BAD_CHMOD', `invalid chmod parameter: '${s}'. it should be octal string and between 0 and 07777`);
}

/** Parse `--chmod`: octal up to 07777, or symbolic (`u+x,g-w`, `a+X`, `u=rw,go=r`). */
export function parseChmod(s: string): ModeSpec {
  if (/^[0-7]+$/.test(s)) {
    const mode = parseInt(s, 8);
    if (mode > 0o7777) throw chmodError(s);
    return { kind: 'octal', mode };
  }
  const clauses = s.split(',');
  const parsed: { who: string; ops: { op: string; perm: string }[] }[] = [];
  for (const c of clauses) {
    const m = SYMBOLIC_CLAUSE.exec(c);
    if (!m) throw chmodError(s);
    const ops = [...m[2]!.matchAll(/([-+=])([rwxXst]*|[ugo])/g)].map((x) => ({ op: x[1]!, perm: x[2]! }));
    parsed.push({ who: m[1]!, ops });
  }
  const apply = (mode: number, isDir: boolean): number => {
    let cur = mode & 0o7777;
    for (const { who: whoText, ops } of parsed) {
      const who = whoText === '' || whoText.includes('a') ? 'ugo' : whoText;
      let mask = 0;
      if (who.includes('u')) mask |= 0o4700;
      if (who.includes('g')) mask |= 0o2070;
      if (who.includes('o')) mask |= 0o0007;
      for (const { op, perm } of ops) {
        let bits = 0;
        if (perm === 'u' || perm === 'g' || perm === 'o') {
          const shift = perm === 'u' ? 6 : perm === 'g' ? 3 : 0;
          const v = (cur >> shift) & 7;
          bits = (v << 6) | (v << 3) | v;
        } else {
          for (const ch of perm) {
            if (ch === 'r') bits |= 0o444;
            else if (ch === 'w') bits |= 0o222;
            else if (ch === 'x') bits |= 0o111;
            else if (ch === 'X') {
              if (isDir || (cur & 0o111) !== 0) bits |= 0o111;
            } else if (ch === 's') bits |= 0o6000;
            else if (ch === 't') bits |= 0o1000;
          }
        }
        const effective = bits & (mask | (perm.includes('t') && who.includes('o') ? 0o1000 : 0));
        if (op === '+') cur |= effective;
        else if (op === '-') cur &= ~effective;
        else cur = (cur & ~(mask & 0o0777) & ~(mask & 0o6000)) | effective;
      }
    }
    return cur;
  };
  return { kind: 'symbolic', text: s, apply };
}

function applyMode(spec: ModeSpec | undefined, mode: number, isDir: boolean): number {
  if (!spec) return mode & 0o7777;
  if (spec.kind === 'octal') return spec.mode;
  return spec.apply(mode & 0o7777, isDir);
}

/** Reads `/etc/passwd` and `/etc/group` inside a root (symlinks resolved inside it). */
export function rootfsIdLookup(root: string): IdLookup {
  const readDb = async (p: string): Promise<string[][] | undefined> => {
    const r = await resolveInRoot(root, p);
    if (!r.exists) return undefined;
    try {
      const text = await readFile(r.abs, 'utf8');
      return text
        .split('\n')
        .filter((l) => l.trim() !== '' && !l.startsWith('#'))
        .map((l) => l.split(':'));
    } catch {
      return undefined;
    }
  };
  return {
    async user(name) {
      const db = await readDb('/etc/passwd');
      const row = db?.find((r) => r[0] === name);
      if (!row) return undefined;
      return { uid: Number(row[2]), gid: Number(row[3]) };
    },
    async group(name) {
      const db = await readDb('/etc/group');
      const row = db?.find((r) => r[0] === name);
      return row ? Number(row[2]) : undefined;
    },
    async hasDatabase() {
      return (await resolveInRoot(root, '/etc/passwd')).exists || (await resolveInRoot(root, '/etc/group')).exists;
    },
  };
}

const NUMERIC = /^[0-9]+$/;

/** Resolve `--chown=user[:group]` to numeric ids, as BuildKit's `readUser` does. */
export async function resolveChown(spec: string, ids: IdLookup): Promise<{ uid: number; gid: number }> {
  const [userPart = '', groupPart] = spec.split(':', 2);
  const hasDb = ids.hasDatabase ? await ids.hasDatabase() : true;
  let uid: number;
  let gid: number;
  if (NUMERIC.test(userPart)) {
    uid = Number(userPart);
    gid = uid;
  } else {
    const u = await ids.user(userPart);
    if (u) {
      uid = u.uid;
      gid = u.gid;
    } else if (!hasDb) {
      uid = 0;
      gid = 0;
    } else {
      throw new CopyError('TSBUILD_CHOWN_UNKNOWN_USER', `unable to find user ${userPart}: no matching entries in passwd file`);
    }
  }
  if (groupPart !== undefined && groupPart !== '') {
    if (NUMERIC.test(groupPart)) gid = Number(groupPart);
    else {
      const g = await ids.group(groupPart);
      if (g !== undefined) gid = g;
      else if (!hasDb) gid = 0;
      else throw new CopyError('TSBUILD_CHOWN_UNKNOWN_GROUP', `unable to find group ${groupPart}: no matching entries in group file`);
    }
  }
  return { uid, gid };
}

// ---------------------------------------------------------------------------------------------
// Go filepath.Match wildcards

/** Whether a path holds unescaped `*`, `?` or `[` (BuildKit `containsWildcards`). */
export function containsWildcards(p: string): boolean {
  for (let i = 0; i < p.length; i++) {
    const ch = p[i];
    if (ch === '\\') i++;
    else if (ch === '*' || ch === '?' || ch === '[') return true;
  }
  return false;
}

/** Go `filepath.Match` for one path component, as a RegExp. */
export function goMatchRegExp(pattern: string): RegExp {
  const chars = [...pattern];
  let re = '^';
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else if (ch === '\\') {
      const next = chars[++i];
      if (next === undefined) throw new CopyError('TSBUILD_BAD_PATTERN', `syntax error in pattern ${JSON.stringify(pattern)}`);
      re += escapeLiteral(next);
    } else if (ch === '[') {
      const b = goBracket(chars, i, pattern);
      re += b.re;
      i = b.end;
    } else re += escapeLiteral(ch);
  }
  return new RegExp(re + '$', 'su');
}

function unescapeGo(s: string): string {
  return s.replace(/\\(.)/g, '$1');
}

/** Expand a cleaned relative path with wildcards inside `root`, component by component. */
async function resolveWildcards(src: CopySourceRoot, rel: string): Promise<string[]> {
  const parts = rel.split('/').filter((p) => p !== '');
  let candidates: string[] = [''];
  for (const [i, part] of parts.entries()) {
    const last = i === parts.length - 1;
    const next: string[] = [];
    for (const base of candidates) {
      if (!containsWildcards(part)) {
        next.push(base === '' ? unescapeGo(part) : `${base}/${unescapeGo(part)}`);
        continue;
      }
      const dir = await resolveInRoot(src.root, base, { isHidden: hiddenFn(src) });
      if (!dir.exists) continue;
      let names: string[];
      try {
        names = readdirSync(dir.abs);
      } catch {
        continue;
      }
      const re = goMatchRegExp(part);
      for (const n of names.sort()) {
        if (!re.test(n)) continue;
        const candidate = base === '' ? n : `${base}/${n}`;
        if (src.isHidden?.(dir.rel === '' ? n : `${dir.rel}/${n}`, !last)) continue;
        next.push(candidate);
      }
    }
    candidates = next;
  }
  return candidates;
}

/**
 * The paths a COPY source names in its root: wildcards expanded (sorted; none is not an error),
 * or the cleaned path itself. Shared with cache-key hashing so both see the same files.
 */
export async function expandSourcePath(src: CopySourceRoot, raw: string): Promise<string[]> {
  const rel = cleanPath('/' + raw).slice(1);
  return containsWildcards(rel) ? resolveWildcards(src, rel) : [unescapeGo(rel)];
}

function hiddenFn(src: CopySourceRoot): ((rel: string, intermediate: boolean) => boolean) | undefined {
  return src.isHidden;
}

// ---------------------------------------------------------------------------------------------
// The copier

interface Owner {
  uid: number;
  gid: number;
}

/** Files up to this size are copied with synchronous calls; bigger ones stream through the threadpool. */
const SMALL_FILE = 1 << 20;
/** Entries handled between two yields to the event loop (abort checks, other steps' progress); 256 blocked the loop ~120 ms on a loaded 2-vCPU VM. */
const YIELD_EVERY = 64;

const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Applies one COPY/ADD. Metadata calls and small files use synchronous fs calls: on a busy
 * threadpool each awaited call costs a round trip (~0.1 ms), which dominated a 20,000-file copy,
 * while the kernel work is the same. The walk yields to the event loop every `YIELD_EVERY`
 * entries, so an abort and other steps keep running.
 */
class Copier {
  /** Paths written, in the order written, repeats included (a directory is marked when made and when its metadata is set): an array, not a Set, since a big copy keeps one string per file here until its layer is written. */
  readonly changed: string[] = [];
  readonly env: CopyEnv;
  readonly mode: ModeSpec | undefined;
  readonly owner: Owner | undefined;
  readonly created: Date;
  readonly exclude: PatternMatcher | undefined;
  readonly hardlinks = new Map<string, string>();
  /** Files linked from `env.reuse.from` instead of copied. */
  reused = 0;
  /**
   * Directories `mkdirAll` has resolved (key: the cleaned absolute path asked for). Valid while
   * nothing that can be a path component is removed: directories are never removed by a copy,
   * and every removal of a non-directory (which may be a symlink on some cached path) clears it.
   */
  readonly #dirs = new Map<string, Resolved>();
  #sinceYield = 0;
  constructor(env: CopyEnv, mode: ModeSpec | undefined, owner: Owner | undefined, exclude: PatternMatcher | undefined) {
    this.env = env;
    this.mode = mode;
    this.owner = owner;
    this.created = env.createdTime ?? new Date();
    this.exclude = exclude;
  }

  checkAbort(): void {
    if (this.env.signal?.aborted) throw new CopyError('TSBUILD_ABORTED', 'copy aborted', { cause: this.env.signal.reason });
  }

  /** Count one entry; every `YIELD_EVERY` entries, let the event loop run and check for an abort. */
  tick(): Promise<void> | undefined {
    if (++this.#sinceYield >= YIELD_EVERY) {
      this.#sinceYield = 0;
      return yieldToLoop().then(() => this.checkAbort());
    }
    this.checkAbort();
    return undefined;
  }

  /** Something at a path may have been removed: resolutions through it are no longer known. */
  removed(): void {
    this.#dirs.clear();
  }

  /** Resolve a destination path inside destRoot, following symlinks (the last one too, unless told). */
  dest(p: string, followFinal = true): Promise<Resolved> {
    return resolveInRoot(this.env.destRoot, p, { followFinal });
  }

  /** Record a written path (kept until the layer is written: flat, see `flatString`). */
  mark(rel: string): void {
    if (rel !== '') this.changed.push(flatString(rel));
  }

  /** `MkdirAll` inside destRoot: created directories get 0755 (or --chmod), the --chown owner, createdTime. */
  async mkdirAll(p: string): Promise<Resolved> {
    const key = cleanPath('/' + p);
    const known = this.#dirs.get(key);
    if (known) return known;
    const r = await this.dest(p);
    if (r.exists) {
      const st = lstatSync(r.abs); // r is resolved: its last component is not a symlink
      if (!st.isDirectory()) throw new CopyError('TSBUILD_COPY_NOT_DIR', `cannot copy to non-directory: /${r.rel}`);
      this.#dirs.set(key, r);
      return r;
    }
    // Create the missing tail; the parent chain may contain further links, so recurse.
    const parent = path.posix.dirname('/' + r.rel);
    const pr = parent === '/' ? await this.dest('/') : await this.mkdirAll(parent);
    const name = path.posix.basename(r.rel);
    const abs = path.join(pr.abs, name);
    const rel = pr.rel === '' ? name : `${pr.rel}/${name}`;
    try {
      mkdirSync(abs);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      return this.mkdirAll('/' + rel);
    }
    const o = this.owner ?? { uid: 0, gid: 0 };
    lchownSync(abs, o.uid, o.gid);
    chmodSync(abs, applyMode(this.mode, 0o755, true));
    lutimesSync(abs, this.created, this.created);
    this.mark(rel);
    const made = { rel, abs, exists: true };
    this.#dirs.set(key, made);
    return made;
  }

  setMeta(abs: string, rel: string, st: { mode: number; uid: number; gid: number; mtime: Date; atime?: Date }, isDir: boolean, isLink: boolean): void {
    const o = this.owner ?? (this.env.source.preserveOwnership ? { uid: st.uid, gid: st.gid } : { uid: 0, gid: 0 });
    lchownSync(abs, o.uid, o.gid);
    if (!isLink) chmodSync(abs, applyMode(this.mode, st.mode, isDir));
    lutimesSync(abs, st.mtime, st.mtime);
    this.mark(rel);
  }

  /** Remove whatever is at a target that must become a non-directory. */
  clearTarget(abs: string, rel: string): void {
    const st = lstatSync(abs, { throwIfNoEntry: false });
    if (st === undefined) return;
    if (st.isDirectory()) throw new CopyError('TSBUILD_COPY_OVER_DIR', `cannot replace directory /${rel} with a non-directory`);
    rmSync(abs, { force: true });
    this.removed();
  }

  /** Copy one resolved source entry (file, dir, link) to the target path (target's parent exists). */
  async copyEntry(srcAbs: string, targetAbs: string, targetRel: string, relInSource: string, top: boolean): Promise<void> {
    this.checkAbort();
    await this.#copy(srcAbs, lstatSync(srcAbs), targetAbs, targetRel, relInSource, top, false);
  }

  /**
   * Copy one source entry whose `lstat` is `st`. `fresh`: the target's parent was made empty by
   * this walk, so nothing is at the target yet (no lstat, no removal needed).
   */
  async #copy(srcAbs: string, st: Stats, targetAbs: string, targetRel: string, relInSource: string, top: boolean, fresh: boolean): Promise<void> {
    if (st.isDirectory()) {
      let created = false;
      const tst = fresh ? undefined : lstatSync(targetAbs, { throwIfNoEntry: false });
      if (tst === undefined) {
        mkdirSync(targetAbs);
        created = true;
      } else if (!tst.isDirectory()) {
        if (top) throw new CopyError('TSBUILD_COPY_NOT_DIR', `cannot copy to non-directory: /${targetRel}`);
        rmSync(targetAbs, { force: true });
        this.removed();
        mkdirSync(targetAbs);
        created = true;
      }
      const names = readdirSync(srcAbs).sort();
      const hidden = this.env.source.isHidden;
      const srcRel = path.relative(this.env.source.root, srcAbs).split(path.sep).join('/');
      for (const n of names) {
        // Awaited only when it yields: an await per entry is a promise and a resumption each.
        const t = this.tick();
        if (t) await t;
        const childAbs = srcAbs.endsWith('/') ? srcAbs + n : `${srcAbs}/${n}`;
        const cst = lstatSync(childAbs);
        const childRelInSource = relInSource === '' ? n : `${relInSource}/${n}`;
        if (this.exclude && this.exclude.matches(childRelInSource)) {
          if (!cst.isDirectory() || this.exclude.canSkipDir(childRelInSource)) continue;
        }
        if (hidden && hidden(srcRel === '' ? n : `${srcRel}/${n}`, cst.isDirectory())) continue;
        const childTargetRel = targetRel === '' ? n : `${targetRel}/${n}`;
        const childTargetAbs = targetAbs.endsWith('/') ? targetAbs + n : `${targetAbs}/${n}`;
        // Small files and links are copied inline; only directories and big files need to await.
        if (!this.#copyLeafSync(childAbs, cst, childTargetAbs, childTargetRel, created)) {
          await this.#copy(childAbs, cst, childTargetAbs, childTargetRel, childRelInSource, false, created);
        }
      }
      if (created || !top) this.setMeta(targetAbs, targetRel, st, true, false);
      return;
    }
    if (this.#copyLeafSync(srcAbs, st, targetAbs, targetRel, fresh)) return;
    // A big regular file: stream it through the threadpool.
    if (!fresh) this.clearTarget(targetAbs, targetRel);
    if (st.nlink > 1) this.hardlinks.set(`${st.dev}:${st.ino}`, targetAbs);
    if (fresh && this.#reuse(srcAbs, st, targetRel)) return;
    await copyFile(srcAbs, targetAbs);
    this.setMeta(targetAbs, targetRel, st, false, false);
  }

  /**
   * Copy a symlink, a hard link to a file already copied, a small file, or skip a special file,
   * synchronously; false when the entry is a directory or a big file (left for `#copy`).
   */
  #copyLeafSync(srcAbs: string, st: Stats, targetAbs: string, targetRel: string, fresh: boolean): boolean {
    if (st.isDirectory()) return false;
    if (st.isSymbolicLink()) {
      if (!fresh) this.clearTarget(targetAbs, targetRel);
      symlinkSync(readlinkSync(srcAbs), targetAbs);
      this.setMeta(targetAbs, targetRel, st, false, true);
      return true;
    }
    if (!st.isFile()) {
      // Sockets, fifos and devices are not copied (BuildKit's context transfer drops them too),
      // but whatever was at the target is still removed, as for any non-directory.
      if (!fresh) this.clearTarget(targetAbs, targetRel);
      return true;
    }
    if (st.nlink > 1) {
      const key = `${st.dev}:${st.ino}`;
      const first = this.hardlinks.get(key);
      if (first !== undefined) {
        if (!fresh) this.clearTarget(targetAbs, targetRel);
        linkSync(first, targetAbs);
        this.mark(targetRel);
        return true;
      }
      if (st.size > SMALL_FILE) return false; // `#copy` records it
      this.hardlinks.set(key, targetAbs);
    } else if (st.size > SMALL_FILE) return false;
    if (!fresh) this.clearTarget(targetAbs, targetRel);
    else if (this.#reuse(srcAbs, st, targetRel)) return true;
    copyFileSync(srcAbs, targetAbs);
    this.setMeta(targetAbs, targetRel, st, false, false);
    return true;
  }

  /**
   * Link the file at `targetRel` from the previous snapshot when it is exactly what this copy
   * would write (see `CopyEnv.reuse`). Only for targets in directories this copy created, which
   * the overlay has not looked up, so writing their upper dir directly is seen through the mount.
   */
  #reuse(srcAbs: string, st: Stats, targetRel: string): boolean {
    const reuse = this.env.reuse;
    if (!reuse) return false;
    // The previous snapshot's directories on the way must be directories, not links: a link
    // there (`d -> /host/dir`, from a context that had one) would lead to a host file, which
    // would be hard-linked into the snapshot.
    const dir = path.posix.dirname(targetRel);
    if (!this.#realDir(reuse.from, dir === '.' ? '' : dir)) return false;
    const from = path.join(reuse.from, targetRel);
    const c = lstatSync(from, { throwIfNoEntry: false });
    if (!c || !c.isFile() || c.size !== st.size || c.mtime.getTime() !== st.mtime.getTime()) return false;
    const o = this.owner ?? (this.env.source.preserveOwnership ? { uid: st.uid, gid: st.gid } : { uid: 0, gid: 0 });
    if (c.uid !== o.uid || c.gid !== o.gid || (c.mode & 0o7777) !== applyMode(this.mode, st.mode, false)) return false;
    if (!sameBytes(srcAbs, from, st.size)) return false;
    linkSync(from, path.join(reuse.upper, targetRel));
    this.mark(targetRel);
    this.reused++;
    return true;
  }

  /** Directories of the previous snapshot found real (no symlink from its root down to them). */
  readonly #realDirs = new Set<string>(['']);

  #realDir(root: string, rel: string): boolean {
    if (this.#realDirs.has(rel)) return true;
    const parent = path.posix.dirname(rel);
    if (!this.#realDir(root, parent === '.' ? '' : parent)) return false;
    if (!lstatSync(path.join(root, rel), { throwIfNoEntry: false })?.isDirectory()) return false;
    this.#realDirs.add(rel);
    return true;
  }

  /** The target for one source entry (fsutil `prepareTargetDir`). */
  async prepareTarget(srcIsDir: boolean, baseName: string, destPath: string): Promise<Resolved> {
    const d = this.#dirs.get(cleanPath('/' + destPath)) ?? (await this.dest(destPath));
    // A resolved path that exists is not a symlink, so lstat tells what stat would.
    const destIsDir = d.exists && (lstatSync(d.abs, { throwIfNoEntry: false })?.isDirectory() ?? false);
    if (!srcIsDir && destIsDir) {
      // one path element, joined to a resolved directory: never a way out of it
      if (baseName === '' || baseName === '.' || baseName === '..' || baseName.includes('/') || baseName.includes('\0')) {
        throw new CopyError('TSBUILD_COPY_NAME', `invalid file name ${JSON.stringify(baseName)}`);
      }
      // d is a resolved directory: resolving '/' + d.rel again gives d itself.
      const rel = d.rel === '' ? baseName : `${d.rel}/${baseName}`;
      return { rel, abs: path.join(d.abs, baseName), exists: false };
    }
    const parentDir = await this.mkdirAll(path.posix.dirname('/' + d.rel));
    const name = path.posix.basename('/' + d.rel);
    if (d.rel === '') return { rel: '', abs: this.env.destRoot, exists: true };
    return { rel: parentDir.rel === '' ? name : `${parentDir.rel}/${name}`, abs: path.join(parentDir.abs, name), exists: d.exists };
  }
}

/** `sameBytes`' two read buffers, made once: it runs synchronously, so one pair serves every call (fresh ones were 2 MiB of garbage per large file). */
let compareBuffers: [Buffer, Buffer] | undefined;

/** True when two files of `size` bytes hold the same bytes (read in 1 MiB pieces). */
function sameBytes(a: string, b: string, size: number): boolean {
  if (size <= SMALL_FILE) return readFileSync(a).equals(readFileSync(b));
  const fa = openSync(a, 'r');
  try {
    const fb = openSync(b, 'r');
    try {
      const [ba, bb] = (compareBuffers ??= [Buffer.allocUnsafeSlow(1 << 20), Buffer.allocUnsafeSlow(1 << 20)]);
      for (let pos = 0; pos < size; ) {
        const n = readSync(fa, ba, 0, ba.length, pos);
        if (n === 0 || readSync(fb, bb, 0, n, pos) !== n || !ba.subarray(0, n).equals(bb.subarray(0, n))) return false;
        pos += n;
      }
      return true;
    } finally {
      closeSync(fb);
    }
  } finally {
    closeSync(fa);
  }
}

/** The destination as BuildKit computes it: absolute, with a trailing `/` when it names a directory. */
export function destinationPath(dest: string, workdir = '/', forceDir = false): string {
  let d = dest.startsWith('/') ? dest : path.posix.join(workdir === '' ? '/' : workdir, dest);
  d = cleanPath('/' + d);
  const isDir = forceDir || dest === '' || dest === '.' || dest.endsWith('/') || dest.endsWith('/.');
  if (isDir && d !== '/') d += '/';
  return d;
}

/** Split a `--parents` source at its pivot (`/./`): the part before it is dropped at the destination. */
function parentsPivot(raw: string): { keepFrom: string } {
  const cleanRaw = raw.replace(/^\/+/, '');
  const i = cleanRaw.indexOf('/./');
  if (i < 0) return { keepFrom: '' };
  return { keepFrom: cleanPath(cleanRaw.slice(0, i)) };
}

function isUrl(s: string): boolean {
  return /^https?:\/\//i.test(s);
}

function isGitUrl(s: string): boolean {
  return /^git@|^git:\/\/|^https?:\/\/\S+\.git(#\S*)?$/.test(s);
}

/**
 * Apply one COPY or ADD to `env.destRoot`. Validates flags first (so a bad `--chmod` fails before
 * any write), then copies each source in order.
 */
export async function applyCopy(spec: CopySpec, env: CopyEnv): Promise<CopyResult> {
  const mode = spec.chmod !== undefined && spec.chmod !== '' ? parseChmod(spec.chmod) : undefined;
  for (const s of spec.sources) {
    if (s.kind === 'url' && spec.kind === 'COPY') throw new CopyError('TSBUILD_COPY_URL', "source can't be a URL for COPY");
    if (s.kind === 'path' && spec.kind === 'COPY' && isUrl(s.path)) throw new CopyError('TSBUILD_COPY_URL', "source can't be a URL for COPY");
  }
  const destIsDir = spec.sources.length > 1;
  if (destIsDir && !(spec.dest.endsWith('/') || spec.dest === '.' || spec.dest === '' || spec.dest.endsWith('/.'))) {
    throw new CopyError(
      'TSBUILD_COPY_DEST_NOT_DIR',
      `When using ${spec.kind} with more than one source file, the destination must be a directory and end with a /`,
    );
  }
  const owner = spec.chown !== undefined && spec.chown !== '' ? await resolveChown(spec.chown, env.ids ?? rootfsIdLookup(env.destRoot)) : undefined;
  const exclude = spec.exclude && spec.exclude.length > 0 ? PatternMatcher.from(spec.exclude) : undefined;
  const c = new Copier(env, mode, owner, exclude);
  const dest = destinationPath(spec.dest, spec.workdir ?? '/');

  for (const source of spec.sources) {
    c.checkAbort();
    if (source.kind === 'inline') {
      await copyInline(c, source.name, source.content, dest);
      continue;
    }
    if (source.kind === 'url' || (spec.kind === 'ADD' && isUrl(source.path))) {
      const url = source.kind === 'url' ? source.url : source.path;
      await addUrl(c, url, dest, spec);
      continue;
    }
    if (spec.kind === 'ADD' && isGitUrl(source.path)) {
      throw new CopyError('TSBUILD_ADD_GIT_UNSUPPORTED', `ADD of a git repository (${source.path}) is not supported yet`);
    }
    await copyPathSource(c, spec, source.path, dest);
  }
  return { changed: sortedUnique(c.changed), reused: c.reused };
}

/** `a` sorted, each string once (in place). */
function sortedUnique(a: string[]): string[] {
  a.sort();
  let n = 0;
  for (const s of a) if (n === 0 || a[n - 1] !== s) a[n++] = s;
  a.length = n;
  return a;
}

async function copyInline(c: Copier, name: string, content: string | Uint8Array, dest: string): Promise<void> {
  const baseName = path.posix.basename(cleanPath('/' + name));
  const ensure = dest.endsWith('/') ? dest : path.posix.dirname(dest);
  await c.mkdirAll(ensure);
  const t = await c.prepareTarget(false, baseName, dest);
  c.clearTarget(t.abs, t.rel);
  await writeFile(t.abs, content);
  c.setMeta(t.abs, t.rel, { mode: 0o644, uid: 0, gid: 0, mtime: c.created }, false, false);
}

async function copyPathSource(c: Copier, spec: CopySpec, raw: string, dest: string): Promise<void> {
  const src = c.env.source;
  const matches = await expandSourcePath(src, raw);
  if (matches.length === 0) return; // a wildcard matching nothing is not an error
  const pivot = spec.parents ? parentsPivot(raw) : undefined;
  const unpack = spec.kind === 'ADD' && spec.unpack !== false;
  // fsutil Copy: make the destination directory (trailing slash) or the destination's parent.
  const ensure = dest.endsWith('/') ? dest : path.posix.dirname(dest);
  for (const m of matches) {
    const r = await resolveInRoot(src.root, m, { isHidden: src.isHidden });
    if (!r.exists) throw new CopyError('TSBUILD_COPY_SOURCE_NOT_FOUND', `failed to compute cache key: "/${m}": not found`);
    const st = statSync(r.abs);
    if (unpack && st.isFile() && (await detectArchive(r.abs)) !== undefined) {
      const target = await c.mkdirAll(dest);
      await extractArchive(c, r.abs, target);
      continue;
    }
    let destPath = dest;
    if (pivot) {
      // --parents: keep the source's path (after the pivot) under the destination directory.
      const keep = pivot.keepFrom === '' || pivot.keepFrom === '.' ? m : path.posix.relative(pivot.keepFrom, m);
      const destDir = dest.endsWith('/') ? dest : dest + '/';
      destPath = st.isDirectory() ? cleanPath(destDir + keep) + '/' : cleanPath(destDir + keep);
      await c.mkdirAll(path.posix.dirname(cleanPath(destDir + keep)));
    } else {
      await c.mkdirAll(ensure);
    }
    const baseName = path.posix.basename('/' + m);
    const t = await c.prepareTarget(st.isDirectory(), baseName, destPath);
    if (st.isDirectory()) {
      await c.copyEntry(r.abs, t.abs, t.rel, '', true);
    } else {
      await c.copyEntry(r.abs, t.abs, t.rel, baseName, true);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// ADD: archives

export type ArchiveCompression = 'none' | 'gzip' | 'bzip2' | 'xz' | 'zstd';

function compressionOf(head: Buffer): ArchiveCompression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 3 && head.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  return 'none';
}

function isTarHeader(block: Buffer): boolean {
  if (block.length < 512) return false;
  if (block.subarray(0, 512).every((b) => b === 0)) return false;
  const stored = block.subarray(148, 156).toString('latin1').replace(/\0.*$/, '').trim();
  if (!/^[0-7]+$/.test(stored)) return false;
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : block[i]!;
  return sum === parseInt(stored, 8);
}

/**
 * The tar in `file` (compressed as `detectArchive` said), as a stream of tar bytes. Every
 * failure (an unreadable file, bad data, a decompressor missing or exiting non-zero) errors
 * the stream returned; a tool that cannot be started is `TSBUILD_DECOMPRESS_TOOL`.
 */
export function decompressed(file: string, compression: ArchiveCompression): Readable {
  const input = createReadStream(file);
  if (compression === 'none') return input;
  // pipeline hands the file's errors on to the gunzip stream the caller reads.
  if (compression === 'gzip') return streamPipeline(input, createGunzip(), () => {});
  const name = path.basename(file);
  const tool = compression === 'bzip2' ? 'bzip2' : compression === 'xz' ? 'xz' : 'zstd';
  const out = new PassThrough();
  // The caller may await other things before it pipes `out` anywhere (extractLayer makes its
  // directory first): a failure meanwhile must not be an 'error' event with no listener, which
  // ends the process. The stream stays errored, and a later pipeline over it rejects.
  out.on('error', () => {});
  const fail = (err: Error): void => {
    input.destroy();
    out.destroy(err);
  };
  const child = spawn(tool, ['-dc'], { stdio: ['pipe', 'pipe', 'ignore'] });
  // A tool that is not installed (ENOENT) or no process or descriptor to spare (EAGAIN, EMFILE)
  // is an 'error' event, not an exit code; with EMFILE there are no pipes either.
  child.on('error', (err: NodeJS.ErrnoException) => {
    const why = err.code === 'ENOENT' ? `${tool} not found` : `cannot run ${tool}: ${err.message}`;
    fail(new CopyError('TSBUILD_DECOMPRESS_TOOL', `cannot decompress ${name}: ${why}`, { cause: err }));
  });
  input.on('error', fail);
  if (child.stdin && child.stdout) {
    input.pipe(child.stdin);
    child.stdin.on('error', () => {}); // EPIPE when the tool stops reading: its exit code says why
    child.stdout.on('error', fail);
    // Ended only once the tool exited 0, so output cut short by a failure never looks complete.
    child.stdout.pipe(out, { end: false });
  }
  child.on('close', (code, signal) => {
    if (code === 0) out.end();
    else fail(new CopyError('TSBUILD_DECOMPRESS', `cannot decompress ${name}: ${tool} -dc exited with ${code ?? signal}`));
  });
  // A reader that stops early (detectArchive) ends the tool too.
  out.on('close', () => {
    input.destroy();
    child.stdout?.destroy();
    if (child.exitCode === null && child.signalCode === null) child.kill();
  });
  return out;
}

/** If `file` is a tar (plain or gzip/bzip2/xz/zstd compressed, by content), its compression. */
export async function detectArchive(file: string): Promise<ArchiveCompression | undefined> {
  const fh = await open(file, 'r');
  let head: Buffer;
  try {
    const buf = Buffer.alloc(512);
    const { bytesRead } = await fh.read(buf, 0, 512, 0);
    head = buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
  const comp = compressionOf(head);
  if (comp === 'none') return isTarHeader(head) ? 'none' : undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  const stream = decompressed(file, comp);
  try {
    for await (const chunk of stream) {
      chunks.push(chunk as Buffer);
      size += (chunk as Buffer).length;
      if (size >= 512) break;
    }
  } catch (err) {
    // Data that does not decompress is not an archive (ADD copies it as a file); a missing
    // decompressor says nothing about the file and must not turn an archive into a copy.
    if (err instanceof CopyError && err.code === 'TSBUILD_DECOMPRESS_TOOL') throw err;
    return undefined;
  } finally {
    stream.destroy();
  }
  return isTarHeader(Buffer.concat(chunks)) ? comp : undefined;
}

/** Extract a (compressed) tar into `target` (an existing directory in destRoot), never leaving destRoot. */
async function extractArchive(c: Copier, file: string, target: Resolved): Promise<void> {
  const comp = (await detectArchive(file)) ?? 'none';
  const ex = tar.extract();
  const dirTimes: { abs: string; mtime: Date }[] = [];
  const input = decompressed(file, comp);
  // The archive is read while the loop writes its entries, and either can fail first: the loop
  // (an abort, a hard link to nothing, a full disk) leaves early and closes `ex`, so the
  // pipeline ends in a premature close; a bad archive errors `ex` under the loop. Both are
  // settled before anything is reported (an unawaited rejection would end the process).
  let streamError: unknown;
  const done = pipeline(input, ex).catch((err: unknown) => {
    streamError = err;
  });
  let loopFailed = false;
  let loopError: unknown;
  try {
    for await (const entry of ex) {
      c.checkAbort();
      const h = entry.header;
      const name = cleanPath('/' + h.name).slice(1);
      if (name === '' || name === '.') {
        entry.resume();
        continue;
      }
      // Parents are resolved (links followed) inside destRoot; the entry itself is not followed.
      const parentPath = path.posix.dirname(`/${target.rel}/${name}`);
      const parent = await c.mkdirAll(parentPath);
      const base = path.posix.basename(name);
      const abs = path.join(parent.abs, base);
      const rel = parent.rel === '' ? base : `${parent.rel}/${base}`;
      const meta = {
        mode: h.mode ?? 0o644,
        uid: h.uid ?? 0,
        gid: h.gid ?? 0,
        mtime: h.mtime ?? c.created,
      };
      const owner = c.owner ?? { uid: meta.uid, gid: meta.gid };
      const setMeta = (isDir: boolean, isLink: boolean): void => {
        lchownSync(abs, owner.uid, owner.gid);
        if (!isLink) chmodSync(abs, applyMode(c.mode, meta.mode, isDir));
        if (isDir) dirTimes.push({ abs, mtime: meta.mtime });
        else lutimesSync(abs, meta.mtime, meta.mtime);
        c.mark(rel);
      };
      switch (h.type) {
        case 'directory': {
          const st = lstatSync(abs, { throwIfNoEntry: false });
          if (st && !st.isDirectory()) {
            rmSync(abs, { force: true });
            c.removed();
          }
          if (!st || !st.isDirectory()) mkdirSync(abs);
          setMeta(true, false);
          entry.resume();
          break;
        }
        case 'file':
        case 'contiguous-file':
        case null:
        case undefined: {
          c.clearTarget(abs, rel);
          await pipeline(entry, createWriteStream(abs, { mode: 0o600 }));
          setMeta(false, false);
          break;
        }
        case 'symlink': {
          c.clearTarget(abs, rel);
          symlinkSync(h.linkname ?? '', abs);
          setMeta(false, true);
          entry.resume();
          break;
        }
        case 'link': {
          const linkTarget = await resolveInRoot(c.env.destRoot, `/${target.rel}/${cleanPath('/' + (h.linkname ?? '')).slice(1)}`, { followFinal: false });
          if (!linkTarget.exists) throw new CopyError('TSBUILD_ADD_EXTRACT', `hard link ${name} -> ${h.linkname}: target not found in the archive`);
          c.clearTarget(abs, rel);
          linkSync(linkTarget.abs, abs);
          c.mark(rel);
          entry.resume();
          break;
        }
        default:
          // Devices and fifos cannot be created without mknod; they are skipped.
          entry.resume();
      }
    }
  } catch (err) {
    loopFailed = true;
    loopError = err;
  }
  await done;
  // The archive's own failure is reported as such; a premature close only says the loop stopped.
  if (streamError !== undefined && (!loopFailed || (streamError as NodeJS.ErrnoException).code !== 'ERR_STREAM_PREMATURE_CLOSE')) {
    throw new CopyError('TSBUILD_ADD_EXTRACT', `failed to extract ${path.basename(file)}`, { cause: streamError });
  }
  if (loopFailed) throw loopError;
  for (const d of dirTimes.reverse()) lutimesSync(d.abs, d.mtime, d.mtime);
}

// ---------------------------------------------------------------------------------------------
// ADD: URLs

/** The file name BuildKit gives a URL's download. */
export function urlFileName(url: string): string {
  const u = new URL(url);
  // The last element of the decoded path, as Go's path.Base(u.Path) gives it: an encoded `/`
  // (`..%2F..%2Fetc%2Fx`) is a separator once decoded, never part of the name.
  let decoded: string;
  try {
    decoded = decodeURIComponent(u.pathname);
  } catch {
    decoded = u.pathname;
  }
  const base = path.posix.basename(decoded);
  return base === '' || base === '/' || base === '.' || base === '..' || base.includes('\0') ? '__unnamed__' : base;
}

async function addUrl(c: Copier, url: string, dest: string, spec: CopySpec): Promise<void> {
  let res: HttpResponse;
  try {
    res = await httpFetch('GET', new URL(url), c.env.signal);
  } catch (cause) {
    // what to do about a certificate nothing here trusts (registries have certs.d; a URL has node's variable)
    const hint = isCertificateError(cause) ? ' (to trust its certificate authority, name a file holding its certificate in NODE_EXTRA_CA_CERTS)' : '';
    throw new CopyError('TSBUILD_ADD_URL', `failed to fetch ${url}: ${(cause as Error).message}${hint}`, { cause });
  }
  if (res.status < 200 || res.status > 299) {
    discard(res.body);
    throw new CopyError('TSBUILD_ADD_URL', `failed to fetch ${url}: HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`);
  }
  const ensure = dest.endsWith('/') ? dest : path.posix.dirname(dest);
  await c.mkdirAll(ensure);
  const t = await c.prepareTarget(false, urlFileName(url), dest);
  c.clearTarget(t.abs, t.rel);
  const tmp = `${t.abs}.tsbuild-download-${randomBytes(6).toString('hex')}`;
  const hash = createHash('sha256');
  try {
    await pipeline(
      res.body,
      async function* (body: AsyncIterable<Buffer>) {
        for await (const chunk of body) {
          hash.update(chunk);
          yield chunk;
        }
      },
      createWriteStream(tmp, { mode: 0o600 }),
    );
    const got = `sha256:${hash.digest('hex')}`;
    if (spec.checksum !== undefined && spec.checksum !== got) {
      throw new CopyError('TSBUILD_ADD_CHECKSUM', `digest mismatch for ${url}: want ${spec.checksum}, got ${got}`);
    }
    await rename(tmp, t.abs);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  const lm = header(res.headers, 'last-modified');
  const mtime = lm !== undefined && !Number.isNaN(Date.parse(lm)) ? new Date(Date.parse(lm)) : c.created;
  if (spec.unpack === true && (await detectArchive(t.abs)) !== undefined) {
    const dir = await c.mkdirAll(dest);
    await extractArchive(c, t.abs, dir);
    await rm(t.abs, { force: true });
    return;
  }
  c.setMeta(t.abs, t.rel, { mode: 0o600, uid: 0, gid: 0, mtime }, false, false);
}
