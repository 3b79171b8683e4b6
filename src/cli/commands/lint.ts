import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { existsSync } from 'node:fs';
import { resolveImage } from '../../oci/image.js';
import { Store } from '../../oci/store.js';
import { parseDockerignore, PatternMatcher } from '../../builder/context.js';
import type { Diagnostic } from '../../parser/diagnostics.js';
import { formatDiagnostic } from '../../parser/diagnostics.js';
import { parseDockerfile } from '../../parser/index.js';
import type { BaseImageInfo, IgnoreMatcher, LintOptions } from '../../parser/lint.js';
import { externalBaseImages, isEmptyContinuationDiagnostic, LintConfigError, lintWithConfig, parseCheckOptions } from '../../parser/lint.js';
import type { Command } from '../context.js';
import { resolveRoot, UsageError } from '../context.js';

const USAGE = `Usage: tsbuild lint [OPTIONS] [FILE...]

Check Dockerfiles with BuildKit's build checks (https://docs.docker.com/go/dockerfile/rule/)
and report parse errors, without building. FILE defaults to ./Dockerfile; "-" reads standard
input. Findings are warnings unless the Dockerfile says "# check=error=true" (or --check does).

Options:
      --format string      Output format: text (code frames) or json (an array of diagnostics)
                           (default "text")
      --check string       Check configuration, replacing the file's "# check=" directive,
                           e.g. "skip=JSONArgsRecommended,StageNameCasing;error=true",
                           "skip=all", "experimental=all"
      --build-arg list     Set a build-time variable (KEY=VALUE); counts as declared
      --context string     Build context directory: enables CopyIgnoredFile with its .dockerignore
      --target string      The target stage (sets TARGETSTAGE)
      --platform string    Target platform for predefined ARGs (default "linux/amd64")
      --root string        tsbuild root whose local store is searched for base images; their
                           env enables UndefinedVar (default $TSBUILD_ROOT or
                           ~/.local/share/tsbuild)
      --no-color           Never colour the code frames
  -h, --help               Print this help

Exit status: 0 when nothing is an error, 1 when a file has a parse error or a finding is an
error (error=true), 2 on bad usage.
`;

