import { parseArgs } from 'node:util';
import type { Credentials } from '../../oci/registry/auth.js';
import { pull, type TransferEvent } from '../../oci/registry/pull.js';
import type { CliContext, Command } from '../context.js';
import { resolveRoot, UsageError } from '../context.js';

const USAGE = `Usage: tsbuild pull [OPTIONS] NAME[:TAG|@DIGEST]

Pull an image from a registry into the local store. From an index (a multi-platform image) the
manifest for --platform (default: this machine's) is fetched and tagged.

Options:
      --root string          tsbuild root directory (default $TSBUILD_ROOT or ~/.local/share/tsbuild)
      --platform string      Platform to pull from a multi-platform image, os/arch[/variant]
      --all-platforms        Pull every platform and tag the index itself
      --creds USER[:PASS]    Credentials for the registry (default: docker config and credential helpers)
      --insecure             Talk plain HTTP to the registry (loopback registries always do)
      --tls-verify=false     Same as --insecure (skopeo spelling)
  -q, --quiet                Print only the image reference
  -h, --help                 Print this help
`;

/** Shared by pull and push: registry flags to library options. */
export function registryFlags(values: { creds?: string | undefined; insecure?: boolean | undefined; 'tls-verify'?: string | undefined }): { auth?: Credentials; insecure?: boolean } {
  const out: { auth?: Credentials; insecure?: boolean } = {};
  if (values.creds !== undefined) {
    const i = values.creds.indexOf(':');
    if (i <= 0) throw new UsageError('--creds wants USER:PASSWORD');
    out.auth = { username: values.creds.slice(0, i), password: values.creds.slice(i + 1) };
  }
  const tv = values['tls-verify'];
  if (tv !== undefined && tv !== 'true' && tv !== 'false') throw new UsageError(`invalid --tls-verify ${JSON.stringify(tv)}: want true or false`);
  if (values.insecure || tv === 'false') out.insecure = true;
  return out;
}

export const REGISTRY_OPTIONS = {
  root: { type: 'string' },
  creds: { type: 'string' },
  insecure: { type: 'boolean' },
  'tls-verify': { type: 'string' },
  quiet: { type: 'boolean', short: 'q', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

export function short(digest: string): string {
  return digest.slice(digest.indexOf(':') + 1, digest.indexOf(':') + 13);
}

/** One line per finished blob, like docker's plain progress. */
export function progressPrinter(ctx: CliContext, quiet: boolean, verb: 'pull' | 'push'): ((e: TransferEvent) => void) | undefined {
  if (quiet) return undefined;
  return (e) => {
    if (e.type !== 'blob' || e.status === 'started') return;
    const what = e.status === 'exists' ? (verb === 'pull' ? 'Already exists' : 'Layer already exists') : e.status === 'mounted' ? 'Mounted' : verb === 'pull' ? 'Pull complete' : 'Pushed';
    ctx.stdout.write(`${short(e.digest)}: ${what}\n`);
  };
}

export const run: Command = async (argv, ctx) => {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { ...REGISTRY_OPTIONS, platform: { type: 'string' }, 'all-platforms': { type: 'boolean', default: false } },
  });
  if (values.help) {
    ctx.stdout.write(USAGE);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(`requires exactly 1 argument, NAME[:TAG|@DIGEST]\n\n${USAGE}`);
  const ref = positionals[0]!;
  const quiet = values.quiet ?? false;
  if (!quiet) ctx.stdout.write(`Pulling ${ref}\n`);
  const onProgress = progressPrinter(ctx, quiet, 'pull');
  const res = await pull(ref, {
    root: resolveRoot(values.root, ctx),
    env: ctx.env,
    signal: ctx.signal,
    ...registryFlags(values),
    ...(values.platform !== undefined ? { platform: values.platform } : {}),
    ...(values['all-platforms'] ? { allPlatforms: true } : {}),
    ...(onProgress ? { onProgress } : {}),
  });
  if (quiet) {
    ctx.stdout.write(`${res.reference}\n`);
    return 0;
  }
  ctx.stdout.write(`Digest: ${res.registryDigest}\n`);
  if (res.platform) ctx.stdout.write(`Platform: ${res.platform.os}/${res.platform.architecture}${res.platform.variant ? `/${res.platform.variant}` : ''} (${res.descriptor.digest})\n`);
  ctx.stdout.write(`Status: ${res.downloaded > 0 ? 'Downloaded newer image' : 'Image is up to date'} for ${res.reference}\n`);
  return 0;
};
