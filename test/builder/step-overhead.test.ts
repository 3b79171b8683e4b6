/**
 * What makes a small step cheap must not change what it does: a stage's read-only view is
 * mounted once per build and shared by the steps that read it (COPY --from, RUN --mount
 * from=), and unmounted when the build ends, whether it succeeded or failed; an uncompressed
 * layer written without streams is the same tar as the gzip path's. Real builds on busybox,
 * real overlay mounts (read back from /proc/self/mountinfo), real layer files.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, mkdir, readFile, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build, BuildError } from '../../src/builder/build.js';
import type { BuildOptions, BuildResult, ProgressEvent } from '../../src/builder/options.js';
import { writeLayer } from '../../src/builder/layer.js';
import { makeBusyboxImage } from '../helpers/base-images.js';

const run = promisify(execFile);
let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'tsbuild-overhead-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

let n = 0;
/**
 * A fresh root with busybox:latest and a context holding `files`, plus the files the stages
 * below copy: d/one, d/two, d/link (a symlink to one), big (3 MB), bone.
 */
async function setup(files: Record<string, string>): Promise<{ root: string; context: string; out: string }> {
  const dir = path.join(tmp, `case-${++n}`);
  const context = path.join(dir, 'context');
  await mkdir(path.join(context, 'd'), { recursive: true });
  const all: Record<string, string | Buffer> = { 'd/one': 'alpha\n', 'd/two': 'beta\n', big: Buffer.alloc(3_000_000, 'a'), bone: 'bravo\n', ...files };
  for (const [name, content] of Object.entries(all)) await writeFile(path.join(context, name), content);
  await symlink('one', path.join(context, 'd/link'));
  const root = path.join(dir, 'root');
  await makeBusyboxImage(root);
  return { root, context, out: path.join(dir, 'out') };
}

async function buildIn(root: string, context: string, extra: Partial<BuildOptions> = {}): Promise<BuildResult & { events: ProgressEvent[] }> {
  const events: ProgressEvent[] = [];
  const result = await build({ context, root, env: {}, ...extra, onProgress: (e) => events.push(e) });
  return { ...result, events };
}

/** Mount points of this process's namespace under `dir`. */
async function mountsUnder(dir: string): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((p) => p === dir || p.startsWith(dir + '/'));
}

/** What is left in the snapshot store's temp dir (views, step dirs). */
async function leftovers(root: string): Promise<string[]> {
  return readdir(path.join(root, 'snapshots', 'tmp')).catch(() => []);
}

// No RUN before the final stage's steps: a RUN --mount from= below is the build's first RUN.
// (The runtime starts the next run's helper ahead of time, in a mount namespace copied then, so
// a bind source under a mount made later is not seen by it; the first view must come first.)
const STAGES = `FROM busybox:latest AS a
COPY d/ /d/
COPY big /big

FROM busybox:latest AS b
COPY bone /one
`;