export const run: Command = async (argv, ctx) => {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      format: { type: 'string', default: 'text' },
      check: { type: 'string' },
      'build-arg': { type: 'string', multiple: true, default: [] },
      target: { type: 'string' },
      context: { type: 'string' },
      root: { type: 'string' },
      platform: { type: 'string' },
      'no-color': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    ctx.stdout.write(USAGE);
    return 0;
  }
  const format = values.format;
  if (format !== 'text' && format !== 'json') throw new UsageError(`invalid --format ${JSON.stringify(format)}: expected text or json\n\n${USAGE}`);
  if (values.check !== undefined) {
    try {
      parseCheckOptions(values.check);
    } catch (err) {
      if (err instanceof LintConfigError) throw new UsageError(`invalid --check: ${err.message}`);
      throw err;
    }
  }
  const buildArgs: Record<string, string> = {};
  for (const a of values['build-arg']) {
    const eq = a.indexOf('=');
    // docker: `--build-arg KEY` takes the value from the environment.
    if (eq < 0) {
      const v = ctx.env[a];
      if (v !== undefined) buildArgs[a] = v;
    } else buildArgs[a.slice(0, eq)] = a.slice(eq + 1);
  }
  let platform: { os: string; architecture: string; variant?: string } | undefined;
  if (values.platform !== undefined) {
    const [os, architecture, variant] = values.platform.split('/');
    if (!os || !architecture) throw new UsageError(`invalid --platform ${JSON.stringify(values.platform)}: expected os/arch[/variant]`);
    platform = { os, architecture, ...(variant ? { variant } : {}) };
  }
  const files = positionals.length > 0 ? positionals : ['Dockerfile'];
  const color = format === 'text' && !values['no-color'] && ctx.stdout.isTTY === true && ctx.env.NO_COLOR === undefined;

  let failed = false;
  const all: Diagnostic[] = [];
  let count = 0;
  let errors = 0;
  for (const file of files) {
    let text: string;
    try {
      text = file === '-' ? await readStream(ctx.stdin) : await readFile(path.resolve(ctx.cwd, file), 'utf8');
    } catch (err) {
      ctx.stderr.write(`tsbuild lint: ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}\n`);
      failed = true;
      continue;
    }
    const result = parseDockerfile(text, { file });
    const ignore = values.context !== undefined ? await readIgnore(file === '-' ? undefined : path.resolve(ctx.cwd, file), path.resolve(ctx.cwd, values.context)) : undefined;
    const options: LintOptions = {
      source: text,
      buildArgs,
      ...(values.check !== undefined ? { checks: values.check } : {}),
      ...(values.target !== undefined ? { target: values.target.toLowerCase() } : {}),
      ...(platform ? { platform } : {}),
      ...(ignore ? { ignore } : {}),
    };
    const images = await lookupBaseImages(externalBaseImages(result, options), resolveRoot(values.root, ctx), platform);
    const { diagnostics: findings, config } = lintWithConfig(result, { ...options, baseImage: (name) => images.get(name) });
    // The raw parser's empty-continuation warning is reported as the NoEmptyContinuation check
    // (and so obeys skip= and error=).
    const parse = result.diagnostics.filter((d) => !isEmptyContinuationDiagnostic(d));
    const diagnostics = [...parse, ...findings].sort((a, b) => a.range.start.offset - b.range.start.offset);
    count += diagnostics.length;
    errors += diagnostics.filter((d) => d.severity === 'error').length;
    if (diagnostics.some((d) => d.severity === 'error') || (config.error && findings.length > 0)) failed = true;
    if (format === 'json') {
      all.push(...diagnostics.map((d) => ({ ...d, file })));
    } else {
      for (const d of diagnostics) ctx.stdout.write(`${formatDiagnostic(d, text, { file, color })}\n\n`);
    }
  }
  if (format === 'json') ctx.stdout.write(`${JSON.stringify(all, null, 2)}\n`);
  else if (count === 0 && !failed) ctx.stdout.write(`${files.length === 1 ? files[0] : `${files.length} files`}: no problems found\n`);
  else if (count > 0) {
    const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`;
    ctx.stdout.write(`${plural(count, 'problem')} (${plural(errors, 'error')}, ${plural(count - errors, 'warning')})\n`);
  }
  return failed ? 1 : 0;
};

/**
 * Env and shell of the base images found in the local store (read only: a missing store is not
 * created). Images that are absent or unreadable stay unknown, which only makes the checks quieter.
 */
async function lookupBaseImages(names: readonly string[], root: string, platform?: { os: string; architecture: string; variant?: string }): Promise<Map<string, BaseImageInfo>> {
  const out = new Map<string, BaseImageInfo>();
  const dir = path.join(root, 'store');
  if (names.length === 0 || !existsSync(dir)) return out;
  const store = await Store.openDir(dir);
  for (const name of names) {
    try {
      const entry = await store.resolve(name);
      if (!entry) continue;
      const image = await resolveImage(store, entry.descriptor, platform);
      const config = (await image.config()).config;
      out.set(name, { env: config?.Env ?? [], ...(config?.Shell ? { shell: config.Shell } : {}) });
    } catch {
      // not a valid reference, or a damaged entry: the image stays unknown
    }
  }
  return out;
}

/** A `.dockerignore` text as the matcher `CopyIgnoredFile` needs (moby patternmatcher semantics). */
export function dockerignoreMatcher(text: string, source = '.dockerignore'): IgnoreMatcher {
  const patterns = parseDockerignore(text, source);
  const matcher = new PatternMatcher(patterns);
  return {
    matchesOrParentMatches: (p) => matcher.matches(p),
    hasExclusions: matcher.hasExclusions,
    excludesRoot: patterns.some((p) => !p.exclusion && (p.text === '*' || p.text === '**' || p.text === '**/*')),
  };
}

/** The context's ignore file: `<Dockerfile>.dockerignore` beside the Dockerfile wins over `<context>/.dockerignore`. */
async function readIgnore(dockerfile: string | undefined, contextDir: string): Promise<IgnoreMatcher | undefined> {
  const candidates = [...(dockerfile ? [`${dockerfile}.dockerignore`] : []), path.join(contextDir, '.dockerignore')];
  for (const file of candidates) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    return dockerignoreMatcher(text, file);
  }
  return undefined;
}

async function readStream(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}
