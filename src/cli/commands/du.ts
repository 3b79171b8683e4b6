/**
 * `tsbuild du`: build cache disk usage, as `docker buildx du` shows it, plus the unpacked layers
 * (snapshots), which buildx counts in its records and tsbuild keeps beside them.
 *
 * Also home of what `prune` shares with it: loading the cache records with their "shared" flag,
 * `--filter` parsing, and Go-compatible renderings (go-units `HumanSize`/`HumanDuration`,
 * `text/tabwriter` with tab padding) so the output reads like buildx's.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CacheStore, parseDuration, type CacheEntryInfo } from '../../cache/store.js';
import { digestHex, isDigest, type Digest } from '../../oci/digest.js';
import { Store } from '../../oci/store.js';
import { didYouMean } from '../../util/suggest.js';
import type { Json } from '../../cache/keys.js';
import type { SnapshotUsage } from '../../builder/snapshots.js';
import { resolveRoot, UsageError, type Command } from '../context.js';

const USAGE = `Usage: tsbuild du [OPTIONS]

Show build cache disk usage: the cache records (as buildx du), then the unpacked layers
(what a plain \`tsbuild prune\` would free of them is reclaimable), counted in the totals.

Options:
      --filter filter   Provide filter values (e.g., "until=24h", "id=3f2a", "description~=apt");
                        filters select records: layers and totals are left out
      --verbose         Provide a more verbose output (each record, then each unpacked layer)
      --root string     tsbuild root directory (default $TSBUILD_ROOT or ~/.local/share/tsbuild)
  -h, --help            Show this help
`;

// ---------------------------------------------------------------------------------------------
// Cache usage records

/** One cache record as `du` and `prune` see it (BuildKit's `UsageInfo`, in tsbuild terms). */
export interface CacheUsage {
  readonly key: Digest;
  /** Short id: the first 25 hex digits of the key (BuildKit's ids are 25 characters). */
  readonly id: string;
  readonly size: number;
  readonly createdAt: Date;
  readonly lastUsedAt: Date;
  readonly description?: string;
  /** Blobs of the content store the record keeps alive (its layer). */
  readonly blobs: readonly Digest[];
  /** Every blob of the record is also part of a tagged image: pruning it frees nothing. */
  readonly shared: boolean;
}

/** Every `digest` string in a record's result (the layer blob, today). */
export function resultBlobs(result: Json): Digest[] {
  return resultDigests(result, 'digest');
}

/** The digests under `field` anywhere in a cache record's result (`digest`: blobs; `diffId`: layers' diffIDs). */
export function resultDigests(result: Json, field: 'digest' | 'diffId'): Digest[] {
  const out: Digest[] = [];
  const walk = (v: Json) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v !== null && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (k === field && typeof x === 'string' && isDigest(x)) out.push(x);
        else if (x !== undefined) walk(x);
      }
    }
  };
  walk(result);
  return out;
}

/** The cache records of a root, most recently used first, with "shared" computed against the store's tags. */
export async function loadUsage(cache: CacheStore, store: Store): Promise<CacheUsage[]> {
  return usageOf(await cache.list(), store);
}

/** `loadUsage` for records already listed (in the same order). */
export async function usageOf(entries: readonly CacheEntryInfo[], store: Store): Promise<CacheUsage[]> {
  const tagged = await store.reachable((await store.listTags()).map((t) => t.descriptor));
  return entries.map((e) => toUsage(e, tagged));
}

/** The layer diffIDs of every tagged image in the store (each platform of an index). */
export async function imageDiffIds(store: Store): Promise<Digest[]> {
  const out: Digest[] = [];
  const visit = async (digest: Digest, depth: number): Promise<void> => {
    let doc: { manifests?: { digest: Digest }[]; config?: { digest: Digest } };
    try {
      doc = JSON.parse((await store.readBlob(digest)).toString('utf8')) as typeof doc;
    } catch {
      return; // a tag whose manifest is gone: nothing of it to keep
    }
    if (Array.isArray(doc.manifests) && depth < 4) for (const m of doc.manifests) await visit(m.digest, depth + 1);
    if (doc.config?.digest) {
      try {
        const config = JSON.parse((await store.readBlob(doc.config.digest)).toString('utf8')) as { rootfs?: { diff_ids?: Digest[] } };
        out.push(...(config.rootfs?.diff_ids ?? []).filter((d) => isDigest(d)));
      } catch {
        // no config: no layers to keep
      }
    }
  };
  for (const t of await store.listTags()) await visit(t.descriptor.digest, 0);
  return out;
}

/**
 * The diffIDs whose unpacked layers (snapshots) `prune` keeps: every layer of a tagged image,
 * and every layer a record of `records` names. `prune` passes the records it leaves; `du` the
 * records a plain `prune` would leave, to tell what that prune would free.
 */
