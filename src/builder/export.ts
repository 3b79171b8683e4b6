import { lstatSync } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { TsbuildError } from '../errors.js';
import type { CacheStore } from '../cache/store.js';
import type { Digest } from '../oci/digest.js';
import { familiarName, parseReference } from '../oci/reference.js';
import type { Store } from '../oci/store.js';
import type { Descriptor, Platform } from '../oci/types.js';
import type { OutputSpec } from './options.js';
import { codeIdentity } from './parse-cache.js';

export interface ExportContext {
  readonly store: Store;
  /** The built image's manifest (in the store). */
  readonly manifest: Descriptor;
  /** `-t` names. */
  readonly tags: readonly string[];
  readonly platform: Platform;
  readonly root: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly signal?: AbortSignal;
  readonly sourceDateEpoch?: number;
  /**
   * Where an archive output remembers what it wrote (see `writeArchive`): with it, a rebuild of
   * the same image to the same file leaves the file as it is instead of writing it again.
   */
  readonly cache?: CacheStore;
}

export class ExportError extends TsbuildError {}

/** `org.opencontainers.image.ref.name` for a name: its tag, as BuildKit writes it. */
function refName(name: string | undefined): string | undefined {
  if (!name) return undefined;
  const ref = parseReference(name);
  return ref.tag ?? 'latest';
}

/** Writes `file` via a temp file in the same directory and a rename, so a failed export leaves nothing half-written. */
async function atomicFile(dest: string, write: (out: NodeJS.WritableStream) => Promise<unknown>): Promise<void> {
  await mkdir(path.dirname(dest), { recursive: true });
  const tmp = `${dest}.tmp-${randomBytes(4).toString('hex')}`;
  // Opened here, not left to the stream: `write` may read the whole image before it pipes into
  // `out` (a tar output unpacks every layer first), and a failed open would meanwhile be an
  // 'error' event with no listener, which ends the process. Now it fails before any work.
  let fh;
  try {
    fh = await open(tmp, 'wx');
  } catch (err) {
    throw new ExportError('TSBUILD_EXPORT_WRITE', `cannot write ${dest}`, { cause: err });
  }
  const out = fh.createWriteStream();
  // A failed write (ENOSPC, EIO) reaches `write` through its pipeline; this names the file.
  let outErr: unknown;
  out.on('error', (err) => (outErr ??= err));
  try {
    await write(out);
    await new Promise<void>((resolve, reject) => {
      if (outErr !== undefined) reject(outErr);
      else if (out.writableFinished) resolve();
      else {
        out.on('finish', resolve);
        out.on('error', reject);
      }
    });
    await rename(tmp, dest);
  } catch (err) {
    out.destroy();
    await rm(tmp, { force: true });
    if (err !== undefined && err === outErr) throw new ExportError('TSBUILD_EXPORT_WRITE', `cannot write ${dest}`, { cause: err });
    throw err;
  }
}

/** Writes an archive into a stream the caller gave (standard output for `dest=-`): it is ended when done. */
async function toStream(out: NodeJS.WritableStream, write: (out: NodeJS.WritableStream) => Promise<unknown>): Promise<void> {
  await write(out);
  // the writers pipe into `out` and end it; wait until it has taken everything
  const w = out as NodeJS.WritableStream & { writableFinished?: boolean };
  if (w.writableFinished === false) await new Promise<void>((resolve, reject) => out.once('finish', resolve).once('error', reject));
}

/** An archive file as written: what its lstat said right after, to know it again. */
interface WrittenArchive {
  readonly dev: string;
  readonly ino: string;
  readonly size: string;
  readonly mtimeNs: string;
  readonly ctimeNs: string;
}

function archiveStat(file: string): WrittenArchive | undefined {
  let st;
  try {
    st = lstatSync(file, { bigint: true });
  } catch {
    return undefined;
  }
  if (!st?.isFile()) return undefined;
  return { dev: String(st.dev), ino: String(st.ino), size: String(st.size), mtimeNs: String(st.mtimeNs), ctimeNs: String(st.ctimeNs) };
}

/**
 * Writes an archive output `dest` with `write`, unless the file there is the one an earlier
 * export wrote from the same `inputs` (the image's manifest digest, names, options) with the
 * same code, untouched since: its lstat (device, inode, size, mtime and ctime to the
 * nanosecond) is what was recorded right after it was renamed into place. Any write, rename or
 * replacement of the file changes its ctime, so a file that is not byte for byte the archive
 * these inputs give is written again. A no-op rebuild then costs a stat, not a copy of every
 * blob of the image.
 */
