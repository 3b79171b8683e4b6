import type { ILexingError, IToken, Lexer } from 'chevrotain';
import { chevrotain, heredocModeTokens, mainModeTokens, RestOfChunk, scanner, type HeredocDetector } from './tokens.js';

export type EscapeChar = '\\' | '`';

let lexer: Lexer | undefined;

/**
 * The Chevrotain lexer, built on first use and cached (the escape character is a parameter of
 * each run, see tokens.ts). `validate` builds a fresh one with Chevrotain's definition checks and
 * first-character optimizations enforced, for tests.
 */
export function getLexer(options: { validate?: boolean } = {}): Lexer {
  if (!options.validate && lexer !== undefined) return lexer;
  const built = new chevrotain.Lexer(
    { modes: { main: [...mainModeTokens], heredoc: [...heredocModeTokens] }, defaultMode: 'main' },
    {
      positionTracking: 'onlyOffset',
      skipValidations: !options.validate,
      ensureOptimizations: options.validate === true,
    },
  );
  if (!options.validate) lexer = built;
  return built;
}

/** One chunk of tokens. Token offsets are relative to `base`; payload offsets are absolute. */
export interface LexChunk {
  readonly tokens: IToken[];
  readonly errors: ILexingError[];
  /** Source offset of the chunk's first token. */
  readonly base: number;
  /** Source offset after the chunk's last token: the next chunk's `base`, or the text length. */
  readonly end: number;
}

/**
 * Characters of text per chunk. The lexer, the parser and the conversion to raw instructions run
 * one chunk at a time, so that the tokens, the CST and the joined lines of a chunk are garbage
 * before the next chunk is read (they die young instead of growing the old generation with the
 * file's size). A chunk ends at the first token boundary in the main mode after this many
 * characters: always between two line groups, never inside an instruction or its heredocs.
 */
export const CHUNK_CHARS = 64 * 1024;

/**
 * Splits `text` into line-group tokens, `chunkChars` characters (and up to the end of a line group)
 * at a time, and calls `onChunk` for each chunk in order. An instruction's token carries its
 * `LogicalLine` as `payload`; heredoc body tokens carry their `HeredocBodySpan`. `detect` is called
 * for each finished instruction containing `<<` and says which heredoc bodies follow. `lineStarts`
 * (the same array on every call) holds the start offset of every line read so far, as `LineIndex`
 * computes them; complete when the last chunk is passed.
 */
export function tokenizeChunks(
  text: string,
  escape: EscapeChar,
  detect: HeredocDetector,
  onChunk: (chunk: LexChunk, lineStarts: readonly number[]) => void,
  chunkChars = CHUNK_CHARS,
): void {
  const lex = getLexer();
  const starts = scanner.begin(text, escape.charCodeAt(0), detect);
  try {
    let base = 0;
    do {
      scanner.chunk(base, base + chunkChars);
      const result = lex.tokenize(base === 0 ? text : text.slice(base));
      const tokens = result.tokens;
      let end = text.length;
      const last = tokens[tokens.length - 1];
      if (last !== undefined && last.tokenType === RestOfChunk) {
        tokens.pop();
        end = base + last.startOffset;
      }
      if (end === text.length) scanner.lineStarts();
      onChunk({ tokens, errors: result.errors, base, end }, starts);
      base = end;
    } while (base < text.length);
  } finally {
    scanner.finish();
  }
}
