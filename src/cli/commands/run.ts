import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { addHostFlags, resolveRoot, UsageError, type CliContext, type Command } from '../context.js';
import { SnapshotStore } from '../../builder/snapshots.js';
import { TsbuildError } from '../../errors.js';
import { loadManifest, selectImage } from '../../oci/image.js';
import { parsePlatform } from '../../oci/platform.js';
import { Store } from '../../oci/store.js';
import { createRuntime, resolveUser, SandboxAbortedError, type BindMount, type NetworkMode } from '../../runtime/index.js';
import { describeError as describe } from '../../errors.js';

const USAGE = `Usage: tsbuild run [OPTIONS] IMAGE [COMMAND] [ARG...]

Run a command in a sandbox over an image from the local store. The image's layers are the
read-only lower layers of an overlay; writes go to a throwaway upper layer, removed when the
command ends. Entrypoint, Cmd, Env, WorkingDir and User come from the image's config;
COMMAND and ARGs replace its Cmd. stdout and stderr are streamed.

Options:
      --add-host list       Add a custom host-to-IP mapping (host:ip; repeatable; host-gateway is 127.0.0.1)
      --entrypoint string   Overwrite the default ENTRYPOINT of the image ("" clears it)
  -e, --env list            Set environment variables (KEY=VALUE, or KEY to pass this environment's value)
      --env-file list       Read in a file of environment variables (KEY=VALUE lines, # comments)
  -h, --hostname string     Container host name (default "tsbuild")
  -i, --interactive         Keep STDIN open: the command reads this command's standard input
      --network string      Network: host (default: the host's network) or none (only lo)
      --platform string     Pick this platform from a multi-platform image (default: the host)
      --rm                  Accepted for docker compatibility: the container is always removed
  -t, --tty                 Refused: tsbuild has no pseudo-terminal for the command (use -i)
  -u, --user string         Username or UID (format: <name|uid>[:<group|gid>])
  -v, --volume list         Bind mount a host path: HOST:CONTAINER[:ro|rw] (HOST absolute or ./relative)
  -w, --workdir string      Working directory inside the container
      --root string         tsbuild root directory (default $TSBUILD_ROOT or ~/.local/share/tsbuild)
      --help                Show this help

Exit status: the command's; 125 when tsbuild could not run it (unknown image, bad mount,
sandbox setup); 126 when the command cannot be invoked; 127 when it is not found.
`;

const OPTIONS = {
  'add-host': { type: 'string', multiple: true },
  entrypoint: { type: 'string' },
  env: { type: 'string', short: 'e', multiple: true },
  'env-file': { type: 'string', multiple: true },
  hostname: { type: 'string', short: 'h' },
  interactive: { type: 'boolean', short: 'i' },
  tty: { type: 'boolean', short: 't' },
  network: { type: 'string' },
  net: { type: 'string' },
  platform: { type: 'string' },
  rm: { type: 'boolean' },
  user: { type: 'string', short: 'u' },
  volume: { type: 'string', short: 'v', multiple: true },
  workdir: { type: 'string', short: 'w' },
  root: { type: 'string' },
  help: { type: 'boolean' },
} as const;

/** Docker's default PATH, set when the image's Env has none. */
const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** A failure of tsbuild itself (not of the command): exit 125, like `docker run`. */
class RunSetupError extends TsbuildError {}

/**
 * Splits argv at IMAGE: options come before it, everything after it is the command (so
 * `tsbuild run busybox ls -la` passes `-la` to ls), as `docker run` does.
 */
export function splitAtImage(argv: readonly string[]): { options: string[]; image: string | undefined; command: string[] } {
  const takesValue = new Set<string>();
  for (const [name, o] of Object.entries(OPTIONS)) {
    if (o.type !== 'string') continue;
    takesValue.add(`--${name}`);
    if ('short' in o) takesValue.add(`-${o.short}`);
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') return { options: argv.slice(0, i), image: argv[i + 1], command: argv.slice(i + 2) };
    if (a.startsWith('-') && a !== '-') {
      if (takesValue.has(a)) i++; // `--env X`, `-e X`; `--env=X` and `-eX` carry their value
      continue;
    }
    return { options: argv.slice(0, i), image: a, command: argv.slice(i + 1) };
  }
  return { options: [...argv], image: undefined, command: [] };
}