export async function liveDiffIds(records: Iterable<{ readonly result: Json }>, store: Store): Promise<Set<Digest>> {
  const live = new Set<Digest>(await imageDiffIds(store));
  for (const e of records) for (const d of resultDigests(e.result, 'diffId')) live.add(d);
  return live;
}

function toUsage(e: CacheEntryInfo, tagged: ReadonlySet<Digest>): CacheUsage {
  const blobs = resultBlobs(e.result);
  return {
    key: e.key,
    id: digestHex(e.key).slice(0, 25),
    size: e.size,
    createdAt: e.createdAt,
    lastUsedAt: e.lastUsedAt,
    ...(e.description !== undefined ? { description: e.description } : {}),
    blobs,
    shared: blobs.length > 0 && blobs.every((b) => tagged.has(b)),
  };
}

export async function openRoot(root: string): Promise<{ cache: CacheStore; store: Store }> {
  return { cache: await CacheStore.open(path.join(root, 'cache')), store: await Store.open({ root }) };
}

// ---------------------------------------------------------------------------------------------
// --filter

/** Parsed `--filter` values: buildx's `until` (or its old name `unused-for`), `id`, `description`. */
export interface UsageFilter {
  /** Only records not used for longer than this (ms). */
  readonly untilMs?: number;
  /** Key prefix (hex, with or without `sha256:`). */
  readonly id?: string;
  /** Exact description (`description=`) … */
  readonly description?: string;
  /** … or a substring of it (`description~=`). */
  readonly descriptionContains?: string;
}

const FILTER_KEYS = ['until', 'unused-for', 'id', 'description', 'description~'];

export function parseFilters(values: readonly string[]): UsageFilter {
  const seen = new Map<string, string>();
  for (const v of values) {
    const eq = v.indexOf('=');
    if (eq <= 0) throw new UsageError(`bad format of filter (expected name=value): ${JSON.stringify(v)}`);
    const k = v.slice(0, eq).trim().toLowerCase();
    const val = v.slice(eq + 1).trim();
    if (!FILTER_KEYS.includes(k)) {
      const s = didYouMean(k, FILTER_KEYS);
      throw new UsageError(`invalid filter ${JSON.stringify(k)}${typeof s === 'string' ? ` (did you mean ${s}?)` : ''}: supported filters are until, id, description`);
    }
    if (seen.has(k)) throw new UsageError(`${JSON.stringify(k)} filter expects only one value`);
    seen.set(k, val);
  }
  if (seen.has('until') && seen.has('unused-for')) throw new UsageError('conflicting filters "until" and "unused-for"');
  const out: { -readonly [K in keyof UsageFilter]: UsageFilter[K] } = {};
  const until = seen.get('until') ?? seen.get('unused-for');
  if (until !== undefined) {
    try {
      out.untilMs = parseDuration(until);
    } catch {
      throw new UsageError(`${JSON.stringify(seen.has('until') ? 'until' : 'unused-for')} filter expects a duration (e.g., '24h'), got ${JSON.stringify(until)}`);
    }
  }
  const id = seen.get('id');
  if (id !== undefined) {
    const hex = id.replace(/^sha256:/, '').toLowerCase();
    if (!/^[0-9a-f]+$/.test(hex)) throw new UsageError(`"id" filter expects a hex key prefix, got ${JSON.stringify(id)}`);
    out.id = hex;
  }
  if (seen.has('description')) out.description = seen.get('description')!;
  if (seen.has('description~')) out.descriptionContains = seen.get('description~')!;
  return out;
}

