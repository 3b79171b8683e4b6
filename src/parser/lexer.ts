import type { ILexingError, IToken, Lexer } from 'chevrotain';
import { chevrotain, heredocModeTokens, mainModeTokens, scanner, type HeredocDetector } from './tokens.js';

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

export interface LexResult {
  readonly tokens: IToken[];
  readonly errors: ILexingError[];
  /** Start offset of every line, as `LineIndex` computes them. */
  readonly lineStarts: number[];
}

/**
 * Splits `text` into line-group tokens. An instruction's token carries its `LogicalLine` as
 * `payload`; heredoc body tokens carry their `HeredocBodySpan`. `detect` is called for each
 * finished instruction containing `<<` and says which heredoc bodies follow.
 */
export function tokenize(text: string, escape: EscapeChar, detect: HeredocDetector): LexResult {
  const lex = getLexer();
  scanner.begin(text, escape.charCodeAt(0), detect);
  try {
    const result = lex.tokenize(text);
    return { tokens: result.tokens, errors: result.errors, lineStarts: scanner.lineStarts() };
  } finally {
    scanner.finish();
  }
}
