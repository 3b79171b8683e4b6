/**
 * The context index and file digests are kept compactly (flat strings, an index written through
 * one reused buffer); these tests check that what they say is unchanged: the index file's exact
 * text, across many buffer fills, and the digest strings of files of several modes.
 */
import { createHash } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ContextHasher } from '../../src/cache/context-hash.js';
import { filesDigest } from '../../src/cache/keys.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'tsbuild-memory-index-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');
const past = new Date(Date.now() - 3_600_000);

describe('context index: compact in memory, same bytes on disk', () => {
  it('writes one line per file, exactly as lstat and sha256 say, for an index many times its write buffer', async () => {
    const root = path.join(tmp, 'big');
    const expected = new Set<string>();
    // 3,000 files with long names: an index of ~1 MB, written through a 256 KiB buffer.
    for (let d = 0; d < 30; d++) {
      const dir = path.join(root, `dir-${'ü'.repeat(20)}-${d}`);
      mkdirSync(dir, { recursive: true });
      for (let f = 0; f < 100; f++) {
        const name = `file-${'x'.repeat(150)}-${f}.txt`;
        const abs = path.join(dir, name);
        writeFileSync(abs, `content ${d} ${f}\n`.repeat(f + 1));
        utimesSync(abs, past, past);
      }
    }
    const cacheDir = path.join(tmp, 'cache-big');
    const hasher = await ContextHasher.open(cacheDir, root);
    const files = await hasher.hashSources({ root }, ['.']);
    expect(hasher.stats.hashed).toBe(3000);
    await hasher.save();

    for (const d of readdirSync(root)) {
      for (const f of readdirSync(path.join(root, d))) {
        const abs = path.join(root, d, f);
        const st = lstatSync(abs);
        expected.add(`${d}/${f}\0${st.size} ${st.mtimeMs} ${st.ino} ${st.mode} ${sha(readFileSync(abs))}`);
        expect(files[`${d}/${f}`]).toBe(`f:644:${sha(readFileSync(abs))}`);
      }
    }
    const indexDir = path.join(cacheDir, 'context-index');
    const [indexFile, ...others] = readdirSync(indexDir);
    expect(others).toEqual([]);
    const text = readFileSync(path.join(indexDir, indexFile!), 'utf8');
    expect(text.startsWith(`tsbuild-context-index 2 ${JSON.stringify(root)}\n`)).toBe(true);
    expect(text.endsWith('\n')).toBe(true);
    const lines = text.slice(text.indexOf('\n') + 1, -1).split('\n');
    expect(lines).toHaveLength(3000);
    expect(new Set(lines)).toEqual(expected);

    // Read back: every file is answered from the index, with the same digests.
    const again = await ContextHasher.open(cacheDir, root);
    const files2 = await again.hashSources({ root }, ['.']);
    expect(again.stats).toMatchObject({ hashed: 0, fromIndex: 3000 });
    expect(filesDigest(files2)).toBe(filesDigest(files));
    expect(files2).toEqual(files);
  });

  it('gives each file its own mode in its digest text, from the walk, from a named file and from the index', async () => {
    const root = path.join(tmp, 'modes');
    mkdirSync(path.join(root, 'sub'), { recursive: true });
    const modes: Record<string, number> = { 'a.sh': 0o755, 'b.txt': 0o644, 'c.bin': 0o4750, 'sub/d': 0o600, 'sub/e': 0o1777 };
    for (const [rel, mode] of Object.entries(modes)) {
      writeFileSync(path.join(root, rel), rel);
      chmodSync(path.join(root, rel), mode);
      utimesSync(path.join(root, rel), past, past);
    }
    const want = (rel: string): string => `f:${modes[rel]!.toString(8)}:${sha(rel)}`;
    const cacheDir = path.join(tmp, 'cache-modes');
    for (let round = 0; round < 2; round++) {
      const hasher = await ContextHasher.open(cacheDir, root);
      const all = await hasher.hashSources({ root }, ['.']);
      expect(all).toEqual({ '.': `d:${(lstatSync(root).mode & 0o7777).toString(8)}`, 'a.sh': want('a.sh'), 'b.txt': want('b.txt'), 'c.bin': want('c.bin'), sub: `d:${(lstatSync(path.join(root, 'sub')).mode & 0o7777).toString(8)}`, 'sub/d': want('sub/d'), 'sub/e': want('sub/e') });
      const named = await hasher.hashSources({ root }, ['sub/e', 'c.bin', 'sub']);
      expect(named['sub/e']).toBe(want('sub/e'));
      expect(named['c.bin']).toBe(want('c.bin'));
      expect(named['sub/d']).toBe(want('sub/d'));
      expect(hasher.stats.fromIndex).toBe(round === 0 ? 4 : 9); // the second call (sub/e twice) and the second round read the index
      await hasher.save();
    }
  });
});