describe('shared read-only views of stages', () => {
  it('gives every COPY --from and RUN --mount from= of one stage its content, and unmounts at the end', { timeout: 120_000 }, async () => {
    const { root, context, out } = await setup({
      Dockerfile: `${STAGES}
FROM busybox:latest
COPY --from=a /d/one /r/one
COPY --from=a /d/two /r/two
COPY --from=b /one /r/b-one
COPY --from=a /d/link /r/link
COPY --from=a /big /r/big
RUN --mount=type=bind,from=a,source=/d,target=/m cat /m/one /m/two > /r/mounted
RUN --mount=type=bind,from=a,source=/d,target=/w,rw echo scratch > /w/new && cat /w/new > /r/rw
COPY --from=a /d/ /r/a-after/
`,
    });
    await buildIn(root, context, { outputs: [{ type: 'local', dest: out }] });
    expect(await readFile(path.join(out, 'r/one'), 'utf8')).toBe('alpha\n');
    expect(await readFile(path.join(out, 'r/two'), 'utf8')).toBe('beta\n');
    expect(await readFile(path.join(out, 'r/b-one'), 'utf8')).toBe('bravo\n');
    expect(await readFile(path.join(out, 'r/mounted'), 'utf8')).toBe('alpha\nbeta\n');
    expect(await readFile(path.join(out, 'r/rw'), 'utf8')).toBe('scratch\n');
    const big = await readFile(path.join(out, 'r/big'));
    expect(big.length).toBe(3000000);
    expect(big.every((c) => c === 0x61)).toBe(true);
    expect(await readFile(path.join(out, 'r/link'), 'utf8')).toBe('alpha\n'); // a named source symlink is followed
    expect(await readlink(path.join(out, 'r/a-after/link'))).toBe('one'); // one inside a copied directory is kept
    expect((await readdir(path.join(out, 'r'))).sort()).toEqual(['a-after', 'b-one', 'big', 'link', 'mounted', 'one', 'rw', 'two']);
    // The writable bind wrote into an upper dir of its own: the stage, read again, is unchanged.
    expect((await readdir(path.join(out, 'r/a-after'))).sort()).toEqual(['link', 'one', 'two']);

    expect(await mountsUnder(root)).toEqual([]);
    expect(await leftovers(root)).toEqual([]);
  });

  it('a read-only RUN --mount from= cannot write into the stage it shows', { timeout: 120_000 }, async () => {
    const { root, context, out } = await setup({
      Dockerfile: `${STAGES}
FROM busybox:latest
RUN --mount=type=bind,from=a,source=/d,target=/m (echo x > /m/one && echo wrote || echo refused) > /result
COPY --from=a /d/one /one
`,
    });
    await buildIn(root, context, { outputs: [{ type: 'local', dest: out }] });
    expect(await readFile(path.join(out, 'result'), 'utf8')).toBe('refused\n');
    expect(await readFile(path.join(out, 'one'), 'utf8')).toBe('alpha\n');
    expect(await mountsUnder(root)).toEqual([]);
  });

  it('leaves no mount and no temp dir behind when a step fails after views were mounted', { timeout: 120_000 }, async () => {
    const { root, context } = await setup({
      Dockerfile: `${STAGES}
FROM busybox:latest
COPY --from=a /d/one /r/one
COPY --from=b /one /r/b-one
RUN --mount=type=bind,from=a,source=/d,target=/m cat /m/one && exit 7
COPY --from=a /d/two /r/two
`,
    });
    const err = await buildIn(root, context).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BuildError);
    expect((err as BuildError).message).toContain('exit code: 7');
    expect((err as BuildError).step?.output).toContain('alpha');
    expect(await mountsUnder(root)).toEqual([]);
    expect(await leftovers(root)).toEqual([]);
  });

  it('leaves no mount behind when the build is aborted while views are mounted', { timeout: 120_000 }, async () => {
    const { root, context } = await setup({
      Dockerfile: `${STAGES}
FROM busybox:latest
COPY --from=a /d/one /r/one
RUN --mount=type=bind,from=b,target=/m sleep 30
`,
    });
    const ac = new AbortController();
    const events: ProgressEvent[] = [];
    const p = build({
      context,
      root,
      env: {},
      signal: ac.signal,
      onProgress: (e) => {
        events.push(e);
        if (e.type === 'step' && e.status === 'started' && e.name.includes('sleep 30')) setTimeout(() => ac.abort(new Error('stop')), 300);
      },
    });
    await expect(p).rejects.toThrow();
    expect(events.some((e) => e.type === 'step' && e.status === 'done' && e.name.includes('COPY --from=a'))).toBe(true);
    expect(await mountsUnder(root)).toEqual([]);
    expect(await leftovers(root)).toEqual([]);
  });
});

