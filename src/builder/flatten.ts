import { lstat, mkdir, mkdtemp, readdir, readlink, rm } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { extractLayer } from '../oci/extract.js';
import { packInto, quietEntry } from '../oci/layout.js';
import type { Image } from '../oci/image.js';
import { comparePaths } from './layer.js';

/**
 * An image's root filesystem, flattened (whiteouts applied): into a directory (`--output
 * type=local`) or as one tar stream (`--output type=tar`), entries sorted.
 */
export async function flattenImage(image: Image, to: { dir: string } | { tar: Writable | NodeJS.WritableStream }): Promise<void> {
  const dir = 'dir' in to ? to.dir : await mkdtemp(path.join(tmpdir(), 'tsbuild-flat-'));
  try {
    await mkdir(dir, { recursive: true });
    for (const layer of await image.layers()) {
      await extractLayer(await layer.openUncompressed(), dir, { preserveOwner: true });
    }
    if ('tar' in to) await packDir(dir, to.tar as Writable);
  } finally {
    if (!('dir' in to)) await rm(dir, { recursive: true, force: true });
  }
}

async function packDir(root: string, out: Writable): Promise<void> {
  const rels: string[] = [];
  const walk = async (rel: string) => {
    for (const n of await readdir(rel ? path.join(root, rel) : root)) {
      const r = rel ? `${rel}/${n}` : n;
      rels.push(r);
      if ((await lstat(path.join(root, r))).isDirectory()) await walk(r);
    }
  };
  await walk('');
  rels.sort(comparePaths);
  const pack = tar.pack();
  await packInto(pack, out, async () => {
    for (const r of rels) {
      const abs = path.join(root, r);
      const st = await lstat(abs);
      const base = { name: r, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: st.mtime };
      if (st.isDirectory()) quietEntry(pack, { ...base, type: 'directory' });
      else if (st.isSymbolicLink()) quietEntry(pack, { ...base, type: 'symlink', linkname: await readlink(abs) });
      // pipeline, not pipe: a failing read or a destroyed pack (the output failed) rejects here.
      else if (st.isFile()) await pipeline(createReadStream(abs), quietEntry(pack, { ...base, type: 'file', size: st.size }));
    }
  });
}
