import type { RawDockerfile, RawInstruction } from './raw-types.js';

/**
 * BuildKit's `Node.Dump()` rendering of the line-level AST, and Go's `strconv.Quote`.
 * See ../shared/conformance/buildkit-parser/FORMAT.md.
 */

const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;
// Unicode property classes are made on first use: a `/\p{…}/u` literal costs ICU work when the module is compiled.
let print: RegExp | undefined;
const HEX = '0123456789abcdef';

/** Go's `unicode.IsPrint`: letters, marks, numbers, punctuation, symbols and the ASCII space. */
export function isGoPrint(cp: number): boolean {
  if (cp <= 0xff) return (cp >= 0x20 && cp <= 0x7e) || (cp >= 0xa1 && cp !== 0xad);
  print ??= new RegExp('^[\\p{L}\\p{M}\\p{N}\\p{P}\\p{S}]$', 'u');
  return print.test(String.fromCodePoint(cp));
}

function hex(n: number, width: number): string {
  let s = '';
  for (let i = width - 1; i >= 0; i--) s += HEX[(n >> (i * 4)) & 15];
  return s;
}

/**
 * Go's `strconv.Quote`. JS strings are UTF-16 and cannot hold invalid UTF-8, so `\xNN` only
 * appears for control characters and DEL; a lone surrogate is taken as U+FFFD, which is what Go
 * holds after decoding such text (and prints as is).
 */
export function goQuote(s: string): string {
  if (PLAIN.test(s)) return `"${s}"`;
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    let cp = s.charCodeAt(i);
    if (cp >= 0xd800 && cp <= 0xdfff) {
      const lo = s.charCodeAt(i + 1);
      if (cp <= 0xdbff && lo >= 0xdc00 && lo <= 0xdfff) {
        cp = (cp - 0xd800) * 0x400 + (lo - 0xdc00) + 0x10000;
        i++;
      } else cp = 0xfffd;
    }
    if (cp === 0x22) out += '\\"';
    else if (cp === 0x5c) out += '\\\\';
    else if (isGoPrint(cp)) out += String.fromCodePoint(cp);
    else if (cp === 7) out += '\\a';
    else if (cp === 8) out += '\\b';
    else if (cp === 12) out += '\\f';
    else if (cp === 10) out += '\\n';
    else if (cp === 13) out += '\\r';
    else if (cp === 9) out += '\\t';
    else if (cp === 11) out += '\\v';
    else if (cp < 0x20 || cp === 0x7f) out += `\\x${hex(cp, 2)}`;
    else if (cp < 0x10000) out += `\\u${hex(cp, 4)}`;
    else out += `\\U${hex(cp, 8)}`;
  }
  return out + '"';
}

const ASCII = /^[\x00-\x7f]*$/;

/** Go's `unicode.IsSpace`. */
export function isGoSpace(c: number): boolean {
  if (c <= 32) return c === 32 || (c >= 9 && c <= 13);
  if (c < 0x85) return false;
  return c === 0x85 || c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000;
}

/** Go's `strings.TrimSpace`. */
export function goTrimSpace(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && isGoSpace(s.charCodeAt(a))) a++;
  while (b > a && isGoSpace(s.charCodeAt(b - 1))) b--;
  return a === 0 && b === s.length ? s : s.slice(a, b);
}

/** Go's `strings.ToLower` (simple, context-free case mapping per code point). */
export function goLower(s: string): string {
  if (ASCII.test(s)) return s.toLowerCase();
  let out = '';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (cp === 0x130) out += 'i';
    else {
      const lower = ch.toLowerCase();
      out += lower.length === ch.length ? lower : ch;
    }
  }
  return out;
}

/**
 * BuildKit's flag parser works on bytes and turns each byte into a rune, so a non-ASCII flag
 * reaches its dump as the Latin-1 reading of its UTF-8 bytes. Our `RawFlag.text` keeps the
 * proper text; the dump reproduces BuildKit's reading.
 */
function buildkitFlagText(text: string): string {
  if (ASCII.test(text)) return text;
  return Buffer.from(text, 'utf8').toString('latin1');
}

/** One instruction in `Node.Dump()` form, without the surrounding parentheses. */
export function dumpInstruction(ins: RawInstruction): string {
  let s = goLower(ins.keyword);
  if (ins.flags.length > 0) s += ` [${ins.flags.map((f) => goQuote(buildkitFlagText(f.text))).join(' ')}]`;
  if (ins.child !== undefined) s += ` (${dumpInstruction(ins.child)})`;
  for (const a of ins.args) s += ` ${goQuote(a)}`;
  return goTrimSpace(s);
}

/** The whole file as BuildKit's `AST.Dump()` plus a final newline (the `result` files' format). */
export function dumpBuildkit(raw: RawDockerfile): string {
  if (raw.instructions.length === 0) return '\n';
  let out = '';
  for (const ins of raw.instructions) out += `(${dumpInstruction(ins)})\n`;
  return out;
}
