import type { CstNode, IToken } from 'chevrotain';
import {
  chevrotain,
  allTokenTypes,
  BlankLine,
  CommentLine,
  ContinuationLine,
  HeredocBody,
  HeredocBodyLast,
  HeredocTextLine,
  LongLine,
  TextLine,
} from './tokens.js';

/**
 * The line grammar. Tokens are physical lines (see tokens.ts), so the grammar only groups them:
 *
 * ```
 * dockerfile  := (instruction | BlankLine | CommentLine | LongLine)*
 * instruction := ContinuationLine (ContinuationLine | CommentLine | BlankLine)* lastLine?
 *              | lastLine
 * lastLine    := TextLine | HeredocTextLine HeredocBody* HeredocBodyLast?
 * ```
 *
 * An instruction still continued at the end of the file (or before a too-long line) has no
 * `lastLine`, as in BuildKit. Argument rules per instruction are applied in code (raw.ts).
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

  readonly dockerfile = this.RULE('dockerfile', () => {
    this.MANY(() => {
      this.OR([
        { ALT: () => this.SUBRULE(this.instruction) },
        { ALT: () => this.CONSUME(BlankLine) },
        { ALT: () => this.CONSUME(CommentLine) },
        { ALT: () => this.CONSUME(LongLine) },
      ]);
    });
  });

  readonly instruction = this.RULE('instruction', () => {
    this.OR([
      {
        ALT: () => {
          this.CONSUME(ContinuationLine);
          this.MANY(() => {
            this.OR2([
              { ALT: () => this.CONSUME2(ContinuationLine) },
              { ALT: () => this.CONSUME2(CommentLine) },
              { ALT: () => this.CONSUME2(BlankLine) },
            ]);
          });
          this.OPTION(() => this.SUBRULE(this.lastLine));
        },
      },
      { ALT: () => this.SUBRULE2(this.lastLine) },
    ]);
  });

  readonly lastLine = this.RULE('lastLine', () => {
    this.OR([
      { ALT: () => this.CONSUME(TextLine) },
      {
        ALT: () => {
          this.CONSUME(HeredocTextLine);
          this.MANY(() => this.CONSUME(HeredocBody));
          this.OPTION(() => this.CONSUME(HeredocBodyLast));
        },
      },
    ]);
  });
}

let instance: DockerfileLineParser | undefined;

/** The shared parser (grammar analysed once; `parser.input = tokens` resets it for each run). */
export function getParser(): DockerfileLineParser {
  instance ??= new DockerfileLineParser();
  return instance;
}

/** Runs the shared parser over line tokens. */
export function parseLines(tokens: IToken[]): { cst: CstNode; errors: DockerfileLineParser['errors'] } {
  const parser = getParser();
  parser.input = tokens;
  const cst = parser.dockerfile();
  return { cst, errors: parser.errors };
}
