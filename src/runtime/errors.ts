import { TsbuildError } from '../errors.js';

/** The sandbox helper is missing or cannot start (not built at install, not Linux, no namespaces). */
export class RuntimeUnavailableError extends TsbuildError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('TSBUILD_RUNTIME_UNAVAILABLE', message, options);
  }
}

/** The sandbox could not be set up (a mount, a namespace, the user switch); the command did not run. */
export class SandboxSetupError extends TsbuildError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('TSBUILD_RUNTIME_SETUP', message, options);
  }
}

/** The run was aborted through its AbortSignal; the whole namespace was killed. */
export class SandboxAbortedError extends TsbuildError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('TSBUILD_RUNTIME_ABORTED', message, options);
  }
}

/** The run exceeded `timeoutMs`; the whole namespace was killed. */
export class SandboxTimeoutError extends TsbuildError {
  readonly timeoutMs: number;
  constructor(timeoutMs: number) {
    super('TSBUILD_RUNTIME_TIMEOUT', `the command did not finish within ${timeoutMs} ms and was killed`);
    this.timeoutMs = timeoutMs;
  }
}

/** A USER that the image's /etc/passwd or /etc/group does not define. */
export class UserResolutionError extends TsbuildError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('TSBUILD_RUNTIME_USER', message, options);
  }
}

/** A mount that cannot be set up as asked (a missing secret, a bad target, a busy cache). */
export class MountError extends TsbuildError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('TSBUILD_RUNTIME_MOUNT', message, options);
  }
}
