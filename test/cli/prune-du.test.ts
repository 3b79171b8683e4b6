import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { link, mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { SnapshotStore } from '../../src/builder/snapshots.js';
import { CacheStore } from '../../src/cache/store.js';
import { humanDuration, humanSize, tabwrite } from '../../src/cli/commands/du.js';
import type { Digest } from '../../src/oci/digest.js';
import { Store } from '../../src/oci/store.js';
import { makeBusyboxImage } from '../helpers/base-images.js';
import { runCli } from '../helpers/cli.js';

const execFileP = promisify(execFile);

/** GNU du's own count (`du -sxc -B1`): allocated bytes of the trees, a hard-linked file once across all of them, no mount point entered. */
async function duBytes(dirs: readonly string[]): Promise<number> {
  if (dirs.length === 0) return 0;
  const { stdout } = await execFileP('du', ['-s', '-x', '-c', '--block-size=1', ...dirs]);
  const total = stdout.trim().split('\n').at(-1)!;
  expect(total).toMatch(/^\d+\ttotal$/);
  return Number(total.split('\t')[0]);
}

/** The snapshot directories of a root (24 hex digits each), as paths. */
async function snapshotDirs(root: string): Promise<string[]> {
  const dir = path.join(root, 'snapshots');
  return (await readdir(dir)).filter((n) => /^[0-9a-f]{24}$/.test(n)).sort().map((n) => path.join(dir, n));
}

const tmpRoot = await mkdtemp(path.join(os.tmpdir(), 'tsbuild-prune-du-'));
afterAll(() => rm(tmpRoot, { recursive: true, force: true }));

const HOUR = 3_600_000;
const key = (s: string): Digest => `sha256:${createHash('sha256').update(s).digest('hex')}` as Digest;

interface Fixture {
  root: string;
  cache: CacheStore;
  store: Store;
  /** Record name → its key and layer blob. */
  rec: Record<string, { key: Digest; blob: Digest; size: number }>;
  imageBlobs: Digest[];
}

/**
 * A root with a tagged image (config + two layers) and five cache records, each keeping one real
 * layer blob: `shared` keeps the image's first layer; `old` (3 days), `day` (30 hours), `recent`
 * (2 hours), `fresh` (now) keep blobs of their own. Every blob is an hour old, past the store's
 * 10-minute grace period.
 */
async function fixture(name: string): Promise<Fixture> {
  const root = path.join(tmpRoot, name);
  const cache = await CacheStore.open(path.join(root, 'cache'));
  const store = await Store.open({ root });
  const put = async (n: number) => store.putBlob(randomBytes(n));
  const layer1 = await put(5000);
  const layer2 = await put(7000);
  const config = await store.putBlob(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const manifest = await store.putBlob(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: [layer1, layer2].map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...l })),
    }),
  );
  await store.tag('example.com/app:1', { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest });
  const rec: Fixture['rec'] = {};
  const ages: [string, number, number][] = [
    ['shared', 5 * HOUR, 0],
    ['old', 72 * HOUR, 1000],
    ['day', 30 * HOUR, 2000],
    ['recent', 2 * HOUR, 3000],
    ['fresh', 0, 4000],
  ];
  for (const [n, age, size] of ages) {
    const blob = n === 'shared' ? layer1 : await put(size);
    const k = key(`${name}:${n}`);
    await cache.put({ key: k, result: { layer: { diffId: key(`diff:${n}`), digest: blob.digest, size: blob.size, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' } }, size: blob.size, description: `RUN step ${n}` });
    const t = new Date(Date.now() - age);
    await utimes(path.join(cache.dir, 'records', `${k.slice(7)}.json`), t, t);
    rec[n] = { key: k, blob: blob.digest, size: blob.size };
  }
  const hourAgo = new Date(Date.now() - HOUR);
  for await (const b of store.listBlobs()) await utimes(store.blobPath(b.digest), hourAgo, hourAgo);
  return { root, cache, store, rec, imageBlobs: [manifest.digest, config.digest, layer1.digest, layer2.digest] };
}

async function records(f: Fixture): Promise<string[]> {
  const have = new Set((await f.cache.list()).map((e) => e.key));
  return Object.entries(f.rec)
    .filter(([, r]) => have.has(r.key))
    .map(([n]) => n)
    .sort();
}

const onDisk = async (f: Fixture, d: Digest) => (await f.store.statBlob(d)) !== undefined;
const id = (d: Digest) => d.slice(7, 32);

describe('tsbuild du', () => {
  it('lists every record with buildx columns and the Shared/Private/Reclaimable/Total summary', async () => {
    const f = await fixture('du');
    const r = await runCli(['du', '--root', f.root]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^ID {2,}RECLAIMABLE {3}SIZE {3,}LAST ACCESSED$/);
    // most recently used first
    const order = lines.slice(1, 6).map((l) => l.split(/\s+/)[0]);
    expect(order).toEqual(['fresh', 'recent', 'shared', 'day', 'old'].map((n) => id(f.rec[n]!.key)));
    const row = (n: string) => lines.find((l) => l.startsWith(id(f.rec[n]!.key)))!;
    expect(row('old')).toMatch(/ true +1kB +3 days ago$/);
    expect(row('day')).toMatch(/ true +2kB +30 hours ago$/);
    expect(row('shared')).toMatch(/ true +5kB\* +5 hours ago$/); // its layer is part of a tagged image
    expect(row('fresh')).toMatch(/ 4kB +Less than a second ago$/);
    const total = Object.values(f.rec).reduce((n, x) => n + x.size, 0);
    expect(r.stdout.endsWith(tabwrite([['Shared:', '5kB'], ['Private:', humanSize(total - 5000)], ['Reclaimable:', humanSize(total)], ['Total:', humanSize(total)]]))).toBe(true);
    expect(r.stdout).toContain('Shared:\t\t5kB\nPrivate:\t10kB\nReclaimable:\t15kB\nTotal:\t\t15kB\n');
  });

  it('--verbose prints one block per record; --filter selects and drops the summary as buildx does', async () => {
    const f = await fixture('du-verbose');
    const v = await runCli(['du', '--verbose', '--root', f.root]);
    expect(v.code).toBe(0);
    const blocks = v.stdout.split('\n\n').filter((b) => b.startsWith('ID:'));
    expect(blocks).toHaveLength(5);
    const old = blocks.find((b) => b.includes(f.rec.old!.key))!;
    expect(old).toContain(`ID:           ${id(f.rec.old!.key)}\n`);
    expect(old).toContain('Description:  RUN step old\n');
    expect(old).toContain(`Blob:         ${f.rec.old!.blob}\n`);
    expect(old).toContain('Shared:       false\n');
    expect(old).toContain('Last used:    3 days ago\n');
    expect(blocks.find((b) => b.includes(f.rec.shared!.key))).toContain('Shared:       true\n');

    const until = await runCli(['du', '--filter', 'until=24h', '--root', f.root]);
    expect(until.code).toBe(0);
    const ids = until.stdout.split('\n').slice(1).filter(Boolean).map((l) => l.split(/\s+/)[0]);
    expect(ids.sort()).toEqual([id(f.rec.old!.key), id(f.rec.day!.key)].sort());
    expect(until.stdout).not.toContain('Total:');

    const desc = await runCli(['du', '--filter', 'description~=step re', '--root', f.root]);
    expect(desc.stdout.split('\n').slice(1).filter(Boolean).map((l) => l.split(/\s+/)[0])).toEqual([id(f.rec.recent!.key)]);
  });

  it('rejects unknown filters with a suggestion, and bad durations', async () => {
    const f = await fixture('du-bad');
    const r = await runCli(['du', '--filter', 'untill=24h', '--root', f.root]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('invalid filter "untill" (did you mean until?)');
    const d = await runCli(['du', '--filter', 'until=yesterday', '--root', f.root]);
    expect(d.code).toBe(2);
    expect(d.stderr).toContain(`"until" filter expects a duration (e.g., '24h')`);
  });

  it('shows an empty table and zero totals for a fresh root', async () => {
    const r = await runCli(['du', '--root', path.join(tmpRoot, 'empty')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('ID        RECLAIMABLE   SIZE      LAST ACCESSED\nReclaimable:\t0B\nTotal:\t\t0B\n');
  });
});

describe('tsbuild prune', () => {
  it('--all also empties the kept ASTs and plans (ROOT/cache/parse, ROOT/cache/plan); a dangling-only prune keeps them', async () => {
    const f = await fixture('parse-plan');
    const { mkdir, writeFile } = await import('node:fs/promises');
    for (const sub of ['parse', 'plan']) {
      await mkdir(path.join(f.cache.dir, sub), { recursive: true });
      await writeFile(path.join(f.cache.dir, sub, 'x.json'), '{}');
    }
    expect((await runCli(['prune', '--force', '--root', f.root])).code).toBe(0);
    expect(await readdir(path.join(f.cache.dir, 'parse'))).toEqual(['x.json']);
    expect((await runCli(['prune', '--all', '--force', '--root', f.root])).code).toBe(0);
    for (const sub of ['parse', 'plan']) await expect(stat(path.join(f.cache.dir, sub))).rejects.toThrow(/ENOENT/);
  });

  it('asks like buildx and refuses without an answer; "n" keeps everything, "y" prunes', async () => {
    const f = await fixture('confirm');
    const none = await runCli(['prune', '--root', f.root]);
    expect(none.code).toBe(1);
    expect(none.stdout).toContain('WARNING! This will remove all dangling build cache. Are you sure you want to continue? [y/N] ');
    expect(none.stderr).toContain('use --force');
    expect(await records(f)).toHaveLength(5);

    const no = await runCli(['prune', '--all', '--root', f.root], { stdin: 'n\n' });
    expect(no.code).toBe(0);
    expect(no.stdout).toBe('WARNING! This will remove all build cache. Are you sure you want to continue? [y/N] ');
    expect(await records(f)).toHaveLength(5);

    const yes = await runCli(['prune', '--root', f.root], { stdin: 'y\n' });
    expect(yes.code).toBe(0);
    expect(yes.stdout).toContain('Total:');
    expect(await records(f)).toEqual(['shared']);
  });

  it('by default removes dangling records and their blobs, never a tagged image blob', async () => {
    const f = await fixture('default');
    const before = await readdir(path.join(f.store.blobsDir, 'sha256'));
    const r = await runCli(['prune', '--force', '--root', f.root]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(await records(f)).toEqual(['shared']);
    for (const n of ['old', 'day', 'recent', 'fresh']) {
      expect(r.stdout).toContain(id(f.rec[n]!.key));
      expect(await onDisk(f, f.rec[n]!.blob)).toBe(false);
    }
    for (const d of f.imageBlobs) expect(await onDisk(f, d)).toBe(true);
    expect(await readdir(path.join(f.store.blobsDir, 'sha256'))).toHaveLength(before.length - 4);
    expect(r.stdout.split('\n')[0]).toBe('ID\t\t\t\t\t\tRECLAIMABLE\tSIZE\t\tLAST ACCESSED');
    expect(r.stdout).toContain(`${id(f.rec.old!.key)}${' '.repeat(15)}\ttrue \t\t1kB       \t3 days ago\n`);
    expect(r.stdout).toContain('Unused blobs:\t4 removed from the content store, 10kB\nTotal:\t10kB\n');
    // the image is still whole
    const img = await runCli(['images', '--root', f.root]);
    expect(img.stdout).toContain('example.com/app');
  });

  it('--all removes shared records too, and still keeps every blob of the tagged image', async () => {
    const f = await fixture('all');
    const r = await runCli(['prune', '-a', '-f', '--root', f.root]);
    expect(r.code).toBe(0);
    expect(await records(f)).toEqual([]);
    expect(r.stdout).toContain(`${humanSize(5000)}*`);
    for (const d of f.imageBlobs) expect(await onDisk(f, d)).toBe(true);
    expect(r.stdout).toContain('Total:\t15kB\n');
    const du = await runCli(['du', '--root', f.root]);
    expect(du.stdout).toContain('Total:\t\t0B\n');
  });

  it('--filter until=24h removes only records unused for longer', async () => {
    const f = await fixture('until');
    const r = await runCli(['prune', '-f', '--filter', 'until=24h', '--root', f.root]);
    expect(r.code).toBe(0);
    expect(await records(f)).toEqual(['fresh', 'recent', 'shared']);
    expect(await onDisk(f, f.rec.old!.blob)).toBe(false);
    expect(await onDisk(f, f.rec.day!.blob)).toBe(false);
    expect(await onDisk(f, f.rec.recent!.blob)).toBe(true);
    expect(r.stdout).toContain('Total:\t3kB\n');
  });

  it('--keep-storage removes least recently used dangling records until the private size is under the limit', async () => {
    const f = await fixture('keep');
    // private (not shared) records: old 1000, day 2000, recent 3000, fresh 4000 = 10000 bytes.
    // Keep 6000: drop old (9000 left), day (7000), recent (4000 < 6000) and stop.
    const r = await runCli(['prune', '-f', '--keep-storage', '6000', '--root', f.root]);
    expect(r.code).toBe(0);
    expect(await records(f)).toEqual(['fresh', 'shared']);
    expect(await onDisk(f, f.rec.fresh!.blob)).toBe(true);
    expect(await onDisk(f, f.rec.recent!.blob)).toBe(false);
    // sizes take buildx's units (base 1024): 9kb = 9216 bytes, 4000 private left is already under it
    const again = await runCli(['prune', '-f', '--keep-storage', '9kb', '--root', f.root]);
    expect(await records(f)).toEqual(['fresh', 'shared']);
    expect(again.stdout).toBe('Total:\t0B\n');
    const tight = await runCli(['prune', '-f', '--keep-storage', '0.003MB', '--root', f.root]); // 3145 bytes
    expect(tight.code).toBe(0);
    expect(await records(f)).toEqual(['shared']);
  });

  it('rejects a bad --keep-storage before touching anything', async () => {
    const f = await fixture('bad-size');
    const r = await runCli(['prune', '-f', '--keep-storage', 'lots', '--root', f.root]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('invalid argument "lots" for "--keep-storage" flag');
    expect(await records(f)).toHaveLength(5);
  });

  it('removes the unpacked layers (snapshots) nothing names any more, past the grace period', async () => {
    const f = await fixture('snapshots');
    const snapshots = new SnapshotStore(f.root);
    const hourAgo = new Date(Date.now() - HOUR);
    const make = async (d: Digest, age = hourAgo): Promise<string> => {
      const dir = snapshots.pathFor(d);
      await mkdir(path.join(dir, 'etc'), { recursive: true });
      await writeFile(path.join(dir, 'etc', 'file'), 'x'.repeat(5000));
      await utimes(dir, age, age);
      return dir;
    };
    // the tagged image's layers: its config names them
    const imageLayers = [key('diff:image1'), key('diff:image2')];
    const config = await f.store.putBlob(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: imageLayers } }));
    const manifest = await f.store.putBlob(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config }, layers: [] }));
    await f.store.tag('example.com/app:layers', { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest });
    const dirs = Object.fromEntries(await Promise.all([...Object.keys(f.rec).map((n) => [n, key(`diff:${n}`)] as const), ['image1', imageLayers[0]!] as const, ['image2', imageLayers[1]!] as const, ['orphan', key('diff:orphan')] as const].map(async ([n, d]) => [n, await make(d)] as const)));
    dirs.young = await make(key('diff:young'), new Date()); // made by a build in flight
    dirs.mounted = await make(key('diff:mounted'));
    await snapshots.ensure(key('diff:mounted'), () => Promise.reject(new Error('present: not unpacked'))); // a build in flight uses it
    const leftover = path.join(snapshots.tmpDir, 'u-killedbuild');
    await mkdir(path.join(leftover, 'x'), { recursive: true });
    await utimes(leftover, hourAgo, hourAgo);

    const r = await runCli(['prune', '--force', '--root', f.root]);
    expect(r.code, r.stderr).toBe(0);
    // the default prune removed the records old, day, recent and fresh: their layers go, with the orphan
    expect(r.stdout).toMatch(/Unused snapshots:\t5 unpacked layers removed, \d+(\.\d+)?kB\n/);
    const exists = (d: string) => stat(d).then(() => true, () => false);
    for (const n of ['old', 'day', 'recent', 'fresh', 'orphan']) expect(await exists(dirs[n]!), n).toBe(false);
    for (const n of ['shared', 'image1', 'image2', 'young', 'mounted']) expect(await exists(dirs[n]!), n).toBe(true);
    expect(await exists(leftover)).toBe(false);
    // nothing half-removed is left in the snapshots' directory
    expect((await readdir(snapshots.dir)).filter((n) => /^[0-9a-f]{24}$/.test(n)).sort()).toEqual(['shared', 'image1', 'image2', 'young', 'mounted'].map((n) => path.basename(dirs[n]!)).sort());
  });

  it('keeps blobs written within the grace period (a build in flight) even when unreferenced', async () => {
    const f = await fixture('grace');
    const young = await f.store.putBlob(randomBytes(100));
    const r = await runCli(['prune', '-f', '--root', f.root]);
    expect(r.code).toBe(0);
    expect(await onDisk(f, young.digest)).toBe(true);
    expect((await stat(f.store.blobPath(young.digest))).size).toBe(100);
  });
});

describe('tsbuild du: unpacked layers', () => {
  it('a real build leaves snapshots; du counts them as GNU du does, in Total; after rmi and prune --all, what is left', async () => {
    const root = path.join(tmpRoot, 'real-build');
    await makeBusyboxImage(root);
    const ctxDir = path.join(tmpRoot, 'real-build-ctx');
    await mkdir(ctxDir, { recursive: true });
    // 300 kB under two names (one inode, counted once) and a small second layer
    await writeFile(path.join(ctxDir, 'Dockerfile'), 'FROM busybox:latest\nRUN yes tsbuild | head -c 300000 > /big && ln /big /big2\nRUN echo hi > /small\n');
    const b = await runCli(['build', '--root', root, '-t', 'app:1', '--progress', 'plain', ctxDir]);
    expect(b.code, b.stderr).toBe(0);
    const dirs = await snapshotDirs(root);
    expect(dirs).toHaveLength(3); // busybox's layer and the two RUN layers
    const bytes = await duBytes(dirs);
    expect(bytes).toBeGreaterThan(300_000);
    // the RUN layer with /big and its hard link /big2: one inode, counted once
    const bigDir = (await Promise.all(dirs.map(async (d) => ((await stat(path.join(d, 'big2')).catch(() => undefined)) ? d : undefined)))).find(Boolean)!;
    expect((await stat(path.join(bigDir, 'big'))).ino).toBe((await stat(path.join(bigDir, 'big2'))).ino);
    const cache = await CacheStore.open(path.join(root, 'cache'));
    const recordBytes = (await cache.list()).reduce((n, e) => n + e.size, 0);
    expect(recordBytes).toBeGreaterThan(0);
    const tempBytes = await duBytes((await readdir(path.join(root, 'snapshots', 'tmp')).catch(() => [])).map((n) => path.join(root, 'snapshots', 'tmp', n)));

    // the library's count, exactly du's
    const snaps = new SnapshotStore(root);
    const raw = await runCli(['inspect', '--raw', 'config', '--root', root, 'app:1']);
    expect(raw.code, raw.stderr).toBe(0);
    const diffIds = (JSON.parse(raw.stdout) as { rootfs: { diff_ids: Digest[] } }).rootfs.diff_ids;
    expect(diffIds).toHaveLength(3); // busybox's layer first
    const listed = await snaps.usage(new Set(diffIds));
    const layers = listed.filter((l) => l.kind === 'layer');
    expect(layers.map((l) => l.name).sort()).toEqual(dirs.map((d) => path.basename(d)));
    expect(layers.reduce((n, l) => n + l.size, 0)).toBe(bytes);
    for (const l of layers) expect(l.size, l.name).toBe(await duBytes([path.join(snaps.dir, l.name)]));
    const big = layers.find((l) => l.name === path.basename(bigDir))!;
    expect(big.size).toBeGreaterThan(300_000);
    expect(big.size).toBeLessThan(600_000);
    expect(layers.every((l) => l.live && !l.reclaimable)).toBe(true);

    // du: the records' table as before, then the layers, counted in Total; nothing reclaimable (a tagged image names each layer)
    const du = await runCli(['du', '--root', root]);
    expect(du.code, du.stderr).toBe(0);
    expect(du.stdout.split('\n')[0]).toMatch(/^ID {2,}RECLAIMABLE {3}SIZE {3,}LAST ACCESSED$/);
    expect(du.stdout).toContain(`Unpacked layers:\t3, ${humanSize(bytes)} (reclaimable: 0B)\n`);
    expect(du.stdout).toMatch(new RegExp(`\\nTotal:\\t+${humanSize(recordBytes + bytes + tempBytes).replace('.', '\\.')}\\n$`));
    expect(du.stdout).toMatch(/\nShared:\t+\S+\nPrivate:\t+\S+\nReclaimable:\t+\S+\nTotal:/);

    // --verbose: one block per layer, by its full diffID, with what keeps it
    const v = await runCli(['du', '--verbose', '--root', root]);
    const blocks = v.stdout.split('\n\n').filter((x) => x.startsWith('Layer:'));
    expect(blocks).toHaveLength(3);
    // the records say what they are (the image's creation time names the target stage)
    expect(v.stdout).toMatch(/Description: +image created time for stage stage-\d+\n/);
    for (const blk of blocks) {
      const diff = /^Layer: +(sha256:[0-9a-f]{64})\n/.exec(blk)?.[1];
      expect(diff && diffIds.includes(diff as Digest), blk).toBe(true);
      expect(blk).toContain('Used by:      tagged image\n');
      expect(blk).toContain('Reclaimable:  false\n');
      expect(blk).toContain(`Size:         ${humanSize(await duBytes([snaps.pathFor(diff as Digest)]))}\n`);
    }
    // --filter selects records: the layers are left out, with the summary
    expect((await runCli(['du', '--filter', 'until=1h', '--root', root])).stdout).not.toContain('Unpacked layers:');

    // Untag the app: its RUN layers are kept by cache records only, which a plain prune removes.
    // Past the grace period (their use marks and directories an hour old), du says so.
    expect((await runCli(['rmi', '--root', root, 'app:1'])).code).toBe(0);
    const hourAgo = new Date(Date.now() - HOUR);
    for (const d of dirs) {
      await utimes(d, hourAgo, hourAgo);
      await utimes(path.join(root, 'snapshots', 'used', path.basename(d)), hourAgo, hourAgo).catch(() => {});
    }
    const baseDir = dirs.find((d) => d === snaps.pathFor(diffIds[0]!))!;
    expect(baseDir).toBeDefined();
    const runDirs = dirs.filter((d) => d !== baseDir);
    const runBytes = await duBytes(runDirs);
    const before = await runCli(['du', '--root', root]);
    expect(before.stdout).toContain(`Unpacked layers:\t3, ${humanSize(bytes)} (reclaimable: ${humanSize(runBytes)})\n`);
    const vb = await runCli(['du', '--verbose', '--root', root]);
    expect(vb.stdout.split('\n\n').filter((x) => x.includes('Used by:      cache records\nReclaimable:  true\n'))).toHaveLength(2);

    const p = await runCli(['prune', '--all', '--force', '--root', root]);
    expect(p.code, p.stderr).toBe(0);
    expect(p.stdout).toContain(`Unused snapshots:\t2 unpacked layers removed, ${humanSize(runBytes)}\n`);
    // prune's Total counts the layers too: what du called reclaimable is what went
    expect(p.stdout).toMatch(new RegExp(`\\nTotal:\\t${humanSize(recordBytes + runBytes).replace('.', '\\.')}\\n$`));
    expect(before.stdout).toContain(`\nReclaimable:\t${humanSize(recordBytes + runBytes)}\n`);
    expect(await snapshotDirs(root)).toEqual([baseDir]);
    const left = await duBytes([baseDir]);
    const after = await runCli(['du', '--root', root]);
    expect(after.stdout).toBe(`ID        RECLAIMABLE   SIZE      LAST ACCESSED\nUnpacked layers:\t1, ${humanSize(left)} (reclaimable: 0B)\nShared:\t\t${humanSize(left)}\nPrivate:\t0B\nReclaimable:\t0B\nTotal:\t\t${humanSize(left)}\n`);
  });

  it('SnapshotStore.usage: sizes as du -sx (hard links once, mounts not entered); reclaimable is exactly what gc removes, never a temp dir with a mount', async () => {
    const root = path.join(tmpRoot, 'usage-unit');
    const snaps = new SnapshotStore(root);
    const hourAgo = new Date(Date.now() - HOUR);
    const make = async (name: string, age: Date | undefined, bytes: number): Promise<string> => {
      const dir = snaps.pathFor(key(name));
      await mkdir(path.join(dir, 'usr', 'bin'), { recursive: true });
      await writeFile(path.join(dir, 'usr', 'bin', 'tool'), randomBytes(bytes));
      await link(path.join(dir, 'usr', 'bin', 'tool'), path.join(dir, 'usr', 'bin', 'tool-alias'));
      if (age) await utimes(dir, age, age);
      return dir;
    };
    const live = await make('live', hourAgo, 40_000);
    const orphan = await make('orphan', hourAgo, 50_000);
    const young = await make('young', undefined, 60_000);
    const marked = await make('marked', hourAgo, 70_000);
    await mkdir(path.join(snaps.dir, 'used'), { recursive: true });
    await writeFile(path.join(snaps.dir, 'used', path.basename(marked)), ''); // a build used it just now
    const stale = path.join(snaps.tmpDir, 'u-killed');
    await mkdir(stale, { recursive: true });
    await writeFile(path.join(stale, 'half'), randomBytes(30_000));
    await utimes(stale, hourAgo, hourAgo);
    const inFlight = path.join(snaps.tmpDir, 'o-running');
    await mkdir(path.join(inFlight, 'm'), { recursive: true });
    await writeFile(path.join(inFlight, 'upper-file'), randomBytes(20_000));
    // an overlay a build has mounted in its temp dir: its files are not the store's to count
    await execFileP('mount', ['-t', 'tmpfs', 'tmpfs', path.join(inFlight, 'm')]);
    await utimes(inFlight, hourAgo, hourAgo); // a RUN running longer than the grace period
    try {
      await writeFile(path.join(inFlight, 'm', 'merged'), randomBytes(500_000));
      const listed = await snaps.usage(new Set([key('live')]));
      const by = Object.fromEntries(listed.map((l) => [l.name, l]));
      for (const [dir, rec] of [[live, false], [orphan, true], [young, false], [marked, false], [stale, true], [inFlight, false]] as const) {
        const u = by[path.basename(dir)]!;
        expect(u, dir).toBeDefined();
        expect(u.size, dir).toBe(await duBytes([dir]));
        expect(u.reclaimable, dir).toBe(rec);
      }
      expect(by[path.basename(live)]!.live).toBe(true);
      expect(by[path.basename(live)]!.size).toBeLessThan(2 * 40_000); // one inode, two names
      expect(by[path.basename(inFlight)]!.size).toBeLessThan(500_000);
      expect(by[path.basename(inFlight)]!.live).toBe(true); // the mount keeps it
      expect(by[path.basename(marked)]!.lastUsedAt.getTime()).toBeGreaterThan(Date.now() - 60_000);
      expect(Math.abs(by[path.basename(orphan)]!.lastUsedAt.getTime() - hourAgo.getTime())).toBeLessThanOrEqual(1); // its own mtime (no use mark)
      expect(listed.map((l) => l.kind).sort()).toEqual(['layer', 'layer', 'layer', 'layer', 'temp', 'temp']);

      const dry = await snaps.gc(new Set([key('live')]), { dryRun: true });
      expect(dry).toEqual({ removed: 1, freedBytes: by[path.basename(orphan)]!.size, tempsRemoved: 1, tempsFreedBytes: by['u-killed']!.size });
      const real = await snaps.gc(new Set([key('live')]));
      expect(real).toEqual(dry);
      const again = await snaps.usage(new Set([key('live')]));
      expect(again.map((l) => l.name).sort()).toEqual(listed.filter((l) => !l.reclaimable).map((l) => l.name).sort());
      expect(await readFile(path.join(inFlight, 'm', 'merged')).then((x) => x.length)).toBe(500_000);
    } finally {
      await execFileP('umount', [path.join(inFlight, 'm')]);
    }
  });
});

describe('Go renderings', () => {
  it('match go-units HumanSize and HumanDuration', () => {
    expect([0, 999, 1000, 1234, 15_000, 1_500_000, 123_456_789, 10 * 1024 ** 3].map(humanSize)).toEqual(['0B', '999B', '1kB', '1.234kB', '15kB', '1.5MB', '123.5MB', '10.74GB']);
    expect([500, 1000, 30_000, 90_000, 30 * 60_000, 80 * 60_000, 5 * HOUR, 72 * HOUR, 20 * 24 * HOUR, 100 * 24 * HOUR, 800 * 24 * HOUR].map(humanDuration)).toEqual([
      'Less than a second',
      '1 second',
      '30 seconds',
      'About a minute',
      '30 minutes',
      'About an hour',
      '5 hours',
      '3 days',
      '2 weeks',
      '3 months',
      '2 years',
    ]);
  });
});
