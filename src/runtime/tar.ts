import type { BigIntStats } from 'node:fs';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar, { type Header } from 'tar-stream';
import { tarMode } from '../util/tar.js';

/** tar-stream's header, loosely: it fills defaults and also takes 'pax-header'. */
type Headers = { name: string; type?: Header['type'] | 'pax-header'; mode?: number; uid?: number; gid?: number; size?: number; mtime?: Date; linkname?: string; uname?: string; gname?: string; devmajor?: number; devminor?: number; pax?: Record<string, string> };

/** One entry of a layer diff, in tar order. `rel` has no leading slash. */
export type DiffEntry =
  | { readonly kind: 'node'; readonly rel: string; readonly path: string; readonly stats: BigIntStats; readonly linkTarget?: string; readonly xattrs?: ReadonlyMap<string, Buffer> }
  | { readonly kind: 'whiteout' | 'opaque'; readonly rel: string };

/** How entry timestamps are written. */
export type MtimePolicy = number | 'preserve' | { readonly clamp: number };

/** xattrs that are overlayfs' bookkeeping or host-specific, never written to a layer. */
export function keepXattr(name: string): boolean {
  return !name.startsWith('trusted.overlay.') && !name.startsWith('user.overlay.') && name !== 'security.selinux';
}

function mtimeOf(st: BigIntStats, policy: MtimePolicy): Date {
  const secs = Number(st.mtimeNs / 1_000_000_000n);
  if (policy === 'preserve') return new Date(secs * 1000);
  if (typeof policy === 'number') return new Date(policy * 1000);
  return new Date(Math.min(secs, policy.clamp) * 1000);
}

function fixedTime(policy: MtimePolicy): Date {
  if (typeof policy === 'number') return new Date(policy * 1000);
  if (policy === 'preserve') return new Date(0);
  return new Date(policy.clamp * 1000);
}

/**
 * Writes diff entries as a tar stream: regular files, dirs, symlinks, hardlinks (within the diff),
 * fifos and devices; uid/gid kept, uname/gname empty; xattrs with UTF-8 values as PAX `SCHILY.xattr.*` records.
 */
export function packEntries(entries: AsyncIterable<DiffEntry> | Iterable<DiffEntry>, mtime: MtimePolicy): Readable {
  const pack = tar.pack();
  const links = new Map<string, string>();
  const write = (header: Headers, body?: Buffer) =>
    new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null) => (err ? reject(err) : resolve());
      if (header.mode !== undefined) header.mode = tarMode(header.mode);
      if (body) pack.entry(header as Header, body, cb);
      else pack.entry(header as Header, cb);
    });
  (async () => {
    for await (const e of entries) {
      if (e.kind !== 'node') {
        const name = e.kind === 'opaque' ? (e.rel ? `${e.rel}/.wh..wh..opq` : '.wh..wh..opq') : e.rel;
        await write({ name, type: 'file', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: fixedTime(mtime) }, Buffer.alloc(0));
        continue;
      }
      const st = e.stats;
      const header: Headers = {
        name: e.rel,
        mode: Number(st.mode & 0o7777n),
        uid: Number(st.uid),
        gid: Number(st.gid),
        mtime: mtimeOf(st, mtime),
        uname: '',
        gname: '',
      };
      const key = `${st.dev}:${st.ino}`;
      const first = !st.isDirectory() && st.nlink > 1n ? links.get(key) : undefined;
      if (first !== undefined) {
        Object.assign(header, { type: 'link', linkname: first, size: 0 });
      } else if (st.isFile()) {
        if (st.nlink > 1n) links.set(key, e.rel);
        Object.assign(header, { type: 'file', size: Number(st.size) });
      } else if (st.isDirectory()) Object.assign(header, { type: 'directory' });
      else if (st.isSymbolicLink()) Object.assign(header, { type: 'symlink', linkname: e.linkTarget ?? '' });
      else if (st.isFIFO()) Object.assign(header, { type: 'fifo' });
      else if (st.isCharacterDevice() || st.isBlockDevice()) {
        const rdev = st.rdev;
        Object.assign(header, {
          type: st.isCharacterDevice() ? 'character-device' : 'block-device',
          devmajor: Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn)),
          devminor: Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn)),
        });
      } else continue; // sockets are not archived
      const xattrs = [...(e.xattrs ?? new Map<string, Buffer>())].filter(([k]) => keepXattr(k)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      const pax: Record<string, string> = {};
      for (const [k, v] of xattrs) {
        // tar-stream writes PAX values as UTF-8: a value that is not valid UTF-8 (security.capability) cannot be kept byte-exact.
        const text = v.toString('utf8');
        if (Buffer.from(text, 'utf8').equals(v)) pax[`SCHILY.xattr.${k}`] = text;
      }
      if (Object.keys(pax).length > 0) header.pax = pax;
      if (header.type === 'file' && (header.size ?? 0) > 0) {
        await new Promise<void>((resolve, reject) => {
          if (header.mode !== undefined) header.mode = tarMode(header.mode);
          const sink = pack.entry(header as Header, (err) => (err ? reject(err) : resolve()));
          pipeline(createReadStream(e.path), sink).catch(reject);
        });
      } else await write(header, header.type === 'file' ? Buffer.alloc(0) : undefined);
    }
    pack.finalize();
  })().catch((err) => pack.destroy(err as Error));
  return Readable.from(pack, { objectMode: false });
}
