import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, readlink, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRuntime, diffUpperDir, type Runtime } from '../../src/runtime/index.js';
import { makeBusyboxRootfs, tempDir } from '../helpers/rootfs.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
let base: string;
let layer2: string;
let rt: Runtime;

interface TarEntry { name: string; type: string; mode: number; uid: number; gid: number; mtime: number; linkname: string | null; body: string; pax?: Record<string, string> }

async function readTar(stream: Readable): Promise<{ entries: TarEntry[]; sha: string }> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  const buf = Buffer.concat(chunks);
  const entries: TarEntry[] = [];
  const ex = tar.extract();
  const done = new Promise<void>((resolve, reject) => { ex.on('finish', resolve); ex.on('error', reject); });
  ex.on('entry', (h, s, next) => {
    const body: Buffer[] = [];
    s.on('data', (b: unknown) => { body.push(b as Buffer); });
    s.on('end', () => {
      entries.push({ name: h.name, type: h.type ?? 'file', mode: h.mode ?? 0, uid: h.uid ?? 0, gid: h.gid ?? 0, mtime: h.mtime?.getTime() ?? -1, linkname: h.linkname ?? null, body: Buffer.concat(body).toString(), ...(h.pax ? { pax: h.pax as Record<string, string> } : {}) });
      next();
    });
  });
  ex.end(buf);
  await done;
  return { entries, sha: createHash('sha256').update(buf).digest('hex') };
}

const SCRIPT = [
  'echo new > /new.txt',
  'echo appended >> /etc/passwd',
  'rm /etc/group',
  'rm -rf /data && mkdir /data && echo fresh > /data/fresh',
  'rm -rf /gone',
  'mkdir -p /made/deep && ln -s ../new.txt /made/deep/link && ln /new.txt /made/hard',
  'chown 1000:29 /made && chmod 750 /made',
  'mkfifo /made/fifo',
].join(' && ');

beforeAll(async () => {
  tmp = await tempDir();
  base = await makeBusyboxRootfs(join(tmp.dir, 'base'));
  // A second layer on top: a directory with contents, another to delete, one left alone.
  layer2 = join(tmp.dir, 'layer2');
  await mkdir(join(layer2, 'data', 'sub'), { recursive: true });
  await writeFile(join(layer2, 'data', 'old'), 'old');
  await writeFile(join(layer2, 'data', 'sub', 'older'), 'older');
  await mkdir(join(layer2, 'gone'));
  await writeFile(join(layer2, 'gone', 'x'), 'x');
  await mkdir(join(layer2, 'keep'));
  await writeFile(join(layer2, 'keep', 'k'), 'k');
  rt = createRuntime({ stateDir: join(tmp.dir, 'state') });
});
afterAll(() => tmp.cleanup());

async function runScript(rootfsMode: 'overlay' | 'copy') {
  const r = await rt.run({ rootfs: { lowerDirs: [base, layer2] }, rootfsMode, env: ['PATH=/bin'], args: ['/bin/sh', '-c', SCRIPT] });
  expect(r.exitCode, r.lastOutput).toBe(0);
  expect(r.rootfsMode).toBe(rootfsMode);
  return r;
}

// tar-stream's reader drops the trailing slash of directory names.
const EXPECTED = [
  'data',
  'data/.wh..wh..opq',
  'data/fresh',
  'etc',
  'etc/.wh.group',
  'etc/passwd',
  '.wh.gone',
  'made',
  'made/deep',
  'made/deep/link',
  'made/fifo',
  'made/hard',
  'new.txt',
];

