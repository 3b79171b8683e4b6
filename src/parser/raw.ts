import type { CstNode, IToken } from 'chevrotain';
import type { Diagnostic, Range, Severity } from './diagnostics.js';
import { LinePositions, rememberPositions } from './diagnostics.js';
import { goLower, goQuote } from './dump.js';
import { parseLines } from './grammar.js';
import { parseJsonArgs } from './json-args.js';
import { CHUNK_CHARS, tokenizeChunks, type EscapeChar } from './lexer.js';
import type { Directive, RawDockerfile, RawFlag, RawHeredoc, RawInstruction, RawParseResult } from './raw-types.js';
import { isGoSpace, type HeredocRequest, type LineAnalysis, type LogicalLine } from './tokens.js';

/**
 * The line-level parser: BuildKit's `frontend/dockerfile/parser` (Parse, splitCommand, the
 * line_parsers.go dispatch table, heredoc detection) on top of the Chevrotain line lexer and
 * grammar. Differences from BuildKit are by design only in error handling: BuildKit stops at the
 * first error; `parseRaw` reports every error (each instruction is parsed on its own) and keeps
 * going. An instruction whose argument rule fails (JSON array of non-strings, ENV without value,
 * ENV word without `=`) is left out of `instructions`; its diagnostic says why.
 */

// ---------------------------------------------------------------------------------------------
// Instruction analysis (newNodeFromLine), on one joined line

interface Span {
  readonly start: number;
  readonly end: number;
}

interface FlagSpan extends Span {
  readonly text: string;
}

/** BuildKit's `Node` for one instruction, with offsets into the analysed line. */
interface LineNode {
  readonly keyword: string;
  readonly keywordSpan: Span;
  readonly flags: readonly FlagSpan[];
  readonly rest: string;
  readonly restSpan: Span;
  readonly args: readonly string[];
  readonly json: boolean;
  readonly child?: LineNode;
}

interface LineError extends Span {
  readonly code: string;
  readonly message: string;
}

interface HeredocSpec extends HeredocRequest {
  readonly expand: boolean;
  readonly fileDescriptor: number | undefined;
}

interface Analysis extends LineAnalysis {
  readonly node: LineNode | undefined;
  readonly error: LineError | undefined;
  readonly heredocs: readonly HeredocSpec[];
}

class LineRuleError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly span: Span,
  ) {
    super(message);
  }
}

/** BuildKit's `reWhitespace` class: `[\t\v\f\r ]`. */
function isWs(c: number): boolean {
  return c === 32 || c === 9 || c === 11 || c === 12 || c === 13;
}

function trimStart(s: string, from: number, to: number): number {
  while (from < to && isGoSpace(s.charCodeAt(from))) from++;
  return from;
}

function trimEnd(s: string, from: number, to: number): number {
  while (to > from && isGoSpace(s.charCodeAt(to - 1))) to--;
  return to;
}

const WS_RUN = /[\t\v\f\r ]+/;

