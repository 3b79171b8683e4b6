/**
 * Cache keys: sha256 of the canonical JSON of a versioned op, the keys of its inputs and the
 * content digests of the files it reads. The same JSON (a `KeyManifest`) is kept beside each
 * cache record so that `explain(previous, current)` can say why a step missed: which op field,
 * which build arg or env variable, which input, which file.
 *
 * Key formats are forever: `KEY_VERSION` changes whenever the manifest's meaning changes.
 */
import { createHash } from 'node:crypto';
import { TsbuildError } from '../errors.js';
import type { Digest } from '../oci/digest.js';

export const KEY_VERSION = 'tsbuild.cachekey.v1';

/** Fields never part of a key, at any depth: source positions. */
export const NON_SEMANTIC_FIELDS: ReadonlySet<string> = new Set(['range']);
/**
 * Top-level op fields never part of a key: the positional op id, display metadata, and the
 * positional input ids (their cache keys come in `KeyInputs.inputs` instead).
 */
export const NON_SEMANTIC_OP_FIELDS: ReadonlySet<string> = new Set(['id', 'meta', 'inputs']);

export class CacheKeyError extends TsbuildError {}

export type Json = null | boolean | number | string | readonly Json[] | { readonly [k: string]: Json };

function canonicalize(value: unknown, at: string, drop: ReadonlySet<string>, dropTop: ReadonlySet<string> = new Set()): Json | undefined {
  if (value === null) return null;
  switch (typeof value) {
    case 'undefined':
      return undefined;
    case 'boolean':
    case 'string':
      return value;
    case 'number':
      if (!Number.isFinite(value)) throw new CacheKeyError('TSBUILD_CACHE_KEY_VALUE', `cannot key a non-finite number at ${at}`);
      return value;
    case 'object': {
      if (Array.isArray(value)) return value.map((v, i) => canonicalize(v, `${at}[${i}]`, drop) ?? null);
      if (value instanceof Uint8Array) return Buffer.from(value).toString('base64');
      const out: Record<string, Json> = {};
      for (const k of Object.keys(value as object).sort()) {
        if (drop.has(k) || dropTop.has(k)) continue;
        const v = canonicalize((value as Record<string, unknown>)[k], `${at}.${k}`, drop);
        if (v !== undefined) out[k] = v;
      }
      return out;
    }
    default:
      throw new CacheKeyError('TSBUILD_CACHE_KEY_VALUE', `cannot key a ${typeof value} at ${at}`);
  }
}

/** A value as keyed: sorted keys, `undefined` dropped, `drop` fields removed at any depth. */
export function canonicalValue(value: unknown, drop: ReadonlySet<string> = NON_SEMANTIC_FIELDS): Json {
  return canonicalize(value, '$', drop) ?? null;
}

/** An op as keyed: like `canonicalValue`, and without its top-level `id`, `meta` and `inputs`. */
export function canonicalOp(op: unknown): Json {
  return canonicalize(op, '$', NON_SEMANTIC_FIELDS, NON_SEMANTIC_OP_FIELDS) ?? null;
}

/** Canonical JSON text: sorted keys, no whitespace, non-semantic fields dropped. */
export function canonicalJson(value: unknown, drop: ReadonlySet<string> = NON_SEMANTIC_FIELDS): string {
  return JSON.stringify(canonicalValue(value, drop));
}

export interface KeyInputs {
  /** The normalized, versioned op (`{ type: 'tsbuild.exec.v1', … }`); top-level `id`, `meta`, `inputs` and every `range` are dropped. */
  readonly op: unknown;
  /**
   * Keys of what the op builds on, by role: `parent` (the previous step), `source` / `mount:/x`
   * (COPY --from, RUN --mount from=). Explanations use these names.
   */
  readonly inputs?: Readonly<Record<string, string>>;
  /**
   * Content of the files the op reads (COPY sources after ignore rules, bind-mounted context):
   * path → a `FileDigest` string from context-hash.ts (type, mode, content digest; never mtime),
   * as a record or as the `FileSet` context hashing makes.
   */
  readonly files?: Readonly<Record<string, string>> | FileSet;
  /** Values outside the op that the step can see (e.g. build args a RUN sees), by name. */
  readonly values?: Readonly<Record<string, string>>;
}

/** Everything a key was computed from, kept with the cache record for explanations. */
export interface KeyManifest {
  readonly version: typeof KEY_VERSION;
  readonly op: Json;
  readonly inputs: Readonly<Record<string, string>>;
  readonly values: Readonly<Record<string, string>>;
  /** sha256 over the sorted file list (so a record can drop `files` and keep the digest). */
  readonly filesDigest: Digest;
  readonly files?: Readonly<Record<string, string>>;
}

