import { lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ContextHasher } from '../../src/cache/context-hash.js';
import { HEAD, nativeListing, nodeListing, pathLength, recordMode, statLength, targetAt, type Listing } from '../../src/cache/native-walk.js';
import { openContext } from '../../src/builder/context.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'tsbuild-native-walk-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The bytes of a listing's records (the native one starts after its header). */
const bytes = (l: Listing): Buffer => l.buf.subarray(l.starts[0], l.starts[l.starts.length - 1]);

/** A listing's records as plain data, read independently of the consumer in context-hash.ts. */
function records(l: Listing): { type: string; path: string; mode: number; stat: string; target?: string }[] {
  const out = [];
  for (let i = 0; i + 1 < l.starts.length; i++) {
    const at = l.starts[i]!;
    const plen = pathLength(l.buf, at);
    const p = at + HEAD;
    expect(l.buf[p + plen]).toBe(0);
    const r = {
      type: String.fromCharCode(l.buf[at]!),
      path: l.buf.toString('utf8', p, p + plen),
      mode: recordMode(l.buf, at),
      stat: l.buf.toString('latin1', p + plen + 1, p + plen + 1 + statLength(l.buf, at)),
    };
    if (r.type === 'l') {
      const t = targetAt(l.buf, at);
      out.push({ ...r, target: l.buf.toString('utf8', t + 2, t + 2 + l.buf.readUInt16LE(t)) });
    } else out.push(r);
  }
  return out;
}