async function writeArchive(ctx: ExportContext, dest: string | NodeJS.WritableStream, inputs: unknown, write: (out: NodeJS.WritableStream) => Promise<unknown>): Promise<void> {
  if (typeof dest !== 'string') return toStream(dest, write);
  const cache = ctx.cache;
  if (!cache) return atomicFile(dest, write);
  const key = `sha256:${createHash('sha256').update(JSON.stringify(['tsbuild.archive-output.v1', await codeIdentity(), path.resolve(dest), inputs])).digest('hex')}` as Digest;
  const had = await cache.get(key).catch(() => undefined);
  const now = archiveStat(dest);
  const was = had?.result as WrittenArchive | undefined;
  if (was && now && Object.entries(now).every(([k, v]) => was[k as keyof WrittenArchive] === v)) return;
  await atomicFile(dest, write);
  const written = archiveStat(dest);
  if (written) await cache.put({ key, result: { ...written }, size: 0, description: `archive ${dest}` }).catch(() => {});
}

/** Sends the built image to one output. */
export async function exportImage(out: OutputSpec, ctx: ExportContext): Promise<void> {
  const names = 'name' in out && out.name && out.name.length > 0 ? out.name : ctx.tags;
  switch (out.type) {
    case 'image': {
      for (const n of names) await ctx.store.tag(n, ctx.manifest);
      if (out.push) await pushAll(names, ctx);
      return;
    }
    case 'registry': {
      if (names.length === 0) throw new ExportError('TSBUILD_EXPORT_NO_NAME', 'output type=registry needs an image name (-t NAME or name=NAME)');
      for (const n of names) await ctx.store.tag(n, ctx.manifest);
      await pushAll(names, ctx);
      return;
    }
    case 'oci': {
      // The image and layout code (tar-stream, zlib) is loaded by the outputs that write files.
      const [{ loadManifest }, { OciLayout, writeOciArchive }] = await Promise.all([import('../oci/image.js'), import('../oci/layout.js')]);
      const rn = refName(names[0]);
      if (out.tar === false) {
        if (typeof out.dest !== 'string') throw new ExportError('TSBUILD_EXPORT_DEST', 'output type=oci,tar=false writes a directory: it needs a path, not a stream');
        const layout = await OciLayout.create(out.dest);
        await layout.write(await loadManifest(ctx.store, ctx.manifest), rn);
        return;
      }
      const mtime = ctx.sourceDateEpoch ?? 0;
      await writeArchive(ctx, out.dest, ['oci', ctx.manifest.digest, rn ?? null, mtime], async (w) =>
        writeOciArchive(w as never, [{ item: await loadManifest(ctx.store, ctx.manifest), ...(rn ? { refName: rn } : {}) }], { mtime }),
      );
      return;
    }
    case 'docker': {
      const tags = names.map((n) => familiarName(parseReference(n)) + ':' + (parseReference(n).tag ?? 'latest'));
      await writeArchive(ctx, out.dest, ['docker', ctx.manifest.digest, tags], async (w) => {
        const [mod, { loadManifest, selectImage }] = await Promise.all([import('../oci/docker-archive.js'), import('../oci/image.js')]);
        const image = await selectImage(ctx.store, await loadManifest(ctx.store, ctx.manifest), ctx.platform);
        return (mod as unknown as { writeDockerArchive: (w: unknown, e: unknown, o?: unknown) => Promise<unknown> }).writeDockerArchive(w, [{ image, tags }]);
      });
      return;
    }
    case 'local':
    case 'tar': {
      const [{ flattenImage }, { loadManifest, selectImage }] = await Promise.all([import('./flatten.js'), import('../oci/image.js')]);
      const item = await loadManifest(ctx.store, ctx.manifest);
      const image = await selectImage(ctx.store, item, ctx.platform);
      if (out.type === 'local') await flattenImage(image, { dir: out.dest });
      else if (typeof out.dest !== 'string') await toStream(out.dest, (w) => flattenImage(image, { tar: w }));
      else await atomicFile(out.dest, (w) => flattenImage(image, { tar: w }));
      return;
    }
  }
}

async function pushAll(names: readonly string[], ctx: ExportContext): Promise<void> {
  const { push } = await import('../oci/registry/push.js');
  for (const n of names) {
    await push(n, { root: ctx.root, env: ctx.env, ...(ctx.signal ? { signal: ctx.signal } : {}) });
  }
}