describe('cache records of a step', () => {
  it('a step whose records cannot be written fails the build, naming it; what was written is complete', { timeout: 120_000 }, async () => {
    const { root, context } = await setup({ Dockerfile: `${STAGES}\nFROM busybox:latest\nCOPY --from=a /d/one /one\nRUN echo hi > /x\n` });
    // An immutable temp dir (even root cannot create files in it): every record write fails.
    const cacheTmp = path.join(root, 'cache', 'tmp');
    await mkdir(cacheTmp, { recursive: true });
    await run('chattr', ['+i', cacheTmp]);
    let err: unknown;
    try {
      err = await buildIn(root, context).catch((e: unknown) => e);
    } finally {
      await run('chattr', ['-i', cacheTmp]);
    }
    expect(err).toBeInstanceOf(BuildError);
    expect((err as BuildError).message).toContain(cacheTmp);
    // The first step to finish (stages a and b run side by side) is the one that fails.
    expect((err as BuildError).step?.name).toMatch(/^\[a 2\/3\] COPY d\/ \/d\/$|^\[b 2\/2\] COPY bone \/one$/);
    expect(await readdir(path.join(root, 'cache', 'records'))).toEqual([]);
    expect(await mountsUnder(root)).toEqual([]);
    expect(await leftovers(root)).toEqual([]);
    // The same root builds once the cache is writable again, and a rebuild is all cached.
    const first = await buildIn(root, context);
    expect(first.executedSteps).toBeGreaterThan(0);
    const again = await buildIn(root, context);
    expect(again.executedSteps).toBe(0);
  });
});

describe('writeLayer without compression', () => {
  it('writes the same tar as the gzip path, for files around the whole-read size', async () => {
    const dir = path.join(tmp, 'layer-src');
    await mkdir(path.join(dir, 'sub'), { recursive: true });
    const sizes = { small: 10, 'sub/edge': 1 << 20, 'sub/mid': (1 << 20) + 1, 'sub/big': (8 << 20) + 4097 };
    for (const [name, size] of Object.entries(sizes)) {
      const b = Buffer.alloc(size);
      for (let i = 0; i < size; i += 4096) b[i] = (i / 4096 + name.length) & 0xff;
      await writeFile(path.join(dir, name), b);
    }
    const plain = await writeLayer({ root: dir, blobDir: path.join(tmp, 'blobs-none'), compression: 'none' });
    const gz = await writeLayer({ root: dir, blobDir: path.join(tmp, 'blobs-gzip') });
    expect(plain.diffId).toBe(gz.diffId);
    expect(plain.digest).toBe(plain.diffId);
    const tarBytes = await readFile(path.join(tmp, 'blobs-none', 'sha256', plain.diffId.slice(7)));
    expect(tarBytes.length).toBe(plain.size);
    expect(`sha256:${createHash('sha256').update(tarBytes).digest('hex')}`).toBe(plain.diffId);
    expect(gunzipSync(await readFile(path.join(tmp, 'blobs-gzip', 'sha256', gz.digest.slice(7)))).equals(tarBytes)).toBe(true);
    // Read back by an independent tar reader: every file whole, in order.
    const seen: Record<string, Buffer> = {};
    const ex = tar.extract();
    const done = new Promise<void>((resolve, reject) => {
      ex.on('entry', (h, s, next) => {
        const parts: Buffer[] = [];
        s.on('data', (c: unknown) => void parts.push(c as Buffer));
        s.on('end', () => {
          if (h.type === 'file') seen[h.name] = Buffer.concat(parts);
          next();
        });
      });
      ex.on('finish', resolve);
      ex.on('error', reject);
    });
    ex.end(tarBytes);
    await done;
    expect(Object.keys(seen).sort()).toEqual(Object.keys(sizes).sort());
    for (const name of Object.keys(sizes)) expect(seen[name]!.equals(await readFile(path.join(dir, name)))).toBe(true);
    expect((await readdir(path.join(tmp, 'blobs-none', 'tmp'))).length).toBe(0);
  });

  it('fails, and stores nothing, when a listed file is missing', async () => {
    const dir = path.join(tmp, 'layer-missing');
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'a'), 'x');
    const blobDir = path.join(tmp, 'blobs-missing');
    await expect(writeLayer({ root: dir, paths: ['a', 'gone'], blobDir, compression: 'none' })).rejects.toThrow(/gone/);
    expect(await readdir(path.join(blobDir, 'tmp'))).toEqual([]);
    expect(await readdir(path.join(blobDir, 'sha256'))).toEqual([]);
  });
});