/** Digests of sealed file records (`sealFiles`): computed once, when the record is made. */
const sealed = new WeakMap<object, Digest>();

function isSorted(keys: readonly string[]): boolean {
  for (let i = 1; i < keys.length; i++) if (!(keys[i - 1]! < keys[i]!)) return false;
  return true;
}

function sortedKeys(r: Readonly<Record<string, string>>): string[] {
  const keys = Object.keys(r);
  return isSorted(keys) ? keys : keys.sort();
}

function sortedRecord(r: Readonly<Record<string, string>> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (r) for (const k of sortedKeys(r)) out[k] = r[k]!;
  return out;
}

/** sha256 over `path \0 digest \n` lines, in sorted path order. */
function digestLines(keys: readonly string[], valueOf: (k: string, i: number) => string): Digest {
  const h = createHash('sha256');
  let chunk = '';
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    chunk += `${k}\0${valueOf(k, i)}\n`;
    if (chunk.length > 1 << 16) {
      h.update(chunk);
      chunk = '';
    }
  }
  h.update(chunk);
  return `sha256:${h.digest('hex')}` as Digest;
}

/** Digest of a path → content map, independent of insertion order. */
export function filesDigest(files: Readonly<Record<string, string>> | undefined): Digest {
  if (files) {
    const known = sealed.get(files);
    if (known) return known;
  }
  if (!files) return digestLines([], () => '');
  return digestLines(sortedKeys(files), (k) => files[k]!);
}

/** Paths sorted, a path given twice keeping its last digest. */
function sortUnique(paths: readonly string[], digests: readonly string[]): { keys: readonly string[]; vals: readonly string[] } {
  if (isSorted(paths)) return { keys: paths, vals: digests };
  const order = paths.map((_, i) => i).sort((a, b) => (paths[a]! < paths[b]! ? -1 : paths[a]! > paths[b]! ? 1 : b - a));
  const keys: string[] = [];
  const vals: string[] = [];
  for (const i of order) {
    if (keys.length > 0 && keys[keys.length - 1] === paths[i]) continue; // the later one (sorted first) won
    keys.push(paths[i]!);
    vals.push(digests[i]!);
  }
  return { keys, vals };
}

/**
 * A file record made once from parallel arrays (path, `FileDigest`), with its `filesDigest`
 * computed from the arrays and remembered, so that keying it again costs nothing. Sorts the
 * paths if they are not sorted yet; a path given twice keeps its last value. The record is
 * frozen: its digest could not follow a change.
 */
export function sealFiles(paths: readonly string[], digests: readonly string[]): Readonly<Record<string, string>> {
  return FileSet.of(paths, digests).record();
}

/**
 * The files a step reads, kept as what their digest is made of, `path \0 FileDigest \n` lines in
 * sorted path order: either in one buffer (context hashing writes them straight from a listing
 * and its index, without a string per file) or as two arrays of strings. The path → digest
 * record is made only when it is asked for (`record()`: to explain a miss, to keep a manifest);
 * a hit needs only `digest`.
 */
export class FileSet {
  /** `filesDigest` of the record: sha256 of the lines. */
  readonly digest: Digest;
  /** Paths in the set. */
  readonly size: number;
  readonly #lines: Buffer | undefined;
  /** Per line its start and the offset of its NUL, then the end of the last line. */
  readonly #marks: readonly number[] | undefined;
  readonly #keys: readonly string[] | undefined;
  readonly #vals: readonly string[] | undefined;
  #record: Readonly<Record<string, string>> | undefined;

  private constructor(from: { lines: Buffer; marks: readonly number[] } | { keys: readonly string[]; vals: readonly string[] }) {
    if ('lines' in from) {
      this.#lines = from.lines;
      this.#marks = from.marks;
      this.size = (from.marks.length - 1) >> 1;
      this.digest = `sha256:${createHash('sha256').update(from.lines).digest('hex')}` as Digest;
    } else {
      this.#keys = from.keys;
      this.#vals = from.vals;
      this.size = from.keys.length;
      this.digest = digestLines(from.keys, (_, i) => from.vals[i]!);
    }
  }

  /**
   * From lines already in sorted path order (JavaScript's string order), no path twice: the
   * caller's promise. `marks` as kept by the set: each line's start and NUL, then the end.
   */
  static fromSortedLines(lines: Buffer, marks: readonly number[]): FileSet {
    return new FileSet({ lines, marks });
  }

