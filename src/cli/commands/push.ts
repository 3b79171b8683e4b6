import { parseArgs } from 'node:util';
import { push } from '../../oci/registry/push.js';
import type { Command } from '../context.js';
import { resolveRoot, UsageError } from '../context.js';
import { progressPrinter, REGISTRY_OPTIONS, registryFlags } from './pull.js';

const USAGE = `Usage: tsbuild push [OPTIONS] NAME[:TAG] [DESTINATION]

Push an image from the local store to a registry. NAME[:TAG] is the local image; DESTINATION
(default: the same name) is where it goes, REGISTRY/REPOSITORY[:TAG]. Blobs the registry has are
skipped, blobs another repository of the same registry holds are mounted, and the tag is written
last.

Options:
      --root string          tsbuild root directory (default $TSBUILD_ROOT or ~/.local/share/tsbuild)
      --creds USER[:PASS]    Credentials for the registry (default: docker config and credential helpers)
      --insecure             Talk plain HTTP to the registry (loopback registries always do)
      --tls-verify=false     Same as --insecure (skopeo spelling)
      --chunk-size bytes     Upload blobs in PATCH chunks of this size (default: one request per blob)
  -q, --quiet                Print only the pushed digest
  -h, --help                 Print this help
`;

export const run: Command = async (argv, ctx) => {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { ...REGISTRY_OPTIONS, 'chunk-size': { type: 'string' } },
  });
  if (values.help) {
    ctx.stdout.write(USAGE);
    return 0;
  }
  if (positionals.length < 1 || positionals.length > 2) throw new UsageError(`requires 1 or 2 arguments, NAME[:TAG] [DESTINATION]\n\n${USAGE}`);
  const [source, destination] = positionals as [string, string?];
  let chunkSize: number | undefined;
  if (values['chunk-size'] !== undefined) {
    chunkSize = Number(values['chunk-size']);
    if (!Number.isSafeInteger(chunkSize) || chunkSize <= 0) throw new UsageError(`invalid --chunk-size ${JSON.stringify(values['chunk-size'])}: want a positive number of bytes`);
  }
  const quiet = values.quiet ?? false;
  const dest = destination ?? source;
  if (!quiet) ctx.stdout.write(`Pushing ${source}${destination ? ` to ${destination}` : ''}\n`);
  const onProgress = progressPrinter(ctx, quiet, 'push');
  const res = await push(dest, {
    source,
    root: resolveRoot(values.root, ctx),
    env: ctx.env,
    signal: ctx.signal,
    ...registryFlags(values),
    ...(chunkSize !== undefined ? { chunkSize } : {}),
    ...(onProgress ? { onProgress } : {}),
  });
  if (quiet) ctx.stdout.write(`${res.digest}\n`);
  else ctx.stdout.write(`${res.reference}: digest: ${res.digest} size: ${res.descriptor.size}\n`);
  return 0;
};
