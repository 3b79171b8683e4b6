import { isGoSpace } from './tokens.js';

/** The outcome of BuildKit's `parseJSON` on an instruction's rest. */
export type JsonArgs =
  | { readonly kind: 'array'; readonly args: string[] }
  /** Not JSON, or JSON that Go's decoder rejects: the instruction falls back to its shell rule. */
  | { readonly kind: 'not-json' }
  /** Valid JSON array with a non-string element: a hard error in BuildKit. */
  | { readonly kind: 'not-strings' };

const NOT_JSON: JsonArgs = { kind: 'not-json' };
const NOT_STRINGS: JsonArgs = { kind: 'not-strings' };

/** True when a decoded JSON value holds a number Go cannot store in a float64 (±Inf). */
function hasOverflow(v: unknown): boolean {
  if (typeof v === 'number') return !Number.isFinite(v);
  if (Array.isArray(v)) return v.some(hasOverflow);
  if (v !== null && typeof v === 'object') return Object.values(v).some(hasOverflow);
  return false;
}

/**
 * BuildKit's `parseJSON`: left-trim (Go white space), require `[`, decode with
 * `encoding/json` into `[]any`, and require every element to be a string.
 * `JSON.parse` accepts exactly the same texts as Go's decoder here (same white space, same
 * grammar); the one difference, numbers beyond float64 (Go fails the decode, so the line falls
 * back to shell form), is checked explicitly.
 */
export function parseJsonArgs(rest: string): JsonArgs {
  let i = 0;
  while (i < rest.length && isGoSpace(rest.charCodeAt(i))) i++;
  if (rest.charCodeAt(i) !== 91 /* [ */) return NOT_JSON;
  let value: unknown;
  try {
    value = JSON.parse(i === 0 ? rest : rest.slice(i));
  } catch {
    return NOT_JSON;
  }
  if (!Array.isArray(value)) return NOT_JSON;
  for (const v of value) {
    if (typeof v !== 'string') return hasOverflow(value) ? NOT_JSON : NOT_STRINGS;
  }
  return { kind: 'array', args: value as string[] };
}