describe('layer diff', () => {
  it('turns the overlay upper dir into a sorted tar with whiteouts and opaque dirs', async () => {
    const r = await runScript('overlay');
    const { entries, sha } = await readTar(r.diff());
    expect(entries.map((e) => e.name)).toEqual(EXPECTED);
    const by = new Map(entries.map((e) => [e.name, e]));
    expect(by.get('data/fresh')!.body).toBe('fresh\n');
    expect(by.get('etc/passwd')!.body).toMatch(/nobody.*\nappended\n$/);
    expect(by.get('made')).toMatchObject({ type: 'directory', mode: 0o750, uid: 1000, gid: 29 });
    expect(by.get('made/deep/link')).toMatchObject({ type: 'symlink', linkname: '../new.txt' });
    expect(by.get('made/fifo')!.type).toBe('fifo');
    // new.txt comes after made/hard in name order, so made/hard holds the content and new.txt links to it.
    expect(by.get('made/hard')).toMatchObject({ type: 'file', body: 'new\n' });
    expect(by.get('new.txt')).toMatchObject({ type: 'link', linkname: 'made/hard' });
    expect(entries.every((e) => e.mtime === 0)).toBe(true);
    // Deterministic: the same upper gives the same bytes; SOURCE_DATE_EPOCH-style clamping applies.
    expect((await readTar(r.diff())).sha).toBe(sha);
    const clamped = await readTar(r.diff({ mtime: { clamp: 1000 } }));
    expect(clamped.entries.every((e) => e.mtime === 1000_000)).toBe(true);
    const preserved = await readTar(r.diff({ mtime: 'preserve' }));
    expect(preserved.entries.find((e) => e.name === 'new.txt')!.mtime).toBeGreaterThan(Date.now() - 600_000);
    await r.dispose();
  });

  it('gives the same tar from the copy fallback', async () => {
    const a = await runScript('overlay');
    const b = await runScript('copy');
    const ta = await readTar(a.diff());
    const tb = await readTar(b.diff());
    expect(tb.entries.map((e) => e.name)).toEqual(EXPECTED);
    expect(tb.sha).toBe(ta.sha);
    await a.dispose();
    await b.dispose();
  });

  it('keeps xattrs as PAX records and leaves overlay bookkeeping out', async () => {
    const r = await rt.run({ rootfs: { lowerDirs: [base] }, env: ['PATH=/bin'], args: ['/bin/sh', '-c', 'echo x > /attr'] });
    execFileSync('setfattr', ['-n', 'user.note', '-v', 'hello', join(r.changesDir!, 'attr')]);
    const { entries } = await readTar(r.diff());
    const e = entries.find((x) => x.name === 'attr')!;
    expect(e.pax?.['SCHILY.xattr.user.note']).toBe('hello');
    expect(Object.keys(e.pax ?? {}).some((k) => k.includes('overlay'))).toBe(false);
    await r.dispose();
  });

  it('round-trips through umoci unpack', async () => {
    const r = await runScript('overlay');
    const layout = join(tmp.dir, 'layout');
    const blobs = join(layout, 'blobs', 'sha256');
    await mkdir(blobs, { recursive: true });
    const put = async (data: Buffer) => {
      const d = createHash('sha256').update(data).digest('hex');
      await writeFile(join(blobs, d), data);
      return { digest: `sha256:${d}`, size: data.length };
    };
    const tarOf = (dir: string) => execFileSync('tar', ['-C', dir, '--numeric-owner', '-cf', '-', '.'], { maxBuffer: 1 << 28 });
    const diffTar = Buffer.concat(await (async () => { const c: Buffer[] = []; for await (const x of r.diff()) c.push(x as Buffer); return c; })());
    const layers = [tarOf(base), tarOf(layer2), diffTar];
    const descs = [];
    for (const l of layers) descs.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...(await put(l)) });
    const diffIds = layers.map((l) => `sha256:${createHash('sha256').update(l).digest('hex')}`);
    const config = await put(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: diffIds } })));
    const manifest = await put(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config }, layers: descs })));
    await writeFile(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    await writeFile(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': 't' } }] }));
    const bundle = join(tmp.dir, 'bundle');
    execFileSync('umoci', ['unpack', '--image', `${layout}:t`, bundle], { stdio: 'pipe' });
    const rootfs = join(bundle, 'rootfs');
    const ls = (p: string) => execFileSync('ls', ['-A', join(rootfs, p)], { encoding: 'utf8' }).split('\n').filter(Boolean);
    expect(ls('data')).toEqual(['fresh']);
    expect(ls('.')).not.toContain('gone');
    expect(ls('etc')).not.toContain('group');
    expect(await readlink(join(rootfs, 'made', 'deep', 'link'))).toBe('../new.txt');
    expect(await readFile(join(rootfs, 'new.txt'), 'utf8')).toBe('new\n');
    expect((await stat(join(rootfs, 'new.txt'))).ino).toBe((await stat(join(rootfs, 'made', 'hard'))).ino);
    expect(await readFile(join(rootfs, 'etc', 'passwd'), 'utf8')).toMatch(/appended\n$/);
    expect(ls('keep')).toEqual(['k']);
    await r.dispose();
  });
});

describe('diffUpperDir', () => {
  it('reads a hand-made upper dir with a whiteout device', async () => {
    const t = await tempDir();
    try {
      const lower = join(t.dir, 'lower');
      const upper = join(t.dir, 'upper');
      await mkdir(join(lower, 'a'), { recursive: true });
      await writeFile(join(lower, 'a', 'b'), 'b');
      await mkdir(join(upper, 'a'), { recursive: true });
      execFileSync('mknod', [join(upper, 'a', 'b'), 'c', '0', '0']);
      const { entries } = await readTar(diffUpperDir(upper, [lower]));
      expect(entries.map((e) => e.name)).toEqual(['a', 'a/.wh.b']);
    } finally {
      await t.cleanup();
    }
  });
});
