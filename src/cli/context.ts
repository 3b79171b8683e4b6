import type { Readable, Writable } from 'node:stream';
import { parseAddHost, type ExtraHost } from '../runtime/spec.js';

/** Everything a command may touch of the outside world. Built by `cli/main.ts`, the only file that reads `process`. */
export interface CliContext {
  readonly stdout: Writable & { isTTY?: boolean; columns?: number };
  readonly stderr: Writable & { isTTY?: boolean; columns?: number };
  readonly stdin: Readable;
  /**
   * The descriptor `stdin` reads, when it is the process's own (0): a sandboxed command given it
   * reads it directly, whatever it is (a file, a pipe, a terminal), as `docker run -i` does.
   */
  readonly stdinFd?: number;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  /** Aborted on SIGINT/SIGTERM. */
  readonly signal: AbortSignal;
}

/** A subcommand: parses its own argv (after the subcommand name) and returns the exit code. */
export type Command = (argv: string[], ctx: CliContext) => Promise<number>;

/** A usage error: printed with the command's usage, exit code 2. */
export class UsageError extends Error {
  readonly code = 'TSBUILD_USAGE';
}

/** The store root: `--root`, else `TSBUILD_ROOT`, else `$XDG_DATA_HOME/tsbuild` or `~/.local/share/tsbuild`. */
export function resolveRoot(flag: string | undefined, ctx: CliContext): string {
  if (flag) return flag;
  const env = ctx.env;
  if (env.TSBUILD_ROOT) return env.TSBUILD_ROOT;
  const base = env.XDG_DATA_HOME || `${env.HOME ?? '/root'}/.local/share`;
  return `${base}/tsbuild`;
}

/** `--add-host host:ip|host=ip` values (of `build` and `run`) → their entries; a bad value is a usage error naming it. */
export function addHostFlags(values: readonly string[] | undefined): ExtraHost[] {
  return (values ?? []).flatMap((value) => {
    try {
      return parseAddHost(value);
    } catch (err) {
      throw new UsageError(`--add-host: ${(err as Error).message}`);
    }
  });
}
