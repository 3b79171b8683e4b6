/**
 * Archive outputs when a file or a stream fails part way: the failure is a clear rejection of
 * build() or of the writer, never an unhandled rejection or an 'error' event without a listener
 * (which end the process; vitest reports either as an "Unhandled Error" and fails the run).
 * The failures are real: a directory nobody may create files in (/sys, root included), a device
 * that refuses every write (/dev/full: ENOSPC), a layout with a directory where a blob should be,
 * an archive cut short.
 */
import { spawnSync } from 'node:child_process';
import { createReadStream, createWriteStream, existsSync, readdirSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build } from '../../src/builder/build.js';
import { ExportError } from '../../src/builder/export.js';
import { flattenImage } from '../../src/builder/flatten.js';
import { DockerArchiveError, readDockerArchive, writeDockerArchive } from '../../src/oci/docker-archive.js';
import { archiveLayout, OciLayout, writeOciArchive } from '../../src/oci/layout.js';
import { Store } from '../../src/oci/store.js';
import { makeBusyboxImage, repoRoot, type BusyboxImage } from '../helpers/base-images.js';

let tmp: string;
let busybox: BusyboxImage;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'tsbuild-stream-errors-export-'));
  busybox = await makeBusyboxImage();
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** A file in /sys: its directory exists, and creating a file there fails (EACCES) even for root. */
function unwritable(name: string): string {
  return path.join('/sys', `tsbuild-test-${process.pid}-${name}`);
}

describe('build() with an archive output that cannot be created', () => {
  let root: string;
  let context: string;
  beforeAll(async () => {
    root = path.join(tmp, 'root');
    context = path.join(tmp, 'context');
    await makeBusyboxImage(root);
    await mkdir(context, { recursive: true });
    await writeFile(path.join(context, 'Dockerfile'), 'FROM busybox:latest\nCOPY a.txt /a.txt\n');
    await writeFile(path.join(context, 'a.txt'), 'a\n');
  });

  for (const type of ['tar', 'oci', 'docker'] as const) {
    it(`type=${type}: rejects naming the file, leaves nothing behind`, { timeout: 120_000 }, async () => {
      const dest = unwritable(`${type}.tar`);
      const err = await build({ context, root, env: {}, outputs: [{ type, dest }] }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ExportError);
      expect((err as ExportError).code).toBe('TSBUILD_EXPORT_WRITE');
      expect((err as ExportError).message).toBe(`cannot write ${dest}`);
      expect(((err as ExportError).cause as NodeJS.ErrnoException).code).toBe('EACCES');
      expect(existsSync(dest)).toBe(false);
    });
  }

  it('type=oci when writing the file fails part way (the file size limit: EFBIG): the command names the file, leaves no temp file', { timeout: 120_000 }, async () => {
    // The built command, under `ulimit -f` (SIGXFSZ ignored, so the write fails instead), on a
    // cached build: the store's writes are small, the archive (busybox's layer) is not.
    await build({ context, root, env: {} });
    const dir = path.join(tmp, 'efbig');
    const dest = path.join(dir, 'image.tar');
    const cli = path.join(repoRoot, 'dist/cli.cjs');
    const r = spawnSync('bash', ['-c', `trap '' XFSZ; ulimit -f 256; exec "$@"`, 'bash', process.execPath, cli, 'build', '--root', root, '--progress', 'quiet', '--output', `type=oci,dest=${dest}`, context], { encoding: 'utf8' });
    expect(r.stderr).toBe(`tsbuild build: cannot write ${dest}: EFBIG: file too large, write\n`);
    expect(r.status).toBe(1);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('type=tar into a directory that can be written still writes the archive, and no temp file', { timeout: 120_000 }, async () => {
    const dest = path.join(tmp, 'out', 'image.tar');
    await build({ context, root, env: {}, outputs: [{ type: 'tar', dest }] });
    expect((await stat(dest)).size).toBeGreaterThan(1024);
    expect((await readdir(path.dirname(dest))).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });
});

/** The rejection of `p`, which must reject. */
async function rejection(p: Promise<unknown>): Promise<NodeJS.ErrnoException> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e as NodeJS.ErrnoException,
  );
}

describe('archive writers into an output that refuses every write (/dev/full)', () => {
  it('writeOciArchive rejects with ENOSPC', async () => {
    const err = await rejection(writeOciArchive(createWriteStream('/dev/full'), [{ item: busybox.image, refName: 'latest' }]));
    expect(err.code).toBe('ENOSPC');
  });

  it('writeDockerArchive rejects with ENOSPC, the output\'s error rather than the destroyed pack\'s', async () => {
    // The output fails on the config file, while the writer works out the layer's uncompressed
    // size (decompressing it): the pipeline's rejection is met before anyone awaits it.
    const err = await rejection(writeDockerArchive(createWriteStream('/dev/full'), [{ image: busybox.image, tags: ['busybox:latest'] }]));
    expect(err.code).toBe('ENOSPC');
  });

  it('archiveLayout rejects with ENOSPC', async () => {
    const err = await rejection(archiveLayout(await OciLayout.open(busybox.layoutDir), createWriteStream('/dev/full')));
    expect(err.code).toBe('ENOSPC');
  });

  it('flattenImage to a tar rejects with ENOSPC', async () => {
    const err = await rejection(flattenImage(busybox.image, { tar: createWriteStream('/dev/full') }));
    expect(err.code).toBe('ENOSPC');
  });
});

describe('archive writers whose source fails', () => {
  it('archiveLayout of a layout with a directory where a blob should be rejects with EISDIR', async () => {
    const dir = path.join(tmp, 'broken-layout');
    await cp(busybox.layoutDir, dir, { recursive: true });
    // Sorted first among the blobs, so the archive fails while streaming it.
    await mkdir(path.join(dir, 'blobs', 'sha256', '0'.repeat(64)));
    const out = path.join(tmp, 'broken-layout.tar');
    const err = await rejection(archiveLayout(await OciLayout.open(dir), createWriteStream(out)));
    expect(err.code).toBe('EISDIR');
  });
});

describe('readDockerArchive of an archive cut short', () => {
  it('rejects with DockerArchiveError', async () => {
    const file = path.join(tmp, 'cut.tar');
    await writeDockerArchive(createWriteStream(file), [{ image: busybox.image, tags: ['busybox:latest'] }]);
    // Half way: inside the layer's layer.tar, by far the largest entry.
    await truncate(file, Math.floor((await stat(file)).size / 2));
    const store = await Store.open({ root: path.join(tmp, 'load-root') });
    const err = await rejection(readDockerArchive(createReadStream(file), store));
    expect(err).toBeInstanceOf(DockerArchiveError);
    expect(err.message).toMatch(/^cannot read docker archive: /);
  });
});
