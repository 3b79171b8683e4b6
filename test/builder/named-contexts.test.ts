/**
 * Named contexts (`--build-context NAME=…`, BuildKit's semantics) through the library's build()
 * on the busybox fixture: a directory (with its own .dockerignore) read by COPY --from, RUN
 * --mount from= and FROM; an image (`docker-image://`, `oci-layout://`) standing for an image
 * name or replacing a whole stage; and the errors for what is not read. Real builds, real layers.
 */
import { mkdtemp, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build, BuildError } from '../../src/builder/build.js';
import type { BuildOptions, BuildResult, ProgressEvent } from '../../src/builder/options.js';
import { runCli } from '../helpers/cli.js';
import { makeBusyboxImage } from '../helpers/base-images.js';

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'tsbuild-named-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

let n = 0;
async function tree(dir: string, files: Record<string, string>): Promise<string> {
  for (const [name, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), content);
  }
  return dir;
}

/** A fresh root with busybox:latest, a context and a second directory `extra`. */
async function setup(context: Record<string, string>, extra: Record<string, string>) {
  const dir = path.join(tmp, `case-${++n}`);
  const root = path.join(dir, 'root');
  const busybox = await makeBusyboxImage(root);
  return { root, busybox, context: await tree(path.join(dir, 'context'), context), extra: await tree(path.join(dir, 'extra'), extra), out: path.join(dir, 'out') };
}

async function buildIn(root: string, context: string, extra: Partial<BuildOptions>): Promise<BuildResult & { events: ProgressEvent[] }> {
  const events: ProgressEvent[] = [];
  const result = await build({ context, root, env: {}, ...extra, onProgress: (e) => events.push(e) });
  return { ...result, events };
}

const ran = (r: { events: ProgressEvent[] }) => r.events.flatMap((e) => (e.type === 'step' && e.status === 'started' ? [e.name] : []));

