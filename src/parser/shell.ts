/**
 * BuildKit's shell-word lexer and `${VAR}` expansion (moby/buildkit
 * `frontend/dockerfile/shell/lex.go`), as pure functions.
 *
 * The parser never calls these: the planner expands each instruction's words against the
 * stage's environment. Semantics follow BuildKit exactly (checked against its own test vectors
 * in `test/parser/shell.test.ts`), including its quirks:
 * - `$1`, `$@`, `$#`… (positional and special parameters) are names that are never set;
 * - `{` inside `${a:-b {c}` is literal, `${a:-b ${c}` lacks a `}`;
 * - `#`, `%`, `/` patterns support `*`, `?` and `\` escapes only; `[` is literal, as in BuildKit;
 * - an escape character at the very end of a word is dropped.
 *
 * One deliberate deviation: BuildKit's `ProcessWords` shares one word buffer between nested
 * expansions, so `a${x:-b}` splits to `["b"]` there; here it gives `["ab"]`, what the lexer
 * intends and what `ProcessWord` returns.
 */
import { TsbuildError } from '../errors.js';
import { goQuote } from './dump.js';

/** A variable lookup, as BuildKit's `EnvGetter`. */
export interface ShellEnv {
  /** The value of `name`, or `undefined` when it is unset (`''` is set-but-empty). */
  get(name: string): string | undefined;
  /** The names that are set, in declaration order (used for "did you mean" hints). */
  keys(): readonly string[];
}

export interface ShellOptions {
  /** The Dockerfile's escape character (`# escape=`). Default `\`. */
  readonly escapeChar?: '\\' | '`';
  /** Leave references to unset variables as written (`$X`, `${X}`, `${X:-y}`) instead of expanding them. Default false. */
  readonly skipUnsetEnv?: boolean;
  /** Keep quote characters in the result (BuildKit `RawQuotes`). Default false. */
  readonly rawQuotes?: boolean;
  /** Keep escape characters in the result (BuildKit `RawEscapes`). Default false. */
  readonly rawEscapes?: boolean;
  /** Treat `'` and `"` as ordinary characters (BuildKit `SkipProcessQuotes`). Default false. */
  readonly skipProcessQuotes?: boolean;
}

export interface ProcessWordResult {
  /** The word with quotes removed and variables expanded. */
  readonly result: string;
  /** Names that were looked up and found set (even if empty), whichever modifier branch was taken. */
  readonly matched: ReadonlySet<string>;
  /** Names that were looked up and found unset. */
  readonly unmatched: ReadonlySet<string>;
}

/** A failed expansion: `:?`/`?` on an unset or empty variable, a bad substitution, an unclosed quote or `}`. */
export class ShellExpansionError extends TsbuildError {
  /** The word that failed. */
  readonly word: string;
  /** BuildKit's inner message, without the `failed to process "…": ` prefix. */
  readonly reason: string;
  constructor(word: string, reason: string, options?: { cause?: unknown }) {
    super('TSBUILD_SHELL_EXPANSION', `failed to process ${goQuote(word)}: ${reason}`, options);
    this.word = word;
    this.reason = reason;
  }
}

/**
 * Expands one word: removes quotes, resolves escapes and `$VAR`/`${VAR…}` references, keeps the
 * spaces between what would be separate words. BuildKit's `ProcessWordWithMatches`.
 * @throws ShellExpansionError
 */
export function processWord(word: string, env: ShellEnv, options: ShellOptions = {}): ProcessWordResult {
  const lexer = new WordLexer(word, env, options, true);
  const { result } = lexer.run();
  return { result, matched: lexer.matched, unmatched: lexer.unmatched };
}

/**
 * Expands `word` like {@link processWord}, then splits it into words on unquoted, unescaped
 * white space; white space that came from an unquoted variable also splits. BuildKit's `ProcessWords`.
 * @throws ShellExpansionError
 */
export function processWords(word: string, env: ShellEnv, options: ShellOptions = {}): string[] {
  return new WordLexer(word, env, options, false).run().words;
}

