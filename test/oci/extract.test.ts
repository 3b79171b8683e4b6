import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { extractLayer } from '../../src/oci/extract.js';
import { compressStream } from '../../src/oci/compress.js';

type E = { name: string; type?: 'file' | 'directory' | 'symlink' | 'link'; body?: string; linkname?: string; mode?: number };

async function tarOf(entries: E[]): Promise<Buffer> {
  const pack = tar.pack();
  for (const e of entries) {
    const header = { name: e.name, type: e.type ?? 'file', mode: e.mode ?? (e.type === 'directory' ? 0o755 : 0o644), mtime: new Date(0), ...(e.linkname ? { linkname: e.linkname } : {}) } as tar.Header;
    if (e.type === undefined || e.type === 'file') pack.entry(header, e.body ?? '');
    else pack.entry(header);
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

let tmp: string;
let root: string;
let outside: string;
beforeEach(async () => {
  tmp = await fs.mkdtemp(path.join(tmpdir(), 'tsbuild-extract-'));
  root = path.join(tmp, 'rootfs');
  outside = path.join(tmp, 'outside');
  await fs.mkdir(outside);
  await fs.writeFile(path.join(outside, 'secret'), 'host file\n');
});
afterEach(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

const extract = async (entries: E[]) => extractLayer(Readable.from([await tarOf(entries)]), root);

describe('extractLayer', () => {
  test('files, dirs, modes, symlinks, hardlinks; gzip detected by magic', async () => {
    const t = await tarOf([
      { name: 'etc/', type: 'directory' },
      { name: 'etc/hosts', body: 'h\n' },
      { name: 'bin/tool', body: '#!/bin/sh\n', mode: 0o4755 },
      { name: 'bin/alias', type: 'symlink', linkname: 'tool' },
      { name: 'bin/hard', type: 'link', linkname: 'bin/tool' },
      { name: 'tmp/', type: 'directory', mode: 0o1777 },
    ]);
    const gz = await new Promise<Buffer>((resolve) => {
      const c = compressStream('gzip');
      const chunks: Buffer[] = [];
      c.on('data', (b: Buffer) => chunks.push(b));
      c.on('end', () => resolve(Buffer.concat(chunks)));
      c.end(t);
    });
    const r = await extractLayer(Readable.from([gz]), root);
    expect(r.entries).toBe(6);
    expect(await fs.readFile(path.join(root, 'etc/hosts'), 'utf8')).toBe('h\n');
    expect((await fs.stat(path.join(root, 'bin/tool'))).mode & 0o7777).toBe(0o4755);
    expect((await fs.stat(path.join(root, 'tmp'))).mode & 0o7777).toBe(0o1777);
    expect(await fs.readlink(path.join(root, 'bin/alias'))).toBe('tool');
    expect((await fs.stat(path.join(root, 'bin/hard'))).ino).toBe((await fs.stat(path.join(root, 'bin/tool'))).ino);
  });

  test('whiteouts and opaque directories remove lower-layer files', async () => {
    await extract([{ name: 'a/keep', body: '1' }, { name: 'a/gone', body: '2' }, { name: 'b/old', body: '3' }, { name: 'b/sub/deep', body: '4' }]);
    const r = await extract([{ name: 'a/.wh.gone' }, { name: 'b/', type: 'directory' }, { name: 'b/.wh..wh..opq' }, { name: 'b/new', body: '5' }]);
    expect(r.whiteouts).toBe(2);
    expect((await fs.readdir(path.join(root, 'a'))).sort()).toEqual(['keep']);
    expect((await fs.readdir(path.join(root, 'b'))).sort()).toEqual(['new']);
  });

  test('refuses names with ..', async () => {
    await expect(extract([{ name: '../outside/evil', body: 'x' }])).rejects.toMatchObject({ code: 'TSBUILD_UNSAFE_PATH' });
    await expect(extract([{ name: 'a/../../outside/evil', body: 'x' }])).rejects.toMatchObject({ code: 'TSBUILD_UNSAFE_PATH' });
    await expect(fs.access(path.join(outside, 'evil'))).rejects.toThrow();
  });

  test('an absolute symlink and a file through it stay inside the root', async () => {
    await extract([
      { name: 'evil', type: 'symlink', linkname: outside },
      { name: 'evil/secret', body: 'overwritten?\n' },
      { name: 'up', type: 'symlink', linkname: '../../../../../..' + outside },
      { name: 'up/secret2', body: 'x\n' },
    ]);
    expect(await fs.readFile(path.join(outside, 'secret'), 'utf8')).toBe('host file\n');
    expect(await fs.readdir(outside)).toEqual(['secret']);
    expect(await fs.readFile(path.join(root, outside, 'secret'), 'utf8')).toBe('overwritten?\n');
    expect(await fs.readFile(path.join(root, outside, 'secret2'), 'utf8')).toBe('x\n');
  });

  test('hardlinks outside the root are refused', async () => {
    await expect(extract([{ name: 'h', type: 'link', linkname: '../outside/secret' }])).rejects.toMatchObject({ code: 'TSBUILD_UNSAFE_PATH' });
    // An absolute target means root-relative: the host file is never linked.
    await expect(extract([{ name: 'h2', type: 'link', linkname: path.join(outside, 'secret') }])).rejects.toThrow(/does not exist/);
    // Through a symlink to the host dir: resolved inside the root, so missing.
    await expect(extract([{ name: 'lnk', type: 'symlink', linkname: outside }, { name: 'h3', type: 'link', linkname: 'lnk/secret' }])).rejects.toThrow(/does not exist/);
    const st = await fs.stat(path.join(outside, 'secret'));
    expect(st.nlink).toBe(1);
  });

  test('a symlink replaced by a file is not followed', async () => {
    await extract([{ name: 'f', type: 'symlink', linkname: path.join(outside, 'secret') }]);
    await extract([{ name: 'f', body: 'new\n' }]);
    expect(await fs.readFile(path.join(outside, 'secret'), 'utf8')).toBe('host file\n');
    expect(await fs.readFile(path.join(root, 'f'), 'utf8')).toBe('new\n');
  });
});
