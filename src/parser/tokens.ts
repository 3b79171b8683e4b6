import type { CustomPatternMatcherFunc, TokenType } from 'chevrotain';
import { chevrotain } from './chevrotain.js';
import { isGoSpace } from './dump.js';

export { chevrotain };
const { createToken, Lexer } = chevrotain;

/**
 * Token vocabulary of the Dockerfile lexer. A token is a *group of physical lines* that BuildKit's
 * `parser.Parse` loop treats as one unit; each line is classified the way that loop classifies it:
 * blank (only Go `unicode.IsSpace`), comment (first non-space character `#`), continued (ends with
 * the escape character plus blanks, BuildKit's `([^E])E[ \t]*$|^E[ \t]*$`), too long (65,536
 * bytes or more, which BuildKit's line scanner refuses), or text (any other line).
 *
 * - `TriviaLines`: a run of blank and comment lines between instructions.
 * - `InstructionLines`: one instruction: its first line, then while it is continued every
 *   continuation, comment (dropped) and blank line ("empty continuation line", a warning), through
 *   the text line that ends it. An instruction still continued at EOF or before a too-long line
 *   ends there, as in BuildKit.
 * - `HeredocInstructionLines`: an instruction whose last line opens heredocs; pushes the
 *   `heredoc` mode.
 * - `LongLine`: one too-long line.
 * - `HeredocBody` / `HeredocBodyLast`: one heredoc body with its terminator line (the last one
 *   pops the `heredoc` mode).
 *
 * A token per line group rather than per line keeps the token count (and so the lexer's and the
 * parser's per-token work and memory) near the instruction count.
 *
 * The token types (at the end of this file) have custom matchers that share one
 * {@link LineScanner}, which classifies each line group once (cached by offset) and joins an
 * instruction's lines into the {@link LogicalLine} record its token carries as `payload`. The
 * escape character (`\` or `` ` ``), on which the continuation rule depends, is a parameter of
 * each run, so one lexer serves both.
 */

/** BuildKit's scanner limit: a line (without its `\n`) of more bytes than this is an error. */
export const MAX_LINE_BYTES = 65535;

/** A heredoc the lexer must read the body of: the delimiter after quote removal, and `<<-`. */
export interface HeredocRequest {
  readonly name: string;
  readonly chomp: boolean;
}

/** One heredoc body as read by the lexer. Offsets into the source text. */
export interface HeredocBodySpan {
  /** First body line. */
  readonly start: number;
  /** End of the body (start of the terminator line, or where reading stopped). */
  readonly end: number;
  readonly terminated: boolean;
  /** The terminator line, content only (no line ending); equal to `end` when unterminated. */
  readonly terminatorStart: number;
  readonly terminatorEnd: number;
}

/** What the instruction analysis tells the lexer: which heredoc bodies follow the line. */
export interface LineAnalysis {
  readonly heredocs: readonly HeredocRequest[];
}

/** Called by the lexer at the end of an instruction whose text contains `<<`. */
export type HeredocDetector = (text: string) => LineAnalysis;

/** One instruction's joined text, built while lexing; the payload of its token. */
export interface LogicalLine {
  /** The joined line, as BuildKit's `Original`: first line left-trimmed, continuations removed. */
  text: string;
  /** Pairs `[textOffset, sourceOffset]`: where each joined piece starts in `text` and in the source. */
  readonly segs: number[];
  /** Source offset of the instruction's first line. */
  readonly start: number;
  /** Source offset of the start and the content end (no line ending) of the last consumed line. */
  lastLineStart: number;
  lastLineEnd: number;
  /** Source offsets of empty continuation lines. */
  readonly emptyLines: number[];
  /** False while the instruction is still continued (it may end at EOF or at a long line). */
  closed: boolean;
  /** Set when the lexer had to analyse the line (it contains `<<`). */
  analysis: LineAnalysis | undefined;
  readonly bodies: HeredocBodySpan[];
}

const enum Kind {
  Trivia,
  Instruction,
  HeredocInstruction,
  Long,
}

export { isGoSpace };

/** UTF-8 byte length of `text[start, end)` (lone surrogates count as U+FFFD, 3 bytes). */
export function utf8Length(text: string, start: number, end: number): number {
  let n = 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < end) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

