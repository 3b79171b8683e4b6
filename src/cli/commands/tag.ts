import { parseArgs } from 'node:util';
import { resolveRoot, UsageError, type Command } from '../context.js';
import { Store } from '../../oci/store.js';
import { familiarString, parseReference } from '../../oci/reference.js';

const USAGE = `Usage: tsbuild tag [OPTIONS] SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]

Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE in the local store.
SOURCE_IMAGE may also be a digest or an image ID prefix.

Options:
      --root string   tsbuild root directory (default $TSBUILD_ROOT or ~/.local/share/tsbuild)
  -h, --help          Show this help
`;

export const run: Command = async (argv, ctx) => {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { root: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    ctx.stdout.write(USAGE);
    return 0;
  }
  if (positionals.length !== 2) throw new UsageError(`"tag" requires exactly 2 arguments (SOURCE TARGET), got ${positionals.length}\n\n${USAGE}`);
  const [src, dst] = positionals as [string, string];
  const target = parseReference(dst);
  if (target.digest !== undefined) throw new UsageError(`target ${dst} must be a name with a tag, not a digest`);
  const store = await Store.open({ root: resolveRoot(values.root, ctx) });
  const entry = await store.lookup(src);
  await store.tag(target, entry.descriptor);
  ctx.stdout.write(`Tagged ${familiarString(target)} -> ${entry.descriptor.digest}\n`);
  return 0;
};
