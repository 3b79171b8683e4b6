import type { CstNode, IToken, TokenType } from 'chevrotain';
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

const enum Kind {
  Blank,
  Comment,
  Continuation,
  Text,
  HeredocText,
  Long,
  Body,
  BodyLast,
}

const CATEGORY_KIND = new Map<TokenType, Kind>([
  [BlankLine, Kind.Blank],
  [CommentLine, Kind.Comment],
  [ContinuationLine, Kind.Continuation],
  [TextLine, Kind.Text],
  [HeredocTextLine, Kind.HeredocText],
  [LongLine, Kind.Long],
  [HeredocBody, Kind.Body],
  [HeredocBodyLast, Kind.BodyLast],
]);

/** Concrete token type → the kind of its category. */
const kinds = new Map<TokenType, Kind>();
for (const t of allTokenTypes) {
  const cat = t.CATEGORIES?.[0];
  const k = cat !== undefined ? CATEGORY_KIND.get(cat) : CATEGORY_KIND.get(t);
  if (k !== undefined) kinds.set(t, k);
}

const CATEGORY_NAME = ['BlankLine', 'CommentLine', 'ContinuationLine', 'TextLine', 'HeredocTextLine', 'LongLine', 'HeredocBody', 'HeredocBodyLast'] as const;

function node(name: string): CstNode {
  return { name, children: {} };
}

function push(n: CstNode, key: string, el: IToken | CstNode): void {
  (n.children[key] ??= [] as never).push(el as never);
}

/**
 * The line grammar above, run by hand: the same CST (`dockerfile` → `instruction` → `lastLine`,
 * tokens under their category names) that {@link DockerfileLineParser} builds, without the
 * parser's start-up grammar analysis (about 10 ms of the first parse) or its per-token
 * bookkeeping (about 14% of the parse time of a large file). {@link parseLinesChevrotain} is the
 * reference: the two gave identical CSTs and errors on every conformance input when this was written.
 */
export function groupLines(tokens: readonly IToken[]): { cst: CstNode; errors: LineGrammarError[] } {
  const root = node('dockerfile');
  const n = tokens.length;
  const kind = (i: number): Kind | undefined => (i < n ? kinds.get(tokens[i]!.tokenType) : undefined);
  let i = 0;
  /** lastLine := TextLine | HeredocTextLine HeredocBody* HeredocBodyLast? — at a Text or HeredocText token. */
  const lastLine = (): CstNode => {
    const last = node('lastLine');
    const k = kind(i);
    push(last, CATEGORY_NAME[k!], tokens[i++]!);
    if (k === Kind.HeredocText) {
      while (kind(i) === Kind.Body) push(last, 'HeredocBody', tokens[i++]!);
      if (kind(i) === Kind.BodyLast) push(last, 'HeredocBodyLast', tokens[i++]!);
    }
    return last;
  };
  while (i < n) {
    const k = kind(i);
    if (k === Kind.Blank || k === Kind.Comment || k === Kind.Long) {
      push(root, CATEGORY_NAME[k], tokens[i++]!);
    } else if (k === Kind.Continuation) {
      const ins = node('instruction');
      push(ins, 'ContinuationLine', tokens[i++]!);
      for (let m = kind(i); m === Kind.Continuation || m === Kind.Comment || m === Kind.Blank; m = kind(i)) push(ins, CATEGORY_NAME[m], tokens[i++]!);
      const m = kind(i);
      if (m === Kind.Text || m === Kind.HeredocText) push(ins, 'lastLine', lastLine());
      push(root, 'instruction', ins);
    } else if (k === Kind.Text || k === Kind.HeredocText) {
      const ins = node('instruction');
      push(ins, 'lastLine', lastLine());
      push(root, 'instruction', ins);
    } else {
      const t = tokens[i]!;
      return { cst: root, errors: [{ message: `Redundant input, expecting EOF but found: ${t.image}`, token: t }] };
    }
  }
  return { cst: root, errors: [] };
}

/** Groups line tokens into instructions (see {@link groupLines}). */
export function parseLines(tokens: IToken[]): { cst: CstNode; errors: readonly LineGrammarError[] } {
  return groupLines(tokens);
}

/** The same through Chevrotain's parser: the reference {@link groupLines} is checked against. */
export function parseLinesChevrotain(tokens: IToken[]): { cst: CstNode; errors: readonly LineGrammarError[] } {
  const parser = getParser();
  parser.input = tokens;
  const cst = parser.dockerfile();
  return { cst, errors: parser.errors };
}
