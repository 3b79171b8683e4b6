/**
 * `tsbuild prune`: remove build cache, as `docker buildx prune` does, then sweep the content
 * store's blobs that nothing references any more, so the disk space comes back.
 *
 * BuildKit's default prune skips "shared" records (their data is also part of an image) and
 * internal/frontend records; `--all` includes them. tsbuild has no internal or frontend records,
 * so: a record is shared when every blob it keeps is part of a tagged image; the default removes
 * the others (the dangling ones), `--all` removes shared ones too. The sweep never removes a blob
 * reachable from a tag, nor one a remaining record refers to.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Readable } from 'node:stream';
import { parseSize } from '../../cache/store.js';
import { resolveRoot, UsageError, type CliContext, type Command } from '../context.js';
import { humanSize, liveDiffIds, loadUsage, matchesFilter, openRoot, parseFilters, pruneRow, pruneVerbose, resultBlobs, tabwrite, TABLE_HEADER, type CacheUsage, type UsageFilter } from './du.js';

const USAGE = `Usage: tsbuild prune [OPTIONS]

Remove build cache, then the content store's blobs that no image and no cache record uses.

Options:
  -a, --all                 Include cache whose layers are also part of tagged images
      --filter filter       Provide filter values (e.g., "until=24h")
  -f, --force               Do not prompt for confirmation
      --keep-storage bytes  Amount of disk space to keep for cache (e.g., 512mb, 10gb; base 1024)
      --verbose             Provide a more verbose output
      --root string         tsbuild root directory (default $TSBUILD_ROOT or ~/.local/share/tsbuild)
  -h, --help                Show this help
`;

const NORMAL_WARNING = 'WARNING! This will remove all dangling build cache. Are you sure you want to continue?';
const ALL_WARNING = 'WARNING! This will remove all build cache. Are you sure you want to continue?';

export interface PruneSelection {
  /** Include shared records (`--all`). */
  readonly all?: boolean;
  readonly filter?: UsageFilter;
  /** Bytes to keep (`--keep-storage`); 0 or undefined: no limit, every candidate goes. */
  readonly keepStorage?: number;
}

/**
 * What BuildKit's cache manager would remove. Candidates: records not shared (unless `all`)
 * matching the filter (`until` keeps records used more recently). With `keepStorage`, least
 * recently used candidates go one at a time while the cache's private size (shared records do
 * not count, as in BuildKit) is at least `keepStorage`.
 */
export function selectForPrune(usage: readonly CacheUsage[], sel: PruneSelection, now: number): CacheUsage[] {
  const candidates = usage.filter((u) => (sel.all || !u.shared) && matchesFilter(u, sel.filter ?? {}, now));
  if (!sel.keepStorage) return candidates;
  let total = usage.reduce((n, u) => n + (u.shared ? 0 : u.size), 0);
  const lru = [...candidates].sort((a, b) => a.lastUsedAt.getTime() - b.lastUsedAt.getTime() || (a.key < b.key ? -1 : 1));
  const out: CacheUsage[] = [];
  for (const u of lru) {
    if (total < sel.keepStorage) break;
    out.push(u);
    if (!u.shared) total -= u.size;
  }
  return out;
}

/** One line from `stdin` (without its end of line), or undefined at end of input. */
function readLine(stdin: Readable, signal: AbortSignal): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const done = (fn: () => void) => {
      stdin.off('data', onData);
      stdin.off('end', onEnd);
      stdin.off('error', onError);
      signal.removeEventListener('abort', onAbort);
      stdin.pause();
      fn();
    };
    const onData = (chunk: Buffer | string) => {
      buf += String(chunk);
      const nl = buf.indexOf('\n');
      if (nl >= 0) done(() => resolve(buf.slice(0, nl).replace(/\r$/, '')));
    };
    const onEnd = () => done(() => resolve(buf === '' ? undefined : buf));
    const onError = (err: Error) => done(() => reject(err));
    const onAbort = () => done(() => reject(signal.reason));
    if (signal.aborted) return reject(signal.reason);
    stdin.on('data', onData);
    stdin.once('end', onEnd);
    stdin.once('error', onError);
    signal.addEventListener('abort', onAbort, { once: true });
    stdin.resume();
  });
}

