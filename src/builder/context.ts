/**
 * The build context: a local directory filtered by `.dockerignore` (or `<Dockerfile>.dockerignore`),
 * with moby's patternmatcher semantics, and path resolution that never leaves the root.
 *
 * Pattern rules (moby/patternmatcher + moby/buildkit frontend/dockerfile/dockerignore):
 * - lines starting with `#` are comments; surrounding whitespace is trimmed; empty lines skipped;
 * - each pattern is cleaned (`filepath.Clean`), a leading `/` is dropped (anchored at the root
 *   anyway), `!` makes an exception; a lone `!` is an error;
 * - `*` matches any run of non-`/` characters, `?` one non-`/` character, `[...]` a class,
 *   `**` any number of directories (including none), `\` escapes;
 * - a pattern that matches a parent directory matches everything below it;
 * - the last matching pattern wins.
 */
import { lstatSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { TsbuildError } from '../errors.js';
import { cleanPath } from '../util/path.js';

export class ContextError extends TsbuildError {}

export interface Pattern {
  /** The cleaned pattern text without the `!`. */
  readonly text: string;
  readonly exclusion: boolean;
  readonly regexp: RegExp;
  /** The pattern's directory components, for "could this pattern match below dir X" checks. */
  readonly dirs: readonly string[];
}

export { cleanPath };

/**
 * `s` itself, flattened: a string built by concatenation (`${dir}/${name}`) is a tree of
 * pieces, each a heap object, that costs several times its characters; V8 flattens it in place
 * when a character is read. For strings kept once per file of a context (paths, digests).
 */
export function flatString(s: string): string {
  s.charCodeAt(0);
  return s;
}

const REGEXP_SPECIAL = new Set(['.', '$', '+', '(', ')', '{', '}', '|', '^']);

function badPattern(pattern: string): ContextError {
  return new ContextError('TSBUILD_BAD_PATTERN', `syntax error in pattern ${JSON.stringify(pattern)}`);
}

/** A literal character in a `u`-flag RegExp. */
export function escapeLiteral(ch: string): string {
  return /[.*+?^${}()|[\]\\/]/.test(ch) ? '\\' + ch : ch;
}

function classChar(ch: string): string {
  return /[\]\\^\-[]/.test(ch) ? '\\' + ch : ch;
}

/**
 * Translate a Go `filepath.Match` bracket expression starting at `chars[start] === '['` into a
 * JS class, validating it as Go does (`[]a]`, `[-x]`, `[x-]`, `[a-b-c]`, unclosed: errors).
 * Returns the class and the index of the closing `]`.
 */
export function goBracket(chars: readonly string[], start: number, pattern: string): { re: string; end: number } {
  let i = start + 1;
  let re = '[';
  if (chars[i] === '^') {
    re += '^';
    i++;
  }
  const getEsc = (): string => {
    const ch = chars[i];
    if (ch === undefined || ch === '-' || ch === ']') throw badPattern(pattern);
    if (ch === '\\') {
      i++;
      const esc = chars[i];
      if (esc === undefined) throw badPattern(pattern);
      i++;
      return esc;
    }
    i++;
    return ch;
  };
  let n = 0;
  for (;;) {
    if (chars[i] === ']' && n > 0) break;
    if (chars[i] === undefined) throw badPattern(pattern);
    const lo = getEsc();
    if (chars[i] === '-') {
      i++;
      const hi = getEsc();
      if (hi < lo) throw badPattern(pattern);
      re += `${classChar(lo)}-${classChar(hi)}`;
    } else re += classChar(lo);
    n++;
  }
  return { re: re + ']', end: i };
}

/** Compile one cleaned pattern (without `!`) to an anchored regexp, as moby's patternmatcher does. */
export function compilePattern(pattern: string): RegExp {
  let re = '^';
  const chars = [...pattern];
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    if (ch === '*') {
      if (chars[i + 1] === '*') {
        i++;
        if (chars[i + 1] === '/') i++;
        if (i + 1 >= chars.length) re += '.*';
        else re += '(.*/)?';
      } else {
        re += '[^/]*';
      }
    } else if (ch === '?') {
      re += '[^/]';
    } else if (REGEXP_SPECIAL.has(ch)) {
      re += '\\' + ch;
    } else if (ch === '\\') {
      const next = chars[i + 1];
      if (next === undefined) throw badPattern(pattern);
      re += escapeLiteral(next);
      i++;
    } else if (ch === '[') {
      const b = goBracket(chars, i, pattern);
      re += b.re;
      i = b.end;
    } else if (ch === ']') {
      re += '\\]';
    } else {
      re += ch;
    }
  }
  re += '$';
  try {
    return new RegExp(re, 'u');
  } catch (cause) {
    throw new ContextError('TSBUILD_BAD_PATTERN', `syntax error in pattern ${JSON.stringify(pattern)}`, { cause });
  }
}

