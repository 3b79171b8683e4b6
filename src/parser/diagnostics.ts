/**
 * Diagnostics are data. Positions are 1-based (line and column, column counted in UTF-16 code
 * units) with a 0-based `offset` into the source text; `end` is exclusive.
 */
export interface Position {
  readonly line: number;
  readonly column: number;
  readonly offset: number;
}

export interface Range {
  readonly start: Position;
  readonly end: Position;
}

export type Severity = 'error' | 'warning' | 'info';

export interface Diagnostic {
  /** Stable machine-readable code, e.g. `unknown-instruction`, `unknown-flag`, `lint/StageNameCasing`. */
  readonly code: string;
  readonly severity: Severity;
  readonly message: string;
  readonly range: Range;
  /** A "did you mean" replacement, when one is close enough. */
  readonly suggestion?: string;
  readonly url?: string;
  /** The file the diagnostic is about, when known. */
  readonly file?: string;
}

/** Turns a 0-based offset into a 1-based line/column position using a line-start index. */
export class LineIndex {
  readonly #starts: number[];
  constructor(readonly text: string) {
    const starts = [0];
    for (let i = 0; i < text.length; i++) {
      if (text.charCodeAt(i) === 10) starts.push(i + 1);
    }
    this.#starts = starts;
  }

  get lineCount(): number {
    return this.#starts.length;
  }

  position(offset: number): Position {
    const starts = this.#starts;
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: offset - starts[lo]! + 1, offset };
  }

  range(startOffset: number, endOffset: number): Range {
    return { start: this.position(startOffset), end: this.position(endOffset) };
  }

  /** The text of a 1-based line, without its line terminator. */
  lineText(line: number): string {
    const start = this.#starts[line - 1];
    if (start === undefined) return '';
    const next = this.#starts[line];
    let end = next === undefined ? this.text.length : next - 1;
    if (end > start && this.text.charCodeAt(end - 1) === 13) end--;
    return this.text.slice(start, end);
  }
}

/**
 * 1-based line/column positions, exactly as `LineIndex` gives them, from the line starts the
 * lexer collected while reading the text (so nothing scans the text for line breaks again).
 * Lookups are mostly in increasing order, so they start from the last line found.
 */
export class LinePositions {
  #last = 0;
  // The last two positions made: ranges next to each other share them (positions are immutable).
  #p1: Position | undefined;
  #p2: Position | undefined;
  constructor(
    readonly text: string,
    readonly starts: readonly number[],
  ) {}

  #lineIndex(offset: number): number {
    const st = this.starts;
    let i = this.#last;
    if (st[i]! <= offset) {
      for (let steps = 0; i + 1 < st.length && st[i + 1]! <= offset; steps++) {
        if (steps === 8) return (this.#last = this.#search(offset));
        i++;
      }
      return (this.#last = i);
    }
    for (let steps = 0; steps < 8 && i > 0; steps++) {
      i--;
      if (st[i]! <= offset) return (this.#last = i);
    }
    return (this.#last = this.#search(offset));
  }

  #search(offset: number): number {
    const st = this.starts;
    let lo = 0;
    let hi = st.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (st[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  line(offset: number): number {
    return this.#lineIndex(offset) + 1;
  }

  position(offset: number): Position {
    const p1 = this.#p1;
    if (p1 !== undefined && p1.offset === offset) return p1;
    const p2 = this.#p2;
    if (p2 !== undefined && p2.offset === offset) return p2;
    const i = this.#lineIndex(offset);
    const p = { line: i + 1, column: offset - this.starts[i]! + 1, offset };
    this.#p2 = p1;
    this.#p1 = p;
    return p;
  }

  range(start: number, end: number): Range {
    return { start: this.position(start), end: this.position(end) };
  }

  /** The text of a 1-based line without its line terminator, as `LineIndex.lineText`. */
  lineText(line: number): string {
    const start = this.starts[line - 1];
    if (start === undefined) return '';
    const next = this.starts[line];
    let end = next === undefined ? this.text.length : next - 1;
    if (end > start && this.text.charCodeAt(end - 1) === 13) end--;
    return this.text.slice(start, end);
  }
}

const byResult = new WeakMap<object, LinePositions>();

/** Records the line index `parseRaw` built for a result, so that `toAst` on the same text reuses it. */
export function rememberPositions(raw: object, positions: LinePositions): void {
  byResult.set(raw, positions);
}

/** The line index recorded for `raw`, when it was built for `source`. */
export function positionsFor(raw: object, source: string): LinePositions | undefined {
  const p = byResult.get(raw);
  return p !== undefined && p.text === source ? p : undefined;
}

export interface FormatOptions {
  /** File name shown in the header; defaults to `d.file` or `Dockerfile`. */
  readonly file?: string;
  /** Use ANSI colours. Default false. */
  readonly color?: boolean;
}

/**
 * Renders `file:line:col: severity: message`, the source line and a caret under the range,
 * the way esbuild and BuildKit do. The only place that knows how a diagnostic looks on a terminal.
 */
export function formatDiagnostic(d: Diagnostic, source: string, options: FormatOptions = {}): string {
  const file = options.file ?? d.file ?? 'Dockerfile';
  const index = new LineIndex(source);
  const { line, column } = d.range.start;
  const bold = (s: string) => (options.color ? `\x1b[1m${s}\x1b[0m` : s);
  const sev = options.color
    ? d.severity === 'error'
      ? `\x1b[31merror\x1b[0m`
      : d.severity === 'warning'
        ? `\x1b[33mwarning\x1b[0m`
        : 'info'
    : d.severity;
  const out: string[] = [`${bold(`${file}:${line}:${column}`)}: ${sev}: ${d.message}${d.code ? ` [${d.code}]` : ''}`];
  const text = index.lineText(line).replace(/\t/g, ' ');
  if (line >= 1 && line <= index.lineCount) {
    const gutter = String(line);
    const endCol = d.range.end.line === line ? Math.max(d.range.end.column, column + 1) : text.length + 1;
    const width = Math.max(1, Math.min(endCol, text.length + 1) - column);
    out.push(`  ${gutter} | ${text}`);
    out.push(`  ${' '.repeat(gutter.length)} | ${' '.repeat(Math.max(0, column - 1))}^${'~'.repeat(Math.max(0, width - 1))}`);
  }
  if (d.suggestion !== undefined && !d.message.includes('(did you mean ')) out.push(`  did you mean "${d.suggestion}"?`);
  if (d.url !== undefined) out.push(`  see ${d.url}`);
  return out.join('\n');
}
