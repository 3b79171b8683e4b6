/** Base class for every error tsbuild throws: a stable `code`, a message, and the wrapped `cause`. */
export class TsbuildError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}
