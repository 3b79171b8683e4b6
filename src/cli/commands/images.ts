import { parseArgs } from 'node:util';
import { resolveRoot, UsageError, type Command } from '../context.js';
import { Store, type TagEntry } from '../../oci/store.js';
import { familiarName } from '../../oci/reference.js';
import { digestHex } from '../../oci/digest.js';
import { loadManifest, selectImage } from '../../oci/image.js';

const USAGE = `Usage: tsbuild images [OPTIONS] [REPOSITORY[:TAG]]

List images in the local store.

Options:
      --format string   Output format: table (default) or json
  -q, --quiet           Only show image IDs
      --no-trunc        Don't truncate digests
      --root string     tsbuild root directory (default $TSBUILD_ROOT or ~/.local/share/tsbuild)
  -h, --help            Show this help
`;

export interface ImageSummary {
  readonly name: string;
  readonly repository: string;
  readonly tag: string;
  readonly digest: string;
  readonly mediaType: string;
  readonly created: string | undefined;
  /** Bytes of every stored blob the image refers to (manifests, configs, layers as stored). */
  readonly size: number;
}

export async function summarize(store: Store, t: TagEntry): Promise<ImageSummary> {
  let created: string | undefined;
  try {
    const item = await loadManifest(store, t.descriptor);
    const img = await selectImage(store, item);
    created = (await img.config()).created;
  } catch {
    created = undefined;
  }
  let size = 0;
  for (const d of await store.reachable([t.descriptor])) size += (await store.statBlob(d)) ?? 0;
  return { name: t.name, repository: familiarName(t.reference), tag: t.reference.tag ?? '<none>', digest: t.descriptor.digest, mediaType: t.descriptor.mediaType, created, size };
}

export function humanSize(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${v}B` : `${v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)}${units[i]}`;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]! + 3))).join('').trimEnd()).join('\n') + '\n';
}

export const run: Command = async (argv, ctx) => {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      format: { type: 'string' },
      quiet: { type: 'boolean', short: 'q' },
      'no-trunc': { type: 'boolean' },
      root: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    ctx.stdout.write(USAGE);
    return 0;
  }
  const format = values.format ?? 'table';
  if (format !== 'table' && format !== 'json') throw new UsageError(`unknown --format ${JSON.stringify(format)}: want table or json`);
  if (positionals.length > 1) throw new UsageError('at most one REPOSITORY[:TAG] filter');
  const store = await Store.open({ root: resolveRoot(values.root, ctx) });
  let tags = await store.listTags();
  const filter = positionals[0];
  if (filter !== undefined) {
    const [repo, tag] = filter.includes(':') && !filter.slice(filter.lastIndexOf(':')).includes('/') ? [filter.slice(0, filter.lastIndexOf(':')), filter.slice(filter.lastIndexOf(':') + 1)] : [filter, undefined];
    tags = tags.filter((t) => (familiarName(t.reference) === repo || `${t.reference.domain}/${t.reference.path}` === repo) && (tag === undefined || t.reference.tag === tag));
  }
  const rows = await Promise.all(tags.map((t) => summarize(store, t)));
  if (format === 'json') {
    ctx.stdout.write(JSON.stringify(rows, null, 2) + '\n');
    return 0;
  }
  const id = (d: string) => (values['no-trunc'] ? d : digestHex(d as never).slice(0, 12));
  if (values.quiet) {
    ctx.stdout.write([...new Set(rows.map((r) => id(r.digest)))].map((s) => s + '\n').join(''));
    return 0;
  }
  const out: string[][] = [['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE']];
  for (const r of rows) out.push([r.repository, r.tag, id(r.digest), r.created ?? 'N/A', humanSize(r.size)]);
  ctx.stdout.write(table(out));
  return 0;
};
