import { readFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { Command, CliContext } from '../context.js';
import { UsageError, addHostFlags, resolveRoot } from '../context.js';
import type { BuildOptions, LayerCompression, OutputSpec, SecretSpec, SshSpec } from '../../builder/options.js';
import { resolveRootDir } from '../../oci/store.js';
import { didYouMean } from '../../util/suggest.js';

const USAGE = `Usage: tsbuild [build] [OPTIONS] PATH | -

Build an image from a Dockerfile and a context directory. With "-", stdin is the context: a tar
(plain or compressed) with the Dockerfile in it, or a Dockerfile alone (no context).

Options:
  -t, --tag name:tag          Name and tag the image in the local store (repeatable)
  -f, --file PATH             Dockerfile (default: PATH/Dockerfile); "-" reads stdin
      --target STAGE          Build this stage
      --build-arg K=V         Set a build-time variable (repeatable; "K" alone takes it from the environment)
      --platform os/arch      Target platform (default: the host's)
      --label K=V             Add a label to the image (repeatable)
  -o, --output SPEC           type=image|registry|oci|docker|local|tar[,dest=PATH|-][,name=REF][,push=true][,tar=false]
                              [,compression=gzip|zstd|uncompressed][,compression-level=N]; other buildx
                              attributes are refused unless they ask for what tsbuild does anyway;
                              "-o DIR" writes the filesystem there, "-o -" a tar of it to stdout
      --push                  Shorthand for --output type=registry
      --load                  Shorthand for --output type=image (the default with -t)
      --no-cache              Do not use the cache
      --no-cache-filter STAGE Do not use the cache for these stages (repeatable)
      --pull                  Always look up base images in the registry
      --secret [type=env|file,]id=ID[,src=PATH|,env=VAR]
                              Expose a secret to RUN --mount=type=secret (repeatable); type=env
                              reads the variable src= or env= (default: the id)
      --ssh default|ID[=SOCKET]            Expose an SSH agent to RUN --mount=type=ssh (repeatable)
      --build-context NAME=PATH|docker-image://REF|oci-layout://PATH[:TAG]
                              A named context: replaces the image or stage NAME, or is read by
                              COPY --from=NAME / RUN --mount from=NAME (repeatable)
      --network default|none|host          Network for RUN steps
      --add-host host:ip      Add a custom host-to-IP mapping for RUN steps (repeatable)
      --progress auto|plain|tty|json|quiet Progress output (default auto)
  -q, --quiet                 Print only the image ID
      --iidfile PATH          Write the image ID (config digest) to PATH
      --metadata-file PATH    Write build result metadata (JSON) to PATH
      --source-date-epoch N   Clamp timestamps (also the SOURCE_DATE_EPOCH env or build arg);
                              the value is also the SOURCE_DATE_EPOCH build arg
  -j, --jobs N                Steps run at once (default: twice the CPUs, at least 8)
      --call build|targets[,format=json]  targets: list the stages that can be built, build nothing
      --root DIR              Store, cache and runtime root (env TSBUILD_ROOT)
`;

export interface ParsedBuildArgs {
  readonly options: Omit<BuildOptions, 'onProgress' | 'signal'>;
  readonly progress: 'auto' | 'plain' | 'tty' | 'json' | 'quiet';
  readonly iidfile?: string;
  readonly metadataFile?: string;
  readonly dockerfileFromStdin: boolean;
  /**
   * `tsbuild build -`: stdin is the context, a tar (plain, gzip, bzip2, xz or zstd) with the
   * Dockerfile in it, or a Dockerfile alone (no context), as `docker build -` reads it. `options.context`
   * is then set once stdin is read; `-f` names the Dockerfile inside the tar.
   */
  readonly contextFromStdin: boolean;
  readonly dockerfileInContext?: string;
  /** `--call targets`: list targets instead of building. */
  readonly call?: { readonly method: 'targets'; readonly format: 'text' | 'json' };
}

function kv(value: string, flag: string): [string, string] {
  const i = value.indexOf('=');
  if (i <= 0) throw new UsageError(`${flag} wants KEY=VALUE, got ${JSON.stringify(value)}`);
  return [value.slice(0, i), value.slice(i + 1)];
}

/** Splits `a=b,c=d` (csv like buildx: values may be quoted). */
function csvAttrs(spec: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of spec.match(/(?:[^,"]|"[^"]*")+/g) ?? []) {
    const i = part.indexOf('=');
    const k = (i < 0 ? part : part.slice(0, i)).trim();
    let v = i < 0 ? '' : part.slice(i + 1).trim();
    if (v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
    out[k] = v;
  }
  return out;
}

type OutputType = 'image' | 'registry' | 'oci' | 'docker' | 'local' | 'tar';

/** The attributes each output type reads (besides `type`), any value they take. */
const OUTPUT_ATTRS: Readonly<Record<OutputType, readonly string[]>> = {
  image: ['name', 'push', 'compression', 'compression-level'],
  registry: ['name', 'push', 'compression', 'compression-level'],
  oci: ['dest', 'tar', 'name', 'compression', 'compression-level'],
  docker: ['dest', 'tar', 'name', 'compression', 'compression-level'],
  local: ['dest'],
  tar: ['dest'],
};

/**
 * buildx attributes tsbuild has no switch for, accepted only with the value that asks for what it
 * does anyway (any other value, or any other attribute, is refused: dropping it silently would
 * change the result without saying so). `reason` says what tsbuild does.
 */
const OUTPUT_FIXED: Readonly<Record<string, { readonly types: readonly OutputType[]; readonly value: boolean; readonly reason: string }>> = {
  'oci-mediatypes': { types: ['image', 'registry', 'oci'], value: true, reason: 'its manifests and configs always have OCI media types' },
  'force-compression': { types: ['image', 'registry', 'oci', 'docker'], value: false, reason: 'it keeps layers already compressed as they are' },
  store: { types: ['image'], value: true, reason: 'it always keeps the image in its store' },
};

/** buildx's boolean attribute values (Go's strconv.ParseBool). */
function outputBool(type: string, key: string, value: string): boolean {
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(value)) return false;
  throw new UsageError(`--output type=${type}: attribute "${key}" wants true or false, got ${JSON.stringify(value)}`);
}

/**
 * One `--output` spec. Every attribute is honoured or refused with a UsageError naming it and the
 * output type. `sourceDateEpoch` (the build's, if any) decides whether `rewrite-timestamp=false`
 * matches what tsbuild does: with an epoch, layer timestamps are always clamped to it (BuildKit's
 * `rewrite-timestamp=true`); without one there is nothing to rewrite either way.
 */
export function parseOutput(spec: string, cwd: string, sourceDateEpoch?: number): OutputSpec {
  // `-o DIR` is the local exporter, `-o -` a tar of the filesystem on standard output (buildx)
  const a = csvAttrs(spec.includes('=') ? spec : spec === '-' ? 'type=tar,dest=-' : `type=local,dest=${spec}`);
  const type = a.type === 'docker-image' ? 'image' : a.type;
  if (type === undefined || !Object.hasOwn(OUTPUT_ATTRS, type)) throw new UsageError(`unknown output type ${JSON.stringify(a.type ?? '')}: want image, registry, oci, docker, local or tar`);
  const t = type as OutputType;
  const shown = a.type!;
  for (const [key, value] of Object.entries(a)) {
    if (key === 'type' || OUTPUT_ATTRS[t].includes(key)) continue;
    const fixed = OUTPUT_FIXED[key];
    if (fixed?.types.includes(t)) {
      if (outputBool(shown, key, value) === fixed.value) continue;
      throw new UsageError(`--output type=${shown}: attribute "${key}=${value}" is not supported: tsbuild has no switch for it (${fixed.reason})`);
    }
    if (key === 'rewrite-timestamp' && t !== 'local' && t !== 'tar') {
      // tsbuild clamps layer timestamps to SOURCE_DATE_EPOCH whenever one is set
      if (outputBool(shown, key, value) || sourceDateEpoch === undefined) continue;
      throw new UsageError(`--output type=${shown}: attribute "rewrite-timestamp=${value}" is not supported: with SOURCE_DATE_EPOCH set, tsbuild always clamps layer timestamps to it (as rewrite-timestamp=true)`);
    }
    const known = [...OUTPUT_ATTRS[t], ...Object.keys(OUTPUT_FIXED).filter((k) => OUTPUT_FIXED[k]!.types.includes(t)), ...(t !== 'local' && t !== 'tar' ? ['rewrite-timestamp'] : [])];
    const hint = didYouMean(key, known);
    throw new UsageError(`--output type=${shown}: attribute ${JSON.stringify(key)} is not supported${hint ? ` (did you mean "${hint}"?)` : ''}; type=${shown} takes ${known.join(', ')}`);
  }
  const names = a.name ? a.name.split(/[,\s]+/).filter(Boolean) : undefined;
  const dest = a.dest ? (a.dest === '-' ? '-' : resolve(cwd, a.dest)) : undefined;
  const need = (t: string) => {
    if (!dest) throw new UsageError(`--output type=${t} needs dest=PATH`);
    return dest;
  };
  // compression=gzip|zstd|uncompressed and compression-level=N, as buildx spells them
  let comp: LayerCompression = {};
  if (a.compression !== undefined) {
    if (!['gzip', 'zstd', 'uncompressed'].includes(a.compression)) throw new UsageError(`--output compression wants gzip, zstd or uncompressed, got ${JSON.stringify(a.compression)}`);
    comp = { compression: a.compression as NonNullable<LayerCompression['compression']> };
  }
  if (a['compression-level'] !== undefined) {
    const level = Number(a['compression-level']);
    const max = comp.compression === 'zstd' ? 19 : 9;
    if (!Number.isInteger(level) || level < 1 || level > max) throw new UsageError(`--output compression-level wants a whole number from 1 to ${max}, got ${JSON.stringify(a['compression-level'])}`);
    comp = { ...comp, compressionLevel: level };
  }
  const push = a.push !== undefined ? outputBool(shown, 'push', a.push) : undefined;
  const tarAttr = a.tar !== undefined ? outputBool(shown, 'tar', a.tar) : undefined;
  switch (t) {
    case 'image':
      return { type: 'image', ...(names ? { name: names } : {}), ...(push ? { push: true } : {}), ...comp };
    case 'registry':
      if (push === false) throw new UsageError('--output type=registry always pushes: for the local store only use type=image');
      return { type: 'registry', ...(names ? { name: names } : {}), ...comp };
    case 'oci': {
      const d = need('oci');
      if (d === '-' && tarAttr === false) throw new UsageError('--output type=oci,tar=false writes a directory: dest=- (standard output) takes a tar only');
      const tar = tarAttr ?? (/\.tar$/i.test(d) || d === '-' ? true : undefined);
      return { type: 'oci', dest: d, ...(tar !== undefined ? { tar } : {}), ...(names ? { name: names } : {}), ...comp };
    }
    case 'docker':
      if (tarAttr === false) throw new UsageError('--output type=docker writes a docker save archive: tar=false is not supported (type=oci,tar=false writes a directory)');
      return { type: 'docker', dest: need('docker'), ...(names ? { name: names } : {}), ...comp };
    case 'local':
      if (need('local') === '-') throw new UsageError('--output type=local writes a directory: for standard output use type=tar,dest=- (or -o -)');
      return { type: 'local', dest: need('local') };
    case 'tar':
      return { type: 'tar', dest: need('tar') };
  }
}

/**
 * One `--secret`, as buildx reads it: `type=env` takes the variable from `env=`, else `src=` or
 * `source=`, else the id; `type=file` reads the file `src=`/`source=`, else the file named by the
 * id. Without a type, `env=` is a variable and `src=` a file; with neither, the variable named by
 * the id if it is set, else the file. Keys are case-insensitive; any other key is refused.
 */
export function parseSecret(s: string, ctx: Pick<CliContext, 'cwd' | 'env'>): SecretSpec {
  const usage = `--secret wants [type=env|file,]id=ID[,src=PATH|,env=VAR], got ${JSON.stringify(s)}`;
  const a: Record<string, string> = {};
  for (const [k, v] of Object.entries(csvAttrs(s))) {
    const key = k.toLowerCase();
    if (!['type', 'id', 'src', 'source', 'env'].includes(key)) throw new UsageError(`--secret: unknown key ${JSON.stringify(k)}: ${usage}`);
    a[key] = v;
  }
  if (!a.id) throw new UsageError(usage);
  const type = a.type;
  if (type !== undefined && type !== 'env' && type !== 'file') throw new UsageError(`--secret: unknown type ${JSON.stringify(type)} (want env or file)`);
  const src = a.src || a.source || undefined;
  if (a.src && a.source && a.src !== a.source) throw new UsageError(`--secret: src=${a.src} and source=${a.source} disagree: give one`);
  if (type === 'env') {
    if (a.env && src && a.env !== src) throw new UsageError(`--secret type=env: env=${a.env} and src=${src} both name the variable: give one`);
    return { id: a.id, env: a.env || src || a.id };
  }
  if (type === 'file') {
    if (a.env) throw new UsageError(`--secret type=file reads a file (src=PATH): env=${a.env} names a variable, use type=env`);
    return { id: a.id, src: resolve(ctx.cwd, src ?? a.id) };
  }
  const spec: SecretSpec = { id: a.id, ...(src ? { src: resolve(ctx.cwd, src) } : {}), ...(a.env ? { env: a.env } : {}) };
  return spec.src || spec.env ? spec : { ...spec, ...(ctx.env[a.id] !== undefined ? { env: a.id } : { src: resolve(ctx.cwd, a.id) }) };
}

export function parseBuildArgv(argv: string[], ctx: Pick<CliContext, 'cwd' | 'env'>): ParsedBuildArgs {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      tag: { type: 'string', short: 't', multiple: true },
      file: { type: 'string', short: 'f' },
      target: { type: 'string' },
      'build-arg': { type: 'string', multiple: true },
      platform: { type: 'string' },
      label: { type: 'string', multiple: true },
      output: { type: 'string', short: 'o', multiple: true },
      push: { type: 'boolean' },
      load: { type: 'boolean' },
      'no-cache': { type: 'boolean' },
      'no-cache-filter': { type: 'string', multiple: true },
      pull: { type: 'boolean' },
      secret: { type: 'string', multiple: true },
      ssh: { type: 'string', multiple: true },
      'build-context': { type: 'string', multiple: true },
      network: { type: 'string' },
      'add-host': { type: 'string', multiple: true },
      progress: { type: 'string' },
      quiet: { type: 'boolean', short: 'q' },
      iidfile: { type: 'string' },
      'metadata-file': { type: 'string' },
      'source-date-epoch': { type: 'string' },
      root: { type: 'string' },
      call: { type: 'string' },
      jobs: { type: 'string', short: 'j' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) throw new HelpRequested();
  let call: ParsedBuildArgs['call'];
  if (values.call !== undefined) {
    const [method, ...rest] = values.call.split(',');
    const attrs = csvAttrs(rest.join(','));
    const format = attrs.format ?? 'text';
    if (format !== 'text' && format !== 'json') throw new UsageError(`--call: unknown format ${JSON.stringify(format)} (want text or json)`);
    if (method === 'targets') call = { method, format };
    else if (method !== 'build') throw new UsageError(`--call: unknown method ${JSON.stringify(method)} (want build or targets)`);
  }
  if (positionals.length !== 1) throw new UsageError(`build wants exactly one context PATH, got ${positionals.length}\n\n${USAGE}`);
  const contextFromStdin = positionals[0] === '-';
  if (contextFromStdin && values.file === '-') throw new UsageError('cannot read both the build context and the Dockerfile (-f -) from stdin');
  const context = contextFromStdin ? '-' : resolve(ctx.cwd, positionals[0]!);
  const buildArgs: Record<string, string> = {};
  for (const a of values['build-arg'] ?? []) {
    if (!a.includes('=')) {
      const v = ctx.env[a];
      if (v !== undefined) buildArgs[a] = v;
      continue;
    }
    const [k, v] = kv(a, '--build-arg');
    buildArgs[k] = v;
  }
  // SOURCE_DATE_EPOCH: --source-date-epoch, else a --build-arg, else the environment (an empty
  // value is unset). As buildx does with the environment's, the value is also the build arg, so
  // an `ARG SOURCE_DATE_EPOCH` sees the epoch the timestamps get; a --build-arg is kept as given.
  const sdeFlag = values['source-date-epoch'];
  const sdeText = [sdeFlag, buildArgs.SOURCE_DATE_EPOCH, ctx.env.SOURCE_DATE_EPOCH].find((v) => v !== undefined && v !== '');
  const sourceDateEpoch = sdeText !== undefined ? Number(sdeText) : undefined;
  if (sourceDateEpoch !== undefined && !Number.isInteger(sourceDateEpoch)) throw new UsageError(`SOURCE_DATE_EPOCH must be an integer, got ${JSON.stringify(sdeText)}`);
  if (sdeFlag !== undefined && sdeFlag !== '' && buildArgs.SOURCE_DATE_EPOCH !== undefined && buildArgs.SOURCE_DATE_EPOCH !== sdeFlag) {
    throw new UsageError(`--source-date-epoch ${sdeFlag} and --build-arg SOURCE_DATE_EPOCH=${buildArgs.SOURCE_DATE_EPOCH} disagree: give one`);
  }
  if (sdeText !== undefined && buildArgs.SOURCE_DATE_EPOCH === undefined) buildArgs.SOURCE_DATE_EPOCH = sdeText;
  const outputs: OutputSpec[] = (values.output ?? []).map((o) => parseOutput(o, ctx.cwd, sourceDateEpoch));
  const labels: Record<string, string> = {};
  for (const l of values.label ?? []) {
    const [k, v] = kv(l, '--label');
    labels[k] = v;
  }
  if (values.push) outputs.push({ type: 'registry' });
  if (values.load) outputs.push({ type: 'image' });
  const secrets: SecretSpec[] = (values.secret ?? []).map((s) => parseSecret(s, ctx));
  const ssh: SshSpec[] = (values.ssh ?? []).map((s) => {
    const i = s.indexOf('=');
    const id = i < 0 ? s : s.slice(0, i);
    const paths = i < 0 ? (ctx.env.SSH_AUTH_SOCK ? [ctx.env.SSH_AUTH_SOCK] : []) : s.slice(i + 1).split(',');
    return { id, paths };
  });
  const buildContexts: Record<string, string> = {};
  for (const c of values['build-context'] ?? []) {
    const [k, v] = kv(c, '--build-context');
    // a directory, or an OCI layout's, is relative to the working directory (as buildx reads it)
    if (v.startsWith('oci-layout://') && !v.startsWith('oci-layout:///')) buildContexts[k] = `oci-layout://${resolve(ctx.cwd, v.slice('oci-layout://'.length))}`;
    else buildContexts[k] = /^[a-z-]+:\/\//.test(v) || v.startsWith('git@') || v.startsWith('target:') ? v : resolve(ctx.cwd, v);
  }
  let jobs: number | undefined;
  if (values.jobs !== undefined) {
    jobs = Number(values.jobs);
    if (!Number.isInteger(jobs) || jobs < 1) throw new UsageError(`--jobs wants a positive whole number, got ${JSON.stringify(values.jobs)}`);
  }
  const progress = (values.quiet ? 'quiet' : values.progress ?? 'auto') as ParsedBuildArgs['progress'];
  if (!['auto', 'plain', 'tty', 'json', 'quiet', 'rawjson'].includes(progress)) throw new UsageError(`--progress wants auto, plain, tty, json or quiet`);
  const network = values.network as BuildOptions['network'] | undefined;
  if (network !== undefined && !['default', 'none', 'host'].includes(network)) throw new UsageError(`--network wants default, none or host`);
  const addHosts = addHostFlags(values['add-host']);
  const dockerfileFromStdin = values.file === '-';
  const options: ParsedBuildArgs['options'] = {
    context,
    ...(values.file && !dockerfileFromStdin && !contextFromStdin ? { dockerfile: resolve(ctx.cwd, values.file) } : {}),
    ...(values.target ? { target: values.target } : {}),
    buildArgs,
    ...(values.platform ? { platform: values.platform } : {}),
    labels,
    tags: values.tag ?? [],
    outputs,
    root: resolveRoot(values.root, ctx as CliContext),
    noCache: values['no-cache'] ?? false,
    noCacheFilter: values['no-cache-filter'] ?? [],
    pull: values.pull ?? false,
    secrets,
    ssh,
    buildContexts,
    ...(network ? { network } : {}),
    ...(addHosts.length ? { addHosts } : {}),
    ...(sourceDateEpoch !== undefined ? { sourceDateEpoch } : {}),
    ...(jobs !== undefined ? { parallelism: jobs } : {}),
    env: ctx.env,
  };
  return {
    options,
    progress,
    ...(values.iidfile ? { iidfile: resolve(ctx.cwd, values.iidfile) } : {}),
    ...(values['metadata-file'] ? { metadataFile: resolve(ctx.cwd, values['metadata-file']) } : {}),
    dockerfileFromStdin,
    contextFromStdin,
    ...(contextFromStdin && values.file ? { dockerfileInContext: values.file } : {}),
    ...(call ? { call } : {}),
  };
}

class HelpRequested extends Error {}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

export const run: Command = async (argv, ctx) => {
  let parsed: ParsedBuildArgs;
  try {
    parsed = parseBuildArgv(argv, ctx);
  } catch (e) {
    if (e instanceof HelpRequested) {
      ctx.stdout.write(USAGE);
      return 0;
    }
    throw e;
  }
  if (parsed.call?.method === 'targets') return listTargetsCommand(parsed, ctx);
  const { build, BuildError } = await import('../../builder/build.js');
  const { createProgressRenderer } = await import('../progress.js');
  const renderer = createProgressRenderer(parsed.progress, ctx.stderr);
  // dest=- : the archive goes to standard output (progress is on stderr), as buildx sends it
  const toStdout = (parsed.options.outputs ?? []).filter((o) => 'dest' in o && o.dest === '-');
  if (toStdout.length > 0) {
    if (toStdout.length > 1) throw new UsageError('only one --output can write to standard output (dest=-)');
    if (parsed.progress === 'quiet') throw new UsageError('-q prints the image ID on standard output, where dest=- writes the archive: use --iidfile');
    if ((ctx.stdout as { isTTY?: boolean }).isTTY) throw new UsageError('dest=- would write an archive to a terminal: redirect standard output to a file or a pipe');
  }
  const outputs = toStdout.length > 0 ? parsed.options.outputs!.map((o) => ('dest' in o && o.dest === '-' ? { ...o, dest: ctx.stdout } : o)) : parsed.options.outputs;
  const fromStdin = parsed.contextFromStdin ? await stdinContext(ctx.stdin, parsed.dockerfileInContext) : undefined;
  const dockerfileText = parsed.dockerfileFromStdin ? await readAll(ctx.stdin) : fromStdin?.dockerfileText;
  try {
    const result = await build({
      ...parsed.options,
      ...(outputs ? { outputs: outputs as OutputSpec[] } : {}),
      ...(fromStdin ? { context: fromStdin.context, ...(fromStdin.dockerfile ? { dockerfile: fromStdin.dockerfile } : {}) } : {}),
      ...(dockerfileText !== undefined ? { dockerfileText } : {}),
      signal: ctx.signal,
      onProgress: renderer.onEvent,
    });
    renderer.done();
    if (parsed.progress === 'quiet') ctx.stdout.write(`${result.configDigest}\n`);
    else ctx.stderr.write(`writing image ${result.configDigest}${result.tags.length ? ` (${result.tags.join(', ')})` : ''}\n`);
    if (parsed.iidfile) {
      const { writeFile } = await import('node:fs/promises');
      await writeFile(parsed.iidfile, result.configDigest);
    }
    if (parsed.metadataFile) {
      const { writeFile } = await import('node:fs/promises');
      await writeFile(
        parsed.metadataFile,
        JSON.stringify({ 'containerimage.digest': result.manifestDigest, 'containerimage.config.digest': result.configDigest, 'image.name': result.tags.join(',') }, null, 2),
      );
    }
    return 0;
  } catch (err) {
    renderer.done();
    if (err instanceof BuildError) {
      ctx.stderr.write(`${await err.render(async (file) => readFile(file, 'utf8').catch(() => dockerfileText ?? ''))}\n`);
      return 1;
    }
    throw err;
  } finally {
    if (fromStdin) await fromStdin.remove(resolveRootDir({ root: parsed.options.root, env: ctx.env }));
  }
};

/**
 * The context `docker build -` reads: stdin saved to a temp file; a tar (by content) is unpacked
 * (no entry leaves the directory) and is the context, with the Dockerfile in it (`-f` relative to
 * it); anything else is the Dockerfile, with an empty context. `remove` deletes the temp files and
 * the context's hash index (its path is never seen again).
 */
async function stdinContext(
  stdin: NodeJS.ReadableStream,
  dockerfileInContext: string | undefined,
): Promise<{ context: string; dockerfile?: string; dockerfileText?: string; remove: (root: string) => Promise<void> }> {
  const [{ mkdtemp, mkdir, realpath, rm }, { createWriteStream }, { tmpdir }, { pipeline }, { detectArchive, decompressed }, { extractLayer }, { forgetContextIndex }] = await Promise.all([
    import('node:fs/promises'),
    import('node:fs'),
    import('node:os'),
    import('node:stream/promises'),
    import('../../builder/copy.js'),
    import('../../oci/extract.js'),
    import('../../cache/context-hash.js'),
  ]);
  const dir = await realpath(await mkdtemp(join(tmpdir(), 'tsbuild-stdin-')));
  const context = join(dir, 'context');
  const remove = async (root: string) => {
    await forgetContextIndex(join(root, 'cache'), context).catch(() => {});
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const file = join(dir, 'stdin');
    await pipeline(stdin, createWriteStream(file));
    const compression = await detectArchive(file);
    if (compression === undefined) {
      if (dockerfileInContext !== undefined) throw new UsageError(`-f ${dockerfileInContext} names a file in a context from stdin, but stdin is not a tar: it is read as the Dockerfile`);
      await mkdir(context);
      return { context, dockerfileText: await readFile(file, 'utf8'), remove };
    }
    await extractLayer(decompressed(file, compression), context, { whiteouts: false });
    await rm(file);
    const name = dockerfileInContext ?? 'Dockerfile';
    if (relative(context, resolve(context, name)).startsWith('..')) throw new UsageError(`-f ${name}: the Dockerfile must be inside the context read from stdin`);
    // The tar's links lead inside it: the host would follow a `Dockerfile -> /etc/x` out of it
    // when it reads the file (a local context's links are its owner's, as docker reads them).
    const { resolveInRoot } = await import('../../builder/context.js');
    const dockerfile = (await resolveInRoot(context, name)).abs;
    for (const ignore of ['.dockerignore', `${name}.dockerignore`]) await confineLink(context, ignore, resolveInRoot);
    return { context, dockerfile, remove };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** A symlink at `name` in `root` becomes a copy of the file it names inside root (or goes). */
async function confineLink(root: string, name: string, resolveInRoot: typeof import('../../builder/context.js').resolveInRoot): Promise<void> {
  const { lstat, rm, writeFile } = await import('node:fs/promises');
  const at = resolve(root, name);
  const st = await lstat(at).catch(() => undefined);
  if (!st?.isSymbolicLink()) return;
  const r = await resolveInRoot(root, name);
  const text = r.exists ? await readFile(r.abs).catch(() => undefined) : undefined;
  await rm(at, { force: true });
  if (text !== undefined) await writeFile(at, text);
}

/** `--call targets`: the stages of the Dockerfile, as buildx lists them; nothing is built. */
async function listTargetsCommand(parsed: ParsedBuildArgs, ctx: CliContext): Promise<number> {
  const { parseDockerfile, formatDiagnostic } = await import('../../parser/index.js');
  const { listTargets, formatTargets } = await import('../../builder/targets.js');
  let file = parsed.options.dockerfile ?? resolve(parsed.options.context, 'Dockerfile');
  let text: string;
  if (parsed.contextFromStdin) {
    const s = await stdinContext(ctx.stdin, parsed.dockerfileInContext);
    try {
      if (s.dockerfile) file = s.dockerfile;
      text = s.dockerfileText ?? (await readFile(file, 'utf8'));
    } finally {
      await s.remove(resolveRootDir({ root: parsed.options.root, env: ctx.env }));
    }
  } else text = parsed.dockerfileFromStdin ? await readAll(ctx.stdin) : await readFile(file, 'utf8');
  const result = parseDockerfile(text, { file });
  const errors = result.diagnostics.filter((d) => d.severity === 'error');
  if (errors.length > 0) {
    for (const d of errors) ctx.stderr.write(`${formatDiagnostic(d, text, { file })}\n`);
    return 1;
  }
  const targets = listTargets(result.ast);
  if (parsed.call!.format === 'json') {
    const json = targets.map((t) => ({
      ...(t.name ? { name: t.name } : {}),
      ...(t.description ? { description: t.description } : {}),
      ...(t.default ? { default: true } : {}),
      ...(t.base ? { base: t.base } : {}),
      ...(t.platform ? { platform: t.platform } : {}),
      location: { source: file, line: t.range.start.line, column: t.range.start.column },
    }));
    ctx.stdout.write(`${JSON.stringify({ targets: json }, null, 2)}\n`);
  } else ctx.stdout.write(formatTargets(targets));
  return 0;
}
