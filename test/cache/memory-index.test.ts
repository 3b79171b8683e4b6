/**
 * The context index is kept as its file's bytes and written through one reused buffer, merged
 * with what a build hashed; these tests check what it says: every entry exactly, across many
 * buffer fills, after a merge, and the digest strings of files of several modes.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ContextHasher } from '../../src/cache/context-hash.js';
import { filesDigest } from '../../src/cache/keys.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'tsbuild-memory-index-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/**
 * An index file's entries as `path \0 mode size mtimeNs ino hex`, read by this test from the
 * format context-hash.ts documents: a header line, then per file u8 'f', u16 path length, u16
 * stat text length, u32 st_mode, path, NUL, `<size> <mtime ns> <ino> `, 64 hex digits.
 */
function readIndex(file: string, root: string): string[] {
  const buf = readFileSync(file);
  const nl = buf.indexOf(0x0a);
  expect(buf.toString('utf8', 0, nl)).toBe(`tsbuild-context-index 3 ${JSON.stringify(root)}`);
  const out: string[] = [];
  for (let at = nl + 1; at < buf.length; ) {
    expect(String.fromCharCode(buf[at]!)).toBe('f');
    const plen = buf.readUInt16LE(at + 1);
    const slen = buf.readUInt16LE(at + 3);
    const mode = buf.readUInt32LE(at + 5);
    const p = buf.toString('utf8', at + 9, at + 9 + plen);
    expect(buf[at + 9 + plen]).toBe(0);
    const stat = buf.toString('latin1', at + 10 + plen, at + 10 + plen + slen);
    const hex = buf.toString('latin1', at + 10 + plen + slen, at + 10 + plen + slen + 64);
    expect(hex).toMatch(/^[0-9a-f]{64}$/);
    out.push(`${p}\0${mode} ${stat}${hex}`);
    at += 10 + plen + slen + 64;
  }
  return out;
}
const past = new Date(Date.now() - 3_600_000);

