import type { Diagnostic, Range } from './diagnostics.js';
import type { RawFlag } from './raw-types.js';

/**
 * BuildKit's `bflag` (frontend/dockerfile/instructions/bflag.go): the `--flag[=value]` words that
 * lead an instruction, checked against the flags that instruction knows.
 */

/** `bool`: `--link`, `--link=true|false`; `string`: `--from=x`, once; `strings`: `--exclude=x`, repeatable. */
export type FlagType = 'bool' | 'string' | 'strings';

export type FlagSpec = Readonly<Record<string, FlagType>>;

/** The flags each instruction accepts, as BuildKit's parse.go declares them. */
export const INSTRUCTION_FLAGS: Readonly<Record<string, FlagSpec>> = {
  FROM: { platform: 'string' },
  RUN: { mount: 'strings', network: 'string', security: 'string', device: 'strings' },
  COPY: { chown: 'string', from: 'string', chmod: 'string', link: 'bool', exclude: 'strings', parents: 'bool' },
  ADD: {
    chown: 'string',
    chmod: 'string',
    link: 'bool',
    'keep-git-dir': 'bool',
    checksum: 'string',
    unpack: 'bool',
    exclude: 'strings',
  },
  HEALTHCHECK: { interval: 'string', timeout: 'string', 'start-period': 'string', 'start-interval': 'string', retries: 'string' },
};

export interface FlagValue {
  /** The flag's value; `'true'`/`'false'` for bool flags. */
  readonly value: string;
  readonly range: Range;
}

export interface ParsedFlags {
  /** Last (only) value of each string or bool flag that was given. */
  readonly values: ReadonlyMap<string, FlagValue>;
  /** Every value of each repeatable flag, in order. */
  readonly lists: ReadonlyMap<string, readonly FlagValue[]>;
  /** Names of the flags that were given, in order of first use (BuildKit's `FlagsUsed`). */
  readonly used: readonly string[];
  readonly diagnostics: readonly Diagnostic[];
}

/**
 * Checks `flags` against `spec` the way BuildKit's `BFlags.Parse` does, but reports every bad flag
 * (BuildKit stops at the first). Messages are BuildKit's; each diagnostic covers the flag's own range.
 */
export function parseFlags(flags: readonly RawFlag[], spec: FlagSpec): ParsedFlags {
  const values = new Map<string, FlagValue>();
  const lists = new Map<string, FlagValue[]>();
  const used: string[] = [];
  const diagnostics: Diagnostic[] = [];
  const error = (code: string, message: string, range: Range, suggestion?: string) =>
    diagnostics.push({ code, severity: 'error', message, range, ...(suggestion !== undefined ? { suggestion } : {}) });

  for (const flag of flags) {
    const a = flag.text;
    if (a === '--') break;
    if (!a.startsWith('--')) {
      error('invalid-flag', `arg should start with -- : ${a}`, flag.range);
      continue;
    }
    const eq = a.indexOf('=');
    const flagName = eq < 0 ? a : a.slice(0, eq);
    const hasValue = eq >= 0;
    const value = hasValue ? a.slice(eq + 1) : '';
    const name = flagName.slice(2);
    const type = Object.hasOwn(spec, name) ? spec[name] : undefined;
    if (type === undefined) {
      const match = suggestWord(name, Object.keys(spec), true);
      error(
        'unknown-flag',
        `unknown flag: ${flagName}${match !== undefined ? ` (did you mean ${match}?)` : ''}`,
        flag.range,
        match !== undefined ? `--${match}` : undefined,
      );
      continue;
    }
    if (used.includes(name) && type !== 'strings') {
      error('duplicate-flag', `duplicate flag specified: ${flagName}`, flag.range);
      continue;
    }
    if (!used.includes(name)) used.push(name);
    switch (type) {
      case 'bool': {
        if (hasValue && value === '') {
          error('missing-flag-value', `missing a value on flag: ${flagName}`, flag.range);
          continue;
        }
        const v = value.toLowerCase();
        if (v !== 'true' && v !== 'false' && v !== '') {
          error('invalid-flag-value', `expecting boolean value for flag ${flagName}, not: ${value}`, flag.range);
          continue;
        }
        values.set(name, { value: v === 'false' ? 'false' : 'true', range: flag.range });
        break;
      }
      case 'string':
        if (!hasValue) {
          error('missing-flag-value', `missing a value on flag: ${flagName}`, flag.range);
          continue;
        }
        values.set(name, { value, range: flag.range });
        break;
      case 'strings': {
        if (!hasValue) {
          error('missing-flag-value', `missing a value on flag: ${flagName}`, flag.range);
          continue;
        }
        let list = lists.get(name);
        if (!list) lists.set(name, (list = []));
        list.push({ value, range: flag.range });
        break;
      }
    }
  }
  return { values, lists, used, diagnostics };
}

/**
 * Edit distance (case-sensitive): plain Levenshtein as BuildKit's `agext/levenshtein`, or with
 * adjacent transpositions counted as one edit (optimal string alignment) when `transpose`.
 */
function distance(a: string, b: string, transpose: boolean): number {
  if (a === b) return 0;
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (transpose && i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * BuildKit's `suggest.Search`: the closest option at Levenshtein distance below 3, none when
 * `value` is itself an option. Case-insensitive matches are returned in the case style of `value`
 * (all lower, all upper, else the option's own). BuildKit breaks ties by map order (random); we
 * prefer the option that is closer when a swap of adjacent letters counts as one edit (`RNU` →
 * `RUN`, not `ENV`), then the first in `options`.
 */
export function suggestWord(value: string, options: readonly string[], caseSensitive: boolean): string | undefined {
  const val = caseSensitive ? value : value.toLowerCase();
  let match: string | undefined;
  let min = 3;
  let minSwap = Infinity;
  for (const o of options) {
    const opt = caseSensitive ? o : o.toLowerCase();
    if (opt === val) return undefined;
    const d = distance(val, opt, false);
    if (d > min || d === 3) continue;
    const swap = distance(val, opt, true);
    if (d < min || swap < minSwap) {
      min = d;
      minSwap = swap;
      match = caseSensitive ? opt : matchCase(opt, value);
    }
  }
  return match;
}

function matchCase(val: string, orig: string): string {
  if (orig === orig.toLowerCase()) return val.toLowerCase();
  if (orig === orig.toUpperCase()) return val.toUpperCase();
  return val;
}
