import { writeSync } from 'node:fs';
import { Writable } from 'node:stream';
import type { CliContext, Command } from './context.js';
import { UsageError } from './context.js';
import { describeError as describe } from '../errors.js';
import { deferExtraCaCertificates } from '../util/extra-ca.js';

/** Subcommand name → module under ./commands exporting `run: Command`. Loaded lazily so `tsbuild parse` stays fast. */
const COMMANDS: Record<string, () => Promise<{ run: Command }>> = {
  build: () => import('./commands/build.js'),
  parse: () => import('./commands/parse.js'),
  graph: () => import('./commands/graph.js'),
  lint: () => import('./commands/lint.js'),
  pull: () => import('./commands/pull.js'),
  push: () => import('./commands/push.js'),
  images: () => import('./commands/images.js'),
  inspect: () => import('./commands/inspect.js'),
  tag: () => import('./commands/tag.js'),
  rmi: () => import('./commands/rmi.js'),
  run: () => import('./commands/run.js'),
  prune: () => import('./commands/prune.js'),
  du: () => import('./commands/du.js'),
};

const USAGE = `Usage: tsbuild [build] [OPTIONS] PATH | tsbuild COMMAND [OPTIONS]

Commands:
  build     Build an image from a Dockerfile (the default: tsbuild -t name:tag .)
  parse     Parse Dockerfiles and print their AST (json) or BuildKit's dump (buildkit)
  graph     Print the stage graph (dot, mermaid, json)
  lint      Check Dockerfiles with BuildKit's check rules
  pull      Pull an image from a registry into the local store
  push      Push an image from the local store to a registry
  images    List images in the local store
  inspect   Show an image's manifest and config
  tag       Tag an image in the local store
  rmi       Remove image tags from the local store
  run       Run a command in a sandbox over an image
  prune     Remove build cache
  du        Show cache and store disk usage

Global options (before the command):
  --root DIR  Store, cache and runtime root for any command (env TSBUILD_ROOT)

Run 'tsbuild COMMAND --help' for more information on a command.
`;

export async function main(argv: string[], ctx: CliContext): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    (first === undefined ? ctx.stderr : ctx.stdout).write(USAGE);
    return first === undefined ? 2 : 0;
  }
  if (first === '--version' || first === '-v') {
    ctx.stdout.write(`tsbuild ${await version()}\n`);
    return 0;
  }
  // `--root DIR` before the command (`tsbuild --root /data pull …`) is for every command, as
  // docker's global flags are: it is what TSBUILD_ROOT says, and a command's own --root wins.
  const root = leadingRoot(argv);
  if (root) return main(root.rest, { ...ctx, env: { ...ctx.env, TSBUILD_ROOT: root.dir } });
  const load = COMMANDS[first];
  const [name, args] = load ? [first, rest] : ['build', argv];
  try {
    const mod = await COMMANDS[name]!();
    return await mod.run(args, ctx);
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || (err as { code?: string }).code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' || (err as { code?: string }).code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
      ctx.stderr.write(`tsbuild ${name}: ${(err as Error).message}\n`);
      return 2;
    }
    ctx.stderr.write(`tsbuild ${name}: ${describe(err)}\n`);
    return 1;
  }
}

/** A leading `--root DIR` / `--root=DIR`, and the arguments after it. */
function leadingRoot(argv: string[]): { dir: string; rest: string[] } | undefined {
  const [first, second] = argv;
  if (first === '--root' && second !== undefined && !second.startsWith('-')) return { dir: second, rest: argv.slice(2) };
  if (first?.startsWith('--root=') && first.length > '--root='.length) return { dir: first.slice('--root='.length), rest: argv.slice(1) };
  return undefined;
}