/** `KEY=VALUE` → itself; `KEY` → `KEY=<value in env>`, or nothing when unset (docker's rule). */
function envEntry(text: string, env: CliContext['env']): string | undefined {
  if (text.includes('=')) {
    if (text.startsWith('=')) throw new UsageError(`invalid environment variable ${JSON.stringify(text)}: the name is empty`);
    return text;
  }
  if (text === '') throw new UsageError('invalid environment variable "": the name is empty');
  const v = env[text];
  return v === undefined ? undefined : `${text}=${v}`;
}

async function readEnvFile(file: string, ctx: CliContext): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(path.resolve(ctx.cwd, file), 'utf8');
  } catch (cause) {
    throw new RunSetupError('TSBUILD_RUN_ENV_FILE', `cannot read env file ${file}: ${(cause as Error).message}`, { cause });
  }
  const out: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/^\s+/, '');
    if (line === '' || line.startsWith('#')) return;
    const name = line.split('=')[0]!;
    if (/\s/.test(name)) throw new UsageError(`${file}:${i + 1}: variable name ${JSON.stringify(name)} contains whitespace`);
    const e = envEntry(line, ctx.env);
    if (e !== undefined) out.push(e);
  });
  return out;
}

/** Later entries override earlier ones with the same name; order of first appearance is kept. */
function mergeEnv(...lists: readonly (readonly string[])[]): string[] {
  const byName = new Map<string, string>();
  for (const list of lists) {
    for (const e of list) {
      const eq = e.indexOf('=');
      byName.set(eq < 0 ? e : e.slice(0, eq), e);
    }
  }
  return [...byName.values()];
}

/** `-v HOST:CONTAINER[:ro|rw]` → a bind mount; the host path must exist. */
async function parseVolume(text: string, ctx: CliContext): Promise<BindMount> {
  const parts = text.split(':');
  if (parts.length < 2 || parts.length > 3 || parts[0] === '' || parts[1] === '') {
    throw new UsageError(`invalid volume ${JSON.stringify(text)}: want HOST:CONTAINER[:ro|rw] (named and anonymous volumes are not supported)`);
  }
  const [host, target, mode = 'rw'] = parts as [string, string, string?];
  if (!host.startsWith('/') && !host.startsWith('.')) {
    throw new UsageError(`invalid volume ${JSON.stringify(text)}: ${JSON.stringify(host)} is not a path; named volumes are not supported (give an absolute or ./relative host path)`);
  }
  if (!target.startsWith('/')) throw new UsageError(`invalid volume ${JSON.stringify(text)}: the container path ${JSON.stringify(target)} must be absolute`);
  const opts = mode.split(',');
  for (const o of opts) {
    if (o !== 'ro' && o !== 'rw') throw new UsageError(`invalid volume ${JSON.stringify(text)}: unknown option ${JSON.stringify(o)} (want ro or rw)`);
  }
  const source = path.resolve(ctx.cwd, host);
  try {
    await stat(source);
  } catch (cause) {
    throw new RunSetupError('TSBUILD_RUN_VOLUME', `volume ${text}: host path ${source} does not exist`, { cause });
  }
  const readwrite = !opts.includes('ro');
  return { type: 'bind', source, target, readwrite, writeThrough: readwrite };
}

function parseNetwork(value: string | undefined): NetworkMode {
  if (value === undefined || value === 'host' || value === 'default') return 'host';
  if (value === 'none') return 'none';
  throw new UsageError(`unsupported --network ${JSON.stringify(value)}: want host or none (tsbuild has no bridge networking)`);
}


