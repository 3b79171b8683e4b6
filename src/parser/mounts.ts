import type { Mount, MountType } from './ast.js';
import type { Range } from './diagnostics.js';
import { suggestWord } from './flags.js';

/**
 * `RUN --mount=<csv>` (BuildKit's commands_runmount.go `parseMount`). At parse time there is no
 * environment: a value holding `$` is kept as written and left unchecked (only `from` is refused,
 * as BuildKit does); the planner calls `parseMount(spec, { expand })` again with its expander.
 */

export const MOUNT_TYPES: readonly MountType[] = ['bind', 'cache', 'tmpfs', 'secret', 'ssh'];
export const SHARING_MODES = ['shared', 'private', 'locked'] as const;
/** Every key BuildKit knows, in its order (used for "did you mean"). */
export const MOUNT_KEYS = [
  'type', 'from', 'source', 'target', 'readonly', 'id', 'sharing', 'required', 'size', 'mode', 'uid', 'gid',
  'src', 'dst', 'destination', 'ro', 'rw', 'readwrite', 'env',
] as const;

export interface MountError {
  /** `unknown-mount-type`, `unknown-mount-option`, `invalid-mount`. */
  readonly code: string;
  /** BuildKit's wording, "did you mean" included. */
  readonly message: string;
  readonly suggestion?: string;
  /** The CSV field the error is about, when there is one (to narrow the diagnostic's range). */
  readonly field?: string;
}

export type MountResult = { readonly mount: Mount; readonly error?: undefined } | { readonly mount?: undefined; readonly error: MountError };

export interface ParseMountOptions {
  /** Expands one word against the build environment (the planner's expander); throws on bad syntax. */
  readonly expand?: (word: string) => string;
  /** The range recorded on the mount (the `--mount` flag's range). */
  readonly range?: Range;
}

const NO_RANGE: Range = { start: { line: 0, column: 0, offset: 0 }, end: { line: 0, column: 0, offset: 0 } };

/**
 * Splits one CSV record the way Go's encoding/csv (via tonistiigi/go-csvvalue) does: `,` separates,
 * a field that starts with `"` is quoted and `""` inside it is a quote.
 */
export function splitCsv(text: string): string[] {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    if (text[i] === '"') {
      let out = '';
      i++;
      for (;;) {
        if (i >= text.length) throw new Error(`parse error on line 1, column ${i + 1}: extraneous or missing " in quoted-field`);
        const c = text[i]!;
        if (c === '"') {
          if (text[i + 1] === '"') {
            out += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        out += c;
        i++;
      }
      if (i < text.length && text[i] !== ',') throw new Error(`parse error on line 1, column ${i + 1}: extraneous or missing " in quoted-field`);
      fields.push(out);
    } else {
      let end = text.indexOf(',', i);
      if (end < 0) end = text.length;
      const field = text.slice(i, end);
      const q = field.indexOf('"');
      if (q >= 0) throw new Error(`parse error on line 1, column ${i + q + 1}: bare " in non-quoted-field`);
      fields.push(field);
      i = end;
    }
    if (i >= text.length) break;
    i++; // the comma
  }
  return fields;
}

/** Go's strconv.ParseBool. */
export function parseGoBool(s: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(s)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(s)) return false;
  return undefined;
}

/** Go's strconv.ParseUint(s, base, 32) for base 8 or 10. */
function parseUint32(s: string, base: 8 | 10): number | undefined {
  if (!(base === 8 ? /^[0-7]+$/ : /^[0-9]+$/).test(s)) return undefined;
  const n = parseInt(s, base);
  return n <= 0xffffffff ? n : undefined;
}

/** docker/go-units RAMInBytes: `64m`, `1.5g`, `512kb`, `100` — binary multiples. */
export function ramInBytes(s: string): number | undefined {
  const m = /^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$/.exec(s);
  if (!m) return undefined;
  const n = Number(m[1]);
  if (!Number.isFinite(n)) return undefined;
  const unit = (m[2] ?? '').toLowerCase();
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 }[unit] ?? 1;
  return Math.trunc(n * mult);
}

/**
 * Parses one `--mount` value. Without `expand`, fields whose value contains `$` are not checked:
 * string fields keep the text as written, typed ones (type, sharing, mode, uid, gid, size, ro,
 * required) stay unset, and `mount.spec` is what the planner re-parses.
 */
