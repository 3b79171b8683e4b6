/** Base class for every error tsbuild throws: a stable `code`, a message, and the wrapped `cause`. */
export class TsbuildError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** An error's message followed by each cause's message that it does not already contain. */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  let s = err.message;
  let cause = err.cause;
  while (cause instanceof Error) {
    if (!s.includes(cause.message)) s += `: ${cause.message}`;
    cause = cause.cause;
  }
  return s;
}
