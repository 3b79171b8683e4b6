import type { Diagnostic, Range, Severity } from '../../parser/diagnostics.js';

/** Thrown inside the planner to stop at the first error (as BuildKit does); `planBuild` turns it into a diagnostic. */
export class PlanAbort extends Error {
  constructor(readonly diagnostic: Diagnostic) {
    super(diagnostic.message);
  }
}

export interface DiagnosticInput {
  readonly code: string;
  readonly message: string;
  readonly range: Range;
  readonly severity?: Severity;
  readonly suggestion?: string;
}

export function makeDiagnostic(d: DiagnosticInput, file: string | undefined): Diagnostic {
  return {
    code: d.code,
    severity: d.severity ?? 'error',
    message: d.message,
    range: d.range,
    ...(d.suggestion !== undefined ? { suggestion: d.suggestion } : {}),
    ...(file !== undefined ? { file } : {}),
  };
}

/** A zero-width range at the start of the file, for errors that concern no instruction. */
export const FILE_START: Range = { start: { line: 1, column: 1, offset: 0 }, end: { line: 1, column: 1, offset: 0 } };