export function parseMount(spec: string, options: ParseMountOptions = {}): MountResult {
  const fail = (code: string, message: string, extra: { suggestion?: string | undefined; field?: string } = {}): MountResult => ({
    error: {
      code,
      message,
      ...(extra.suggestion !== undefined ? { suggestion: extra.suggestion } : {}),
      ...(extra.field !== undefined ? { field: extra.field } : {}),
    },
  });
  let fields: string[];
  try {
    fields = splitCsv(spec);
  } catch (err) {
    return fail('invalid-mount', `failed to parse csv mounts: ${(err as Error).message}`);
  }
  const expand = options.expand;
  let type: MountType = 'bind';
  let from: string | undefined;
  let source: string | undefined;
  let target: string | undefined;
  let readOnly: boolean | undefined;
  let id: string | undefined;
  let sharing: Mount['sharing'];
  let required: boolean | undefined;
  let size: number | undefined;
  let mode: number | undefined;
  let uid: number | undefined;
  let gid: number | undefined;
  let env: string | undefined;
  let roAuto = true;

  for (const field of fields) {
    const eq = field.indexOf('=');
    const key = (eq < 0 ? field : field.slice(0, eq)).toLowerCase();
    if (eq < 0) {
      switch (key) {
        case 'readonly':
        case 'ro':
          readOnly = true;
          roAuto = false;
          continue;
        case 'readwrite':
        case 'rw':
          readOnly = false;
          roAuto = false;
          continue;
        case 'required':
          if (type === 'secret' || type === 'ssh') {
            required = true;
            continue;
          }
          return fail('invalid-mount', `unexpected key '${key}' for mount type '${type}'`, { field });
        default:
          return fail('invalid-mount', `invalid field '${field}' must be a key=value pair`, { field });
      }
    }
    let value = field.slice(eq + 1);
    let deferred = false;
    if (expand) {
      try {
        value = expand(value);
      } catch (err) {
        return fail('invalid-mount', (err as Error).message, { field });
      }
    } else if (key === 'from') {
      const idx = value.indexOf('$');
      if (idx !== -1 && idx !== value.length - 1) {
        return fail('invalid-mount', `'${key}' doesn't support variable expansion, define alias stage instead`, { field });
      }
    } else if (value.includes('$')) {
      deferred = true;
    }
    const bad = () => fail('invalid-mount', `invalid value for ${key}: ${value}`, { field });
    switch (key) {
      case 'type': {
        if (deferred) break;
        const v = value.toLowerCase() as MountType;
        if (!MOUNT_TYPES.includes(v)) {
          const s = suggestWord(value, MOUNT_TYPES, true);
          return fail('unknown-mount-type', `unsupported mount type ${JSON.stringify(value)}${s ? ` (did you mean ${s}?)` : ''}`, {
            suggestion: s,
            field,
          });
        }
        type = v;
        break;
      }
      case 'from':
        from = value;
        break;
      case 'source':
      case 'src':
        source = value;
        break;
      case 'target':
      case 'dst':
      case 'destination':
        target = value;
        break;
      case 'readonly':
      case 'ro': {
        roAuto = false;
        if (deferred) break;
        const b = parseGoBool(value);
        if (b === undefined) return bad();
        readOnly = b;
        break;
      }
      case 'readwrite':
      case 'rw': {
        roAuto = false;
        if (deferred) break;
        const b = parseGoBool(value);
        if (b === undefined) return bad();
        readOnly = !b;
        break;
      }
      case 'required': {
        if (type !== 'secret' && type !== 'ssh') return fail('invalid-mount', `unexpected key '${key}' for mount type '${type}'`, { field });
        if (deferred) break;
        const b = parseGoBool(value);
        if (b === undefined) return bad();
        required = b;
        break;
      }
      case 'size': {
        if (type !== 'tmpfs') return fail('invalid-mount', `unexpected key '${key}' for mount type '${type}'`, { field });
        if (deferred) break;
        const n = ramInBytes(value);
        if (n === undefined) return bad();
        size = n;
        break;
      }
      case 'id':
        id = value;
        break;
      case 'sharing': {
        if (deferred) break;
        const v = value.toLowerCase();
        if (!(SHARING_MODES as readonly string[]).includes(v)) {
          const s = suggestWord(value, SHARING_MODES, true);
          return fail('invalid-mount', `unsupported sharing value ${JSON.stringify(value)}${s ? ` (did you mean ${s}?)` : ''}`, {
            suggestion: s,
            field,
          });
        }
        sharing = v as Mount['sharing'];
        break;
      }
      case 'mode': {
        if (deferred) break;
        const n = parseUint32(value, 8);
        if (n === undefined) return fail('invalid-mount', `invalid value ${value} for mode`, { field });
        mode = n;
        break;
      }
      case 'uid':
      case 'gid': {
        if (deferred) break;
        const n = parseUint32(value, 10);
        if (n === undefined) return fail('invalid-mount', `invalid value ${value} for ${key}`, { field });
        if (key === 'uid') uid = n;
        else gid = n;
        break;
      }
      case 'env':
        env = value;
        break;
      default: {
        const s = suggestWord(key, MOUNT_KEYS, true);
        return fail('unknown-mount-option', `unexpected key '${key}' in '${field}'${s ? ` (did you mean ${s}?)` : ''}`, {
          suggestion: s,
          field,
        });
      }
    }
  }

  if (type !== 'secret' && type !== 'ssh' && type !== 'cache') {
    if (mode !== undefined) return fail('invalid-mount', `mode not allowed for ${JSON.stringify(type)} type mounts`);
    if (uid !== undefined) return fail('invalid-mount', `uid not allowed for ${JSON.stringify(type)} type mounts`);
    if (gid !== undefined) return fail('invalid-mount', `gid not allowed for ${JSON.stringify(type)} type mounts`);
  }
  if (roAuto) readOnly = !(type === 'cache' || type === 'tmpfs');
  if (type === 'secret') {
    if (from) return fail('invalid-mount', 'secret mount should not have a from');
    if (sharing) return fail('invalid-mount', 'secret mount should not define sharing');
    if (!source && !target && !id) return fail('invalid-mount', 'invalid secret mount. one of source, target required');
    if (source && id) return fail('invalid-mount', "both source and id can't be set");
  }
  if (sharing && type !== 'cache') return fail('invalid-mount', `invalid cache sharing set for ${type} mount`);

  const mount: Mount = {
    type,
    spec,
    ...(target !== undefined ? { target } : {}),
    ...(source !== undefined ? { source } : {}),
    ...(from !== undefined ? { from } : {}),
    ...(readOnly !== undefined ? { readonly: readOnly } : {}),
    ...(id !== undefined ? { id } : {}),
    ...(sharing !== undefined ? { sharing } : {}),
    ...(mode !== undefined ? { mode } : {}),
    ...(uid !== undefined ? { uid } : {}),
    ...(gid !== undefined ? { gid } : {}),
    ...(required !== undefined ? { required } : {}),
    ...(size !== undefined ? { size } : {}),
    ...(env !== undefined ? { env } : {}),
    range: options.range ?? NO_RANGE,
  };
  return { mount };
}
