import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, utimes, writeFile, chmod } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openContext } from '../../src/builder/context.js';
import { ContextHasher } from '../../src/cache/context-hash.js';
import { cacheKey, canonicalJson, describeChanges, explain, FileSet, filesDigest, sealFiles, withFiles } from '../../src/cache/keys.js';

const tmpRoot = await mkdtemp(path.join(os.tmpdir(), 'tsbuild-keys-test-'));
afterAll(() => rm(tmpRoot, { recursive: true, force: true }));

const copyOp = (over: Record<string, unknown> = {}) => ({
  type: 'tsbuild.file.copy.v1',
  id: 's0.3',
  meta: { name: 'COPY . /app', range: { start: { line: 3, column: 1 } } },
  inputs: { parent: 's0.2' },
  instruction: 'COPY',
  sources: ['.'],
  dest: '/app/',
  exclude: [],
  ...over,
});

async function makeContext(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpRoot, 'ctx-'));
  await mkdir(path.join(dir, 'src/lib'), { recursive: true });
  await writeFile(path.join(dir, 'src/app.ts'), 'console.log(1)\n');
  await writeFile(path.join(dir, 'src/lib/util.ts'), 'export const x = 1\n');
  await writeFile(path.join(dir, 'README.md'), '# hi\n');
  await writeFile(path.join(dir, 'debug.log'), 'noise\n');
  await writeFile(path.join(dir, '.dockerignore'), '*.log\nnode_modules\n');
  await symlink('src/app.ts', path.join(dir, 'main.ts'));
  return dir;
}

async function stepKey(cacheDir: string, ctxDir: string, op = copyOp()) {
  const ctx = await openContext({ dir: ctxDir });
  const hasher = await ContextHasher.open(cacheDir, ctxDir);
  const files = await hasher.hashSources(ctx, op.sources as string[]);
  await hasher.save();
  return { ...cacheKey({ op, inputs: { parent: 'sha256:' + 'a'.repeat(64) }, files }), stats: hasher.stats, files };
}

describe('canonical JSON', () => {
  it('sorts keys, drops undefined, ranges and the op id/meta/inputs, keeps semantic nested ids', () => {
    const a = canonicalJson({ b: 1, a: { d: [1, { z: 1, y: undefined }], c: 'x', range: { line: 1 } } });
    expect(a).toBe('{"a":{"c":"x","d":[1,{"z":1}]},"b":1}');
    const k1 = cacheKey({ op: { type: 't', id: 'x', meta: { name: 'one' }, inputs: { parent: 's0.1' }, mounts: [{ type: 'cache', id: 'npm' }] } });
    const k2 = cacheKey({ op: { type: 't', id: 'y', meta: { name: 'two' }, inputs: { parent: 's9.9' }, mounts: [{ type: 'cache', id: 'npm' }] } });
    const k3 = cacheKey({ op: { type: 't', id: 'x', meta: { name: 'one' }, mounts: [{ type: 'cache', id: 'pip' }] } });
    expect(k1.key).toBe(k2.key);
    expect(k1.key).not.toBe(k3.key);
    expect(() => canonicalJson({ n: Number.NaN })).toThrow(/non-finite/);
  });
});