describe('listings (the native helper with fstatat, node with lstat)', () => {
  it('give every entry with lstat\'s mode, size, mtime in ns and inode, in sorted path order, the same bytes from both', async () => {
    const root = path.join(tmp, 'tree');
    mkdirSync(path.join(root, 'a/b'), { recursive: true });
    mkdirSync(path.join(root, 'skipme/deep'), { recursive: true });
    for (const d of ['a-b', 'a0', 'a.d']) mkdirSync(path.join(root, d));
    writeFileSync(path.join(root, 'a/b/file.txt'), 'hello');
    writeFileSync(path.join(root, 'a/new\nline'), 'x');
    writeFileSync(path.join(root, 'a/ünï.txt'), 'y'.repeat(12345));
    writeFileSync(path.join(root, 'a.txt'), '');
    writeFileSync(path.join(root, '-x'), '');
    writeFileSync(path.join(root, 'skipme/deep/hidden'), 'z');
    symlinkSync('../a/b/file.txt', path.join(root, 'a/link'));
    execFileSync('mkfifo', [path.join(root, 'a/fifo')]);
    utimesSync(path.join(root, 'a/b/file.txt'), new Date(1_700_000_000_123), new Date(1_700_000_000_123.456));
    utimesSync(path.join(root, 'a.txt'), new Date(-1_500), new Date(-1_500)); // before 1970

    const native = await nativeListing(root, '', ['skipme']);
    expect(native).toBeDefined();
    const viaNode = nodeListing(root, '', (rel) => rel === 'skipme');
    expect(native!.unordered).toBe(false);
    expect(bytes(native!).equals(bytes(viaNode))).toBe(true);

    const recs = records(native!);
    const paths = recs.map((r) => r.path);
    // `a` before `a-b`, `a.d` and `a.txt`, its contents where `a/` sorts, then `a0`; skipme listed, not walked.
    expect(paths).toEqual(['-x', 'a', 'a-b', 'a.d', 'a.txt', 'a/b', 'a/b/file.txt', 'a/fifo', 'a/link', 'a/new\nline', 'a/ünï.txt', 'a0', 'skipme']);
    for (const r of recs) {
      const st = lstatSync(path.join(root, r.path), { bigint: true });
      expect(r.mode).toBe(Number(st.mode));
      expect(r.type).toBe(st.isFile() ? 'f' : st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : 'o');
      expect(r.stat).toBe(st.isFile() ? `${st.size} ${st.mtimeNs} ${st.ino} ` : '');
    }
    expect(recs.find((r) => r.path === 'a/link')!.target).toBe('../a/b/file.txt');
    expect(recs.find((r) => r.path === 'a.txt')!.stat).toMatch(/^0 -1500000000 \d+ $/);

    // A subtree keeps paths relative to the root.
    const sub = await nativeListing(root, 'a/b');
    expect(records(sub!).map((r) => r.path)).toEqual(['a/b/file.txt']);
    expect(bytes(sub!).equals(bytes(nodeListing(root, 'a/b')))).toBe(true);
  });

  it('say where a directory cannot be read, as an x record with its errno', async () => {
    const root = path.join(tmp, 'errors');
    mkdirSync(root);
    writeFileSync(path.join(root, 'file'), 'not a directory');
    for (const l of [(await nativeListing(root, 'file'))!, nodeListing(root, 'file')]) {
      expect(records(l)).toEqual([{ type: 'x', path: 'file/', mode: 20 /* ENOTDIR */, stat: '' }]);
    }
  });

  it('flag names whose byte order is not JavaScript\'s string order; hashing sorts them as strings', async () => {
    const root = path.join(tmp, 'wide');
    mkdirSync(root);
    // U+FF5A sorts after U+1F600 as UTF-16 (0xFF5A > 0xD83D) but before it as UTF-8 (0xEF < 0xF0).
    for (const n of ['ｚ', '😀', 'a']) writeFileSync(path.join(root, n), n);
    const native = (await nativeListing(root))!;
    expect(native.unordered).toBe(true);
    expect(records(native).map((r) => r.path)).toEqual(['a', 'ｚ', '😀']);
    expect(records(nodeListing(root, '')).map((r) => r.path)).toEqual(['a', '😀', 'ｚ']);
    const files = await (await ContextHasher.open(path.join(tmp, 'cache-wide'), root)).hashSources({ root }, ['.']);
    expect(Object.keys(files)).toEqual(['.', 'a', '😀', 'ｚ']);
  });

  it('a big context hashes the same through the native listing as through node, and sees a change', async () => {
    const root = path.join(tmp, 'ctx');
    for (let d = 0; d < 30; d++) {
      mkdirSync(path.join(root, `d${d}`, 'sub'), { recursive: true });
      for (let f = 0; f < 70; f++) writeFileSync(path.join(root, `d${d}`, f % 2 ? 'sub' : '', `f${f}.txt`), `${d}/${f}`);
    }
    mkdirSync(path.join(root, 'node_modules/pkg'), { recursive: true });
    writeFileSync(path.join(root, 'node_modules/pkg/index.js'), 'ignored');
    mkdirSync(path.join(root, 'd3/sub/deep/node_modules'), { recursive: true });
    writeFileSync(path.join(root, 'd3/sub/deep/node_modules/x.js'), 'ignored too');
    writeFileSync(path.join(root, 'd3/sub/deep/kept.txt'), 'kept');
    for (const n of ['ｚ', '😀']) writeFileSync(path.join(root, 'd5', n), n);
    symlinkSync('d3/sub', path.join(root, 'd3-link'));
    writeFileSync(path.join(root, '.dockerignore'), 'node_modules\n**/node_modules\n');
    // Old enough mtimes that the index keeps every entry (racily fresh files are never trusted).
    const old = new Date(Date.now() - 60_000);
    const files = (dir: string): string[] => execFileSync('find', [dir, '-type', 'f'], { encoding: 'utf8' }).trim().split('\n');
    for (const f of files(root)) utimesSync(f, old, old);
    const ctx = await openContext({ dir: root });
    const from = { root: ctx.root, isHidden: (rel: string, isDir: boolean) => ctx.isHidden(rel, isDir) };
    const cacheDir = path.join(tmp, 'cache');

    // Several sources at once: files, a symlinked directory, a missing one, excludes, a repeat.
    const many = ['d3', 'd7/sub/f9.txt', 'nope', 'd3-link', 'd5', 'd3/sub/f1.txt'];
    const manyOptions = { exclude: ['**/f3*', 'deep'] };

    // A small index (one file): the tree is walked by node's lstat (without one, it would be listed).
    const primer = await ContextHasher.open(cacheDir, root);
    await primer.hashSources(from, ['d0/f0.txt']);
    await primer.save();
    const first = await ContextHasher.open(cacheDir, root);
    const viaNode = await first.hashSources(from, ['.']);
    expect(first.stats.hashed).toBeGreaterThanOrEqual(2100);
    const manyViaNode = await first.hashSources(from, many, manyOptions);
    await first.save();

    const second = await ContextHasher.open(cacheDir, root); // 2,100 entries: the native listing
    const viaHelper = await second.hashSources(from, ['.']);
    expect(second.stats.hashed).toBe(0);
    expect(second.stats.fromIndex).toBe(first.stats.hashed + 1);
    expect(await second.hashSources(from, many, manyOptions)).toEqual(manyViaNode);
    expect(Object.keys(manyViaNode)).toContain('nope');
    expect(manyViaNode.nope).toBe('missing');
    // Excludes match below each source: `deep` is d3-link's own child, d3's is `sub/deep`.
    expect(Object.keys(manyViaNode).filter((k) => /\/f3[^/]*$/.test(k) || k.includes('/deep'))).toEqual(['d3/sub/deep', 'd3/sub/deep/kept.txt']);
    expect(second.stats.hashed).toBe(0);
    expect(viaHelper).toEqual(viaNode);
    expect(Object.keys(viaHelper)).toEqual(Object.keys(viaNode)); // the same order: the wide names sorted as strings
    expect(Object.keys(viaHelper).some((k) => k.includes('node_modules'))).toBe(false);
    expect(viaHelper['d3/sub/deep/kept.txt']).toMatch(/^f:644:/);

    // Listing started ahead of time (as the builder does while it plans): the root, a
    // subdirectory, a symlinked directory (shown under its own name) and a single file.
    const early = await ContextHasher.open(cacheDir, root);
    early.prefetch(from.isHidden);
    expect(await early.hashSources(from, ['.'])).toEqual(viaNode);
    const sub = await early.hashSources(from, ['d3']);
    expect(Object.keys(sub)).toEqual(['d3', ...Object.keys(viaNode).filter((k) => k.startsWith('d3/'))]);
    expect(Object.keys(sub).length).toBe(1 + 1 + 70 + 2); // d3, d3/sub, 70 files, d3/sub/deep and its kept.txt
    const linked = await early.hashSources(from, ['d3-link']);
    expect(Object.entries(linked)).toEqual(Object.entries(viaNode).filter(([k]) => k === 'd3/sub' || k.startsWith('d3/sub/')).map(([k, v]) => [k.replace(/^d3\/sub/, 'd3-link'), v]));
    const one = await early.hashSources(from, ['d7/sub/f9.txt', 'd7/sub']);
    expect(one['d7/sub/f9.txt']).toBe(viaNode['d7/sub/f9.txt']);
    expect(early.stats.hashed).toBe(0);

    // Excludes apply relative to the source, and skip whole directories.
    const excluded = await early.hashSources(from, ['.'], { exclude: ['d1*', '**/f3.txt'] });
    expect(Object.keys(excluded).filter((k) => k.startsWith('d1'))).toEqual([]);
    expect(Object.keys(excluded).filter((k) => k.endsWith('/f3.txt'))).toEqual([]);
    expect(Object.keys(excluded).length).toBe(Object.keys(viaNode).length - 11 * (2 + 70) - 30 + 11);

    writeFileSync(path.join(root, 'd7/sub/f9.txt'), 'changed');
    utimesSync(path.join(root, 'd7/sub/f9.txt'), old, new Date(old.getTime() + 5_000));
    const third = await ContextHasher.open(cacheDir, root);
    third.prefetch(from.isHidden);
    const changed = await third.hashSources(from, ['.']);
    expect(third.stats.hashed).toBe(1);
    expect(changed['d7/sub/f9.txt']).not.toBe(viaNode['d7/sub/f9.txt']);
    expect({ ...changed, 'd7/sub/f9.txt': viaNode['d7/sub/f9.txt'] }).toEqual(viaNode);
    await third.save();
    // The index now holds the new entry in place of the old one, and the rest as it was.
    const fourth = await ContextHasher.open(cacheDir, root);
    expect(await fourth.hashSources(from, ['.'])).toEqual(changed);
    expect(fourth.stats).toMatchObject({ hashed: 0, fromIndex: first.stats.hashed + 1 });
    expect(readFileSync(path.join(root, 'd7/sub/f9.txt'), 'utf8')).toBe('changed');
  });
});
