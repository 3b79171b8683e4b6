/** Unpacking layers into overlay-format snapshots: crafted tars never write outside the snapshot. */
import { existsSync } from 'node:fs';
import { lstat, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mountOverlay, SnapshotStore, unpackOverlayLayer } from '../../src/builder/snapshots.js';

type Entry = { name: string; type?: 'file' | 'directory' | 'symlink' | 'link'; linkname?: string; body?: string };

async function tarOf(entries: Entry[]): Promise<Readable> {
  const pack = tar.pack();
  for (const e of entries) {
    await new Promise<void>((resolve, reject) => {
      const h = { name: e.name, type: e.type ?? 'file', mode: e.type === 'directory' ? 0o755 : 0o644, ...(e.linkname ? { linkname: e.linkname } : {}) };
      if ((e.type ?? 'file') === 'file') pack.entry(h, e.body ?? '', (err) => (err ? reject(err) : resolve()));
      else pack.entry(h, (err) => (err ? reject(err) : resolve()));
    });
  }
  pack.finalize();
  return pack as unknown as Readable;
}

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'tsbuild-snap-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('unpackOverlayLayer', () => {
  it('turns whiteouts into 0/0 devices and keeps the later of duplicate entries', async () => {
    const dir = await mkdtemp(path.join(tmp, 'ok-'));
    await unpackOverlayLayer(await tarOf([{ name: 'etc/', type: 'directory' }, { name: 'etc/a', body: 'one' }, { name: 'etc/a', body: 'two' }, { name: 'etc/.wh.gone' }, { name: 'etc/b', type: 'link', linkname: 'etc/a' }]), dir);
    expect(await readFile(path.join(dir, 'etc/a'), 'utf8')).toBe('two');
    const wh = await lstat(path.join(dir, 'etc/gone'));
    expect(wh.isCharacterDevice() && wh.rdev === 0).toBe(true);
    expect((await lstat(path.join(dir, 'etc/b'))).ino).toBe((await lstat(path.join(dir, 'etc/a'))).ino);
  });

  it('refuses a file under a directory that an earlier entry replaced by a symlink to outside', async () => {
    const outside = await mkdtemp(path.join(tmp, 'outside-'));
    const dir = await mkdtemp(path.join(tmp, 'evil-'));
    const layer = await tarOf([{ name: 'a/', type: 'directory' }, { name: 'a', type: 'symlink', linkname: outside }, { name: 'a/x', body: 'pwned' }]);
    await expect(unpackOverlayLayer(layer, dir)).rejects.toThrow(/non-directory|escape/);
    expect(await readdir(outside)).toEqual([]);
  });

  it('refuses ../ paths and a ".wh..." whiteout, touching nothing outside', async () => {
    const dir = await mkdtemp(path.join(tmp, 'evil2-'));
    const { mkdir } = await import('node:fs/promises');
    await mkdir(path.join(dir, 'in'));
    await mkdir(path.join(dir, 'in2'));
    await expect(unpackOverlayLayer(await tarOf([{ name: '../escaped', body: 'x' }]), path.join(dir, 'in'))).rejects.toThrow(/escapes/);
    expect(existsSync(path.join(dir, 'escaped'))).toBe(false);
    const inner = path.join(dir, 'in2');
    await expect(unpackOverlayLayer(await tarOf([{ name: 'sub/', type: 'directory' }, { name: 'sub/.wh...' }]), inner)).rejects.toThrow(/not a valid whiteout/);
    expect((await lstat(dir)).isDirectory()).toBe(true);
  });
});

describe('mountOverlay', () => {
  it('mounts lowers + upper at the target (through the helper\'s mountd), writes land in upper, unmount removes it; bad options fail clearly', async () => {
    const { mkdir, writeFile } = await import('node:fs/promises');
    const d = path.join(tmp, 'mnt-case');
    for (const x of ['l1', 'l2', 'u', 'w', 'm']) await mkdir(path.join(d, x), { recursive: true });
    await writeFile(path.join(d, 'l1/a'), 'a1');
    await writeFile(path.join(d, 'l2/a'), 'a2'); // l2 is above l1
    await writeFile(path.join(d, 'l1/b'), 'b1');
    const target = path.join(d, 'm');
    const mounts = async () => (await readFile('/proc/self/mounts', 'utf8')).split('\n').filter((l) => l.split(' ')[1] === target);
    for (let i = 0; i < 3; i++) {
      const unmount = await mountOverlay([path.join(d, 'l1'), path.join(d, 'l2')], path.join(d, 'u'), path.join(d, 'w'), target);
      expect(await mounts()).toHaveLength(1);
      // volatile: its unmount does not sync the whole filesystem of the upper dir
      expect((await mounts())[0]!.split(' ')[3]!.split(',')).toContainEqual(expect.stringMatching(/^(fsync=)?volatile$/)); // 6.x shows fsync=volatile
      expect(await readFile(path.join(target, 'a'), 'utf8')).toBe('a2');
      expect(await readFile(path.join(target, 'b'), 'utf8')).toBe('b1');
      await writeFile(path.join(target, `new${i}`), 'n');
      await unmount();
      expect(await mounts()).toHaveLength(0);
      expect(await readFile(path.join(d, 'u', `new${i}`), 'utf8')).toBe('n');
    }
    await expect(mountOverlay([path.join(d, 'no-such-lower')], path.join(d, 'u'), path.join(d, 'w'), target)).rejects.toThrow(/No such file|mount/);
    expect(await mounts()).toHaveLength(0);
  });
});

describe('SnapshotStore temp directories and gc', () => {
  it('a temp dir its process keeps using is never taken, however old its mtime (marks refreshed); one nobody marks is; marks of gone dirs go', async () => {
    const { existsSync, readdirSync, rmSync, utimesSync } = await import('node:fs');
    const root = path.join(tmp, 'gc-temps');
    const building = new SnapshotStore(root); // this build's process
    const killed = new SnapshotStore(root); // a build that was killed: nothing refreshes its marks
    const kept = building.tempDirSync('ex');
    const left = killed.tempDirSync('ex');
    const hourAgo = new Date(Date.now() - 3_600_000);
    for (const d of [kept, left]) utimesSync(d, hourAgo, hourAgo); // a RUN whose upper dir root never changed
    building.refreshTempMarks();
    const usage = await new SnapshotStore(root).usage(new Set());
    expect(usage.find((u) => kept.endsWith(u.name))?.reclaimable).toBe(false);
    expect(usage.find((u) => left.endsWith(u.name))?.reclaimable).toBe(true);
    const r = await new SnapshotStore(root).gc(new Set());
    expect(r.tempsRemoved).toBe(1);
    expect(existsSync(kept)).toBe(true);
    expect(existsSync(left)).toBe(false);
    // the build is done with it: its mark goes with it
    rmSync(kept, { recursive: true });
    building.refreshTempMarks();
    expect(readdirSync(path.join(root, 'snapshots', 'used'))).toEqual([]);
  });
});