describe('cache keys over real context files', () => {
  it('same inputs give the same key; a content change gives a new key and explain() names the file', async () => {
    const ctx = await makeContext();
    const cache = path.join(tmpRoot, 'c1');
    const k1 = await stepKey(cache, ctx);
    const k2 = await stepKey(cache, ctx);
    expect(k2.key).toBe(k1.key);
    expect(Object.keys(k1.files)).toEqual(['.', '.dockerignore', 'README.md', 'main.ts', 'src', 'src/app.ts', 'src/lib', 'src/lib/util.ts']);
    await writeFile(path.join(ctx, 'src/lib/util.ts'), 'export const x = 2\n');
    const k3 = await stepKey(cache, ctx);
    expect(k3.key).not.toBe(k1.key);
    const changes = explain(k1.manifest, k3.manifest);
    expect(changes).toEqual([{ kind: 'file', path: 'src/lib/util.ts', change: 'modified' }]);
    expect(describeChanges(changes)).toBe('file src/lib/util.ts modified');
    await writeFile(path.join(ctx, 'src/new.ts'), '');
    const k4 = await stepKey(cache, ctx);
    expect(explain(k3.manifest, k4.manifest)).toEqual([{ kind: 'file', path: 'src/new.ts', change: 'added' }]);
  });

  it('touching a file (mtime only) does not change the key; a mode change does', async () => {
    const ctx = await makeContext();
    const cache = path.join(tmpRoot, 'c2');
    const k1 = await stepKey(cache, ctx);
    const t = new Date('2030-01-01T00:00:00Z');
    await utimes(path.join(ctx, 'src/app.ts'), t, t);
    await utimes(path.join(ctx, 'src'), t, t);
    const k2 = await stepKey(cache, ctx);
    expect(k2.key).toBe(k1.key);
    expect(k2.stats.hashed).toBeGreaterThan(0); // it was re-read (stat changed), and the content matched
    await chmod(path.join(ctx, 'src/app.ts'), 0o755);
    const k3 = await stepKey(cache, ctx);
    expect(explain(k2.manifest, k3.manifest)).toEqual([{ kind: 'file', path: 'src/app.ts', change: 'modified' }]);
  });

  it('ignored files do not affect the key', async () => {
    const ctx = await makeContext();
    const cache = path.join(tmpRoot, 'c3');
    const k1 = await stepKey(cache, ctx);
    await writeFile(path.join(ctx, 'debug.log'), 'more noise\n');
    await writeFile(path.join(ctx, 'other.log'), 'x\n');
    await mkdir(path.join(ctx, 'node_modules/pkg'), { recursive: true });
    await writeFile(path.join(ctx, 'node_modules/pkg/index.js'), 'x\n');
    const k2 = await stepKey(cache, ctx);
    expect(k2.key).toBe(k1.key);
    expect(Object.keys(k2.files).some((f) => f.includes('node_modules') || f.endsWith('.log'))).toBe(false);
  });

  it('a change in a file the step does not read does not change its key', async () => {
    const ctx = await makeContext();
    const cache = path.join(tmpRoot, 'c4');
    const op = copyOp({ sources: ['src/lib'] });
    const k1 = await stepKey(cache, ctx, op);
    await writeFile(path.join(ctx, 'README.md'), 'changed\n');
    await writeFile(path.join(ctx, 'src/app.ts'), 'changed\n');
    expect((await stepKey(cache, ctx, op)).key).toBe(k1.key);
  });

  it('explains op, input and env changes by name', () => {
    const base = { type: 'tsbuild.exec.v1', args: ['/bin/sh', '-c', 'make'], env: ['PATH=/bin', 'MODE=dev'] };
    const a = cacheKey({ op: base, inputs: { parent: 'sha256:' + '1'.repeat(64) }, values: { VERSION: '1' } });
    const b = cacheKey({ op: { ...base, env: ['PATH=/bin', 'MODE=prod'] }, inputs: { parent: 'sha256:' + '2'.repeat(64) }, values: { VERSION: '2' } });
    const changes = explain(a.manifest, b.manifest);
    expect(changes).toEqual([
      { kind: 'op', field: 'env.MODE', before: 'dev', after: 'prod' },
      { kind: 'input', name: 'parent', before: 'sha256:' + '1'.repeat(64), after: 'sha256:' + '2'.repeat(64) },
      { kind: 'value', name: 'VERSION', before: '1', after: '2' },
    ]);
    expect(describeChanges(changes)).toBe('env.MODE changed (dev → prod); previous step changed; VERSION changed (1 → 2)');
    expect(explain(a.manifest, a.manifest)).toEqual([]);
  });
});

describe('context hash index', () => {
  it('answers an unchanged tree from the stat index without reading files', async () => {
    const ctx = await makeContext();
    const cache = path.join(tmpRoot, 'c5');
    // Files must be older than the racy-write window to be trusted from the index.
    const old = new Date(Date.now() - 60_000);
    for (const f of ['src/app.ts', 'src/lib/util.ts', 'README.md', '.dockerignore']) await utimes(path.join(ctx, f), old, old);
    const first = await stepKey(cache, ctx);
    expect(first.stats.hashed).toBe(4);
    const second = await stepKey(cache, ctx);
    expect(second.stats).toEqual({ hashed: 0, fromIndex: 4, bytes: 0 });
    expect(second.key).toBe(first.key);
    // A rewrite with the same size and a new mtime is caught by stat and re-read.
    await writeFile(path.join(ctx, 'README.md'), '# ho\n');
    const third = await stepKey(cache, ctx);
    expect(third.stats.hashed).toBe(1);
    expect(explain(second.manifest, third.manifest)).toEqual([{ kind: 'file', path: 'README.md', change: 'modified' }]);
  });

  it('does not trust an index entry hashed within the same second as the file changed (racy write)', async () => {
    const ctx = await makeContext();
    const cache = path.join(tmpRoot, 'c6');
    await stepKey(cache, ctx); // files just written: too fresh to trust
    const again = await stepKey(cache, ctx);
    expect(again.stats.fromIndex).toBe(0);
  });
});

