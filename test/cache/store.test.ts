import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cacheKey, describeChanges, explain, FileSet, filesToKeep, withFiles } from '../../src/cache/keys.js';
import { CacheStore, parseDuration, parseSize } from '../../src/cache/store.js';
import type { Digest } from '../../src/oci/digest.js';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const tmpRoot = await mkdtemp(path.join(os.tmpdir(), 'tsbuild-store-test-'));
afterAll(() => rm(tmpRoot, { recursive: true, force: true }));

const key = (s: string): Digest => `sha256:${createHash('sha256').update(s).digest('hex')}` as Digest;

function writer(dir: string, id: string, count: string, payload = 0): { child: ReturnType<typeof spawn>; started: Promise<void>; exited: Promise<number | null> } {
  const child = spawn(path.join(repoRoot, 'node_modules/.bin/vite-node'), [path.join(repoRoot, 'test/cache/store-writer.ts'), dir, id, count, String(payload)], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const started = new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('started')) resolve();
    });
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`writer ${id} exited ${code}: ${err}`))));
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, started, exited };
}

async function allRecordsValid(dir: string): Promise<number> {
  const names = await readdir(path.join(dir, 'records'));
  for (const n of names) {
    const rec = JSON.parse(await readFile(path.join(dir, 'records', n), 'utf8')) as { key: string };
    expect(`${rec.key.slice(7)}.json`).toBe(n);
  }
  return names.length;
}

