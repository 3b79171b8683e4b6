/**
 * ADD of a local archive when a stream fails part way: the failure is the step's error, never
 * an unhandled rejection or an 'error' event without a listener (which end the process; vitest
 * reports either as an "Unhandled Error" and fails the run).
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build } from '../../src/builder/build.js';
import { applyCopy, decompressed } from '../../src/builder/copy.js';
import { makeBusyboxImage } from '../helpers/base-images.js';

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'tsbuild-stream-errors-copy-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** A tar of these entries, as bytes. */
async function tarOf(entries: { name: string; type?: 'file' | 'link'; linkname?: string; body?: Buffer }[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const collected = pipeline(pack, new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(c), cb()) }));
  for (const e of entries) {
    const { body, ...h } = e;
    await new Promise<void>((resolve, reject) => pack.entry({ mode: 0o644, ...h }, body ?? Buffer.alloc(0), (err) => (err ? reject(err) : resolve())));
  }
  pack.finalize();
  await collected;
  return Buffer.concat(chunks);
}

let n = 0;
async function dirs(): Promise<{ ctx: string; dest: string }> {
  const base = path.join(tmp, `case-${++n}`);
  const ctx = path.join(base, 'ctx');
  const dest = path.join(base, 'dest');
  await mkdir(ctx, { recursive: true });
  await mkdir(dest, { recursive: true });
  return { ctx, dest };
}

/** Runs `fn` with PATH holding only an empty directory: no xz, bzip2 or zstd to spawn. */
async function withoutTools<T>(fn: () => Promise<T>): Promise<T> {
  const empty = await mkdtemp(path.join(tmp, 'empty-path-'));
  const saved = process.env.PATH;
  process.env.PATH = empty;
  try {
    return await fn();
  } finally {
    process.env.PATH = saved;
  }
}

describe('ADD of a local archive that fails part way', () => {
  it('reports a hard link whose target is not in the archive as the step error (library build)', { timeout: 120_000 }, async () => {
    const root = path.join(tmp, 'root');
    await makeBusyboxImage(root);
    const { ctx } = await dirs();
    // Entries after the bad link keep the archive stream going when the loop stops.
    const bytes = await tarOf([
      { name: 'a', body: Buffer.from('a\n') },
      { name: 'b', type: 'link', linkname: 'missing' },
      ...Array.from({ length: 50 }, (_, i) => ({ name: `c${i}`, body: Buffer.alloc(64 * 1024, i) })),
    ]);
    await writeFile(path.join(ctx, 'x.tar'), bytes);
    await writeFile(path.join(ctx, 'Dockerfile'), 'FROM busybox:latest\nADD x.tar /out/\n');
    await expect(build({ context: ctx, root, env: {} })).rejects.toThrow(/hard link b -> missing: target not found in the archive/);
  });

  it('reports a corrupt .tar.gz as an extract error naming the archive', async () => {
    const { ctx, dest } = await dirs();
    const bytes = await tarOf(Array.from({ length: 20 }, (_, i) => ({ name: `f${i}`, body: Buffer.from(Array.from({ length: 40_000 }, (_x, j) => (j * 7919 + i) % 251)) })));
    await writeFile(path.join(ctx, 'x.tar'), bytes);
    execFileSync('gzip', ['-n', path.join(ctx, 'x.tar')]);
    const gz = path.join(ctx, 'x.tar.gz');
    await truncate(gz, Math.floor((await stat(gz)).size / 2));
    const err = await applyCopy({ kind: 'ADD', sources: [{ kind: 'path', path: 'x.tar.gz' }], dest: '/out/' }, { source: { root: ctx }, destRoot: dest }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'TSBUILD_ADD_EXTRACT', message: 'failed to extract x.tar.gz' });
    expect((err as Error).cause).toMatchObject({ code: 'Z_BUF_ERROR' });
  });

  it('stops at an abort between entries, reporting the abort', async () => {
    const { ctx, dest } = await dirs();
    await writeFile(path.join(ctx, 'x.tar'), await tarOf(Array.from({ length: 50 }, (_, i) => ({ name: `f${i}`, body: Buffer.alloc(64 * 1024, i) }))));
    const ac = new AbortController();
    // Aborted once the first entry is on disk: the next entry's check ends the loop.
    const watcher = setInterval(() => {
      stat(path.join(dest, 'out/f0')).then(() => ac.abort(new Error('stop')), () => {});
    }, 1);
    try {
      await expect(applyCopy({ kind: 'ADD', sources: [{ kind: 'path', path: 'x.tar' }], dest: '/out/' }, { source: { root: ctx }, destRoot: dest, signal: ac.signal })).rejects.toMatchObject({
        code: 'TSBUILD_ABORTED',
      });
    } finally {
      clearInterval(watcher);
    }
  });

  it('reports a truncated .tar.xz by the exit of xz, never as a complete archive', async () => {
    const { ctx, dest } = await dirs();
    const bytes = await tarOf(Array.from({ length: 20 }, (_, i) => ({ name: `f${i}`, body: Buffer.from(Array.from({ length: 40_000 }, (_x, j) => (j * 7919 + i) % 251)) })));
    await writeFile(path.join(ctx, 'x.tar'), bytes);
    execFileSync('xz', [path.join(ctx, 'x.tar')]);
    const file = path.join(ctx, 'x.tar.xz');
    await truncate(file, Math.floor((await stat(file)).size / 2));
    const err = await applyCopy({ kind: 'ADD', sources: [{ kind: 'path', path: 'x.tar.xz' }], dest: '/out/' }, { source: { root: ctx }, destRoot: dest }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'TSBUILD_ADD_EXTRACT', message: 'failed to extract x.tar.xz' });
    expect((err as Error).cause).toMatchObject({ code: 'TSBUILD_DECOMPRESS', message: 'cannot decompress x.tar.xz: xz -dc exited with 1' });
  });
});