/** Parse pattern lines (already split, e.g. from `--exclude` flags or a `.dockerignore`). */
export function compilePatterns(lines: readonly string[], source = 'patterns'): Pattern[] {
  const out: Pattern[] = [];
  for (const raw of lines) {
    let p = raw.trim();
    if (p === '') continue;
    const exclusion = p.startsWith('!');
    if (exclusion) {
      p = p.slice(1).trim();
      if (p === '') throw new ContextError('TSBUILD_BAD_PATTERN', `${source}: illegal exclusion pattern: "!"`);
    }
    p = cleanPath(p);
    if (p.length > 1 && p.startsWith('/')) p = p.slice(1);
    if (p === '/') p = '.';
    out.push({ text: p, exclusion, regexp: compilePattern(p), dirs: p.split('/') });
  }
  return out;
}

/** Parse `.dockerignore` text: comments, trimming, cleaning (moby's `ignorefile.ReadAll`). */
export function parseDockerignore(text: string, source = '.dockerignore'): Pattern[] {
  const lines: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    if (line.startsWith('#')) continue;
    lines.push(line);
  }
  return compilePatterns(lines, source);
}

/**
 * A set of patterns; `matches(rel)` tells whether a slash-separated relative path is excluded,
 * counting matches on its parent directories (moby `MatchesOrParentMatches`).
 */
export class PatternMatcher {
  readonly patterns: readonly Pattern[];
  readonly hasExclusions: boolean;
  constructor(patterns: readonly Pattern[]) {
    this.patterns = patterns;
    this.hasExclusions = patterns.some((p) => p.exclusion);
  }
  static from(lines: readonly string[]): PatternMatcher {
    return new PatternMatcher(compilePatterns(lines));
  }
  get empty(): boolean {
    return this.patterns.length === 0;
  }
  matches(rel: string): boolean {
    const file = cleanPath(rel);
    const parents = file.split('/');
    parents.pop();
    let matched = false;
    for (const p of this.patterns) {
      if (p.exclusion !== matched) continue;
      let m = p.regexp.test(file);
      if (!m) {
        let prefix = '';
        for (const part of parents) {
          prefix = prefix === '' ? part : prefix + '/' + part;
          if (p.regexp.test(prefix)) {
            m = true;
            break;
          }
        }
      }
      if (m) matched = !p.exclusion;
    }
    return matched;
  }
  /**
   * Whether a walk may skip an excluded directory entirely: true unless some exception pattern
   * could match a path below it.
   */
  canSkipDir(dirRel: string): boolean {
    if (!this.hasExclusions) return true;
    const dirParts = cleanPath(dirRel).split('/');
    for (const p of this.patterns) {
      if (!p.exclusion) continue;
      if (p.text.includes('**')) return false;
      // Could the pattern's leading components match the directory's components?
      const n = Math.min(dirParts.length, p.dirs.length);
      let ok = true;
      for (let i = 0; i < n && ok; i++) {
        ok = compilePattern(p.dirs[i]!).test(dirParts[i]!);
      }
      if (ok) return false;
    }
    return true;
  }
}

export interface OpenContextOptions {
  /** The context directory. */
  readonly dir: string;
  /** The Dockerfile path: `<Dockerfile>.dockerignore` beside it wins over `<dir>/.dockerignore`. */
  readonly dockerfile?: string;
  /** Extra exclude patterns (after the ignore file's). */
  readonly exclude?: readonly string[];
}

/** A local build context: a root directory and the ignore rules that hide parts of it. */
export interface BuildContext {
  readonly root: string;
  readonly ignore: PatternMatcher;
  /** The ignore file used, if any (absolute path). */
  readonly ignoreFile?: string;
  /** True when `rel` (slash-separated, relative to root) is hidden by the ignore rules. */
  isIgnored(rel: string): boolean;
  /**
   * For path resolution and walks: a file is hidden when ignored; a directory only when it is
   * ignored and no exception pattern can re-include something below it.
   */
  isHidden(rel: string, isDir: boolean): boolean;
}