describe('context hash walk', () => {
  it('gives paths in sorted order (a directory\'s contents where `name/` sorts) and the digest a plain record would have', async () => {
    const dir = await mkdtemp(path.join(tmpRoot, 'order-'));
    // Names that sort around `a/`: `a-b` and `a.txt` before it, `a0` after; integer-like names; a leading `-`.
    for (const d of ['a', 'a-b', 'a0']) await mkdir(path.join(dir, d));
    for (const f of ['a/x', 'a-b/y', 'a0/z', 'a.txt', '10', '9', '-x']) await writeFile(path.join(dir, f), f);
    const big = Buffer.alloc((1 << 20) + 5, 7); // over the inline limit: streamed
    await writeFile(path.join(dir, 'a/big.bin'), big);
    const hasher = await ContextHasher.open(path.join(tmpRoot, 'c-order'), dir);
    const files = await hasher.hashSources({ root: dir }, ['.', 'a/x']);
    const expected = ['-x', '.', '10', '9', 'a', 'a-b', 'a-b/y', 'a.txt', 'a/big.bin', 'a/x', 'a0', 'a0/z'];
    expect(Object.keys(files).sort()).toEqual(expected);
    expect(Object.isFrozen(files)).toBe(true);
    expect(files['a/big.bin']).toBe(`f:644:${createHash('sha256').update(big).digest('hex')}`);
    expect(files['a/x']).toBe(`f:644:${createHash('sha256').update('a/x').digest('hex')}`);
    // The sealed digest equals the digest of an ordinary copy (computed by sorting), and so do the keys.
    const plain = Object.fromEntries(Object.entries(files).reverse());
    expect(filesDigest(files)).toBe(filesDigest(plain));
    expect(cacheKey({ op: copyOp(), files }).key).toBe(cacheKey({ op: copyOp(), files: plain }).key);
    // Independently: sha256 over `path\0digest\n` lines in sorted order.
    const h = createHash('sha256');
    for (const k of expected) h.update(`${k}\0${files[k]}\n`);
    expect(filesDigest(files)).toBe(`sha256:${h.digest('hex')}`);
  });

  it('sealFiles sorts unsorted paths and keeps the last value of a repeated path', () => {
    const files = sealFiles(['b', 'a', 'b'], ['1', '2', '3']);
    expect(files).toEqual({ a: '2', b: '3' });
    expect(filesDigest(files)).toBe(filesDigest({ b: '3', a: '2' }));
  });

  it('a FileSet keys like its record, and gives the record (sealed, same digest) only when asked', async () => {
    const ctx = await makeContext();
    const hasher = await ContextHasher.open(path.join(tmpRoot, 'c-set'), ctx);
    const set = await hasher.fileSet(await openContext({ dir: ctx }), ['.']);
    const record = set.record();
    // Made at each call, not kept by the set (a build keeps its sets to the end): equal, each sealed.
    const again = set.record();
    expect(again).not.toBe(record);
    expect(again).toEqual(record);
    expect(filesDigest(again)).toBe(set.digest);
    expect(Object.isFrozen(record)).toBe(true);
    expect(set.size).toBe(Object.keys(record).length);
    expect(set.digest).toBe(filesDigest(record));
    expect(set.digest).toBe(filesDigest({ ...record })); // an ordinary copy, digested by sorting
    expect(FileSet.fromRecord({ ...record }).digest).toBe(set.digest);
    const bySet = cacheKey({ op: copyOp(), files: set });
    const byRecord = cacheKey({ op: copyOp(), files: { ...record } });
    expect(bySet.key).toBe(byRecord.key);
    expect(bySet.manifest.files).toBeUndefined(); // a hit never needs the paths
    expect(withFiles(bySet.manifest, set)).toEqual(byRecord.manifest);
    expect(withFiles(byRecord.manifest, { ...record })).toBe(byRecord.manifest);
  });

  it('explains a change against a FileSet line by line as it does against its record (added, removed, modified, odd names)', () => {
    const before = { '01': 'f:644:aa', '2': 'f:644:bb', 'a.txt': 'f:644:cc', constructor: 'f:644:dd', gone: 'f:644:ee', 'sub/x': 'f:755:ff' } as Record<string, string>;
    const after = { '01': 'f:644:aa', '2': 'f:644:b2', 'a.txt': 'f:644:cc', constructor: 'f:644:dd', 'new.txt': 'f:644:11', 'sub/x': 'f:644:ff', toString: 'f:644:22' } as Record<string, string>;
    const keys = Object.keys(after).sort();
    const set = FileSet.of(keys, keys.map((k) => after[k]!));
    const prev = cacheKey({ op: copyOp(), files: before });
    const cur = cacheKey({ op: copyOp(), files: set });
    const expected = [
      { kind: 'file', path: '2', change: 'modified' },
      { kind: 'file', path: 'gone', change: 'removed' },
      { kind: 'file', path: 'new.txt', change: 'added' },
      { kind: 'file', path: 'sub/x', change: 'modified' },
      { kind: 'file', path: 'toString', change: 'added' },
    ];
    expect(explain(prev.manifest, cur.manifest, set)).toEqual(expected);
    expect(explain(prev.manifest, withFiles(cur.manifest, set))).toEqual(expected);
    // without the current paths, only that the files changed
    expect(explain(prev.manifest, cur.manifest)).toEqual([{ kind: 'files' }]);
  });

  it('a FileSet writes the JSON of its record without making it, for paths that need quoting and for index-like names', async () => {
    const plain = await mkdtemp(path.join(tmpRoot, 'json-'));
    await mkdir(path.join(plain, 'sub dir'), { recursive: true });
    for (const n of ['a"quote', 'back\\slash', 'new\nline', 'tab\tx', 'ünï.txt', 'del\x7f', 'sub dir/f.txt', '01', '1x', '-', '~']) await writeFile(path.join(plain, n), n);
    await symlink('to "there"\\', path.join(plain, 'link'));
    await symlink('ünï.txt', path.join(plain, 'link2'));
    const withIndex = await mkdtemp(path.join(tmpRoot, 'json-'));
    // Index-like names (a record puts them first), and a name past U+FFFF (the lines are sorted as strings: arrays).
    for (const n of ['b', '10', '2', 'a', '😀']) await writeFile(path.join(withIndex, n), n);
    for (const dir of [plain, withIndex]) {
      const hasher = await ContextHasher.open(path.join(tmpRoot, 'c-json'), dir);
      const set = await hasher.fileSet({ root: dir }, ['.']);
      const json = set.json();
      expect(json.toString('utf8')).toBe(JSON.stringify(set.record()));
      expect(JSON.parse(json.toString('utf8'))).toEqual(set.record());
      // In small pieces, as the store writes it: the same bytes, no piece over the size asked.
      const pieces = [...set.jsonChunks(7)];
      expect(Buffer.concat(pieces).equals(json)).toBe(true);
      if (dir === plain) expect(pieces.map((p) => p.length <= 7 && p.length > 0)).toEqual(pieces.map(() => true));
      else expect(pieces.length).toBe(1); // the record's JSON
      const again = await hasher.fileSet({ root: dir }, ['sub dir', 'a"quote', 'b']);
      expect(again.json().toString('utf8')).toBe(JSON.stringify(again.record()));
    }
    const arrays = FileSet.of(['b', 'a'], ['1', '2']);
    expect(arrays.json().toString('utf8')).toBe('{"a":"2","b":"1"}');
    expect(FileSet.of([], []).json().toString('utf8')).toBe('{}');
  });

  it('persists the index as one record per file and reloads it', async () => {
    const ctx = await makeContext();
    const old = new Date(Date.now() - 60_000);
    for (const f of ['src/app.ts', 'src/lib/util.ts', 'README.md', '.dockerignore']) await utimes(path.join(ctx, f), old, old);
    const cache = path.join(tmpRoot, 'c-index');
    const first = await stepKey(cache, ctx);
    const [name] = await readdir(path.join(cache, 'context-index'));
    expect(name).toMatch(/^[0-9a-f]{64}\.idx$/);
    const text = await readFile(path.join(cache, 'context-index', name!), 'utf8');
    expect(text.split('\n')[0]).toBe(`tsbuild-context-index 3 ${JSON.stringify(ctx)}`);
    expect(text).toContain(`src/lib/util.ts\0`);
    const second = await stepKey(cache, ctx);
    expect(second.stats).toEqual({ hashed: 0, fromIndex: 4, bytes: 0 });
    expect(second.key).toBe(first.key);
  });
});