describe('CacheStore', () => {
  it('keeps a manifest\'s file list beside the record: get() reads a small record, previous() names the changed file', async () => {
    const dir = path.join(tmpRoot, 'files');
    const store = await CacheStore.open(dir);
    const files1: Record<string, string> = {};
    for (let i = 0; i < 500; i++) files1[`src/f${i}.ts`] = `f:644:${'a'.repeat(64)}`;
    const a = cacheKey({ op: { type: 'tsbuild.file.copy.v1', sources: ['.'] }, inputs: { parent: key('p') }, files: files1 });
    await store.put({ key: a.key, result: { layer: null }, stepId: 'Dockerfile#0#2', manifest: a.manifest });
    const recordText = await readFile(path.join(dir, 'records', `${a.key.slice(7)}.json`), 'utf8');
    expect(recordText).not.toContain('src/f1.ts');
    expect((await store.get(a.key))?.manifest?.files).toBeUndefined();
    expect((await store.get(a.key))?.manifest?.filesDigest).toBe(a.manifest.filesDigest);
    expect(await readdir(path.join(dir, 'files'))).toEqual([`${a.manifest.filesDigest.slice(7)}.json`]);
    const prev = await store.previous('Dockerfile#0#2');
    expect(prev?.manifest).toEqual(a.manifest);
    const b = cacheKey({ op: { type: 'tsbuild.file.copy.v1', sources: ['.'] }, inputs: { parent: key('p') }, files: { ...files1, 'src/f7.ts': `f:644:${'b'.repeat(64)}` } });
    expect(describeChanges(explain(prev!.manifest!, b.manifest))).toBe('file src/f7.ts modified');
    // A pruned record takes its file list along.
    await store.prune({ all: true });
    expect(await readdir(path.join(dir, 'files'))).toEqual([]);
  });

  it('writes a file list from a FileSet when the manifest has none, the same bytes as from its record', async () => {
    const dir = path.join(tmpRoot, 'files-set');
    const store = await CacheStore.open(dir);
    const paths = Array.from({ length: 300 }, (_, i) => `src/${i % 7 === 0 ? 'q"' : ''}f${i}.ts`);
    const set = FileSet.of(paths, paths.map((p) => `f:644:${createHash('sha256').update(p).digest('hex')}`));
    const bySet = cacheKey({ op: { type: 'tsbuild.file.copy.v1', sources: ['.'] }, inputs: { parent: key('p') }, files: set });
    expect(bySet.manifest.files).toBeUndefined();
    expect(filesToKeep(bySet.manifest, set)).toBe(set);
    await store.put({ key: bySet.key, result: { layer: null }, stepId: 'Dockerfile#0#3', manifest: bySet.manifest, files: filesToKeep(bySet.manifest, set) });
    const [name] = await readdir(path.join(dir, 'files'));
    expect(name).toBe(`${bySet.manifest.filesDigest.slice(7)}.json`);
    expect(await readFile(path.join(dir, 'files', name!), 'utf8')).toBe(JSON.stringify(set.record()));
    expect((await store.previous('Dockerfile#0#3'))?.manifest).toEqual(withFiles(bySet.manifest, set));
    // A manifest with its list keeps it: the set is not asked.
    const withList = withFiles(bySet.manifest, set);
    expect(filesToKeep(withList, set)).toBeUndefined();
    expect(filesToKeep(bySet.manifest, set.record())).toBeUndefined();
  });

  it('stores, finds and explains records', async () => {
    const store = await CacheStore.open(path.join(tmpRoot, 'basic'));
    const a = cacheKey({ op: { type: 'tsbuild.exec.v1', args: ['echo', '1'] }, inputs: { parent: key('p') } });
    expect(await store.get(a.key)).toBeUndefined();
    await store.put({ key: a.key, result: { layer: { digest: key('blob') } }, size: 1234, stepId: 'Dockerfile#0#1', description: 'RUN echo 1', manifest: a.manifest });
    const got = await store.get(a.key);
    expect(got?.result).toEqual({ layer: { digest: key('blob') } });
    expect(got?.size).toBe(1234);
    const prev = await store.previous('Dockerfile#0#1');
    expect(prev?.manifest).toEqual(a.manifest);
    expect(await store.previous('other')).toBeUndefined();
    const du = await store.du();
    expect(du.count).toBe(1);
    expect(du.totalSize).toBe(1234);
    expect(du.entries[0]!.description).toBe('RUN echo 1');
  });

  it('rejects keys that are not sha256 digests (no path games)', async () => {
    const store = await CacheStore.open(path.join(tmpRoot, 'badkey'));
    await expect(store.get('../../etc/passwd' as Digest)).rejects.toThrow(/invalid cache key/);
  });

  it('prunes by age, by size (least recently used first) and all', async () => {
    const dir = path.join(tmpRoot, 'prune');
    const store = await CacheStore.open(dir);
    for (let i = 0; i < 5; i++) await store.put({ key: key(`r${i}`), result: i, size: 100 });
    // r0 used 3 days ago, r1 40 hours ago, others now; r4 used most recently
    const day = 86_400_000;
    for (const [i, ago] of [[0, 3 * day], [1, 40 * 3_600_000], [2, 1000], [3, 500]] as const) {
      const t = new Date(Date.now() - ago);
      await utimes(path.join(dir, 'records', `${key(`r${i}`).slice(7)}.json`), t, t);
    }
    const dry = await store.prune({ olderThanMs: parseDuration('24h'), dryRun: true });
    expect(dry.removed.map((e) => e.key).sort()).toEqual([key('r0'), key('r1')].sort());
    expect((await store.du()).count).toBe(5);
    const byAge = await store.prune({ olderThanMs: parseDuration('48h') });
    expect(byAge.removed.map((e) => e.key)).toEqual([key('r0')]);
    expect(byAge.reclaimed).toBe(100);
    const bySize = await store.prune({ keepStorage: 250 });
    expect(bySize.removed.map((e) => e.key)).toEqual([key('r1'), key('r2')]);
    expect((await store.du()).totalSize).toBe(200);
    expect(await store.get(key('r4'))).toBeDefined();
    const all = await store.prune({ all: true });
    expect(all.removed).toHaveLength(2);
    expect((await store.du()).count).toBe(0);
  });

  it('parses buildx sizes and durations', () => {
    expect(parseSize('10gb')).toBe(10 * 1024 ** 3);
    expect(parseSize('512MB')).toBe(512 * 1024 ** 2);
    expect(parseSize('1.5GiB')).toBe(1.5 * 1024 ** 3);
    expect(parseSize('4096')).toBe(4096);
    expect(() => parseSize('lots')).toThrow(/invalid size/);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(() => parseDuration('24 hours')).toThrow(/invalid duration/);
  });

  it('stays valid with concurrent writers in separate processes', async () => {
    const dir = path.join(tmpRoot, 'concurrent');
    await CacheStore.open(dir);
    const writers = ['a', 'b', 'c', 'd'].map((id) => writer(dir, id, '40', 2000));
    const codes = await Promise.all(writers.map((w) => w.exited));
    expect(codes).toEqual([0, 0, 0, 0]);
    expect(await allRecordsValid(dir)).toBe(160);
    expect(await readdir(path.join(dir, 'tmp'))).toEqual([]);
    const store = await CacheStore.open(dir);
    const rec = await store.get(key('c:39'));
    expect(rec?.result).toMatchObject({ writer: 'c', i: 39 });
    // step ids shared by all writers point at some complete record
    expect((await store.previous('step-0'))?.key).toMatch(/^sha256:/);
  });

  it('a killed writer leaves no partial record, and its lock and temp files are recovered', async () => {
    const dir = path.join(tmpRoot, 'killed');
    await CacheStore.open(dir);
    const w = writer(dir, 'k', 'forever', 4_000_000);
    await w.started;
    await new Promise((r) => setTimeout(r, 300));
    w.child.kill('SIGKILL');
    await w.exited;
    const n = await allRecordsValid(dir);
    expect(n).toBeGreaterThan(0);
    // Simulate the worst moment too: a lock and a half-written temp file owned by a dead pid.
    const deadPid = 2 ** 22 + 12345; // above pid_max defaults: never alive
    await writeFile(path.join(dir, 'lock'), JSON.stringify({ pid: deadPid, host: os.hostname(), createdAt: Date.now(), nonce: 'x' }));
    await writeFile(path.join(dir, 'tmp', `${deadPid}-deadbeef`), '{"key":"sha256:');
    const store = await CacheStore.open(dir, { lockTimeoutMs: 5000 });
    expect(await readdir(path.join(dir, 'tmp'))).toEqual([]);
    await store.put({ key: key('after'), result: 'ok' });
    expect((await store.get(key('after')))?.result).toBe('ok');
    expect(await allRecordsValid(dir)).toBe(n + 1);
  });

  it('parallel calls of one store share the lock, which is held until the last of them ends', async () => {
    const dir = path.join(tmpRoot, 'shared-lock');
    const a = await CacheStore.open(dir);
    const other = await CacheStore.open(dir, { lockTimeoutMs: 150 });
    const lockFile = path.join(dir, 'lock');
    let release1!: () => void;
    let release2!: () => void;
    const first = a.withLock(() => new Promise<void>((r) => (release1 = r)));
    const second = a.withLock(() => new Promise<void>((r) => (release2 = r)));
    await new Promise((r) => setTimeout(r, 20));
    expect(typeof release1 === 'function' && typeof release2 === 'function').toBe(true); // both run at once
    release1();
    await first;
    // the second still writes: the lock stays, and another build is kept out
    expect(existsSync(lockFile)).toBe(true);
    await expect(other.put({ key: key('y'), result: 2 })).rejects.toThrow(/is locked by another build/);
    release2();
    await second;
    expect(existsSync(lockFile)).toBe(false);
    await other.put({ key: key('y'), result: 2 });
  });

  it('waits for a live lock holder and times out with a clear error', async () => {
    const dir = path.join(tmpRoot, 'live-lock');
    const a = await CacheStore.open(dir);
    const b = await CacheStore.open(dir, { lockTimeoutMs: 200 });
    let release!: () => void;
    const held = a.withLock(() => new Promise<void>((r) => (release = r)));
    await new Promise((r) => setTimeout(r, 20));
    await expect(b.put({ key: key('x'), result: 1 })).rejects.toThrow(/is locked by another build/);
    release();
    await held;
    await b.put({ key: key('x'), result: 1 });
    expect((await a.get(key('x')))?.result).toBe(1);
  });
});