function isLongLine(text: string, start: number, end: number): boolean {
  // A UTF-16 unit is at most 3 UTF-8 bytes: only measure lines that could be too long.
  return end - start > MAX_LINE_BYTES / 3 && utf8Length(text, start, end) > MAX_LINE_BYTES;
}

type Match = RegExpExecArray & { payload?: unknown };

/**
 * The stateful part of the lexer for one escape character. `begin` resets it before each
 * tokenize run; the custom matchers below call into it.
 */
export class LineScanner {
  #text = '';
  #bom = 0;
  #detect: HeredocDetector = () => ({ heredocs: [] });
  // classification cache for the main mode
  #at = -1;
  #kind: Kind = Kind.Trivia;
  #next = 0;
  #payload: LogicalLine | undefined;
  // the pending heredocs
  #pending: HeredocRequest[] = [];
  #pendingLine: LogicalLine | undefined;
  // body scan cache for the heredoc mode
  #bodyAt = -1;
  #body: HeredocBodySpan | undefined;
  #bodyNext = 0;
  readonly #match: Match = [''] as unknown as Match;
  #base = 0;
  #limit = Infinity;
  /** Start offsets of the lines read so far (as `LineIndex` keeps them). */
  #starts: number[] = [0];

  #escape = 92;

  /** Starts a run over `text`; returns the line-start array it fills (see `lineStarts`). */
  begin(text: string, escape: number, detect: HeredocDetector): number[] {
    this.#text = text;
    this.#escape = escape;
    this.#bom = text.charCodeAt(0) === 0xfeff ? 1 : 0;
    this.#detect = detect;
    this.#at = -1;
    this.#bodyAt = -1;
    this.#pending = [];
    this.#pendingLine = undefined;
    this.#starts = [0];
    this.#base = 0;
    this.#limit = Infinity;
    return this.#starts;
  }

  /**
   * The next `tokenize` call reads `text.slice(base)`: matchers add `base` to the offsets they are
   * given, and `RestOfChunk` takes the rest of the input at the first main-mode token at or after
   * `limit`, which ends the call there.
   */
  chunk(base: number, limit: number): void {
    this.#base = base;
    this.#limit = limit;
  }

  /**
   * The start offset of every line (0, then each offset after a `\n`), collected while lexing,
   * in the same form as `LineIndex`. Valid after a complete run, before the next `begin`.
   */
  lineStarts(): number[] {
    const text = this.#text;
    if (text.length > 0 && text.charCodeAt(text.length - 1) === 10 && this.#starts[this.#starts.length - 1] !== text.length) {
      this.#starts.push(text.length);
    }
    return this.#starts;
  }

  /** Ends the run. Drops the text reference. */
  finish(): void {
    this.#text = '';
    this.#payload = undefined;
    this.#pending = [];
    this.#pendingLine = undefined;
  }