function splitWhitespace(rest: string): string[] {
  if (rest === '') return [];
  return rest.split(/[\t\v\f\r ]+/);
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

/** The UTF-16 offset of byte `i` of a byte string (a byte inside a character counts from that character). */
function utf16Offset(b: string, i: number): number {
  let units = 0;
  for (let k = 0; k < i; k++) {
    const c = b.charCodeAt(k);
    if ((c & 0xc0) !== 0x80) units += c >= 0xf0 ? 2 : 1;
  }
  return units;
}

/**
 * BuildKit's `extractBuilderFlags`: leading `--words`, on bytes (each byte is one "rune", and the
 * bytes 0x85 and 0xA0 count as white space, as in Go). Returns the flags and where the rest starts.
 * It runs on a "byte string" (one UTF-16 unit per UTF-8 byte); flag texts are decoded back to UTF-8.
 */
function extractFlags(args: string, esc: number): { flags: FlagSpan[]; restAt: number } {
  let p = 0;
  while (p < args.length && isGoSpace(args.charCodeAt(p))) p++;
  if (args.charCodeAt(p) !== 45 || args.charCodeAt(p + 1) !== 45) return { flags: [], restAt: p };
  const ascii = isAscii(args);
  const b = ascii ? args : Buffer.from(args, 'utf8').toString('latin1');
  // byte offset -> UTF-16 offset (inside a character: the next character boundary)
  const at = ascii ? (i: number): number => i : (i: number): number => utf16Offset(b, i);
  const n = b.length;
  const flags: FlagSpan[] = [];
  const IN_SPACES = 0;
  const IN_WORD = 1;
  let phase = IN_SPACES;
  let word = '';
  let quote = 0;
  let blankOK = false;
  let wordStart = 0;
  let ch = 0;
  const push = (end: number): void => {
    const text = ascii ? word : Buffer.from(word, 'latin1').toString('utf8');
    flags.push({ text, start: at(wordStart), end: at(end) });
  };
  for (let pos = 0; pos <= n; pos++) {
    if (pos !== n) ch = b.charCodeAt(pos);
    if (phase === IN_SPACES) {
      if (pos === n) break;
      if (isGoSpace(ch)) continue;
      if (ch !== 45 || pos + 1 === n || b.charCodeAt(pos + 1) !== 45) return { flags, restAt: at(pos) };
      phase = IN_WORD;
      wordStart = pos;
    }
    if (pos === n) {
      if (word !== '--' && (blankOK || word.length > 0)) push(n);
      break;
    }
    if (phase === IN_WORD) {
      if (isGoSpace(ch)) {
        phase = IN_SPACES;
        if (word === '--') return { flags, restAt: at(pos) };
        if (blankOK || word.length > 0) push(pos);
        word = '';
        blankOK = false;
        continue;
      }
      if (ch === 39 || ch === 34) {
        quote = ch;
        blankOK = true;
        phase = 2;
        continue;
      }
      if (ch === esc) {
        if (pos + 1 === n) continue;
        pos++;
      }
      word += b[pos];
      continue;
    }
    // in quote
    if (ch === quote) {
      phase = IN_WORD;
      continue;
    }
    if (ch === esc) {
      if (pos + 1 === n) {
        phase = IN_WORD;
        continue;
      }
      pos++;
    }
    word += b[pos];
  }
  return { flags, restAt: args.length };
}

/** BuildKit's `parseWords`: white-space separated words, quotes and escapes kept. */
function parseWords(rest: string, esc: number): string[] {
  const words: string[] = [];
  const IN_SPACES = 0;
  const IN_WORD = 1;
  const IN_QUOTE = 2;
  let phase = IN_SPACES;
  let quote = 0;
  let blankOK = false;
  let sb = '';
  const n = rest.length;
  let ch = 0;
  for (let pos = 0; pos <= n; pos++) {
    if (pos !== n) ch = rest.charCodeAt(pos);
    if (phase === IN_SPACES) {
      if (pos === n) break;
      if (isGoSpace(ch)) continue;
      phase = IN_WORD;
    }
    if (pos === n) {
      if (blankOK || sb.length > 0) words.push(sb);
      break;
    }
    if (phase === IN_WORD) {
      if (isGoSpace(ch)) {
        phase = IN_SPACES;
        if (blankOK || sb.length > 0) words.push(sb);
        sb = '';
        blankOK = false;
        continue;
      }
      if (ch === 39 || ch === 34) {
        quote = ch;
        blankOK = true;
        phase = IN_QUOTE;
      }
      if (ch === esc) {
        if (pos + 1 === n) continue;
        sb += rest[pos];
        pos++;
        ch = rest.charCodeAt(pos);
      }
      sb += rest[pos];
      continue;
    }
    // IN_QUOTE
    if (ch === quote) phase = IN_WORD;
    if (ch === esc && quote !== 39) {
      if (pos + 1 === n) {
        phase = IN_WORD;
        continue;
      }
      sb += rest[pos];
      pos++;
    }
    sb += rest[pos];
  }
  return words;
}

interface Args {
  readonly args: readonly string[];
  readonly json: boolean;
}

const NO_ARGS: Args = { args: [], json: false };

function maybeJson(rest: string, span: Span, toList: boolean): Args {
  const parsed = parseJsonArgs(rest);
  if (parsed.kind === 'array') return { args: parsed.args, json: true };
  if (parsed.kind === 'not-strings') {
    throw new LineRuleError(
      'json-not-strings',
      'when using JSON array syntax, arrays must be comprised of strings only',
      span,
    );
  }
  if (toList) return { args: splitWhitespace(rest), json: false };
  return rest === '' ? NO_ARGS : { args: [rest], json: false };
}

function nameVal(rest: string, key: 'ENV' | 'LABEL', span: Span, esc: number): Args {
  const words = parseWords(rest, esc);
  if (words.length === 0) return NO_ARGS;
  if (!words[0]!.includes('=')) {
    const m = WS_RUN.exec(rest);
    if (m === null) throw new LineRuleError('missing-value', `${key} must have two arguments`, span);
    return { args: [rest.slice(0, m.index), rest.slice(m.index + m[0].length), ''], json: false };
  }
  const args: string[] = [];
  for (const word of words) {
    const eq = word.indexOf('=');
    if (eq < 0) {
      throw new LineRuleError(
        'missing-equals',
        `Syntax error - can't find = in ${goQuote(word)}. Must be of the form: name=value`,
        span,
      );
    }
    args.push(word.slice(0, eq), word.slice(eq + 1), '=');
  }
  return { args, json: false };
}

function healthConfig(rest: string, span: Span): Args {
  // BuildKit scans bytes here too: a byte 0x85 or 0xA0 inside a character counts as a space.
  let typ: string;
  let cmd: string;
  if (isAscii(rest)) {
    let sep = 0;
    while (sep < rest.length && !isGoSpace(rest.charCodeAt(sep))) sep++;
    let next = sep;
    while (next < rest.length && isGoSpace(rest.charCodeAt(next))) next++;
    if (sep === 0) return NO_ARGS;
    typ = rest.slice(0, sep);
    cmd = rest.slice(next);
  } else {
    const bytes = Buffer.from(rest, 'utf8');
    let sep = 0;
    while (sep < bytes.length && !isGoSpace(bytes[sep]!)) sep++;
    let next = sep;
    while (next < bytes.length && isGoSpace(bytes[next]!)) next++;
    if (sep === 0) return NO_ARGS;
    typ = bytes.subarray(0, sep).toString('utf8');
    cmd = bytes.subarray(next).toString('utf8');
  }
  const c = maybeJson(cmd, span, false);
  return { args: [typ, ...c.args], json: c.json };
}

/** BuildKit's `newNodeFromLine` (splitCommand + dispatch), on `line`, whose offsets start at `base`. */
function analyzeNode(line: string, base: number, esc: number): LineNode {
  const s = trimStart(line, 0, line.length);
  const e = trimEnd(line, s, line.length);
  let k = s;
  while (k < e && !isWs(line.charCodeAt(k))) k++;
  const keyword = line.slice(s, k);
  let flags: FlagSpan[] = [];
  let rest = '';
  let restStart = e;
  let restEnd = e;
  if (k < e) {
    let a = k;
    while (a < e && isWs(line.charCodeAt(a))) a++;
    const args = line.slice(a, e);
    const ex = extractFlags(args, esc);
    flags = ex.flags.map((f) => ({ text: f.text, start: base + a + f.start, end: base + a + f.end }));
    restStart = trimStart(args, ex.restAt, args.length);
    restEnd = trimEnd(args, restStart, args.length);
    rest = args.slice(restStart, restEnd);
    restStart += a;
    restEnd += a;
  }
  const restSpan: Span = { start: base + restStart, end: base + restEnd };
  const lineSpan: Span = { start: base + s, end: base + e };
  let result: Args;
  let child: LineNode | undefined;
  switch (goLower(keyword)) {
    case 'add':
    case 'copy':
    case 'volume':
      result = maybeJson(rest, restSpan, true);
      break;
    case 'run':
    case 'cmd':
    case 'entrypoint':
    case 'shell':
      result = rest === '' ? NO_ARGS : maybeJson(rest, restSpan, false);
      break;
    case 'from':
    case 'expose':
      result = { args: splitWhitespace(rest), json: false };
      break;
    case 'arg':
      result = { args: parseWords(rest, esc), json: false };
      break;
    case 'env':
      result = nameVal(rest, 'ENV', lineSpan, esc);
      break;
    case 'label':
      result = nameVal(rest, 'LABEL', lineSpan, esc);
      break;
    case 'healthcheck':
      result = healthConfig(rest, restSpan);
      break;
    case 'maintainer':
    case 'user':
    case 'workdir':
    case 'stopsignal':
      result = rest === '' ? NO_ARGS : { args: [rest], json: false };
      break;
    case 'onbuild':
      result = NO_ARGS;
      if (rest !== '') child = analyzeNode(rest, base + restStart, esc);
      break;
    default:
      result = { args: [''], json: false };
  }
  const node: LineNode = {
    keyword,
    keywordSpan: { start: base + s, end: base + k },
    flags,
    rest,
    restSpan,
    args: result.args,
    json: result.json,
    ...(child !== undefined ? { child } : {}),
  };
  return node;
}

// ---------------------------------------------------------------------------------------------
// Heredoc detection: BuildKit runs its shell lexer (escape `\`, unset variables kept) over the
// whole line to find the `<<WORD` words, then again over each word to remove quotes.

const EOF = -1;

class ShellError extends Error {}

/** A port of the parts of BuildKit's `shell.Lex` that `heredocsFromLine` uses, with no variables set. */
class HeredocWordLexer {
  #src = '';
  #pos = 0;
  #rawQuotes = false;
  #rawEscapes = false;
  /** Shared like BuildKit's `shellWord.wordsBuffer` (nested `${...}` words reset it). */
  #buf = '';

  processWords(src: string, rawQuotes: boolean, rawEscapes: boolean): string[] {
    this.#src = src;
    this.#pos = src.charCodeAt(0) === 0xfeff ? 1 : 0; // text/scanner skips a leading BOM
    this.#rawQuotes = rawQuotes;
    this.#rawEscapes = rawEscapes;
    try {
      return this.#processStopOn(EOF, rawEscapes).words;
    } catch (e) {
      if (e instanceof ShellError) throw new ShellError(`failed to process ${goQuote(src)}: ${e.message}`);
      throw e;
    }
  }

  #peek(): number {
    return this.#pos < this.#src.length ? this.#src.codePointAt(this.#pos)! : EOF;
  }

  #next(): number {
    if (this.#pos >= this.#src.length) return EOF;
    const cp = this.#src.codePointAt(this.#pos)!;
    this.#pos += cp > 0xffff ? 2 : 1;
    return cp;
  }

  #processStopOn(stop: number, rawEscapes: boolean): { result: string; words: string[] } {
    let result = '';
    this.#buf = '';
    const words: string[] = [];
    let inWord = false;
    const addRawChar = (s: string): void => {
      this.#buf += s;
      inWord = true;
    };
    const addChar = (cp: number): void => {
      const space = isGoSpace(cp);
      if (space && inWord) {
        if (this.#buf.length !== 0) {
          words.push(this.#buf);
          this.#buf = '';
          inWord = false;
        }
      } else if (!space) addRawChar(String.fromCodePoint(cp));
    };
    const getWords = (): string[] => {
      if (this.#buf.length > 0) {
        words.push(this.#buf);
        this.#buf = '';
        inWord = false;
      }
      return words;
    };
    const saved = this.#rawEscapes;
    this.#rawEscapes = rawEscapes;
    try {
      while (this.#peek() !== EOF) {
        let ch = this.#peek();
        if (stop !== EOF && ch === stop) {
          this.#next();
          return { result, words: getWords() };
        }
        if (ch === 36 /* $ */ || ch === 60 /* < */ || ch === 39 || ch === 34) {
          const tmp =
            ch === 36
              ? this.#processDollar()
              : ch === 60
                ? this.#processPossibleHeredoc()
                : ch === 39
                  ? this.#processSingleQuote()
                  : this.#processDoubleQuote();
          result += tmp;
          if (ch === 36) {
            for (const c of tmp) addChar(c.codePointAt(0)!);
          } else addRawChar(tmp);
        } else {
          ch = this.#next();
          if (ch === 92) {
            if (this.#rawEscapes) {
              addRawChar('\\');
              result += '\\';
            }
            ch = this.#next();
            if (ch === EOF) break;
            addRawChar(String.fromCodePoint(ch));
          } else addChar(ch);
          result += String.fromCodePoint(ch);
        }
      }
      if (stop !== EOF) {
        throw new ShellError(`unexpected end of statement while looking for matching ${String.fromCodePoint(stop)}`);
      }
      return { result, words: getWords() };
    } finally {
      if (rawEscapes !== saved) this.#rawEscapes = !rawEscapes;
    }
  }

  #processSingleQuote(): string {
    this.#next();
    let result = this.#rawQuotes ? "'" : '';
    for (;;) {
      const ch = this.#next();
      if (ch === EOF) throw new ShellError('unexpected end of statement while looking for matching single-quote');
      if (ch === 39) {
        if (this.#rawQuotes) result += "'";
        return result;
      }
      result += String.fromCodePoint(ch);
    }
  }

  #processDoubleQuote(): string {
    this.#next();
    let result = this.#rawQuotes ? '"' : '';
    for (;;) {
      const p = this.#peek();
      if (p === EOF) throw new ShellError('unexpected end of statement while looking for matching double-quote');
      if (p === 34) {
        this.#next();
        if (this.#rawQuotes) result += '"';
        return result;
      }
      if (p === 36) {
        result += this.#processDollar();
        continue;
      }
      let ch = this.#next();
      if (ch === 92) {
        if (this.#rawEscapes) result += '\\';
        const q = this.#peek();
        if (q === EOF) continue;
        if (q === 34 || q === 36 || q === 92) ch = this.#next();
      }
      result += String.fromCodePoint(ch);
    }
  }

  #processDollar(): string {
    this.#next();
    if (this.#peek() !== 123 /* { */) {
      const name = this.#processName();
      return name === '' ? '$' : `$${name}`;
    }
    this.#next();
    const p = this.#peek();
    if (p === EOF) throw new ShellError("syntax error: missing '}'");
    if (p === 123 || p === 125 || p === 58) throw new ShellError('syntax error: bad substitution');
    const name = this.#processName();
    let ch = this.#next();
    const str = (c: number): string => (c === EOF ? '\ufffd' : String.fromCodePoint(c));
    let chs = str(ch);
    let nullIsUnset = false;
    if (ch === 125) return `\${${name}}`;
    if (ch === 58 /* : */) {
      nullIsUnset = true;
      ch = this.#next();
      chs += str(ch);
    }
    switch (nullIsUnset ? 43 : ch) {
      case 43: // + (or anything after ':')
      case 45: // -
      case 63: // ?
      case 35: // #
      case 37: {
        // %
        const rawEscapes = ch === 35 || ch === 37;
        if (nullIsUnset && rawEscapes) throw new ShellError(`unsupported modifier (${chs}) in substitution`);
        let word: string;
        try {
          word = this.#processStopOn(125, rawEscapes).result;
        } catch (e) {
          if (this.#peek() === EOF) throw new ShellError("syntax error: missing '}'");
          throw e;
        }
        return `\${${name}${chs}${word}}`;
      }
      case 47: {
        // /
        if (this.#peek() === 47) this.#next();
        let pattern: string;
        try {
          pattern = this.#processStopOn(47, true).result;
        } catch (e) {
          if (this.#peek() === EOF) throw new ShellError("syntax error: missing '/' in ${}");
          throw e;
        }
        let replacement: string;
        try {
          replacement = this.#processStopOn(125, true).result;
        } catch (e) {
          if (this.#peek() === EOF) throw new ShellError("syntax error: missing '}'");
          throw e;
        }
        return `\${${name}/${pattern}/${replacement}}`;
      }
      default:
        throw new ShellError(`unsupported modifier (${chs}) in substitution`);
    }
  }

  #processName(): string {
    let name = '';
    while (this.#peek() !== EOF) {
      const ch = this.#peek();
      if (name === '' && isGoDigit(ch)) {
        while (this.#peek() !== EOF && isGoDigit(this.#peek())) name += String.fromCodePoint(this.#next());
        return name;
      }
      if (name === '' && isSpecialParam(ch)) {
        this.#next();
        return String.fromCodePoint(ch);
      }
      if (!isGoLetter(ch) && !isGoDigit(ch) && ch !== 95) break;
      name += String.fromCodePoint(this.#next());
    }
    return name;
  }

  #processPossibleHeredoc(): string {
    this.#next();
    if (this.#peek() !== 60) return '<';
    this.#next();
    let space = '';
    let c = this.#peek();
    while (c === 9 || c === 13 || c === 32) {
      space += String.fromCharCode(c);
      this.#next();
      c = this.#peek();
    }
    return `<<${space}`;
  }
}

// Unicode property classes are made on first use: a `/\p{…}/u` literal costs ICU work when the module is compiled.
let letter: RegExp | undefined;
let digit: RegExp | undefined;

function isGoLetter(cp: number): boolean {
  if (cp < 0x80) return (cp >= 65 && cp <= 90) || (cp >= 97 && cp <= 122);
  letter ??= new RegExp('^\\p{L}$', 'u');
  return letter.test(String.fromCodePoint(cp));
}

function isGoDigit(cp: number): boolean {
  if (cp < 0x80) return cp >= 48 && cp <= 57;
  digit ??= new RegExp('^\\p{Nd}$', 'u');
  return digit.test(String.fromCodePoint(cp));
}

function isSpecialParam(cp: number): boolean {
  // @ * # ? - $ ! 0
  return cp === 64 || cp === 42 || cp === 35 || cp === 63 || cp === 45 || cp === 36 || cp === 33 || cp === 48;
}

const RE_HEREDOC = /^([0-9]*)<<(-?)[\t\n\f\r ]*([^<]*)$/;
const heredocLexer = new HeredocWordLexer();

function countQuotes(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 39 || c === 34) n++;
  }
  return n;
}

/** BuildKit's `heredocsFromLine`. Throws ShellError when a heredoc word cannot be lexed. */
function heredocsFromLine(line: string): HeredocSpec[] {
  let words: string[];
  try {
    words = heredocLexer.processWords(line, true, true);
  } catch (e) {
    if (!(e instanceof ShellError)) throw e;
    words = [];
  }
  const docs: HeredocSpec[] = [];
  for (const word of words) {
    const m = RE_HEREDOC.exec(word);
    if (m === null) continue;
    const rest = m[3]!;
    if (rest === '') continue;
    const plain = heredocLexer.processWords(rest, false, false);
    if (plain.length !== 1) continue;
    const raw = heredocLexer.processWords(rest, true, false);
    if (raw.length !== plain.length) {
      throw new ShellError(`internal lexing of heredoc produced inconsistent results: ${rest}`);
    }
    const name = plain[0]!;
    docs.push({
      name,
      chomp: m[2] === '-',
      expand: countQuotes(name) === countQuotes(raw[0]!),
      fileDescriptor: m[1] === '' ? undefined : Number(m[1]),
    });
  }
  return docs;
}

const HEREDOC_KEYWORDS = new Set(['add', 'copy', 'run']);

/** The whole instruction analysis: node (or error) and the heredocs whose bodies follow. */
function analyze(text: string, esc: number): Analysis {
  let node: LineNode;
  try {
    node = analyzeNode(text, 0, esc);
  } catch (e) {
    if (!(e instanceof LineRuleError)) throw e;
    return { node: undefined, error: { code: e.code, message: e.message, ...e.span }, heredocs: [] };
  }
  let target = node;
  if (goLower(node.keyword) === 'onbuild' && node.child !== undefined) target = node.child;
  if (!HEREDOC_KEYWORDS.has(goLower(target.keyword)) || target.json || !text.includes('<<')) {
    return { node, error: undefined, heredocs: [] };
  }
  try {
    return { node, error: undefined, heredocs: heredocsFromLine(text) };
  } catch (e) {
    if (!(e instanceof ShellError)) throw e;
    const span = { start: node.keywordSpan.start, end: text.length };
    return { node: undefined, error: { code: 'heredoc-syntax', message: e.message, ...span }, heredocs: [] };
  }
}

// ---------------------------------------------------------------------------------------------
// Directives

const DIRECTIVE = /^([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*$/s;

interface DirectiveLine {
  readonly name: Directive['name'];
  readonly value: string;
  readonly start: number;
  readonly end: number;
  readonly error?: { readonly code: string; readonly message: string };
}

/** The parser directives at the top of the file (BuildKit's DirectiveParser), and the escape character. */
function scanDirectives(text: string): { lines: DirectiveLine[]; escape: EscapeChar } {
  const lines: DirectiveLine[] = [];
  const seen = new Set<string>();
  let escape: EscapeChar = '\\';
  let offset = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  while (offset < text.length) {
    const nl = text.indexOf('\n', offset);
    const lineEnd = nl < 0 ? text.length : nl;
    let ce = lineEnd;
    while (ce > offset && text.charCodeAt(ce - 1) === 13) ce--;
    const s = trimStart(text, offset, ce);
    if (s >= ce || text.charCodeAt(s) !== 35 /* # */) break;
    const m = DIRECTIVE.exec(text.slice(trimStart(text, s + 1, ce), ce));
    if (m === null) break;
    const name = m[1]!.toLowerCase();
    if (name !== 'syntax' && name !== 'escape' && name !== 'check') break;
    const value = m[2]!;
    if (seen.has(name)) {
      const error = { code: 'duplicate-directive', message: `only one ${name} parser directive can be used` };
      lines.push({ name, value, start: s, end: ce, error });
    } else {
      seen.add(name);
      if (name === 'escape' && value !== '\\' && value !== '`') {
        const error = { code: 'invalid-escape', message: `invalid escape token '${value}' does not match \` or \\` };
        lines.push({ name, value, start: s, end: ce, error });
      } else {
        if (name === 'escape') escape = value as EscapeChar;
        lines.push({ name, value, start: s, end: ce });
      }
    }
    if (nl < 0) break;
    offset = nl + 1;
  }
  return { lines, escape };
}

// ---------------------------------------------------------------------------------------------
// Building the result from the CST

/** The empty flag and heredoc lists most instructions have: one shared, frozen array (they are readonly). */
const NONE: readonly never[] = Object.freeze([]);

/** The token of an `instruction` node that carries its `LogicalLine`. */
function instructionToken(node: CstNode): IToken {
  const c = node.children;
  return (c.InstructionLines ?? c.HeredocInstructionLines)![0] as IToken;
}

export interface ParseRawOptions {
  /** File name put on diagnostics. */
  readonly file?: string;
}

/**
 * Parses Dockerfile text into BuildKit's line-level AST with source ranges. Never throws: syntax
 * errors and warnings are returned as diagnostics (a result with an error diagnostic has no
 * valid BuildKit dump).
 */
export function parseRaw(text: string, options: ParseRawOptions = {}): RawParseResult {
  return parseRawInChunks(text, options, CHUNK_CHARS);
}

/** `parseRaw` with another chunk size (see `CHUNK_CHARS`): the result must not depend on it. For tests. */
export function parseRawInChunks(text: string, options: ParseRawOptions, chunkChars: number): RawParseResult {
  try {
    return parseRawUnsafe(text, options, chunkChars);
  } catch (e) {
    const pos = { line: 1, column: 1, offset: 0 };
    const diagnostic: Diagnostic = {
      code: 'internal-error',
      severity: 'error',
      message: `internal parser error: ${e instanceof Error ? e.message : String(e)}`,
      range: { start: pos, end: pos },
      ...(options.file !== undefined ? { file: options.file } : {}),
    };
    return {
      raw: { directives: [], escapeChar: '\\', instructions: [], startLine: 0, endLine: 0 },
      diagnostics: [diagnostic],
    };
  }
}

type Report = (d: Omit<Diagnostic, 'severity'> & { severity?: Severity }) => void;

function parseRawUnsafe(text: string, options: ParseRawOptions, chunkChars: number): RawParseResult {
  const diagnostics: Diagnostic[] = [];
  const file = options.file;
  const diag: Report = (d) => {
    const full: Diagnostic = { ...d, severity: d.severity ?? 'error' };
    diagnostics.push(file === undefined ? full : { ...full, file });
  };
  const scan = scanDirectives(text);
  const escape = scan.escape;
  const esc = escape.charCodeAt(0);
  const detect = (line: string): Analysis => analyze(line, esc);
  const instructions: RawInstruction[] = [];
  let index: LinePositions | undefined;
  let nodeCount = 0;
  tokenizeChunks(text, escape, detect, (chunk, lineStarts) => {
    const at = (index ??= new LinePositions(text, lineStarts));
    const base = chunk.base;
    for (const e of chunk.errors) {
      const off = base + e.offset;
      diag({ code: 'internal-error', message: `lexer: ${e.message}`, range: at.range(off, off + e.length) });
    }
    const { cst, errors } = parseLines(chunk.tokens);
    for (const e of errors) {
      const off = Number.isNaN(e.token.startOffset) ? chunk.end : base + e.token.startOffset;
      diag({ code: 'internal-error', message: `grammar: ${e.message}`, range: at.range(off, off) });
    }
    for (const t of (cst.children.LongLine ?? []) as IToken[]) {
      const start = base + t.startOffset;
      let end = text.indexOf('\n', start);
      if (end < 0) end = text.length;
      if (text.charCodeAt(end - 1) === 13) end--;
      diag({
        code: 'line-too-long',
        message: 'dockerfile line greater than max allowed size of 65535',
        range: at.range(start, end),
      });
    }
    const nodes = (cst.children.instruction ?? []) as CstNode[];
    nodeCount += nodes.length;
    for (const node of nodes) {
      const line = instructionToken(node).payload as LogicalLine;
      const built = buildInstruction(line, text, at, esc, diag);
      if (built !== undefined) instructions.push(built);
    }
  }, chunkChars);
  const positions = index!;

  // Directives (at the top) come first among diagnostics at the same offset, as they were found first.
  const chunkDiagnostics = diagnostics.splice(0);
  const directives: Directive[] = [];
  for (const d of scan.lines) {
    const range = positions.range(d.start, d.end);
    if (d.error !== undefined) diag({ ...d.error, range });
    else directives.push({ name: d.name, value: d.value, range });
  }
  diagnostics.push(...chunkDiagnostics);

  if (nodeCount === 0) {
    const end = text.length;
    diag({ code: 'no-instructions', message: 'file with no instructions', range: positions.range(end, end) });
  }

  diagnostics.sort((a, b) => a.range.start.offset - b.range.start.offset);
  const raw: RawDockerfile = {
    directives,
    escapeChar: escape,
    instructions,
    startLine: instructions[0]?.startLine ?? 0,
    endLine: instructions[instructions.length - 1]?.endLine ?? 0,
  };
  rememberPositions(raw, positions);
  return { raw, diagnostics };
}

/** Maps an offset in a logical line to the source, using its segments. */
function sourceOffset(line: LogicalLine, off: number, isEnd: boolean): number {
  const segs = line.segs;
  if (isEnd && off > 0) return sourceOffset(line, off - 1, false) + 1;
  let i = segs.length - 2;
  while (i > 0 && segs[i]! > off) i -= 2;
  return segs[i + 1]! + (off - segs[i]!);
}

function buildInstruction(
  line: LogicalLine,
  text: string,
  index: LinePositions,
  esc: number,
  diag: Report,
): RawInstruction | undefined {
  const analysis = (line.analysis as Analysis | undefined) ?? analyze(line.text, esc);
  const span = (s: Span): Range => index.range(sourceOffset(line, s.start, false), sourceOffset(line, s.end, true));
  const startLine = index.line(line.start);
  let endOffset = line.lastLineEnd;

  if (line.emptyLines.length > 0) {
    const first = line.emptyLines[0]!;
    let end = text.indexOf('\n', first);
    if (end < 0) end = text.length;
    diag({
      code: 'empty-continuation',
      severity: 'warning',
      message: `Empty continuation line found in: ${line.text}`,
      range: index.range(first, end),
      url: 'https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/',
    });
  }

  if (analysis.error !== undefined || analysis.node === undefined) {
    const err = analysis.error!;
    diag({ code: err.code, message: err.message, range: span(err) });
    return undefined;
  }

  let heredocs: readonly RawHeredoc[] = NONE;
  if (analysis.heredocs.length > 0) {
    const found: RawHeredoc[] = [];
    heredocs = found;
    let unterminated = false;
    analysis.heredocs.forEach((h, i) => {
      const body = line.bodies[i];
      if (body === undefined) {
        unterminated = true;
        return;
      }
      let end = body.terminatorEnd;
      if (!body.terminated) {
        unterminated = true;
        // content end of the last line read
        end = body.end;
        if (end > body.start && text.charCodeAt(end - 1) === 10) end--;
        while (end > body.start && text.charCodeAt(end - 1) === 13) end--;
      }
      endOffset = Math.max(endOffset, end);
      found.push({
        name: h.name,
        content: text.slice(body.start, body.end),
        expand: h.expand,
        chomp: h.chomp,
        ...(h.fileDescriptor !== undefined ? { fileDescriptor: h.fileDescriptor } : {}),
        range: index.range(body.start, end),
      });
    });
    if (unterminated) {
      diag({
        code: 'unterminated-heredoc',
        message: 'unterminated heredoc',
        range: span({ start: analysis.node.keywordSpan.start, end: line.text.length }),
      });
    }
  }

  const endLine = index.line(endOffset);
  const range = index.range(sourceOffset(line, analysis.node.keywordSpan.start, false), endOffset);
  const restEnd = sourceOffset(line, line.text.length, true);
  return toInstruction(analysis.node, line, index, span, range, restEnd, startLine, endLine, heredocs, line.text);
}

function toInstruction(
  node: LineNode,
  line: LogicalLine,
  index: LinePositions,
  span: (s: Span) => Range,
  range: Range,
  restEnd: number,
  startLine: number,
  endLine: number,
  heredocs: readonly RawHeredoc[],
  original: string,
): RawInstruction {
  const flags: readonly RawFlag[] = node.flags.length === 0 ? NONE : node.flags.map((f) => ({ text: f.text, range: span(f) }));
  const restStart = sourceOffset(line, node.restSpan.start, false);
  const child =
    node.child === undefined
      ? undefined
      : toInstruction(
          node.child,
          line,
          index,
          span,
          index.range(sourceOffset(line, node.child.keywordSpan.start, false), range.end.offset),
          restEnd,
          startLine,
          endLine,
          heredocs, // BuildKit attaches them to the ONBUILD node; the nested instruction is what uses them
          node.rest,
        );
  return {
    keyword: node.keyword,
    flags,
    args: node.args,
    json: node.json,
    ...(child !== undefined ? { child } : {}),
    heredocs,
    original,
    rest: node.rest,
    range,
    keywordRange: span(node.keywordSpan),
    restRange: index.range(Math.min(restStart, restEnd), restEnd),
    startLine,
    endLine,
  };
}
