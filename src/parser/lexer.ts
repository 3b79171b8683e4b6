import type { ILexingError, IToken, Lexer } from 'chevrotain';
import { chevrotain, escapeTokenSets, type HeredocDetector } from './tokens.js';

export type EscapeChar = '\\' | '`';

const lexers = new Map<EscapeChar, Lexer>();

/** The Chevrotain lexer for one escape character, built on first use and cached. */
export function getLexer(escape: EscapeChar, options: { validate?: boolean } = {}): Lexer {
  let lexer = options.validate ? undefined : lexers.get(escape);
  if (lexer === undefined) {
    const set = escapeTokenSets[escape];
    lexer = new chevrotain.Lexer(
      { modes: { main: [...set.main], heredoc: [...set.heredoc] }, defaultMode: 'main' },
      {
        positionTracking: 'onlyOffset',
        skipValidations: !options.validate,
        ensureOptimizations: options.validate === true,
      },
    );
    if (!options.validate) lexers.set(escape, lexer);
  }
  return lexer;
}

export interface LexResult {
  readonly tokens: IToken[];
  readonly errors: ILexingError[];
  /** Start offset of every line, as `LineIndex` computes them. */
  readonly lineStarts: number[];
}

/**
 * Splits `text` into line tokens. Every token of an instruction carries the instruction's
 * `LogicalLine` as `payload`; heredoc body tokens carry their `HeredocBodySpan`. `detect` is
 * called for each finished instruction line containing `<<` and says which heredoc bodies follow.
 */
export function tokenize(text: string, escape: EscapeChar, detect: HeredocDetector): LexResult {
  const scanner = escapeTokenSets[escape].scanner;
  const lexer = getLexer(escape);
  scanner.begin(text, detect);
  try {
    const result = lexer.tokenize(text);
    return { tokens: result.tokens, errors: result.errors, lineStarts: scanner.lineStarts() };
  } finally {
    scanner.finish();
  }
}