describe('context index: compact in memory, same bytes on disk', () => {
  it('writes one entry per file, exactly as lstat and sha256 say, sorted by path, for an index many times its write buffer', async () => {
    const root = path.join(tmp, 'big');
    const expected: string[] = [];
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
        const st = lstatSync(abs, { bigint: true });
        expected.push(`${d}/${f}\0${st.mode} ${st.size} ${st.mtimeNs} ${st.ino} ${sha(readFileSync(abs))}`);
        expect(files[`${d}/${f}`]).toBe(`f:644:${sha(readFileSync(abs))}`);
      }
    }
    const indexDir = path.join(cacheDir, 'context-index');
    const [indexFile, ...others] = readdirSync(indexDir);
    expect(others).toEqual([]);
    expect(readIndex(path.join(indexDir, indexFile!), root)).toEqual(expected.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));

    // Read back: every file is answered from the index, with the same digests.
    const again = await ContextHasher.open(cacheDir, root);
    const files2 = await again.hashSources({ root }, ['.']);
    expect(again.stats).toMatchObject({ hashed: 0, fromIndex: 3000 });
    expect(filesDigest(files2)).toBe(filesDigest(files));
    expect(files2).toEqual(files);
  });

  it('merges what a later build hashed into the index: changed entries replaced, new ones in order, racy ones dropped', async () => {
    const root = path.join(tmp, 'merge');
    mkdirSync(root);
    for (const n of ['b', 'd', 'f']) writeFileSync(path.join(root, n), n);
    for (const n of ['b', 'd', 'f']) utimesSync(path.join(root, n), past, past);
    const cacheDir = path.join(tmp, 'cache-merge');
    const first = await ContextHasher.open(cacheDir, root);
    await first.hashSources({ root }, ['.']);
    await first.save();
    const [indexFile] = readdirSync(path.join(cacheDir, 'context-index'));
    const file = path.join(cacheDir, 'context-index', indexFile!);
    expect(readIndex(file, root).map((e) => e.split('\0')[0])).toEqual(['b', 'd', 'f']);

    writeFileSync(path.join(root, 'a'), 'new, old enough');
    utimesSync(path.join(root, 'a'), past, past);
    writeFileSync(path.join(root, 'd'), 'changed');
    utimesSync(path.join(root, 'd'), past, new Date(past.getTime() + 1000));
    writeFileSync(path.join(root, 'e'), 'new and racy'); // mtime now: hashed, never kept
    writeFileSync(path.join(root, 'f'), 'f changed racily');
    const second = await ContextHasher.open(cacheDir, root);
    const files = await second.hashSources({ root }, ['.']);
    expect(second.stats).toMatchObject({ hashed: 4, fromIndex: 1 });
    expect(files.d).toBe(`f:644:${sha('changed')}`);
    await second.save();
    const entries = readIndex(file, root);
    expect(entries.map((e) => e.split('\0')[0])).toEqual(['a', 'b', 'd']);
    expect(entries[2]!.endsWith(sha('changed'))).toBe(true);

    const third = await ContextHasher.open(cacheDir, root);
    expect(await third.hashSources({ root }, ['.'])).toEqual(files);
    expect(third.stats).toMatchObject({ hashed: 2, fromIndex: 3 }); // e and f are read again until they are a second old
  });

  it('hashes a tree without an index through the listing, as the small-tree walk does, and keeps the same index', async () => {
    const root = path.join(tmp, 'cold');
    for (let d = 0; d < 6; d++) {
      mkdirSync(path.join(root, `d${d}`, 'sub'), { recursive: true });
      for (let f = 0; f < 12; f++) writeFileSync(path.join(root, `d${d}`, f % 3 ? '' : 'sub', `f${f}.txt`), `${d}/${f}`);
    }
    // Large files (read after the walk, in whatever order their reads end) and wide names.
    for (const n of ['d1/big-b', 'd4/big-a', 'big-c']) writeFileSync(path.join(root, n), Buffer.alloc((1 << 20) + 100 * n.length, n));
    for (const n of ['ｚ', '😀', 'a-b']) writeFileSync(path.join(root, 'd2', n), n);
    symlinkSync('d3/sub', path.join(root, 'link'));
    for (const f of execFileSync('find', [root, '-type', 'f'], { encoding: 'utf8' }).trim().split('\n')) utimesSync(f, past, past);
    writeFileSync(path.join(root, 'd5', 'racy'), 'too fresh to keep');
    const from = { root };
    const sources = ['d3', 'd0/f1.txt', 'nope', 'link', 'd2', '.'];
    const options = { exclude: ['**/f4*'] };

    // Without an index: the listing way, for every source.
    const coldDir = path.join(tmp, 'cache-cold');
    const cold = await ContextHasher.open(coldDir, root);
    const all = await cold.hashSources(from, ['.']);
    const files = Object.keys(all).filter((k) => all[k]!.startsWith('f:'));
    expect(files.length).toBe(6 * 12 + 3 + 3 + 1);
    expect(cold.stats.hashed).toBe(files.length);
    const many = await cold.hashSources(from, sources, options);
    // The second call reads nothing: what this hasher hashed answers, except the racy file.
    expect(cold.stats.hashed).toBe(files.length + 1);
    expect(cold.stats.fromIndex).toBeGreaterThanOrEqual(Object.keys(many).filter((k) => many[k]!.startsWith('f:')).length - 1); // a file under two sources is looked up twice
    await cold.save();

    // With a small index (one file): node's lstat walk, compared as strings.
    const smallDir = path.join(tmp, 'cache-small');
    const primer = await ContextHasher.open(smallDir, root);
    await primer.hashSources(from, ['d0/f1.txt']);
    await primer.save();
    const small = await ContextHasher.open(smallDir, root);
    expect(await small.hashSources(from, ['.'])).toEqual(all);
    expect(Object.keys(await small.hashSources(from, sources, options))).toEqual(Object.keys(many));
    expect(await small.hashSources(from, sources, options)).toEqual(many);
    expect(small.stats.hashed).toBe(files.length - 1 + 2); // all but the primed one, and the racy one each time
    await small.save();

    // The same index either way: every file but the racy one, sorted by path bytes, each as lstat and sha256 say.
    const index = (dir: string): string => path.join(dir, 'context-index', readdirSync(path.join(dir, 'context-index'))[0]!);
    expect(readFileSync(index(coldDir)).equals(readFileSync(index(smallDir)))).toBe(true);
    const entries = readIndex(index(coldDir), root);
    const paths = entries.map((e) => e.split('\0')[0]!);
    expect(paths).toEqual(files.filter((f) => f !== 'd5/racy').sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
    for (const e of entries) {
      const [p, rest] = e.split('\0') as [string, string];
      const st = lstatSync(path.join(root, p), { bigint: true });
      expect(rest).toBe(`${st.mode} ${st.size} ${st.mtimeNs} ${st.ino} ${sha(readFileSync(path.join(root, p)))}`);
    }
    const again = await ContextHasher.open(coldDir, root);
    expect(await again.hashSources(from, ['.'])).toEqual(all);
    expect(again.stats).toMatchObject({ hashed: 1, fromIndex: files.length - 1 });
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
