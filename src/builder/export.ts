import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { TsbuildError } from '../errors.js';
import { loadManifest, selectImage } from '../oci/image.js';
import { OciLayout, writeOciArchive } from '../oci/layout.js';
import { familiarName, parseReference } from '../oci/reference.js';
import type { Store } from '../oci/store.js';
import type { Descriptor, Platform } from '../oci/types.js';
import type { OutputSpec } from './options.js';

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
  const out = createWriteStream(tmp);
  try {
    await write(out);
    await new Promise<void>((resolve, reject) => {
      if (out.writableFinished) resolve();
      else {
        out.on('finish', resolve);
        out.on('error', reject);
      }
    });
    await rename(tmp, dest);
  } catch (err) {
    out.destroy();
    await rm(tmp, { force: true });
    throw err;
  }
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
      const item = await loadManifest(ctx.store, ctx.manifest);
      const rn = refName(names[0]);
      if (out.tar === false) {
        const layout = await OciLayout.create(out.dest);
        await layout.write(item, rn);
        return;
      }
      await atomicFile(out.dest, (w) => writeOciArchive(w as never, [{ item, ...(rn ? { refName: rn } : {}) }], { mtime: ctx.sourceDateEpoch ?? 0 }));
      return;
    }
    case 'docker': {
      const mod = await import('../oci/docker-archive.js');
      const item = await loadManifest(ctx.store, ctx.manifest);
      const image = await selectImage(ctx.store, item, ctx.platform);
      const tags = names.map((n) => familiarName(parseReference(n)) + ':' + (parseReference(n).tag ?? 'latest'));
      await atomicFile(out.dest, (w) => (mod as unknown as { writeDockerArchive: (w: unknown, e: unknown, o?: unknown) => Promise<unknown> }).writeDockerArchive(w, [{ image, tags }]));
      return;
    }
    case 'local':
    case 'tar': {
      const { flattenImage } = await import('./flatten.js');
      const item = await loadManifest(ctx.store, ctx.manifest);
      const image = await selectImage(ctx.store, item, ctx.platform);
      if (out.type === 'local') await flattenImage(image, { dir: out.dest });
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