/** buildx's confirmation: `<warning> [y/N] `, only `y`/`Y` proceeds. No answer at all (end of input) is refused with a hint. */
async function confirm(ctx: CliContext, warning: string): Promise<'yes' | 'no' | 'no-input'> {
  ctx.stdout.write(`${warning} [y/N] `);
  const answer = await readLine(ctx.stdin, ctx.signal);
  if (answer === undefined) {
    ctx.stdout.write('\n');
    return 'no-input';
  }
  return answer.trim().toLowerCase() === 'y' ? 'yes' : 'no';
}

export const run: Command = async (argv, ctx) => {
  const { values } = parseArgs({
    args: argv,
    allowPositionals: false,
    options: {
      all: { type: 'boolean', short: 'a' },
      filter: { type: 'string', multiple: true },
      force: { type: 'boolean', short: 'f' },
      'keep-storage': { type: 'string' },
      verbose: { type: 'boolean' },
      root: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    ctx.stdout.write(USAGE);
    return 0;
  }
  const filter = parseFilters(values.filter ?? []);
  let keepStorage: number | undefined;
  if (values['keep-storage'] !== undefined) {
    try {
      keepStorage = parseSize(values['keep-storage']);
    } catch (err) {
      throw new UsageError(`invalid argument ${JSON.stringify(values['keep-storage'])} for "--keep-storage" flag: ${(err as Error).message}`);
    }
  }
  if (!values.force) {
    const answer = await confirm(ctx, values.all ? ALL_WARNING : NORMAL_WARNING);
    if (answer === 'no-input') {
      ctx.stderr.write('tsbuild prune: no answer on standard input (not a terminal?); use --force to prune without confirmation\n');
      return 1;
    }
    if (answer === 'no') return 0;
  }

  const { cache, store } = await openRoot(resolveRoot(values.root, ctx));
  const now = Date.now();
  const sel: PruneSelection = { all: values.all ?? false, filter, ...(keepStorage !== undefined ? { keepStorage } : {}) };
  const { removed, gc, snapshots } = await cache.withLock(async () => {
    const usage = await loadUsage(cache, store);
    const doomed = selectForPrune(usage, sel, now);
    const gone: CacheUsage[] = [];
    for (const u of doomed) if (await cache.delete(u.key)) gone.push(u);
    // Sweep the store while still holding the cache lock, so no build adds a record meanwhile;
    // the remaining records' blobs are roots, tagged images are always roots.
    const remaining = await cache.list();
    const roots = remaining.flatMap((e) => resultBlobs(e.result));
    // Unpacked layers nothing names any more (and were not used within the grace period).
    const { SnapshotStore } = await import('../../builder/snapshots.js');
    const snapshots = await new SnapshotStore(path.dirname(cache.dir)).gc(await liveDiffIds(remaining, store));
    return { removed: gone, gc: await store.gc({ roots }), snapshots };
  });
  // Everything: the kept ASTs and plans go too (they are small and rebuilt on the next build).
  if (sel.all && Object.keys(filter).length === 0 && keepStorage === undefined) {
    for (const sub of ['parse', 'plan']) await rm(path.join(cache.dir, sub), { recursive: true, force: true });
  }

  let out = '';
  if (values.verbose) out += removed.map((u) => pruneVerbose(u, now)).join('');
  else if (removed.length > 0) out += tabwrite([TABLE_HEADER, ...removed.map((u) => pruneRow(u, now))]);
  const total = removed.reduce((n, u) => n + u.size, 0);
  if (snapshots.removed > 0) out += tabwrite([['Unused snapshots:', `${snapshots.removed} unpacked layers removed, ${humanSize(snapshots.freedBytes)}`]]);
  if (snapshots.tempsRemoved > 0) out += tabwrite([['Stale temp dirs:', `${snapshots.tempsRemoved} removed, ${humanSize(snapshots.tempsFreedBytes)}`]]);
  if (gc.removed.length > 0) out += tabwrite([['Unused blobs:', `${gc.removed.length} removed from the content store, ${humanSize(gc.freedBytes)}`]]);
  // buildx prints it alone, with a tabwriter of its own; the unpacked layers count, as in du's Total
  out += tabwrite([['Total:', humanSize(total + snapshots.freedBytes + snapshots.tempsFreedBytes)]]);
  ctx.stdout.write(out);
  return 0;
};