  /** From paths and their digests, in any order (sorted here; a path given twice keeps its last digest). */
  static of(paths: readonly string[], digests: readonly string[]): FileSet {
    return new FileSet(sortUnique(paths, digests));
  }

  /** From a record. */
  static fromRecord(files: Readonly<Record<string, string>>): FileSet {
    const keys = sortedKeys(files);
    const set = new FileSet({ keys, vals: keys.map((k) => files[k]!) });
    if (Object.isFrozen(files)) set.#seal(files);
    return set;
  }

  #seal(record: Readonly<Record<string, string>>): void {
    this.#record = record;
    sealed.set(record, this.digest);
  }

  /**
   * The paths and digests as a record: frozen, keys in sorted order, its `filesDigest` known.
   * Made anew at each call (unless the set was made from a record): a set made from lines is
   * often kept for a whole build (shared by the steps that read the same sources), and a record
   * of a big context, a string per path and per digest, would be kept with it, long after the
   * one step that needed it (to keep or explain its manifest).
   */
  record(): Readonly<Record<string, string>> {
    if (this.#record) return this.#record;
    const out: Record<string, string> = {};
    for (let i = 0; i < this.size; i++) {
      const [k, v] = this.line(i);
      out[k] = v;
    }
    Object.freeze(out);
    sealed.set(out, this.digest);
    return out;
  }

  /**
   * The record as JSON (what `JSON.stringify(set.record())` gives), as UTF-8 bytes, made without
   * the record (see `jsonChunks`).
   */
  json(): Buffer {
    return Buffer.concat([...this.jsonChunks()]);
  }

  /**
   * `json()` in pieces of up to `size` bytes, made as they are asked for: a line whose path and
   * digest are plain ASCII (no `"`, `\\` or control character) is copied as it is, any other
   * is turned into text and quoted by `JSON.stringify`. A set with a path that is an array
   * index (a key a record puts first) gives the record's JSON, in one piece.
   */
  *jsonChunks(size = 1 << 16): Generator<Buffer> {
    const b = this.#lines;
    const m = this.#marks;
    if (b === undefined || m === undefined || this.#hasIndexPath(b, m)) {
      yield Buffer.from(JSON.stringify(this.record()));
      return;
    }
    const plain = (from: number, to: number): boolean => {
      for (let k = from; k < to; k++) {
        const c = b[k]!;
        if (c < 0x20 || c === 0x22 || c === 0x5c || c > 0x7f) return false;
      }
      return true;
    };
    let out = Buffer.allocUnsafe(size);
    let n = 0;
    // Pieces filled, to hand out after the line that filled them.
    const full: Buffer[] = [];
    const put = (src: Buffer, from: number, to: number): void => {
      while (from < to) {
        if (n === out.length) {
          full.push(out);
          out = Buffer.allocUnsafe(size);
          n = 0;
        }
        const k = Math.min(to - from, out.length - n);
        n += src.copy(out, n, from, from + k);
        from += k;
      }
    };
    const QUOTE = Buffer.from('"');
    const COLON = Buffer.from('":"');
    const COMMA = Buffer.from(',');
    put(Buffer.from('{'), 0, 1);
    for (let i = 0; i < this.size; i++) {
      if (i > 0) put(COMMA, 0, 1);
      const p0 = m[2 * i]!;
      const p1 = m[2 * i + 1]!;
      const end = m[2 * i + 2]! - 1;
      if (plain(p0, p1) && plain(p1 + 1, end)) {
        put(QUOTE, 0, 1);
        put(b, p0, p1);
        put(COLON, 0, 3);
        put(b, p1 + 1, end);
        put(QUOTE, 0, 1);
      } else {
        const [k, v] = this.line(i);
        const q = Buffer.from(`${JSON.stringify(k)}:${JSON.stringify(v)}`);
        put(q, 0, q.length);
      }
      while (full.length > 0) yield full.shift()!;
    }
    put(Buffer.from('}'), 0, 1);
    while (full.length > 0) yield full.shift()!;
    if (n > 0) yield out.subarray(0, n);
  }

  /** Whether a path of the lines is all digits without a leading zero (an array index, or close). */
  #hasIndexPath(b: Buffer, m: readonly number[]): boolean {
    for (let i = 0; i < this.size; i++) {
      const p0 = m[2 * i]!;
      const p1 = m[2 * i + 1]!;
      let isIndex = p1 - p0 <= 10 && p1 > p0 && (b[p0] !== 0x30 || p1 - p0 === 1);
      for (let k = p0; isIndex && k < p1; k++) isIndex = b[k]! >= 0x30 && b[k]! <= 0x39;
      if (isIndex) return true;
    }
    return false;
  }

  /** Path and digest of line `i` (0-based, in order). */
  line(i: number): [string, string] {
    if (this.#keys) return [this.#keys[i]!, this.#vals![i]!];
    const b = this.#lines!;
    const m = this.#marks!;
    return [b.toString('utf8', m[2 * i]!, m[2 * i + 1]!), b.toString('utf8', m[2 * i + 1]! + 1, m[2 * i + 2]! - 1)];
  }
}