describe('named contexts: a directory', () => {
  const DF = [
    'FROM extra AS files',
    'FROM busybox:latest',
    'COPY --from=extra / /copied/',
    'COPY --from=files /sub/b.txt /from-base.txt',
    'RUN --mount=from=extra,target=/mnt cat /mnt/a.txt > /mounted.txt && ls -a /mnt > /mounted-list',
    'COPY main.txt /',
    '',
  ].join('\n');

  it('is read by COPY --from, RUN --mount from= and FROM, with its own .dockerignore; cached by content, a change named', { timeout: 90_000 }, async () => {
    const { root, context, extra, out } = await setup({ Dockerfile: DF, 'main.txt': 'main\n', '.dockerignore': 'nothing-here\n' }, { 'a.txt': 'hello\n', 'skip.txt': 'ignored\n', 'sub/b.txt': 'deep\n', '.dockerignore': 'skip.txt\n' });
    const first = await buildIn(root, context, { buildContexts: { extra }, outputs: [{ type: 'local', dest: out }] });
    expect((await readdir(path.join(out, 'copied'))).sort()).toEqual(['.dockerignore', 'a.txt', 'sub']);
    expect(await readFile(path.join(out, 'copied/sub/b.txt'), 'utf8')).toBe('deep\n');
    expect(await readFile(path.join(out, 'from-base.txt'), 'utf8')).toBe('deep\n');
    expect(await readFile(path.join(out, 'mounted.txt'), 'utf8')).toBe('hello\n');
    expect(await readFile(path.join(out, 'mounted-list'), 'utf8')).toBe('.\n..\n.dockerignore\na.txt\nsub\n');
    expect(await readFile(path.join(out, 'main.txt'), 'utf8')).toBe('main\n');
    expect(ran(first)).toContain(`[context extra] load ${extra}`);
    // The stage built on the directory is its files as one layer, owned by root.
    const st = await stat(path.join(out, 'copied/a.txt'));
    expect([st.uid, st.gid]).toEqual([0, 0]);

    const again = await buildIn(root, context, { buildContexts: { extra } });
    expect(again.executedSteps).toBe(0);
    // An ignored file changing changes nothing; a read one reruns what read it and says so.
    await writeFile(path.join(extra, 'skip.txt'), 'still ignored\n');
    expect((await buildIn(root, context, { buildContexts: { extra } })).executedSteps).toBe(0);
    await writeFile(path.join(extra, 'sub/b.txt'), 'deeper\n');
    const changed = await buildIn(root, context, { buildContexts: { extra }, outputs: [{ type: 'local', dest: `${out}-2` }] });
    const executed = changed.steps.filter((s) => s.status === 'executed');
    expect(executed.map((s) => s.name)).toEqual(expect.arrayContaining([`[context extra] load ${extra}`, '[stage-1 2/5] COPY --from=extra / /copied/', '[stage-1 3/5] COPY --from=files /sub/b.txt /from-base.txt']));
    expect(executed.find((s) => s.name.includes('COPY --from=extra'))!.reason).toContain('sub/b.txt');
    expect(await readFile(path.join(`${out}-2`, 'from-base.txt'), 'utf8')).toBe('deeper\n');
  });

  it('a missing directory, or a kind of context not read, is an error naming the flag', { timeout: 60_000 }, async () => {
    const { root, context, extra } = await setup({ Dockerfile: DF, 'main.txt': 'main\n' }, { 'a.txt': 'a\n' });
    const missing = path.join(extra, 'nope');
    await expect(buildIn(root, context, { buildContexts: { extra: missing } })).rejects.toThrow(`--build-context extra=${missing}: ${missing} not found`);
    await expect(buildIn(root, context, { buildContexts: { extra: 'https://example.com/src.tar.gz' } })).rejects.toThrow(/--build-context extra=https:\/\/example.com\/src.tar.gz: https:\/\/ contexts are not supported \(a directory, docker-image:\/\/ or oci-layout:\/\/ is\)/);
    const err = await buildIn(root, context, { buildContexts: { extra: 'git@github.com:x/y.git' } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BuildError);
    expect((err as BuildError).step?.range.start.line).toBe(1); // FROM extra
  });
});

describe('named contexts: an image', () => {
  it('docker-image:// stands for an image name, as written or normalized (alpine, alpine:latest, docker.io/library/alpine)', { timeout: 60_000 }, async () => {
    const { root, context, out } = await setup({ Dockerfile: 'FROM alpine:latest AS a\nRUN echo a > /a\nFROM docker.io/library/alpine\nCOPY --from=a /a /a\nCOPY --from=alpine /bin/busybox /copied-busybox\n' }, {});
    const r = await buildIn(root, context, { buildContexts: { alpine: 'docker-image://busybox:latest' }, outputs: [{ type: 'local', dest: out }] });
    expect(await readFile(path.join(out, 'a'), 'utf8')).toBe('a\n');
    expect((await stat(path.join(out, 'copied-busybox'))).size).toBe((await stat(path.join(out, 'bin/busybox'))).size);
    expect(ran(r)).toContain('[context alpine] load metadata for busybox:latest');
    // the base image's history comes first, as for FROM busybox
    expect(r.config.history?.[0]?.created_by).toBeDefined();
  });

  it('a context with a stage\'s name replaces the whole stage: its instructions are not run', { timeout: 60_000 }, async () => {
    const { root, context, out } = await setup({ Dockerfile: 'FROM busybox:latest AS deps\nRUN echo must-not-run > /deps.txt\nFROM busybox:latest\nCOPY --from=deps /bin/sh /sh-from-deps\nRUN test ! -e /deps.txt\n' }, {});
    const r = await buildIn(root, context, { buildContexts: { deps: 'docker-image://busybox:latest' }, outputs: [{ type: 'local', dest: out }] });
    expect(ran(r).some((name) => name.includes('must-not-run'))).toBe(false);
    expect((await stat(path.join(out, 'sh-from-deps'))).isFile()).toBe(true);
  });

  it('oci-layout://DIR:TAG, and docker-image://scratch is empty', { timeout: 60_000 }, async () => {
    const { root, context, busybox, out } = await setup({ Dockerfile: 'FROM base\nRUN echo on-layout > /origin\nFROM base\nCOPY --from=0 /origin /origin\n' }, {});
    await buildIn(root, context, { buildContexts: { base: `oci-layout://${busybox.layoutDir}:latest` }, outputs: [{ type: 'local', dest: out }] });
    expect(await readFile(path.join(out, 'origin'), 'utf8')).toBe('on-layout\n');
    await expect(buildIn(root, context, { dockerfileText: 'FROM busybox:latest\nCOPY --from=nothing /x /x\n', buildContexts: { nothing: 'docker-image://scratch' } })).rejects.toThrow('"/x": not found');
  });
});

describe('named contexts: the command line', () => {
  it('--build-context paths are relative to the working directory', { timeout: 60_000 }, async () => {
    const { root, context, extra, out } = await setup({ Dockerfile: 'FROM busybox:latest\nCOPY --from=extra a.txt /a.txt\n' }, { 'a.txt': 'from the cli\n' });
    const r = await runCli(['build', '--root', root, '--progress', 'plain', '--build-context', `extra=${path.basename(extra)}`, '--output', `type=local,dest=${out}`, path.basename(context)], { cwd: path.dirname(context) });
    expect(r.code).toBe(0);
    expect(await readFile(path.join(out, 'a.txt'), 'utf8')).toBe('from the cli\n');
  });
});