export function matchesFilter(u: CacheUsage, f: UsageFilter, now: number): boolean {
  if (f.untilMs !== undefined && now - u.lastUsedAt.getTime() <= f.untilMs) return false;
  if (f.id !== undefined && !digestHex(u.key).startsWith(f.id)) return false;
  if (f.description !== undefined && u.description !== f.description) return false;
  if (f.descriptionContains !== undefined && !(u.description ?? '').includes(f.descriptionContains)) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Go-compatible rendering

/** go-units `HumanSize`: decimal units, 4 significant digits (`1.5MB`, `796kB`, `0B`). */
export function humanSize(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB', 'ZB', 'YB'];
  let v = bytes;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${Number(v.toPrecision(4))}${units[i]}`;
}

/** go-units `HumanDuration` (`Less than a second`, `About a minute`, `3 hours`, `2 weeks`). */
export function humanDuration(ms: number): string {
  const seconds = Math.trunc(ms / 1000);
  if (seconds < 1) return 'Less than a second';
  if (seconds === 1) return '1 second';
  if (seconds < 60) return `${seconds} seconds`;
  const minutes = Math.trunc(ms / 60_000);
  if (minutes === 1) return 'About a minute';
  if (minutes < 60) return `${minutes} minutes`;
  const hours = Math.trunc(ms / 3_600_000 + 0.5);
  if (hours === 1) return 'About an hour';
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.trunc(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.trunc(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.trunc(hours / 24 / 30)} months`;
  return `${Math.trunc(ms / 3_600_000 / 24 / 365)} years`;
}

/**
 * Go `text/tabwriter` over rows of cells (the last cell of a row is not a column). buildx's
 * prune uses `NewWriter(w, 1, 8, 1, '\t', 0)` (tab padding, the default here); docker's table
 * formatter, used by `du`, uses `NewWriter(w, 10, 1, 3, ' ', 0)`.
 */
export function tabwrite(rows: readonly (readonly string[])[], opts: { minwidth?: number; tabwidth?: number; padding?: number; padchar?: string } = {}): string {
  const { minwidth = 1, tabwidth = 8, padding = 1, padchar = '\t' } = opts;
  const width: number[] = [];
  for (const r of rows) r.forEach((c, i) => i < r.length - 1 && (width[i] = Math.max(width[i] ?? 0, c.length + padding, minwidth)));
  return rows
    .map((r) =>
      r
        .map((c, i) => {
          if (i === r.length - 1) return c;
          if (padchar !== '\t') return c.padEnd(width[i]!, padchar);
          const cellw = Math.ceil(width[i]! / tabwidth) * tabwidth;
          return c + '\t'.repeat(Math.ceil((cellw - c.length) / tabwidth));
        })
        .join('')
        .trimEnd() + '\n',
    )
    .join('');
}

export const TABLE_HEADER = ['ID', 'RECLAIMABLE', 'SIZE', 'LAST ACCESSED'];

const lastAccessed = (u: CacheUsage, now: number) => `${humanDuration(now - u.lastUsedAt.getTime())} ago`;

/** A row of buildx's prune table (`printTableRow`: fixed-width cells, `*` marks a shared size). */
export function pruneRow(u: CacheUsage, now: number): string[] {
  return [u.id.padEnd(40), 'true '.padEnd(5), `${humanSize(u.size)}${u.shared ? '*' : ''}`.padEnd(10), lastAccessed(u, now)];
}

/** A row of buildx's du table (docker's table formatter). */
export function duRow(u: CacheUsage, now: number): string[] {
  return [u.id, 'true', `${humanSize(u.size)}${u.shared ? '*' : ''}`, lastAccessed(u, now)];
}

/** The fields of buildx's verbose record (its `printVerbose` and du's pretty template), in order. */
function verboseFields(u: CacheUsage, now: number): [string, string][] {
  const f: [string, string][] = [
    ['ID', u.id],
    ['Key', u.key],
    ['Created at', u.createdAt.toISOString()],
    ['Mutable', 'false'],
    ['Reclaimable', 'true'],
    ['Shared', String(u.shared)],
    ['Size', humanSize(u.size)],
  ];
  if (u.description !== undefined) f.push(['Description', u.description]);
  for (const b of u.blobs) f.push(['Blob', b]);
  f.push(['Last used', lastAccessed(u, now)], ['Type', 'regular']);
  return f;
}

/** `du --verbose`: du's pretty template (values aligned at column 15), a blank line after each. */
export function duVerbose(u: CacheUsage, now: number): string {
  return verboseFields(u, now).map(([k, v]) => `${`${k}:`.padEnd(14)}${v}\n`).join('') + '\n';
}

/** `prune --verbose`: buildx's `printVerbose` (tab-aligned `Key:\tvalue`), a blank line after each. */
export function pruneVerbose(u: CacheUsage, now: number): string {
  return tabwrite(verboseFields(u, now).map(([k, v]) => [`${k}:`, v])) + '\n';
}

/** Bytes outside the cache records that the summary counts too (the unpacked layers). */
export interface ExtraUsage {
  readonly size: number;
  /** Part of `size` kept for tagged images (as a shared record, pruning does not free it). */
  readonly shared: number;
  readonly reclaimable: number;
}

/**
 * buildx's summary: Shared/Private (when something is shared), Reclaimable, Total. `extra` (the
 * unpacked layers) adds to each, so Total is the disk the build cache takes.
 */
export function summary(usage: readonly CacheUsage[], extra: ExtraUsage = { size: 0, shared: 0, reclaimable: 0 }): string {
  let total = extra.size;
  let shared = extra.shared;
  let reclaimable = extra.reclaimable;
  for (const u of usage) {
    total += u.size;
    reclaimable += u.size;
    if (u.shared) shared += u.size;
  }
  const rows: string[][] = [];
  if (shared > 0) rows.push(['Shared:', humanSize(shared)], ['Private:', humanSize(total - shared)]);
  rows.push(['Reclaimable:', humanSize(reclaimable)], ['Total:', humanSize(total)]);
  return tabwrite(rows);
}

// ---------------------------------------------------------------------------------------------
// Unpacked layers

/** An unpacked layer (or a build's temp directory) with what keeps it. */
export interface LayerUsage extends SnapshotUsage {
  /** The full diffID, when an image or a record names it (the directory has only its first 24 hex digits). */
  readonly diffId?: Digest;
  /** What keeps it: a tagged image, cache records only, or nothing. */
  readonly usedBy: 'image' | 'cache' | 'none';
}

/**
 * The snapshots of a root, `reclaimable` meaning what a plain `tsbuild prune` would free: the
 * layers neither a tagged image nor a record that prune keeps (a shared one) names, unused for
 * the grace period, and the temp directories older than it.
 */
export async function loadLayerUsage(root: string, entries: readonly CacheEntryInfo[], usage: readonly CacheUsage[], store: Store): Promise<LayerUsage[]> {
  const shared = new Set(usage.filter((u) => u.shared).map((u) => u.key));
  // a plain prune (no filter) removes every record that is not shared, then sweeps the layers
  const live = await liveDiffIds(entries.filter((e) => shared.has(e.key)), store);
  const byImage = new Map((await imageDiffIds(store)).map((d) => [digestHex(d).slice(0, 24), d]));
  const byRecord = new Map(entries.flatMap((e) => resultDigests(e.result, 'diffId')).map((d) => [digestHex(d).slice(0, 24), d]));
  const { SnapshotStore } = await import('../../builder/snapshots.js');
  return (await new SnapshotStore(root).usage(live)).map((s) => {
    const diffId = s.kind === 'layer' ? (byImage.get(s.name) ?? byRecord.get(s.name)) : undefined;
    return { ...s, ...(diffId ? { diffId } : {}), usedBy: s.kind !== 'layer' ? 'none' : byImage.has(s.name) ? 'image' : byRecord.has(s.name) ? 'cache' : 'none' };
  });
}

/** The lines `du` adds for unpacked layers and temp directories (none when there are none). */
export function layersSummary(layers: readonly LayerUsage[]): string {
  const rows: string[][] = [];
  for (const [kind, label] of [['layer', 'Unpacked layers:'], ['temp', 'Build temp dirs:']] as const) {
    const of = layers.filter((l) => l.kind === kind);
    if (of.length === 0) continue;
    const size = of.reduce((n, l) => n + l.size, 0);
    const reclaimable = of.reduce((n, l) => n + (l.reclaimable ? l.size : 0), 0);
    rows.push([label, `${of.length}, ${humanSize(size)} (reclaimable: ${humanSize(reclaimable)})`]);
  }
  return tabwrite(rows);
}

/** `du --verbose` for one snapshot: du's pretty template, a blank line after. */
export function layerVerbose(l: LayerUsage, now: number): string {
  const f: [string, string][] = l.kind === 'layer' ? [['Layer', l.diffId ?? l.name]] : [['Temp dir', `tmp/${l.name}`]];
  if (l.kind === 'layer') f.push(['Used by', { image: 'tagged image', cache: 'cache records', none: 'nothing' }[l.usedBy]]);
  f.push(['Reclaimable', String(l.reclaimable)], ['Size', humanSize(l.size)], ['Last used', `${humanDuration(now - l.lastUsedAt.getTime())} ago`]);
  return f.map(([k, v]) => `${`${k}:`.padEnd(14)}${v}\n`).join('') + '\n';
}

// ---------------------------------------------------------------------------------------------

export const run: Command = async (argv, ctx) => {
  const { values } = parseArgs({
    args: argv,
    allowPositionals: false,
    options: {
      filter: { type: 'string', multiple: true },
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
  const root = resolveRoot(values.root, ctx);
  const { cache, store } = await openRoot(root);
  const now = Date.now();
  const entries = await cache.list();
  const all = await usageOf(entries, store);
  const usage = all.filter((u) => matchesFilter(u, filter, now));
  // Filters select records; as buildx leaves the summary out when filtering, the layers go too.
  const filtered = (values.filter ?? []).length > 0;
  const layers = filtered ? [] : await loadLayerUsage(root, entries, all, store);
  let out = '';
  if (values.verbose) out += usage.map((u) => duVerbose(u, now)).join('') + layers.map((l) => layerVerbose(l, now)).join('');
  else out += tabwrite([TABLE_HEADER, ...usage.map((u) => duRow(u, now))], { minwidth: 10, padding: 3, padchar: ' ' });
  if (!filtered) {
    out += layersSummary(layers);
    const sum = (pick: (l: LayerUsage) => boolean) => layers.reduce((n, l) => n + (pick(l) ? l.size : 0), 0);
    out += summary(usage, { size: sum(() => true), shared: sum((l) => l.usedBy === 'image'), reclaimable: sum((l) => l.reclaimable) });
  }
  ctx.stdout.write(out);
  return 0;
};
