import { lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ContextHasher } from '../../src/cache/context-hash.js';
import { nativeWalk } from '../../src/cache/native-walk.js';
import { openContext } from '../../src/builder/context.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'tsbuild-native-walk-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('native walk (the helper lists a tree with fstatat)', () => {
  it('gives every entry with the same mode, size, inode and mtimeMs as lstat, and skips what it is told to', async () => {
    const root = path.join(tmp, 'tree');
    mkdirSync(path.join(root, 'a/b'), { recursive: true });
    mkdirSync(path.join(root, 'skipme/deep'), { recursive: true });
    writeFileSync(path.join(root, 'a/b/file.txt'), 'hello');
    writeFileSync(path.join(root, 'a/new\nline'), 'x');
    writeFileSync(path.join(root, 'a/ünï.txt'), 'y'.repeat(12345));
    writeFileSync(path.join(root, 'skipme/deep/hidden'), 'z');
    symlinkSync('../a/b/file.txt', path.join(root, 'a/link'));
    utimesSync(path.join(root, 'a/b/file.txt'), new Date(1_700_000_000_123), new Date(1_700_000_000_123.456));
    const listing = await nativeWalk(root, ['skipme']);
    expect(listing).toBeDefined();
    expect([...listing!.keys()].sort()).toEqual([root, `${root}/a`, `${root}/a/b`].sort());
    const top = listing!.get(root) as { name: string }[];
    expect(top.map((e) => e.name).sort()).toEqual(['a', 'skipme']); // listed, not walked
    let checked = 0;
    for (const [dir, entries] of listing!) {
      for (const e of entries as { name: string; stat: { mode: number; size: number; ino: number; mtimeMs: number; isDirectory(): boolean; isFile(): boolean; isSymbolicLink(): boolean } }[]) {
        const st = lstatSync(path.join(dir, e.name));
        expect({ mode: e.stat.mode, size: e.stat.size, ino: e.stat.ino, mtimeMs: e.stat.mtimeMs }).toEqual({ mode: st.mode, size: st.size, ino: st.ino, mtimeMs: st.mtimeMs });
        expect([e.stat.isDirectory(), e.stat.isFile(), e.stat.isSymbolicLink()]).toEqual([st.isDirectory(), st.isFile(), st.isSymbolicLink()]);
        checked++;
      }
    }
    expect(checked).toBe(7); // a, skipme (listed, not walked), a/b, a/new\nline, a/ünï.txt, a/link, a/b/file.txt
  });

  it('a big context hashes the same through the native walk as through node, and sees a change', async () => {
    const root = path.join(tmp, 'ctx');
    for (let d = 0; d < 30; d++) {
      mkdirSync(path.join(root, `d${d}`, 'sub'), { recursive: true });
      for (let f = 0; f < 70; f++) writeFileSync(path.join(root, `d${d}`, f % 2 ? 'sub' : '', `f${f}.txt`), `${d}/${f}`);
    }
    mkdirSync(path.join(root, 'node_modules/pkg'), { recursive: true });
    writeFileSync(path.join(root, 'node_modules/pkg/index.js'), 'ignored');
    writeFileSync(path.join(root, '.dockerignore'), 'node_modules\n');
    // Old enough mtimes that the index keeps every entry (racily fresh files are never trusted).
    const old = new Date(Date.now() - 60_000);
    for (let d = 0; d < 30; d++) for (let f = 0; f < 70; f++) utimesSync(path.join(root, `d${d}`, f % 2 ? 'sub' : '', `f${f}.txt`), old, old);
    utimesSync(path.join(root, '.dockerignore'), old, old);
    const ctx = await openContext({ dir: root });
    const from = { root: ctx.root, isHidden: (rel: string, isDir: boolean) => ctx.isHidden(rel, isDir) };
    const cacheDir = path.join(tmp, 'cache');

    const first = await ContextHasher.open(cacheDir, root); // empty index: node's walk
    const viaNode = await first.hashSources(from, ['.']);
    expect(first.stats.hashed).toBeGreaterThanOrEqual(2100);
    await first.save();

    const second = await ContextHasher.open(cacheDir, root); // 2,100 entries: the native walk
    const viaHelper = await second.hashSources(from, ['.']);
    expect(second.stats.hashed).toBe(0);
    expect(second.stats.fromIndex).toBe(first.stats.hashed);
    expect(viaHelper).toEqual(viaNode);
    expect(Object.keys(viaHelper).some((k) => k.startsWith('node_modules'))).toBe(false);

    // Listing started ahead of time (as the builder does while it plans), for the root and a subdirectory source.
    const early = await ContextHasher.open(cacheDir, root);
    early.prefetch(from.isHidden);
    expect(await early.hashSources(from, ['.'])).toEqual(viaNode);
    const sub = await early.hashSources(from, ['d3']);
    expect(Object.keys(sub).length).toBe(1 + 1 + 70); // d3, d3/sub, 70 files
    expect(early.stats.hashed).toBe(0);

    writeFileSync(path.join(root, 'd7/sub/f9.txt'), 'changed');
    const third = await ContextHasher.open(cacheDir, root);
    const changed = await third.hashSources(from, ['.']);
    expect(third.stats.hashed).toBe(1);
    expect(changed['d7/sub/f9.txt']).not.toBe(viaNode['d7/sub/f9.txt']);
    expect({ ...changed, 'd7/sub/f9.txt': viaNode['d7/sub/f9.txt'] }).toEqual(viaNode);
  });
});