/**
 * The manifest of a step: what its key digests. A `FileSet` is keyed by its digest and its paths
 * are left out (`files` absent: a hit never needs them); add them with `withFiles` when the
 * manifest is kept or explained.
 */
export function keyManifest(inputs: KeyInputs): KeyManifest {
  const given = inputs.files;
  const set = given instanceof FileSet ? given : undefined;
  const files = given && !set ? (sealed.has(given as object) ? (given as Readonly<Record<string, string>>) : sortedRecord(given as Readonly<Record<string, string>>)) : undefined;
  return {
    version: KEY_VERSION,
    op: canonicalOp(inputs.op),
    inputs: sortedRecord(inputs.inputs),
    values: sortedRecord(inputs.values),
    filesDigest: set ? set.digest : filesDigest(files),
    ...(files ? { files } : {}),
  };
}

/**
 * The set whose paths a cache record of `manifest` should keep beside it when the manifest has
 * none: the store writes them from the set's lines (`FileSet.jsonChunks`), without a record.
 */
export function filesToKeep(manifest: KeyManifest, files: FileSet | Readonly<Record<string, string>> | undefined): FileSet | undefined {
  return manifest.files || !(files instanceof FileSet) ? undefined : files;
}

/** `manifest` with the paths of `files` (a `FileSet` made it), for keeping or explaining it. */
export function withFiles(manifest: KeyManifest, files: FileSet | Readonly<Record<string, string>> | undefined): KeyManifest {
  if (manifest.files || !(files instanceof FileSet)) return manifest;
  return { ...manifest, files: files.record() };
}

/** The key of a manifest: sha256 of its canonical JSON without the file list (the digest stands in). */
export function manifestKey(m: KeyManifest): Digest {
  const { files: _files, ...rest } = m;
  return `sha256:${createHash('sha256').update(canonicalJson(rest, new Set())).digest('hex')}` as Digest;
}

/** Compute a step's cache key and the manifest to store beside its record. */
export function cacheKey(inputs: KeyInputs): { key: Digest; manifest: KeyManifest } {
  const manifest = keyManifest(inputs);
  return { key: manifestKey(manifest), manifest };
}

/** One reason a key differs from the previous one. */
export type KeyChange =
  | { readonly kind: 'version' }
  | { readonly kind: 'op'; readonly field: string; readonly before?: Json; readonly after?: Json }
  | { readonly kind: 'input'; readonly name: string; readonly before?: string; readonly after?: string }
  | { readonly kind: 'value'; readonly name: string; readonly before?: string; readonly after?: string }
  | { readonly kind: 'file'; readonly path: string; readonly change: 'added' | 'removed' | 'modified' }
  /** The file list changed but the previous record kept only its digest. */
  | { readonly kind: 'files' };

const KV = /^([^=]+)=(.*)$/s;

function isKvList(a: readonly Json[]): a is readonly string[] {
  return a.every((x) => typeof x === 'string' && KV.test(x));
}

function diffJson(before: Json | undefined, after: Json | undefined, at: string, out: KeyChange[]): void {
  if (JSON.stringify(before) === JSON.stringify(after)) return;
  if (Array.isArray(before) && Array.isArray(after) && isKvList(before) && isKvList(after) && (before.length > 0 || after.length > 0)) {
    // `KEY=value` lists (env): name the variables.
    const toMap = (l: readonly string[]): Map<string, string> => new Map(l.map((s) => KV.exec(s)!).map((m) => [m[1]!, m[2]!]));
    const b = toMap(before);
    const a = toMap(after);
    const names = [...new Set([...b.keys(), ...a.keys()])].sort();
    let named = false;
    for (const n of names) {
      if (b.get(n) !== a.get(n)) {
        named = true;
        out.push({ kind: 'op', field: `${at}.${n}`, ...(b.has(n) ? { before: b.get(n)! } : {}), ...(a.has(n) ? { after: a.get(n)! } : {}) });
      }
    }
    if (!named) out.push({ kind: 'op', field: at, before, after }); // order changed only
    return;
  }
  const isObj = (v: Json | undefined): v is { readonly [k: string]: Json } => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isObj(before) && isObj(after)) {
    for (const k of [...new Set([...Object.keys(before), ...Object.keys(after)])].sort()) {
      diffJson(before[k], after[k], at === '' ? k : `${at}.${k}`, out);
    }
    return;
  }
  out.push({ kind: 'op', field: at === '' ? '(op)' : at, ...(before !== undefined ? { before } : {}), ...(after !== undefined ? { after } : {}) });
}