describe('decompressed: a source or tool that fails', () => {
  it('errors the stream with a CopyError naming the tool', async () => {
    const { ctx } = await dirs();
    const file = path.join(ctx, 'x.tar.xz');
    execFileSync('sh', ['-c', `printf hello | xz -c > ${file}`]);
    const err = await withoutTools(async () => {
      const out = decompressed(file, 'xz');
      try {
        for await (const _ of out) {
          // nothing comes
        }
      } catch (e) {
        return e;
      }
      return undefined;
    });
    expect(err).toMatchObject({ code: 'TSBUILD_DECOMPRESS_TOOL', message: 'cannot decompress x.tar.xz: xz not found' });
  });

  it('fails ADD of a .tar.xz with that error instead of copying the archive as a file', async () => {
    const { ctx, dest } = await dirs();
    await writeFile(path.join(ctx, 'x.tar'), await tarOf([{ name: 'f', body: Buffer.from('f\n') }]));
    execFileSync('xz', [path.join(ctx, 'x.tar')]);
    const spec = { kind: 'ADD', sources: [{ kind: 'path', path: 'x.tar.xz' }], dest: '/out/' } as const;
    await expect(withoutTools(() => applyCopy(spec, { source: { root: ctx }, destRoot: dest }))).rejects.toThrow('cannot decompress x.tar.xz: xz not found');
    // With the tool found, the same ADD extracts.
    await applyCopy(spec, { source: { root: ctx }, destRoot: dest });
    expect(await readFile(path.join(dest, 'out/f'), 'utf8')).toBe('f\n');
  });

  it('reports an unreadable source file as the stream error', async () => {
    const out = decompressed(path.join(tmp, 'no-such-file.tar.gz'), 'gzip');
    await expect(
      (async () => {
        for await (const _ of out) {
          // nothing comes
        }
      })(),
    ).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