/**
 * Open a local context directory and load its ignore rules. (Its few calls, like those of
 * `resolveInRoot`, are synchronous: each is a metadata call or a small read, which costs less
 * than a trip through the threadpool.)
 */
export async function openContext(options: OpenContextOptions): Promise<BuildContext> {
  const root = path.resolve(options.dir);
  let st;
  try {
    st = lstatSync(root);
  } catch (cause) {
    throw new ContextError('TSBUILD_CONTEXT_NOT_FOUND', `build context ${root} not found`, { cause });
  }
  if (!st.isDirectory()) throw new ContextError('TSBUILD_CONTEXT_NOT_DIR', `build context ${root} is not a directory`);
  const candidates: string[] = [];
  if (options.dockerfile !== undefined) candidates.push(path.resolve(options.dockerfile) + '.dockerignore');
  candidates.push(path.join(root, '.dockerignore'));
  let patterns: Pattern[] = [];
  let ignoreFile: string | undefined;
  for (const c of candidates) {
    let text: string;
    try {
      text = readFileSync(c, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new ContextError('TSBUILD_IGNORE_READ', `cannot read ${c}`, { cause: err });
    }
    patterns = parseDockerignore(text, c);
    ignoreFile = c;
    break;
  }
  if (options.exclude) patterns = patterns.concat(compilePatterns(options.exclude));
  const ignore = new PatternMatcher(patterns);
  const ctx: BuildContext = {
    root,
    ignore,
    isIgnored: (rel) => {
      const c = cleanPath(rel);
      return c !== '.' && ignore.matches(c);
    },
    isHidden: (rel, isDir) => {
      const c = cleanPath(rel);
      if (c === '.' || !ignore.matches(c)) return false;
      return isDir ? ignore.canSkipDir(c) : true;
    },
    ...(ignoreFile !== undefined ? { ignoreFile } : {}),
  };
  return ctx;
}

export class PathEscapeError extends TsbuildError {}

export interface ResolveOptions {
  /** Follow a symlink in the last component too (default true). */
  readonly followFinal?: boolean;
  /** Paths hidden from the root (ignore rules): treated as absent (`intermediate`: a directory on the way). */
  readonly isHidden?: ((rel: string, intermediate: boolean) => boolean) | undefined;
}

export interface Resolved {
  /** Slash-separated path relative to root after following links ('' = the root). */
  readonly rel: string;
  /** Absolute host path (always inside root). */
  readonly abs: string;
  /** False when the path (or a component) does not exist; `rel` then has the unresolved tail. */
  readonly exists: boolean;
}

/**
 * Resolve `p` (absolute or relative, slash-separated) inside `root` the way `fs.RootPath`
 * does: `..` is clamped at the root and symlinks (absolute or relative) are resolved as if root
 * were `/`. The result never leaves root.
 */
export async function resolveInRoot(root: string, p: string, options: ResolveOptions = {}): Promise<Resolved> {
  const followFinal = options.followFinal ?? true;
  const pending = cleanPath('/' + p).split('/').filter((s) => s !== '');
  const cur: string[] = [];
  let hops = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === '.' || part === '') continue;
    if (part === '..') {
      cur.pop();
      continue;
    }
    cur.push(part);
    const rel = cur.join('/');
    if (options.isHidden?.(rel, pending.length > 0)) {
      return { rel: [...cur, ...pending].join('/'), abs: path.join(root, ...cur, ...pending), exists: false };
    }
    let st;
    try {
      st = lstatSync(path.join(root, ...cur));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        const tail = cleanPath('/' + [...cur, ...pending].join('/')).slice(1);
        return { rel: tail, abs: path.join(root, tail), exists: false };
      }
      throw err;
    }
    if (st.isSymbolicLink() && (pending.length > 0 || followFinal)) {
      if (++hops > 255) throw new PathEscapeError('TSBUILD_SYMLINK_LOOP', `too many levels of symbolic links resolving ${p}`);
      const target = readlinkSync(path.join(root, ...cur));
      cur.pop();
      const parts = target.split('/').filter((s) => s !== '');
      if (target.startsWith('/')) cur.length = 0;
      pending.unshift(...parts);
    }
  }
  const rel = cur.join('/');
  return { rel, abs: rel === '' ? root : path.join(root, ...cur), exists: true };
}