  /**
   * Reads the line group starting at `offset` (once per offset): a run of trivia lines, a too-long
   * line, or a whole instruction, joined into a new {@link LogicalLine}.
   */
  #classify(offset: number): void {
    if (offset === this.#at) return;
    this.#at = offset;
    const text = this.#text;
    const starts = this.#starts;
    const len = text.length;
    if (offset > 0) starts.push(offset);
    let pos = offset; // start of the line being read
    let nl = text.indexOf('\n', pos);
    let lineEnd = nl < 0 ? len : nl;
    let next = nl < 0 ? len : nl + 1;
    this.#payload = undefined;
    if (isLongLine(text, pos, lineEnd)) {
      this.#kind = Kind.Long;
      this.#next = next;
      return;
    }
    const bom = this.#bom;
    const esc = this.#escape;
    let line: LogicalLine | undefined;
    // The joined text is built once at the end (one flat string), not by `+=` per line.
    let firstPiece = '';
    let pieces: string[] | undefined;
    let joinedLength = 0;
    for (;;) {
      let ce = lineEnd;
      while (ce > pos && text.charCodeAt(ce - 1) === 13) ce--;
      const start = pos === 0 ? bom : pos;
      let s = start;
      while (s < ce && isGoSpace(text.charCodeAt(s))) s++;
      if (s === ce || text.charCodeAt(s) === 35 /* # */) {
        // blank or comment: trivia, or part of the open instruction
        if (line !== undefined) {
          if (s === ce) line.emptyLines.push(pos);
          line.lastLineStart = pos;
          line.lastLineEnd = ce;
        }
      } else {
        // The first line of an instruction is left-trimmed; continuation lines are not.
        const first = line === undefined;
        if (first && pos !== offset) {
          starts.pop(); // trivia ends before an instruction; its first line is pushed again when read
          break;
        }
        const from = first ? s : start;
        let j = ce - 1;
        let c = text.charCodeAt(j);
        while (c === 32 || c === 9) c = text.charCodeAt(--j);
        const continued = c === esc && (j === start || text.charCodeAt(j - 1) !== esc);
        const pieceEnd = continued ? j : ce;
        if (line === undefined) {
          line = {
            text: '',
            segs: [0, from],
            start: offset,
            lastLineStart: pos,
            lastLineEnd: ce,
            emptyLines: [],
            closed: false,
            analysis: undefined,
            bodies: [],
          };
          firstPiece = text.slice(from, pieceEnd);
        } else {
          line.segs.push(joinedLength, from);
          line.lastLineStart = pos;
          line.lastLineEnd = ce;
          (pieces ??= [firstPiece]).push(text.slice(from, pieceEnd));
        }
        joinedLength += pieceEnd - from;
        if (!continued) {
          line.closed = true;
          pos = next;
          break;
        }
      }
      pos = next;
      if (pos >= len) break;
      starts.push(pos);
      nl = text.indexOf('\n', pos);
      lineEnd = nl < 0 ? len : nl;
      next = nl < 0 ? len : nl + 1;
      if (isLongLine(text, pos, lineEnd)) {
        starts.pop(); // pushed again when the long line is read
        break; // an open instruction ends before a too-long line
      }
    }
    this.#next = pos;
    if (line === undefined) {
      this.#kind = Kind.Trivia;
      return;
    }
    line.text = pieces === undefined ? firstPiece : pieces.join('');
    this.#payload = line;
    this.#kind = Kind.Instruction;
    if (line.closed && line.text.includes('<<')) {
      const analysis = this.#detect(line.text);
      line.analysis = analysis;
      if (analysis.heredocs.length > 0) {
        this.#kind = Kind.HeredocInstruction;
        this.#pending = analysis.heredocs.slice();
        this.#pendingLine = line;
      }
    }
  }