/** An environment from `KEY=value` entries (later entries win; an entry without `=` is set to `''`). */
export function envFromList(entries: Iterable<string>, options: { caseInsensitive?: boolean } = {}): ShellEnv {
  const map = new Map<string, string>();
  const keys: string[] = [];
  const norm = options.caseInsensitive ? (k: string) => k.toUpperCase() : (k: string) => k;
  for (const entry of entries) {
    const eq = entry.indexOf('=');
    const key = eq < 0 ? entry : entry.slice(0, eq);
    keys.push(key);
    map.set(norm(key), eq < 0 ? '' : entry.slice(eq + 1));
  }
  return {
    get: (name) => map.get(norm(name)),
    keys: () => keys,
  };
}

/** An environment from a Map or a plain object (keys are case-sensitive, as on Linux). */
export function envFromMap(values: ReadonlyMap<string, string> | Readonly<Record<string, string | undefined>>): ShellEnv {
  const map = values instanceof Map ? new Map(values) : new Map<string, string>();
  if (!(values instanceof Map)) {
    for (const [k, v] of Object.entries(values as Record<string, string | undefined>)) if (v !== undefined) map.set(k, v);
  }
  const keys = [...map.keys()];
  return { get: (name) => map.get(name), keys: () => keys };
}

/** The empty environment. */
export const emptyEnv: ShellEnv = { get: () => undefined, keys: () => [] };

// ---------------------------------------------------------------------------------------------

/** Inner failure; wrapped once with the word at the top. */
class LexFailure extends Error {}

/** Go `unicode.IsSpace`. */
function isSpace(ch: string): boolean {
  const c = ch.codePointAt(0)!;
  if (c <= 0xff) return c === 0x20 || (c >= 0x09 && c <= 0x0d) || c === 0x85 || c === 0xa0;
  whiteSpace ??= new RegExp('\\p{White_Space}', 'u');
  return whiteSpace.test(ch);
}
// Unicode property classes are made on first use: a `/\p{…}/u` literal costs ICU work when the module is compiled.
let whiteSpace: RegExp | undefined;
let digit: RegExp | undefined;
let letter: RegExp | undefined;
const isDigit = (ch: string) => (digit ??= new RegExp('^\\p{Nd}$', 'u')).test(ch);
const isLetter = (ch: string) => (letter ??= new RegExp('^\\p{L}$', 'u')).test(ch);
const isSpecialParam = (ch: string) => '@*#?-$!0'.includes(ch);

/** Word splitting as BuildKit's `wordsStruct`. */
class Words {
  #buf = '';
  #words: string[] = [];
  #inWord = false;
  addChar(ch: string): void {
    if (isSpace(ch)) {
      if (this.#inWord && this.#buf.length !== 0) {
        this.#words.push(this.#buf);
        this.#buf = '';
        this.#inWord = false;
      }
    } else this.addRawChar(ch);
  }
  addRawChar(ch: string): void {
    this.#buf += ch;
    this.#inWord = true;
  }
  addString(s: string): void {
    for (const ch of s) this.addChar(ch);
  }
  addRawString(s: string): void {
    this.#buf += s;
    this.#inWord = true;
  }
  finish(): string[] {
    if (this.#buf.length > 0) {
      this.#words.push(this.#buf);
      this.#buf = '';
      this.#inWord = false;
    }
    return this.#words;
  }
}

class WordLexer {
  readonly matched = new Set<string>();
  readonly unmatched = new Set<string>();
  readonly #chars: string[];
  #pos = 0;
  #rawEscapes: boolean;
  readonly #escape: string;
  readonly #opts: ShellOptions;

  constructor(
    readonly source: string,
    readonly env: ShellEnv,
    opts: ShellOptions,
    readonly capture: boolean,
  ) {
    this.#chars = Array.from(source);
    this.#escape = opts.escapeChar ?? '\\';
    this.#rawEscapes = opts.rawEscapes ?? false;
    this.#opts = opts;
  }

  run(): { result: string; words: string[] } {
    try {
      return this.#processStopOn(undefined, this.#rawEscapes);
    } catch (err) {
      if (err instanceof LexFailure) throw new ShellExpansionError(this.source, err.message);
      throw err;
    }
  }

