import type { Diagnostic, Range } from './diagnostics.js';

/**
 * The line-level AST: what BuildKit's `parser` package produces (keyword, flags, argument list),
 * with source ranges. `src/parser/dump.ts` renders it in BuildKit's `Node.Dump()` format;
 * `src/parser/to-ast.ts` turns it into typed instructions.
 */

export interface RawHeredoc {
  /** The delimiter with quotes removed. */
  readonly name: string;
  /** The body: raw lines up to (not including) the terminator, each with its line ending. */
  readonly content: string;
  /** False when any part of the delimiter word was quoted: no variable expansion in the body. */
  readonly expand: boolean;
  /** `<<-`: leading tabs are stripped. */
  readonly chomp: boolean;
  /** A leading file descriptor (`3<<EOF`), else undefined. */
  readonly fileDescriptor?: number;
  readonly range: Range;
}

export interface RawFlag {
  /** As BuildKit keeps it: quotes removed, escapes resolved, e.g. `--from=builder`. */
  readonly text: string;
  readonly range: Range;
}

export interface RawInstruction {
  /** The keyword exactly as written (case preserved). */
  readonly keyword: string;
  readonly flags: readonly RawFlag[];
  /**
   * BuildKit's `Next` list values, by the per-instruction rules of line_parsers.go
   * (ENV/LABEL as key, value, separator triples). Empty for ONBUILD (see `child`).
   */
  readonly args: readonly string[];
  /** The argument list came from a JSON array (exec form). */
  readonly json: boolean;
  /** ONBUILD's nested instruction. */
  readonly child?: RawInstruction;
  readonly heredocs: readonly RawHeredoc[];
  /** The instruction's text as joined from its lines (continuations removed, comments dropped). */
  readonly original: string;
  /** The text after the keyword and flags, trimmed; what shell-form and single-argument rules use. */
  readonly rest: string;
  /** From the keyword to the end of the last consumed line (continuations and heredoc bodies included). */
  readonly range: Range;
  readonly keywordRange: Range;
  /** Where `rest` starts (first line) to where the instruction's line text ends. */
  readonly restRange: Range;
  /** 1-based, as BuildKit's StartLine/EndLine. */
  readonly startLine: number;
  readonly endLine: number;
}

export interface Directive {
  /** Lower-cased key. */
  readonly name: 'syntax' | 'escape' | 'check';
  readonly value: string;
  readonly range: Range;
}

export interface RawDockerfile {
  readonly directives: readonly Directive[];
  readonly escapeChar: '\\' | '`';
  readonly instructions: readonly RawInstruction[];
  /** Root span: first instruction's start line to last instruction's end line (0 when empty). */
  readonly startLine: number;
  readonly endLine: number;
}

export interface RawParseResult {
  readonly raw: RawDockerfile;
  /** Syntax errors (the file has no valid dump) and warnings such as empty continuation lines. */
  readonly diagnostics: readonly Diagnostic[];
}