  readonly matchers: Record<'rest' | 'long' | 'trivia' | 'instruction' | 'heredocInstruction', CustomPatternMatcherFunc> = {
    rest: (text, offset) => {
      if (this.#base + offset < this.#limit) return null;
      const m = this.#match;
      m[0] = text.slice(offset);
      m.payload = undefined;
      return m;
    },
    long: (_text, offset) => this.#lineMatch(this.#base + offset, Kind.Long),
    trivia: (_text, offset) => this.#lineMatch(this.#base + offset, Kind.Trivia),
    instruction: (_text, offset) => this.#lineMatch(this.#base + offset, Kind.Instruction),
    heredocInstruction: (_text, offset) => this.#lineMatch(this.#base + offset, Kind.HeredocInstruction),
  };

  #lineMatch(offset: number, kind: Kind): Match | null {
    this.#classify(offset);
    if (this.#kind !== kind) return null;
    const m = this.#match;
    m[0] = this.#text.slice(offset, this.#next);
    m.payload = this.#payload;
    return m;
  }

  /** Scans one heredoc body starting at `offset` for the first pending heredoc (once per offset). */
  #scanBody(offset: number): void {
    if (offset === this.#bodyAt) return;
    this.#bodyAt = offset;
    this.#at = -1;
    const text = this.#text;
    const req = this.#pending[0];
    const name = req?.name ?? '';
    const chomp = req?.chomp ?? false;
    let pos = offset;
    while (pos < text.length) {
      const nl = text.indexOf('\n', pos);
      const lineEnd = nl < 0 ? text.length : nl;
      const next = nl < 0 ? text.length : nl + 1;
      if (isLongLine(text, pos, lineEnd)) break; // BuildKit's scanner stops here
      this.#starts.push(pos);
      let ce = lineEnd;
      while (ce > pos) {
        const c = text.charCodeAt(ce - 1);
        if (c === 13 || c === 10) ce--;
        else break;
      }
      let s = pos;
      if (chomp) while (s < ce && text.charCodeAt(s) === 9) s++;
      if (ce - s === name.length && text.startsWith(name, s)) {
        this.#body = { start: offset, end: pos, terminated: true, terminatorStart: pos, terminatorEnd: ce };
        this.#bodyNext = next;
        return;
      }
      pos = next;
    }
    this.#body = { start: offset, end: pos, terminated: false, terminatorStart: pos, terminatorEnd: pos };
    this.#bodyNext = pos;
  }

  readonly bodyMatchers: Record<'body' | 'bodyLast', CustomPatternMatcherFunc> = {
    body: (_text, chunkOffset) => {
      const offset = this.#base + chunkOffset;
      this.#scanBody(offset);
      const body = this.#body!;
      if (!body.terminated || this.#pending.length <= 1) return null;
      this.#pending.shift();
      this.#pendingLine!.bodies.push(body);
      this.#bodyAt = -1;
      return this.#bodyResult(offset, body);
    },
    bodyLast: (_text, chunkOffset) => {
      const offset = this.#base + chunkOffset;
      this.#scanBody(offset);
      const body = this.#body!;
      this.#pending = [];
      this.#pendingLine!.bodies.push(body);
      this.#bodyAt = -1;
      return this.#bodyResult(offset, body);
    },
  };

  #bodyResult(offset: number, body: HeredocBodySpan): Match | null {
    const end = body.terminated ? this.#bodyNext : body.end;
    // An unterminated body may be empty (a long line follows): the empty match still pops the mode.
    const m = this.#match;
    m[0] = this.#text.slice(offset, end);
    m.payload = body;
    return m;
  }
}

// ---- token types ----

/** The one scanner behind the token matchers (runs are not reentrant: `tokenize` begins and finishes it). */
export const scanner = new LineScanner();

// White space (Go unicode.IsSpace) and the BOM, which may open the first line.
const SPACE_CODES = [9, 10, 11, 12, 13, 32, 0x85, 0xa0, 0x1680, 0x2000, 0x2028, 0x202f, 0x205f, 0x3000, 0xfeff];

/**
 * `start_chars_hint` for "any character": every Latin-1 code, plus one code per bucket of the
 * lexer's first-character table (Chevrotain groups codes above 255 in buckets of 255).
 */
function anyCharHint(except: number): number[] {
  const codes: number[] = [];
  for (let c = 0; c < 256; c++) if (c !== except) codes.push(c);
  for (let bucket = 1; bucket * 255 <= 0xffff; bucket++) codes.push(Math.max(256, bucket * 255));
  codes.push(0xffff);
  return codes;
}

const any = anyCharHint(-1);
const notHash = anyCharHint(35);
const lineGroup = (name: string, exec: CustomPatternMatcherFunc, hint: number[], extra: { push_mode?: string; pop_mode?: boolean } = {}): TokenType =>
  createToken({ name, pattern: { exec }, line_breaks: true, start_chars_hint: hint, ...extra });

const m = scanner.matchers;
const b = scanner.bodyMatchers;
/** Not a line group: the rest of a chunk's input, which ends a chunked `tokenize` (see lexer.ts); never parsed. */
export const RestOfChunk = lineGroup('RestOfChunk', m.rest, any);
export const LongLine = lineGroup('LongLine', m.long, any);
export const TriviaLines = lineGroup('TriviaLines', m.trivia, [35, ...SPACE_CODES]);
export const InstructionLines = lineGroup('InstructionLines', m.instruction, notHash);
export const HeredocInstructionLines = lineGroup('HeredocInstructionLines', m.heredocInstruction, notHash, { push_mode: 'heredoc' });
export const HeredocBody = lineGroup('HeredocBody', b.body, any);
export const HeredocBodyLast = lineGroup('HeredocBodyLast', b.bodyLast, any, { pop_mode: true });

/** Main-mode tokens, in matching order. */
export const mainModeTokens: readonly TokenType[] = [RestOfChunk, LongLine, TriviaLines, InstructionLines, HeredocInstructionLines];
/** Heredoc-mode tokens, in matching order. */
export const heredocModeTokens: readonly TokenType[] = [HeredocBody, HeredocBodyLast];
/** The token types the parser reads. */
export const allTokenTypes: readonly TokenType[] = [LongLine, TriviaLines, InstructionLines, HeredocInstructionLines, HeredocBody, HeredocBodyLast];