async function version(): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  const { packageFile } = await import('../util/package-root.js');
  const pkg = JSON.parse(await readFile(packageFile('package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

/** Runs the CLI against the real process. */
export async function runProcess(): Promise<void> {
  const controller = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(130);
    controller.abort(new Error(`interrupted by ${sig}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // A bug that escapes every handler: say so in one message with the stack, not node's dump of
  // the bundled source line (a whole module on one line).
  const internal = (err: unknown) => {
    const text = err instanceof Error ? (err.stack ?? `${err.name}: ${err.message}`) : String(err);
    process.stderr.write(`tsbuild: internal error (a bug in tsbuild; please report it with the command line):\n${text}\n`);
    process.exit(1);
  };
  process.on('uncaughtException', internal);
  process.on('unhandledRejection', internal);
  // The `tsbuild` command started node without NODE_EXTRA_CA_CERTS (util/extra-ca.ts): TLS
  // connections read the file when they need it, child processes see the variable as it was.
  const deferredCa = process.env.TSBUILD_NODE_EXTRA_CA_CERTS;
  if (deferredCa !== undefined) {
    delete process.env.TSBUILD_NODE_EXTRA_CA_CERTS;
    process.env.NODE_EXTRA_CA_CERTS = deferredCa;
    deferExtraCaCertificates(deferredCa);
  }
  // The standard streams are made on first use: a build writes to stderr only, and reads stdin
  // only for `-f -`; and output goes out through writeSync until a command asks whether it is a
  // terminal (see `stdioWriter`).
  let stdout: ReturnType<typeof stdioWriter> | undefined;
  let stderr: ReturnType<typeof stdioWriter> | undefined;
  const errorOutput = () => (stderr ??= stdioWriter(2, () => process.stderr));
  // Output that could not be written (other than to a closed pipe): said once, and the command
  // fails. Nothing can be said of standard error's own failure; it fails the command too.
  let lost = false;
  const code = await main(process.argv.slice(2), {
    get stdout() {
      return (stdout ??= stdioWriter(1, () => process.stdout, (err) => {
        lost = true;
        errorOutput().write(`tsbuild: cannot write to standard output: ${err.message}\n`);
      }));
    },
    get stderr() {
      return errorOutput();
    },
    get stdin() {
      return process.stdin;
    },
    stdinFd: 0,
    env: process.env,
    cwd: process.cwd(),
    signal: controller.signal,
  });
  process.exitCode = code === 0 && (lost || stderr?.failed) ? 1 : code;
}

/**
 * Standard output or error as a stream that writes with `writeSync` on the descriptor. Node
 * builds `process.stdout` / `process.stderr` when first asked for, loading the tty or net
 * module for it: 4-6 ms per stream, as much as the rest of a no-op rebuild's output. The real
 * stream is made only when a command asks whether the output is a terminal (`isTTY`, `columns`),
 * or when the descriptor refuses a synchronous write (EAGAIN: a non-blocking pipe); everything
 * goes through it from then on, after what was already written.
 *
 * A failed write never becomes the stream's 'error' (no command listens for it, and an 'error'
 * nobody listens to ends the process as an internal error): the rest of the output is dropped.
 * EPIPE, the reader gone (`tsbuild graph … | head -1`), is quiet, as a shell pipeline expects;
 * any other failure is passed to `onFailure` once.
 */
function stdioWriter(
  fd: 1 | 2,
  real: () => NodeJS.WriteStream,
  onFailure?: (err: NodeJS.ErrnoException) => void,
): Writable & { readonly isTTY?: boolean; readonly columns?: number; readonly failed: boolean } {
  let stream: NodeJS.WriteStream | undefined;
  let closed = false;
  let failed = false;
  const realStream = (): NodeJS.WriteStream => {
    if (stream) return stream;
    stream = real();
    // Its failures come to the write callbacks below as well; this keeps them from ending the process.
    stream.on('error', () => {});
    return stream;
  };
  const fail = (err: NodeJS.ErrnoException, cb: () => void): void => {
    if (!closed) {
      closed = true;
      if (err.code !== 'EPIPE') {
        failed = true;
        onFailure?.(err);
      }
    }
    cb();
  };
  const w = new Writable({
    write(chunk: Buffer, _encoding, cb) {
      if (closed) return cb();
      if (stream) {
        stream.write(chunk, (err) => (err ? fail(err, cb) : cb()));
        return;
      }
      let at = 0;
      try {
        while (at < chunk.length) at += writeSync(fd, chunk, at);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') return fail(err as NodeJS.ErrnoException, cb);
        realStream().write(chunk.subarray(at), (e) => (e ? fail(e, cb) : cb()));
        return;
      }
      cb();
    },
  });
  Object.defineProperties(w, {
    isTTY: { get: () => realStream().isTTY },
    columns: { get: () => realStream().columns },
    failed: { get: () => failed },
  });
  return w as Writable & { readonly isTTY?: boolean; readonly columns?: number; readonly failed: boolean };
}