function diffRecord(kind: 'input' | 'value', before: Readonly<Record<string, string>>, after: Readonly<Record<string, string>>, out: KeyChange[]): void {
  for (const n of [...new Set([...Object.keys(before), ...Object.keys(after)])].sort()) {
    if (before[n] !== after[n]) {
      out.push({ kind, name: n, ...(before[n] !== undefined ? { before: before[n] } : {}), ...(after[n] !== undefined ? { after: after[n] } : {}) });
    }
  }
}

/** Why `current` has a different key than `previous`; empty when the keys are equal. */
export function explain(previous: KeyManifest, current: KeyManifest, currentFiles?: FileSet): KeyChange[] {
  if (previous.version !== current.version) return [{ kind: 'version' }];
  const out: KeyChange[] = [];
  diffJson(previous.op, current.op, '', out);
  diffRecord('input', previous.inputs, current.inputs, out);
  diffRecord('value', previous.values, current.values, out);
  if (previous.filesDigest !== current.filesDigest) {
    const after = current.files ?? currentFiles;
    if (previous.files && after) out.push(...fileChanges(previous.files, after));
    else out.push({ kind: 'files' });
  }
  return out;
}

/**
 * The paths added, removed or changed between two file lists, in path order. The current list
 * may be a `FileSet`, read line by line: explaining a one-file change in a 20,000-file COPY
 * makes no record of it, and no set or sorted array of every path.
 */
function fileChanges(before: Readonly<Record<string, string>>, after: Readonly<Record<string, string>> | FileSet): KeyChange[] {
  const changes: KeyChange[] = [];
  const prior = (p: string): string | undefined => (Object.hasOwn(before, p) ? before[p] : undefined);
  let matched = 0;
  const visit = (p: string, a: string): void => {
    const b = prior(p);
    if (b !== undefined) matched++;
    if (b !== a) changes.push({ kind: 'file', path: p, change: b === undefined ? 'added' : 'modified' });
  };
  if (after instanceof FileSet) {
    for (let i = 0; i < after.size; i++) {
      const [p, a] = after.line(i);
      visit(p, a);
    }
  } else for (const p of Object.keys(after)) visit(p, after[p]!);
  let total = 0;
  for (const p in before) if (Object.hasOwn(before, p)) total++;
  if (matched < total) {
    // Some went: which (rare; the current paths as a set only then).
    const now = new Set<string>();
    if (after instanceof FileSet) for (let i = 0; i < after.size; i++) now.add(after.line(i)[0]);
    else for (const p of Object.keys(after)) now.add(p);
    for (const p of Object.keys(before)) if (!now.has(p)) changes.push({ kind: 'file', path: p, change: 'removed' });
  }
  return changes.sort((x, y) => ((x as { path: string }).path < (y as { path: string }).path ? -1 : 1));
}

function short(v: unknown): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** One line for people: `file src/app.ts changed`, `env FOO changed ("1" → "2")`, `parent step changed`. */
export function describeChanges(changes: readonly KeyChange[], max = 5): string {
  if (changes.length === 0) return 'no change';
  const parts = changes.slice(0, max).map((c) => {
    switch (c.kind) {
      case 'version':
        return 'cache key format changed';
      case 'op':
        return `${c.field} changed (${c.before === undefined ? 'unset' : short(c.before)} → ${c.after === undefined ? 'unset' : short(c.after)})`;
      case 'input':
        return c.name === 'parent' ? 'previous step changed' : `${c.name} changed`;
      case 'value':
        return `${c.name} changed (${c.before === undefined ? 'unset' : short(c.before)} → ${c.after === undefined ? 'unset' : short(c.after)})`;
      case 'file':
        return `file ${c.path} ${c.change}`;
      case 'files':
        return 'source files changed';
    }
  });
  if (changes.length > max) parts.push(`and ${changes.length - max} more`);
  return parts.join('; ');
}
