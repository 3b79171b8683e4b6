import { parseArgs } from 'node:util';
import { resolveRoot, UsageError, type Command } from '../context.js';
import { Store, TagNotFoundError } from '../../oci/store.js';
import { familiarString } from '../../oci/reference.js';
import type { Digest } from '../../oci/digest.js';

const USAGE = `Usage: tsbuild rmi [OPTIONS] IMAGE [IMAGE...]

Remove image tags from the local store, and the blobs only those images used.

Options:
      --no-prune      Keep the blobs (remove the tags only; 'tsbuild prune' collects them later)
      --root string   tsbuild root directory (default $TSBUILD_ROOT or ~/.local/share/tsbuild)
  -h, --help          Show this help
`;

export const run: Command = async (argv, ctx) => {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { 'no-prune': { type: 'boolean' }, force: { type: 'boolean', short: 'f' }, root: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    ctx.stdout.write(USAGE);
    return 0;
  }
  if (positionals.length === 0) throw new UsageError(`"rmi" requires at least 1 argument\n\n${USAGE}`);
  const store = await Store.open({ root: resolveRoot(values.root, ctx) });
  let code = 0;
  const removed: Digest[] = [];
  for (const text of positionals) {
    try {
      const entry = await store.lookup(text);
      if (entry.reference.tag === undefined) {
        // A digest or id: remove every tag that points at it.
        const tags = (await store.listTags()).filter((t) => t.descriptor.digest === entry.descriptor.digest);
        for (const t of tags) {
          await store.untag(t.reference);
          ctx.stdout.write(`Untagged: ${familiarString(t.reference)}\n`);
        }
      } else {
        await store.untag(entry.reference);
        ctx.stdout.write(`Untagged: ${familiarString(entry.reference)}\n`);
      }
      removed.push(entry.descriptor.digest);
    } catch (err) {
      if (!(err instanceof TagNotFoundError)) throw err;
      ctx.stderr.write(`Error: No such image: ${text}${err.message.includes('did you mean') ? ` (${err.message.slice(err.message.indexOf('did you mean'))})` : ''}\n`);
      code = 1;
    }
  }
  if (!values['no-prune'] && removed.length > 0) {
    const live = await store.reachable((await store.listTags()).map((t) => t.descriptor));
    const candidates = await store.reachable(removed);
    for (const d of [...candidates].sort()) {
      if (live.has(d)) continue;
      if (await store.deleteBlob(d)) ctx.stdout.write(`Deleted: ${d}\n`);
    }
  }
  return code;
};