  #peek(): string | undefined {
    return this.#chars[this.#pos];
  }
  #next(): string | undefined {
    const ch = this.#chars[this.#pos];
    if (ch !== undefined) this.#pos++;
    return ch;
  }

  #processStopOn(stop: string | undefined, rawEscapes: boolean): { result: string; words: string[] } {
    const saved = this.#rawEscapes;
    this.#rawEscapes = rawEscapes;
    try {
      let result = '';
      const words = new Words();
      const quotes = !this.#opts.skipProcessQuotes;
      for (let ch = this.#peek(); ch !== undefined; ch = this.#peek()) {
        if (stop !== undefined && ch === stop) {
          this.#next();
          return { result, words: words.finish() };
        }
        if (ch === '$') {
          const tmp = this.#processDollar();
          result += tmp;
          words.addString(tmp);
        } else if (ch === '<' || (quotes && (ch === "'" || ch === '"'))) {
          const tmp = ch === '<' ? this.#processPossibleHeredoc() : ch === "'" ? this.#processSingleQuote() : this.#processDoubleQuote();
          result += tmp;
          words.addRawString(tmp);
        } else {
          let c = this.#next()!;
          if (c === this.#escape) {
            if (this.#rawEscapes) {
              words.addRawChar(c);
              result += c;
            }
            const n = this.#next();
            if (n === undefined) break; // an escape at the end of the word is dropped
            c = n;
            words.addRawChar(c);
          } else {
            words.addChar(c);
          }
          result += c;
        }
      }
      if (stop !== undefined) throw new LexFailure(`unexpected end of statement while looking for matching ${stop}`);
      return { result, words: words.finish() };
    } finally {
      this.#rawEscapes = saved;
    }
  }

  #processSingleQuote(): string {
    const raw = this.#opts.rawQuotes ?? false;
    let result = '';
    const open = this.#next()!;
    if (raw) result += open;
    for (;;) {
      const ch = this.#next();
      if (ch === undefined) throw new LexFailure('unexpected end of statement while looking for matching single-quote');
      if (ch === "'") {
        if (raw) result += ch;
        return result;
      }
      result += ch;
    }
  }

  #processDoubleQuote(): string {
    const raw = this.#opts.rawQuotes ?? false;
    let result = '';
    const open = this.#next()!;
    if (raw) result += open;
    for (;;) {
      const p = this.#peek();
      if (p === undefined) throw new LexFailure('unexpected end of statement while looking for matching double-quote');
      if (p === '"') {
        this.#next();
        if (raw) result += p;
        return result;
      }
      if (p === '$') {
        result += this.#processDollar();
        continue;
      }
      let ch = this.#next()!;
      if (ch === this.#escape) {
        if (this.#rawEscapes) result += ch;
        const q = this.#peek();
        if (q === undefined) continue; // reported as an unclosed quote on the next turn
        if (q === '"' || q === '$' || q === this.#escape) ch = this.#next()!;
        // other escapes stay literal (and, like BuildKit, appear twice with rawEscapes)
      }
      result += ch;
    }
  }

  #processPossibleHeredoc(): string {
    this.#next();
    if (this.#peek() !== '<') return '<';
    this.#next();
    let space = '';
    for (let p = this.#peek(); p === ' ' || p === '\t' || p === '\r'; p = this.#peek()) {
      space += p;
      this.#next();
    }
    return '<<' + space;
  }

  #processName(): string {
    let name = '';
    for (let ch = this.#peek(); ch !== undefined; ch = this.#peek()) {
      if (name.length === 0 && isDigit(ch)) {
        for (let d = this.#peek(); d !== undefined && isDigit(d); d = this.#peek()) name += this.#next();
        return name;
      }
      if (name.length === 0 && isSpecialParam(ch)) return this.#next()!;
      if (!isLetter(ch) && !isDigit(ch) && ch !== '_') break;
      name += this.#next();
    }
    return name;
  }

  #getEnv(name: string): string | undefined {
    const v = this.env.get(name);
    if (this.capture) (v === undefined ? this.unmatched : this.matched).add(name);
    return v;
  }

  #processDollar(): string {
    this.#next();
    const skipUnset = this.#opts.skipUnsetEnv ?? false;
    if (this.#peek() !== '{') {
      const name = this.#processName();
      if (name === '') return '$';
      const value = this.#getEnv(name);
      if (value === undefined && skipUnset) return '$' + name;
      return value ?? '';
    }
    this.#next();
    const first = this.#peek();
    if (first === undefined) throw new LexFailure("syntax error: missing '}'");
    if (first === '{' || first === '}' || first === ':') throw new LexFailure('syntax error: bad substitution');
    const name = this.#processName();
    let ch = this.#next();
    let chs = ch ?? goBadRune;
    switch (ch) {
      case '}': {
        const value = this.#getEnv(name);
        if (value === undefined && skipUnset) return `\${${name}}`;
        return value ?? '';
      }
      case ':':
      case '+':
      case '-':
      case '?':
      case '#':
      case '%': {
        const nullIsUnset = ch === ':';
        if (nullIsUnset) {
          ch = this.#next();
          chs += ch ?? goBadRune;
        }
        const rawEscapes = ch === '#' || ch === '%';
        if (nullIsUnset && rawEscapes) throw new LexFailure(`unsupported modifier (${chs}) in substitution`);
        let word: string;
        try {
          word = this.#processStopOn('}', rawEscapes).result;
        } catch (err) {
          if (err instanceof LexFailure && this.#peek() === undefined) throw new LexFailure("syntax error: missing '}'");
          throw err;
        }
        const value = this.#getEnv(name);
        if (skipUnset && value === undefined) return `\${${name}${chs}${word}}`;
        switch (ch) {
          case '-':
            return value === undefined || (nullIsUnset && value === '') ? word : value;
          case '+':
            return value === undefined || (nullIsUnset && value === '') ? '' : word;
          case '?':
            if (value === undefined) throw new LexFailure(`${name}: ${word !== '' ? word : 'is not allowed to be unset'}`);
            if (nullIsUnset && value === '') throw new LexFailure(`${name}: ${word !== '' ? word : 'is not allowed to be empty'}`);
            return value;
          case '%':
          case '#': {
            let greedy = false;
            if (word.startsWith(ch)) {
              greedy = true;
              word = word.slice(1);
            }
            return ch === '%' ? trimSuffix(word, value ?? '', greedy) : trimPrefix(word, value ?? '', greedy);
          }
          default:
            throw new LexFailure(`unsupported modifier (${chs}) in substitution`);
        }
      }
      case '/': {
        const replaceAll = this.#peek() === '/';
        if (replaceAll) this.#next();
        let pattern: string;
        try {
          pattern = this.#processStopOn('/', true).result;
        } catch (err) {
          if (err instanceof LexFailure && this.#peek() === undefined) throw new LexFailure("syntax error: missing '/' in ${}");
          throw err;
        }
        let replacement: string;
        try {
          replacement = this.#processStopOn('}', true).result;
        } catch (err) {
          if (err instanceof LexFailure && this.#peek() === undefined) throw new LexFailure("syntax error: missing '}'");
          throw err;
        }
        const value = this.#getEnv(name);
        if (skipUnset && value === undefined) return `\${${name}/${pattern}/${replacement}}`;
        const re = patternToRegex(pattern, true, false);
        return replaceAll ? goReplaceAll(re, value ?? '', replacement) : replaceFirst(re, value ?? '', replacement);
      }
      default:
        throw new LexFailure(`unsupported modifier (${chs}) in substitution`);
    }
  }
}

/** What Go's `%c` prints for EOF (-1). */
const goBadRune = '\ufffd';

/**
 * A shell pattern (`*`, `?`, `\` escapes; everything else literal) as a regular expression,
 * as BuildKit's `convertShellPatternToRegex`. Go's `.` matches any character but `\n`.
 */
function patternToRegex(pattern: string, greedy: boolean, anchored: boolean): RegExp {
  const chars = Array.from(pattern);
  let out = anchored ? '^' : '';
  const star = greedy ? '[^\\n]*' : '[^\\n]*?';
  for (let i = 0; i < chars.length; i++) {
    let tok = chars[i]!;
    switch (tok) {
      case '*':
        out += star;
        continue;
      case '?':
        out += '[^\\n]';
        continue;
      case '\\': {
        const next = chars[i + 1];
        if (next === '}' || next === '/') continue;
        out += '\\';
        i++;
        tok = chars[i] ?? goBadRune;
        if (tok !== '*' && tok !== '?' && tok !== '\\') {
          throw new LexFailure(`invalid pattern (${pattern}) in substitution: invalid escape '\\${tok}'`);
        }
        break;
      }
      case '[':
      case ']':
      case '{':
      case '}':
      case '.':
      case '+':
      case '(':
      case ')':
      case '|':
      case '^':
      case '$':
        out += '\\';
        break;
    }
    out += tok;
  }
  return new RegExp(out, 'gu');
}

function trimPrefix(pattern: string, value: string, greedy: boolean): string {
  const re = patternToRegex(pattern, greedy, true);
  re.lastIndex = 0;
  const m = re.exec(value);
  return m ? value.slice(m.index + m[0].length) : value;
}

/** Reverses a pattern, keeping each `\x` escape pair in order (`a\*c` → `c\*a`). */
function reversePattern(pattern: string): string {
  const runes = Array.from(pattern);
  const out = new Array<string>(runes.length);
  const last = runes.length - 1;
  for (let i = 0; i <= last; ) {
    const tok = runes[i]!;
    const o = last - i;
    if (tok === '\\' && i !== last) {
      out[o - 1] = tok;
      out[o] = runes[i + 1]!;
      i += 2;
    } else {
      out[o] = tok;
      i++;
    }
  }
  return out.join('');
}

const reverseString = (s: string) => Array.from(s).reverse().join('');

/** Shortest/longest suffix removal by reversing both sides (a regex finds leftmost matches only). */
function trimSuffix(pattern: string, value: string, greedy: boolean): string {
  return reverseString(trimPrefix(reversePattern(pattern), reverseString(value), greedy));
}

function replaceFirst(re: RegExp, value: string, replacement: string): string {
  re.lastIndex = 0;
  const m = re.exec(value);
  if (!m) return value;
  return value.slice(0, m.index) + replacement + value.slice(m.index + m[0].length);
}

/** Go `Regexp.ReplaceAllString`: `$name`/`${name}` templates, no empty match right after a match. */
function goReplaceAll(re: RegExp, src: string, template: string): string {
  let out = '';
  let lastEnd = 0;
  let searchPos = 0;
  while (searchPos <= src.length) {
    re.lastIndex = searchPos;
    const m = re.exec(src);
    if (!m) break;
    const start = m.index;
    const end = start + m[0].length;
    out += src.slice(lastEnd, start);
    if (end > lastEnd || start === 0) out += expandTemplate(template, m[0]);
    lastEnd = end;
    const width = searchPos < src.length ? String.fromCodePoint(src.codePointAt(searchPos)!).length : 1;
    if (searchPos + width > end) searchPos += width;
    else if (searchPos + 1 > end) searchPos++;
    else searchPos = end;
  }
  return out + src.slice(lastEnd);
}

/** Go `Regexp.Expand` for a pattern without groups: `$0`/`${0}` is the match, `$$` a dollar, other names empty. */
function expandTemplate(template: string, match: string): string {
  if (!template.includes('$')) return template;
  let out = '';
  for (let i = 0; i < template.length; ) {
    const ch = template[i]!;
    if (ch !== '$') {
      out += ch;
      i++;
      continue;
    }
    if (template[i + 1] === '$') {
      out += '$';
      i += 2;
      continue;
    }
    const m = /^\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))/.exec(template.slice(i));
    if (!m) {
      out += '$';
      i++;
      continue;
    }
    const name = m[1] ?? m[2]!;
    if (/^[0-9]+$/.test(name) && Number(name) === 0) out += match;
    i += m[0].length;
  }
  return out;
}

export { goQuote };
