import type { Position, Range } from './diagnostics.js';

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