export const run: Command = async (argv, ctx) => {
  const split = splitAtImage(argv);
  const { values } = parseArgs({ args: split.options, options: OPTIONS, allowPositionals: false });
  if (values.help) {
    ctx.stdout.write(USAGE);
    return 0;
  }
  if (split.image === undefined) throw new UsageError(`"run" requires at least 1 argument: IMAGE\n\n${USAGE}`);
  const imageName = split.image;
  if (values.tty) throw new UsageError('-t/--tty is not supported: tsbuild gives the command no pseudo-terminal; -i passes standard input through');
  if (values.workdir !== undefined && !values.workdir.startsWith('/')) {
    throw new UsageError(`the working directory ${JSON.stringify(values.workdir)} is invalid: it needs to be an absolute path`);
  }
  if (values.network !== undefined && values.net !== undefined && values.network !== values.net) throw new UsageError('--network and --net disagree');
  const network = parseNetwork(values.network ?? values.net);
  const platform = values.platform ? parsePlatform(values.platform) : undefined;
  const extraHosts = addHostFlags(values['add-host']);
  const cliEnv = (values.env ?? []).map((e) => envEntry(e, ctx.env)).filter((e): e is string => e !== undefined);

  const root = path.resolve(ctx.cwd, resolveRoot(values.root, ctx));
  try {
    const volumes = await Promise.all((values.volume ?? []).map((v) => parseVolume(v, ctx)));
    const fileEnv: string[] = [];
    for (const f of values['env-file'] ?? []) fileEnv.push(...(await readEnvFile(f, ctx)));

    const store = await Store.open({ root });
    let entry;
    try {
      entry = await store.lookup(imageName);
    } catch (err) {
      if ((err as { code?: string }).code !== 'TSBUILD_IMAGE_NOT_FOUND') throw err;
      throw new RunSetupError(
        'TSBUILD_IMAGE_NOT_FOUND',
        `${(err as Error).message}\n(list the local images with \`tsbuild images\`; fetch one with \`tsbuild pull ${imageName}\`)`,
        { cause: err },
      );
    }
    const image = await selectImage(store, await loadManifest(store, entry.descriptor), platform);
    const config = await image.config();
    const c = config.config ?? {};
    const layers = await image.layers();
    if (layers.length !== config.rootfs.diff_ids.length) {
      throw new RunSetupError('TSBUILD_RUN_BAD_IMAGE', `image ${entry.name}: ${layers.length} layers but ${config.rootfs.diff_ids.length} diff_ids in its config`);
    }

    // The layers as shared snapshots (the same directories builds use), bottom first.
    const snapshots = new SnapshotStore(root);
    const dirs: string[] = [];
    for (const [i, layer] of layers.entries()) {
      const digest = await layer.digest();
      dirs.push(await snapshots.ensure(config.rootfs.diff_ids[i]!, () => store.openBlob(digest)));
    }
    if (dirs.length === 0) dirs.push(await snapshots.empty());
    // overlayfs refuses a lower dir given twice; the upper copy holds all the lower one does.
    const lowerDirs = dirs.filter((d, i) => dirs.lastIndexOf(d) === i);

    const entrypoint = values.entrypoint !== undefined ? (values.entrypoint === '' ? [] : [values.entrypoint]) : [...(c.Entrypoint ?? [])];
    const cmd = split.command.length > 0 ? split.command : values.entrypoint !== undefined ? [] : [...(c.Cmd ?? [])];
    const args = [...entrypoint, ...cmd];
    if (args.length === 0) throw new RunSetupError('TSBUILD_RUN_NO_COMMAND', `no command specified: image ${entry.name} has no Entrypoint or Cmd; give one after the image name`);

    const user = values.user ?? c.User ?? '';
    const hostname = values.hostname ?? 'tsbuild';
    const resolved = await resolveUser([...lowerDirs].reverse(), user || undefined);
    const base = [DEFAULT_PATH, `HOSTNAME=${hostname}`, `HOME=${resolved.home ?? '/'}`];
    const env = mergeEnv(base, c.Env ?? [], fileEnv, cliEnv);

    const runtime = createRuntime({ stateDir: path.join(root, 'runtime') });
    let result;
    try {
      result = await runtime.run({
        rootfs: { lowerDirs },
        mounts: volumes,
        env,
        ...(user ? { user } : {}),
        cwd: values.workdir ?? (c.WorkingDir || '/'),
        args,
        network,
        hostname,
        ...(extraHosts.length ? { extraHosts } : {}),
        ...(values.interactive ? { stdin: ctx.stdinFd ?? ctx.stdin } : {}),
        signal: ctx.signal,
        onStdout: (b) => ctx.stdout.write(b),
        onStderr: (b) => ctx.stderr.write(b),
      });
    } catch (err) {
      if (err instanceof SandboxAbortedError) {
        ctx.stderr.write(`tsbuild run: ${describe(err)}\n`);
        return 130;
      }
      throw err;
    }
    await result.dispose();
    return result.exitCode;
  } catch (err) {
    if (err instanceof UsageError) throw err;
    ctx.stderr.write(`tsbuild run: ${describe(err)}\n`);
    return 125;
  }
};
