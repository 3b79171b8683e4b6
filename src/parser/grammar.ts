import type { CstNode, IToken } from 'chevrotain';
import {
  chevrotain,
  allTokenTypes,
  HeredocBody,
  HeredocBodyLast,
  HeredocInstructionLines,
  InstructionLines,
  LongLine,
  TriviaLines,
} from './tokens.js';

/**
 * The grammar over line-group tokens (see tokens.ts):
 *
 * ```
 * dockerfile  := (instruction | TriviaLines | LongLine)*
 * instruction := InstructionLines | HeredocInstructionLines HeredocBody* HeredocBodyLast?
 * ```
 *
 * Argument rules per instruction are applied in code (raw.ts).
 */
const { CstParser } = chevrotain;

export class DockerfileLineParser extends CstParser {
  constructor(options: { validate?: boolean } = {}) {
    super(allTokenTypes as never, {
      skipValidations: !options.validate,
      maxLookahead: 1,
      recoveryEnabled: false,
    });
    this.performSelfAnalysis();
  }

  // Arrays of alternatives are made once, not on every OR (Chevrotain's performance guide).
  readonly #topLevel = [
    { ALT: () => this.SUBRULE(this.instruction) },
    { ALT: () => this.CONSUME(TriviaLines) },
    { ALT: () => this.CONSUME(LongLine) },
  ];

  readonly #instructionForms = [
    { ALT: () => this.CONSUME(InstructionLines) },
    {
      ALT: () => {
        this.CONSUME(HeredocInstructionLines);
        this.MANY(this.#body);
        this.OPTION(this.#lastBody);
      },
    },
  ];

  readonly #body = (): void => {
    this.CONSUME(HeredocBody);
  };

  readonly #lastBody = (): void => {
    this.CONSUME(HeredocBodyLast);
  };

  readonly dockerfile = this.RULE('dockerfile', () => {
    this.MANY(() => {
      this.OR(this.#topLevel);
    });
  });

  readonly instruction = this.RULE('instruction', () => {
    this.OR(this.#instructionForms);
  });
}

let instance: DockerfileLineParser | undefined;

/** The Chevrotain parser of the line grammar (grammar analysed once; `parser.input = tokens` resets it for each run). */
export function getParser(): DockerfileLineParser {
  instance ??= new DockerfileLineParser();
  return instance;
}

/** A token sequence the line grammar does not accept (cannot come out of the lexer, whose modes follow the grammar). */
export interface LineGrammarError {
  readonly message: string;
  readonly token: IToken;
}

/** Groups line tokens into instructions with the Chevrotain parser (one instance, reset by `input`). */
export function parseLines(tokens: IToken[]): { cst: CstNode; errors: readonly LineGrammarError[] } {
  const parser = getParser();
  parser.input = tokens;
  const cst = parser.dockerfile();
  return { cst, errors: parser.errors };
}
