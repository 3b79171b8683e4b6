/**
 * End-to-end builds with the library's build() on the busybox fixture image: real overlay
 * snapshots, real RUN steps in the sandbox, real layers; the output read back by skopeo and
 * umoci, and run in our own sandbox.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, mkdir, readFile, readdir, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build, BuildError, defaultParallelism } from '../../src/builder/build.js';
import type { BuildOptions, BuildResult, ProgressEvent } from '../../src/builder/options.js';
import { createRuntime } from '../../src/runtime/index.js';
import { makeBusyboxImage } from '../helpers/base-images.js';

const run = promisify(execFile);
let tmp: string;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'tsbuild-build-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

let n = 0;
/** A fresh root with busybox:latest, and a context dir with these files. */
async function setup(files: Record<string, string>, root?: string): Promise<{ root: string; context: string }> {
  const dir = path.join(tmp, `case-${++n}`);
  const context = path.join(dir, 'context');
  await mkdir(context, { recursive: true });
  for (const [name, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(context, name)), { recursive: true });
    await writeFile(path.join(context, name), content);
  }
  if (!root) {
    root = path.join(dir, 'root');
    await makeBusyboxImage(root);
  }
  return { root, context };
}

async function buildIn(root: string, context: string, extra: Partial<BuildOptions> = {}): Promise<BuildResult & { events: ProgressEvent[] }> {
  const events: ProgressEvent[] = [];
  const result = await build({ context, root, env: {}, ...extra, onProgress: (e) => events.push(e) });
  return { ...result, events };
}

const MULTISTAGE = `FROM busybox:latest AS build
WORKDIR /src
COPY greeting.txt .
RUN tr a-z A-Z < greeting.txt > /shout.txt && echo built >&2

FROM busybox:latest AS unused
RUN exit 3

FROM busybox:latest
COPY --from=build /shout.txt /app/shout.txt
ENV GREETING=hi
VOLUME /data
WORKDIR /app
CMD ["cat", "/app/shout.txt"]
`;

describe('build(): multi-stage images on busybox', () => {
  it('builds, and skopeo, umoci and our sandbox read the result', { timeout: 120_000 }, async () => {
    const { root, context } = await setup({ Dockerfile: MULTISTAGE, 'greeting.txt': 'hello\n' });
    const layout = path.join(tmp, `layout-${n}`);
    const r = await buildIn(root, context, { tags: ['demo:1'], outputs: [{ type: 'image' }, { type: 'oci', dest: layout, tar: false, name: ['demo:1'] }] });
    // The unused stage (RUN exit 3) is not reachable from the target: nothing of it ran.
    expect(r.steps.map((s) => s.name).join('\n')).not.toContain('exit 3');
    expect(r.config.config?.Volumes).toEqual({ '/data': {} });
    expect(r.config.config?.Cmd).toEqual(['cat', '/app/shout.txt']);
    expect(r.config.config?.WorkingDir).toBe('/app');
    expect(r.config.config?.Env).toContain('GREETING=hi');

    const inspect = JSON.parse((await run('skopeo', ['inspect', `oci:${layout}:1`])).stdout) as { Digest: string; Layers: string[] };
    expect(inspect.Digest).toBe(r.manifestDigest);
    expect(inspect.Layers).toEqual(r.layers.map((l) => l.digest));
    const cfg = JSON.parse((await run('skopeo', ['inspect', '--config', `oci:${layout}:1`])).stdout) as { config: { Volumes: object; Cmd: string[] } };
    expect(cfg.config.Cmd).toEqual(['cat', '/app/shout.txt']);

    const bundle = path.join(tmp, `bundle-${n}`);
    await run('umoci', ['unpack', '--image', `${layout}:1`, bundle]);
    expect(await readFile(path.join(bundle, 'rootfs/app/shout.txt'), 'utf8')).toBe('HELLO\n');
    expect(await readdir(path.join(bundle, 'rootfs/bin'))).toContain('busybox');

    // Run the image's Cmd in our sandbox, over the rootfs umoci unpacked.
    const runtime = await createRuntime({ stateDir: path.join(root, 'runtime') });
    let out = '';
    const res = await runtime.run({ rootfs: { lowerDirs: [path.join(bundle, 'rootfs')] }, args: r.config.config!.Cmd!, cwd: '/app', env: r.config.config!.Env!, onStdout: (b) => (out += b.toString()) });
    await res.dispose();
    expect(res.exitCode).toBe(0);
    expect(out).toBe('HELLO\n');
  });

  it('--target builds only the stages the target needs', { timeout: 60_000 }, async () => {
    const { root, context } = await setup({ Dockerfile: MULTISTAGE, 'greeting.txt': 'hello\n' });
    const r = await buildIn(root, context, { target: 'build' });
    expect(r.steps.map((s) => s.name)).toEqual(['[build 2/4] WORKDIR /src', '[build 3/4] COPY greeting.txt .', '[build 4/4] RUN tr a-z A-Z < greeting.txt > /shout.txt && echo built >&2']);
    // RUN output reaches progress as it is written.
    expect(r.events.some((e) => e.type === 'output' && e.data.includes('built'))).toBe(true);
    await expect(buildIn(root, context, { target: 'unused' })).rejects.toThrow(/exit code: 3/);
    await expect(buildIn(root, context, { target: 'biuld' })).rejects.toThrow(/could not be found \(did you mean "?build"?\?\)/);
  });

  it('ADD of a git repository is refused at its step, not fetched as a web page or looked for in the context', { timeout: 60_000 }, async () => {
    const { root, context } = await setup({ Dockerfile: 'FROM busybox:latest\nADD https://example.com/moby/buildkit.git#v0.10.1 /buildkit\n' });
    await expect(buildIn(root, context)).rejects.toThrow('ADD of a git repository (https://example.com/moby/buildkit.git#v0.10.1) is not supported');
    await expect(buildIn(root, context, { dockerfileText: 'FROM busybox:latest\nADD git@github.com:moby/buildkit.git /b\n' })).rejects.toThrow('ADD of a git repository (git@github.com:moby/buildkit.git)');
  });

  it('COPY --link: the layer does not depend on the parent (a changed earlier step reuses it), and lies on top of it as BuildKit merges it', { timeout: 60_000 }, async () => {
    const df = (before: string) => `FROM busybox:latest\nRUN ln -s /opt /app${before}\nCOPY --link f.txt /app/f.txt\nRUN ls -ld /app | cut -c1 > /app-type && cat /app/f.txt > /seen\n`;
    const { root, context } = await setup({ 'f.txt': 'linked\n' });
    const out = path.join(tmp, `local-${n}`);
    const first = await buildIn(root, context, { dockerfileText: df(''), outputs: [{ type: 'local', dest: out }] });
    expect(first.steps.find((s) => s.name.includes('COPY --link'))!.status).toBe('executed');
    // the layer's /app is a directory, on top of the parent's /app -> /opt symlink (not followed)
    expect(await readFile(path.join(out, 'app-type'), 'utf8')).toBe('d\n');
    expect(await readFile(path.join(out, 'seen'), 'utf8')).toBe('linked\n');
    const second = await buildIn(root, context, { dockerfileText: df(' && echo changed > /changed'), outputs: [{ type: 'local', dest: `${out}-2` }] });
    const byName = (name: string) => second.steps.find((s) => s.name.includes(name))!;
    expect(byName('RUN ln -s').status).toBe('executed');
    expect(byName('COPY --link').status).toBe('cached');
    expect(byName('RUN ls -ld').status).toBe('executed');
    expect(await readFile(path.join(`${out}-2`, 'changed'), 'utf8')).toBe('changed\n');
    expect(await readFile(path.join(`${out}-2`, 'seen'), 'utf8')).toBe('linked\n');
    // without --link the same COPY follows the symlink into /opt, and reruns after a change
    const plain = await buildIn(root, context, { dockerfileText: df('').replace('--link ', ''), outputs: [{ type: 'local', dest: `${out}-3` }] });
    expect(await readFile(path.join(`${out}-3`, 'app-type'), 'utf8')).toBe('l\n');
    expect(await readFile(path.join(`${out}-3`, 'opt/f.txt'), 'utf8')).toBe('linked\n');
    expect(plain.steps.find((s) => s.name.includes('COPY f.txt'))!.status).toBe('executed');
  });

  it('RUN <<EOF with a #! line runs as a script from /dev/pipes, as BuildKit runs it', { timeout: 60_000 }, async () => {
    const { root, context } = await setup({ Dockerfile: 'FROM busybox:latest\nRUN <<EOT\n#!/bin/sh\necho "script $0" > /out\nEOT\n' });
    const out = path.join(tmp, `local-${n}`);
    await buildIn(root, context, { outputs: [{ type: 'local', dest: out }] });
    expect(await readFile(path.join(out, 'out'), 'utf8')).toBe('script /dev/pipes/EOT\n');
  });

  it('WORKDIR after USER makes its directories owned by that user (as BuildKit\'s mkdir runs WithUser); existing ones keep theirs', { timeout: 60_000 }, async () => {
    const df = 'FROM busybox:latest\nUSER nobody\nWORKDIR /app/sub\nRUN touch /app/sub/written && stat -c %U /app /app/sub /tmp > /app/sub/owners\nWORKDIR /tmp\n';
    const { root, context } = await setup({ Dockerfile: df });
    const out = path.join(tmp, `local-${n}`);
    await buildIn(root, context, { outputs: [{ type: 'local', dest: out }] });
    expect(await readFile(path.join(out, 'app/sub/owners'), 'utf8')).toBe('nobody\nnobody\nroot\n');
  });

  it('a base image for another platform than the one asked is refused, not run as if it were (config said arm64, RUN ran x86_64)', { timeout: 60_000 }, async () => {
    const { root, context } = await setup({ Dockerfile: 'FROM busybox:latest\nRUN true\n' });
    const other = process.arch === 'arm64' ? 'linux/amd64' : 'linux/arm64';
    await expect(buildIn(root, context, { platform: other })).rejects.toThrow(new RegExp(`image busybox:latest is for linux/\\w+, not ${other}`));
  });

  it('RUN steps are named buildkitsandbox, as BuildKit names them; BUILDKIT_SANDBOX_HOSTNAME renames them and is part of the key', { timeout: 60_000 }, async () => {
    const { root, context } = await setup({ Dockerfile: 'FROM busybox:latest\nRUN hostname > /h && grep -c "$(hostname)" /etc/hosts > /in-hosts\n' });
    const out = path.join(tmp, `local-${n}`);
    await buildIn(root, context, { outputs: [{ type: 'local', dest: out }] });
    expect(await readFile(path.join(out, 'h'), 'utf8')).toBe('buildkitsandbox\n');
    expect(await readFile(path.join(out, 'in-hosts'), 'utf8')).toBe('1\n');
    const named = await buildIn(root, context, { buildArgs: { BUILDKIT_SANDBOX_HOSTNAME: 'myhost' }, outputs: [{ type: 'local', dest: `${out}-2` }] });
    expect(named.executedSteps).toBe(1);
    expect(await readFile(path.join(`${out}-2`, 'h'), 'utf8')).toBe('myhost\n');
  });

  it('RUN --security=insecure is refused at its step, not run sandboxed as if it were granted', { timeout: 60_000 }, async () => {
    const { root, context } = await setup({ Dockerfile: 'FROM busybox:latest\nRUN --security=insecure true\n' });
    const err = await buildIn(root, context).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as BuildError).step?.range.start.line).toBe(2);
    expect((err as BuildError).message).toContain('RUN --security=insecure is not supported');
  });

  it('a failing RUN names the step, its Dockerfile line and its last output', { timeout: 60_000 }, async () => {
    const df = 'FROM busybox:latest\nRUN echo fine\nRUN echo about to fail; echo "no such thing" >&2; exit 7\nRUN echo never\n';
    const { root, context } = await setup({ Dockerfile: df });
    const err = await buildIn(root, context).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BuildError);
    const e = err as BuildError;
    expect(e.step?.name).toBe('[stage-0 3/4] RUN echo about to fail; echo "no such thing" >&2; exit 7');
    expect(e.step?.range.start.line).toBe(3);
    expect(e.message).toContain('exit code: 7');
    const text = await e.render();
    expect(text).toContain('Dockerfile:3:1');
    expect(text).toContain(`${path.join(context, 'Dockerfile')}:3:1: error: process "/bin/sh -c echo about to fail;`);
    expect(text).toMatch(/^ +3 \| RUN echo about to fail/m);
    expect(text).toMatch(/> about to fail\n\s+> no such thing/);
  });

  it('a COPY source that is missing fails at its COPY, after the steps before it ran (the context is hashed early, its errors kept for the step)', { timeout: 60_000 }, async () => {
    const { root, context } = await setup({ Dockerfile: 'FROM busybox:latest\nRUN echo before > /before\nCOPY missing.txt /m\n' });
    const events: ProgressEvent[] = [];
    const err = await build({ context, root, env: {}, onProgress: (e) => events.push(e) }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BuildError);
    expect((err as BuildError).message).toMatch(/missing\.txt/);
    expect((err as BuildError).step?.range.start.line).toBe(3);
    const run = events.find((e) => e.type === 'step' && e.name.includes('RUN echo before') && e.status === 'done');
    expect(run).toBeDefined();
  });

  it('RUN mounts: a secret is readable in the step and in no layer, config or history', { timeout: 60_000 }, async () => {
    const df = 'FROM busybox:latest\nRUN --mount=type=secret,id=tok cat /run/secrets/tok > /seen && test ! -e /run/secrets/tok.copy\n';
    const { root, context } = await setup({ Dockerfile: df });
    const secretFile = path.join(tmp, `secret-${n}`);
    await writeFile(secretFile, 'S3CR3T-VALUE');
    const layout = path.join(tmp, `layout-${n}`);
    const r = await buildIn(root, context, { secrets: [{ id: 'tok', src: secretFile }], outputs: [{ type: 'oci', dest: layout, tar: false, name: ['s:v'] }] });
    expect(r.executedSteps).toBe(1);
    // The step saw it (it copied it to /seen on purpose); /run/secrets itself is not in the layer.
    const bundle = path.join(tmp, `bundle-${n}`);
    const index = JSON.parse(await readFile(path.join(layout, 'index.json'), 'utf8')) as { manifests: { annotations?: Record<string, string> }[] };
    expect(index.manifests).toHaveLength(1);
    await run('umoci', ['unpack', '--image', `${layout}:v`, bundle]);
    expect(await readFile(path.join(bundle, 'rootfs/seen'), 'utf8')).toBe('S3CR3T-VALUE');
    await expect(readdir(path.join(bundle, 'rootfs/run/secrets'))).rejects.toThrow();
    expect(JSON.stringify(r.config)).not.toContain('S3CR3T');
  });
});

describe('build(): cache', () => {
  const DF = `FROM busybox:latest
COPY a.txt /a.txt
RUN cat /a.txt > /a.copy
COPY b.txt /b.txt
RUN cat /b.txt > /b.copy
`;

  it('--network none for the build is part of a RUN\'s key (as BuildKit\'s ExecOp network): the host-network result is not reused', { timeout: 120_000 }, async () => {
    const { root, context } = await setup({ Dockerfile: 'FROM busybox:latest\nRUN ls /sys/class/net > /ifaces\nWORKDIR /w\n' });
    const out = (k: string) => path.join(tmp, `net-${n}-${k}`);
    const host = await buildIn(root, context, { outputs: [{ type: 'local', dest: out('host') }] });
    expect(host.executedSteps).toBe(2);
    expect((await readFile(path.join(out('host'), 'ifaces'), 'utf8')).trim().split('\n').length).toBeGreaterThan(1);
    const none = await buildIn(root, context, { network: 'none', outputs: [{ type: 'local', dest: out('none') }] });
    expect(none.steps.filter((s) => s.status === 'executed').map((s) => s.line)).toEqual([2, 3]);
    expect(none.steps.find((s) => s.line === 2)!.reason).toBe('network changed (unset → none)');
    expect(await readFile(path.join(out('none'), 'ifaces'), 'utf8')).toBe('lo\n');
    expect((await buildIn(root, context, { network: 'none' })).executedSteps).toBe(0);
    // the host network is the default: naming it keeps the default's key
    expect((await buildIn(root, context, { network: 'host' })).executedSteps).toBe(0);
  });

  it('no-op rebuild runs nothing; touching runs nothing; a change reruns exactly what depends on it and says which file', { timeout: 120_000 }, async () => {
    const { root, context } = await setup({ Dockerfile: DF, 'a.txt': 'a1\n', 'b.txt': 'b1\n' });
    const first = await buildIn(root, context);
    expect(first.executedSteps).toBe(4);
    expect(first.steps.every((s) => s.status === 'executed' && s.reason === 'first build of this step')).toBe(true);

    const again = await buildIn(root, context);
    expect(again.executedSteps).toBe(0);
    expect(again.cachedSteps).toBe(4);
    // Same image, same ID: the no-op rebuild keeps the first build's creation time.
    expect(again.manifestDigest).toBe(first.manifestDigest);
    expect(again.configDigest).toBe(first.configDigest);

    const later = new Date(Date.now() + 60_000);
    await utimes(path.join(context, 'a.txt'), later, later);
    const touched = await buildIn(root, context);
    expect(touched.executedSteps).toBe(0);

    await writeFile(path.join(context, 'b.txt'), 'b2\n');
    const changed = await buildIn(root, context);
    expect(changed.steps.filter((s) => s.status === 'executed').map((s) => s.name)).toEqual(['[stage-0 4/5] COPY b.txt /b.txt', '[stage-0 5/5] RUN cat /b.txt > /b.copy']);
    const copy = changed.steps.find((s) => s.name.includes('COPY b.txt'))!;
    expect(copy.reason).toContain('b.txt');
    const runStep = changed.steps.find((s) => s.name.includes('/b.copy'))!;
    expect(runStep.reason).toBe('previous step changed');
    expect(changed.config.rootfs.diff_ids.slice(0, 3)).toEqual(first.config.rootfs.diff_ids.slice(0, 3));
    expect(changed.config.rootfs.diff_ids[3]).not.toBe(first.config.rootfs.diff_ids[3]);

    // A build arg the step can see is an input; the explanation names it.
    const withArg = await buildIn(root, context, { dockerfileText: DF.replace('COPY b.txt', 'ARG V=1\nCOPY b.txt').replace('RUN cat /b.txt', 'RUN echo $V; cat /b.txt') });
    const withArg2 = await buildIn(root, context, { dockerfileText: DF.replace('COPY b.txt', 'ARG V=1\nCOPY b.txt').replace('RUN cat /b.txt', 'RUN echo $V; cat /b.txt'), buildArgs: { V: '2' } });
    expect(withArg.executedSteps).toBeGreaterThan(0);
    const argStep = withArg2.steps.filter((s) => s.status === 'executed');
    expect(argStep).toHaveLength(1);
    expect(argStep[0]!.reason).toMatch(/V/);

    // --no-cache runs everything again.
    const nocache = await buildIn(root, context, { noCache: true });
    expect(nocache.executedSteps).toBe(4);
  });

  it('a big context (listed by the native helper, answered from the index): no-op, touch and change behave as on a small one', { timeout: 120_000 }, async () => {
    const files: Record<string, string> = { Dockerfile: 'FROM busybox:latest\nCOPY . /ctx\nRUN find /ctx -type f | wc -l > /count\n', '.dockerignore': 'ignored\n' };
    for (let i = 0; i < 2200; i++) files[`d${i % 40}/f${i}.txt`] = `${i}\n`;
    files['ignored/x'] = 'x';
    const { root, context } = await setup(files);
    const old = new Date(Date.now() - 60_000); // older than the racy-write window: kept in the index
    for (const name of Object.keys(files)) await utimes(path.join(context, name), old, old);
    const first = await buildIn(root, context);
    expect(first.executedSteps).toBe(2);
    const again = await buildIn(root, context);
    expect(again.executedSteps).toBe(0);
    expect(again.manifestDigest).toBe(first.manifestDigest);

    const later = new Date(Date.now() - 30_000);
    await utimes(path.join(context, 'd7/f7.txt'), later, later);
    await writeFile(path.join(context, 'ignored/x'), 'changed but ignored');
    expect((await buildIn(root, context)).executedSteps).toBe(0);

    await writeFile(path.join(context, 'd9/f2009.txt'), 'changed\n');
    const changed = await buildIn(root, context);
    expect(changed.steps.filter((s) => s.status === 'executed').map((s) => s.reason)).toEqual(['file d9/f2009.txt modified', 'previous step changed']);
    await writeFile(path.join(context, 'd9/new.txt'), 'new\n');
    const added = await buildIn(root, context);
    expect(added.steps.find((s) => s.status === 'executed')!.reason).toBe('file d9/new.txt added');
  });

  it('a changed COPY of a tree hard-links the unchanged files from the previous snapshot and copies the changed one', { timeout: 120_000 }, async () => {
    const DF2 = 'FROM busybox:latest\nCOPY tree /tree\nRUN cat /tree/a /tree/b /tree/sub/c > /all\n';
    const { root, context } = await setup({ Dockerfile: DF2, 'tree/a': 'a1\n', 'tree/b': 'b1\n', 'tree/sub/c': 'c1\n' });
    const first = await buildIn(root, context);
    await writeFile(path.join(context, 'tree/b'), 'b2\n');
    const second = await buildIn(root, context);
    expect(second.steps.filter((s) => s.status === 'executed').map((s) => s.name)).toEqual(['[stage-0 2/3] COPY tree /tree', '[stage-0 3/3] RUN cat /tree/a /tree/b /tree/sub/c > /all']);
    const snap = (r: BuildResult) => path.join(root, 'snapshots', r.config.rootfs.diff_ids[1]!.slice('sha256:'.length, 'sha256:'.length + 24));
    const [oldSnap, newSnap] = [snap(first), snap(second)];
    expect(newSnap).not.toBe(oldSnap);
    const ino = async (p: string) => (await import('node:fs/promises')).lstat(p);
    for (const f of ['tree/a', 'tree/sub/c']) {
      const [o, s] = [await ino(path.join(oldSnap, f)), await ino(path.join(newSnap, f))];
      expect(s.ino).toBe(o.ino); // one inode, linked
      expect(s.nlink).toBe(2);
    }
    expect((await ino(path.join(newSnap, 'tree/b'))).ino).not.toBe((await ino(path.join(oldSnap, 'tree/b'))).ino);
    expect(await readFile(path.join(newSnap, 'tree/b'), 'utf8')).toBe('b2\n');
    expect(await readFile(path.join(oldSnap, 'tree/b'), 'utf8')).toBe('b1\n'); // the old snapshot is untouched
    // The new layer holds every file (not only the changed one), and the RUN saw all of them.
    const { stdout } = await run('tar', ['-tf', path.join(root, 'store', 'blobs', 'sha256', second.layers[1]!.digest.slice(7))]);
    expect(stdout.split('\n').filter(Boolean).sort()).toEqual(['tree/', 'tree/a', 'tree/b', 'tree/sub/', 'tree/sub/c']);
    const snapAll = path.join(root, 'snapshots', second.config.rootfs.diff_ids[2]!.slice(7, 7 + 24), 'all');
    expect(await readFile(snapAll, 'utf8')).toBe('a1\nb2\nc1\n');
  });

  it('the same COPY of the same files onto another parent links them from the first one\'s snapshot', { timeout: 120_000 }, async () => {
    const DF3 = 'FROM busybox:latest AS a\nCOPY tree /tree\nRUN cat /tree/a > /a.out\n\nFROM busybox:latest\nRUN mkdir -m 700 /tree\nCOPY tree /tree\nCOPY --from=a /a.out /\n';
    const { root, context } = await setup({ Dockerfile: DF3, 'tree/a': 'a1\n', 'tree/sub/b': 'b1\n' });
    const r = await buildIn(root, context, { parallelism: 1 });
    const snapOf = (diffId: string) => path.join(root, 'snapshots', diffId.slice(7, 7 + 24));
    const { lstat } = await import('node:fs/promises');
    // Final image: busybox, RUN mkdir, COPY tree, COPY --from. The two COPY tree layers differ
    // (/tree made by the COPY or there already, 700), the files in them do not: one is found by
    // the other's content key and linked.
    const finalCopy = snapOf(r.config.rootfs.diff_ids[2]!);
    const dirs = (await readdir(path.join(root, 'snapshots'))).filter((d) => d !== 'tmp' && d !== 'empty').map((d) => path.join(root, 'snapshots', d));
    let twin: string | undefined;
    for (const d of dirs) if (d !== finalCopy && (await lstat(path.join(d, 'tree/sub/b')).catch(() => undefined))) twin = d;
    expect(twin).toBeDefined();
    const [x, y] = [await lstat(path.join(finalCopy, 'tree/sub/b')), await lstat(path.join(twin!, 'tree/sub/b'))];
    expect(x.ino).toBe(y.ino);
    expect(await readFile(path.join(finalCopy, 'tree/a'), 'utf8')).toBe('a1\n');
  });

  it('two builds into two empty roots give the same image (SOURCE_DATE_EPOCH)', { timeout: 120_000 }, async () => {
    const files = { Dockerfile: DF, 'a.txt': 'a\n', 'b.txt': 'b\n' };
    const one = await setup(files);
    const two = await setup(files);
    // Same content, different mtimes (both after the epoch, so both are clamped to it).
    const later = new Date(Date.now() + 3_600_000);
    await utimes(path.join(two.context, 'a.txt'), later, later);
    const r1 = await buildIn(one.root, one.context, { sourceDateEpoch: 1700000000 });
    const r2 = await buildIn(two.root, two.context, { sourceDateEpoch: 1700000000 });
    expect(r2.manifestDigest).toBe(r1.manifestDigest);
    expect(r1.config.created).toBe('2023-11-14T22:13:20.000Z');
  });
});

describe('build(): layer compression', () => {
  const DF = 'FROM busybox:latest\nCOPY data.txt /data.txt\nRUN cp /data.txt /copy.txt\n';
  const blob = (root: string, d: string) => path.join(root, 'store', 'blobs', 'sha256', d.slice('sha256:'.length));

  it('a local image keeps its layers uncompressed; an OCI export gzips them once, and skopeo and umoci read it', { timeout: 120_000 }, async () => {
    const { root, context } = await setup({ Dockerfile: DF, 'data.txt': 'some data\n'.repeat(1000) });
    const local = await buildIn(root, context, { tags: ['lazy:1'] });
    const built = local.layers.slice(-2);
    expect(built.map((l) => l.mediaType)).toEqual(['application/vnd.oci.image.layer.v1.tar', 'application/vnd.oci.image.layer.v1.tar']);
    expect(built.map((l) => l.digest)).toEqual(local.config.rootfs.diff_ids.slice(-2)); // an uncompressed blob is its diffID
    expect(local.layers[0]!.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip'); // the base layer as it came

    const layout = path.join(tmp, `lazy-${n}`);
    const exported = await buildIn(root, context, { tags: ['lazy:1'], outputs: [{ type: 'oci', dest: layout, tar: false, name: ['lazy:1'] }] });
    expect(exported.executedSteps).toBe(0);
    expect(exported.configDigest).toBe(local.configDigest); // same image ID either way
    expect(exported.manifestDigest).not.toBe(local.manifestDigest);
    const gz = exported.layers.slice(-2);
    expect(gz.map((l) => l.mediaType)).toEqual(['application/vnd.oci.image.layer.v1.tar+gzip', 'application/vnd.oci.image.layer.v1.tar+gzip']);
    for (const [i, l] of gz.entries()) {
      const { stdout } = await run('sh', ['-c', `gzip -dc < ${blob(root, l.digest)} | sha256sum`]);
      expect(`sha256:${stdout.split(' ')[0]}`).toBe(exported.config.rootfs.diff_ids[i + 1]);
    }
    const inspect = JSON.parse((await run('skopeo', ['inspect', `oci:${layout}:1`])).stdout) as { Digest: string; Layers: string[] };
    expect(inspect.Digest).toBe(exported.manifestDigest);
    const bundle = path.join(tmp, `lazy-bundle-${n}`);
    await run('umoci', ['unpack', '--image', `${layout}:1`, bundle]);
    expect(await readFile(path.join(bundle, 'rootfs/copy.txt'), 'utf8')).toBe('some data\n'.repeat(1000));

    // A second export reuses the compressed blobs (same file, not written again).
    const { stat } = await import('node:fs/promises');
    const before = await stat(blob(root, gz[0]!.digest));
    const again = await buildIn(root, context, { outputs: [{ type: 'oci', dest: path.join(tmp, `lazy2-${n}`), tar: false }] });
    expect(again.manifestDigest).toBe(exported.manifestDigest);
    expect((await stat(blob(root, gz[0]!.digest))).mtimeMs).toBe(before.mtimeMs);
  });

  it('an OCI or docker archive of an unchanged image is left as it is; one changed since, or for another name, is written again', { timeout: 120_000 }, async () => {
    const { root, context } = await setup({ Dockerfile: DF, 'data.txt': 'archive data\n'.repeat(100) });
    const { appendFile, stat, utimes: setTimes } = await import('node:fs/promises');
    const dest = path.join(tmp, `archive-${n}.tar`);
    const docker = path.join(tmp, `archive-${n}.docker.tar`);
    const outputs: BuildOptions['outputs'] = [{ type: 'oci', dest, name: ['arch:1'] }, { type: 'docker', dest: docker, name: ['arch:1'] }];
    const first = await buildIn(root, context, { outputs });
    const inspect = async (ref: string) => (JSON.parse((await run('skopeo', ['inspect', ref])).stdout) as { Digest: string }).Digest;
    expect(await inspect(`oci-archive:${dest}`)).toBe(first.manifestDigest);
    const written = await stat(dest, { bigint: true });
    const writtenDocker = await stat(docker, { bigint: true });

    const again = await buildIn(root, context, { outputs });
    expect(again.manifestDigest).toBe(first.manifestDigest);
    expect((await stat(dest, { bigint: true })).ctimeNs).toBe(written.ctimeNs); // not written again
    expect((await stat(docker, { bigint: true })).ctimeNs).toBe(writtenDocker.ctimeNs);

    // Changed in place, even with its old mtime put back: written again, whole.
    await appendFile(dest, 'garbage');
    await setTimes(dest, written.atime, written.mtime);
    await buildIn(root, context, { outputs });
    expect((await stat(dest)).size).toBe(Number(written.size));
    expect(await inspect(`oci-archive:${dest}`)).toBe(first.manifestDigest);

    // Another name in the archive: written again, with that name.
    const renamed = await buildIn(root, context, { outputs: [{ type: 'oci', dest, name: ['arch:2'] }] });
    const index = JSON.parse((await run('tar', ['-xOf', dest, 'index.json'])).stdout) as { manifests: { annotations?: Record<string, string> }[] };
    expect(index.manifests[0]!.annotations?.['org.opencontainers.image.ref.name']).toBe('2');
    expect(renamed.manifestDigest).toBe(first.manifestDigest);
    // Removed: written again.
    await rm(dest);
    await buildIn(root, context, { outputs });
    expect(await inspect(`oci-archive:${dest}`)).toBe(first.manifestDigest);
  });

  it('compression=zstd and compression=uncompressed are honoured per output', { timeout: 120_000 }, async () => {
    const { root, context } = await setup({ Dockerfile: DF, 'data.txt': 'zstd data\n'.repeat(1000) });
    const z = await buildIn(root, context, { outputs: [{ type: 'oci', dest: path.join(tmp, `zstd-${n}`), tar: false, compression: 'zstd', compressionLevel: 5 }] });
    const built = z.layers.slice(-2);
    expect(built.map((l) => l.mediaType)).toEqual(['application/vnd.oci.image.layer.v1.tar+zstd', 'application/vnd.oci.image.layer.v1.tar+zstd']);
    const { stdout } = await run('sh', ['-c', `zstd -dc < ${blob(root, built[1]!.digest)} | sha256sum`]);
    expect(`sha256:${stdout.split(' ')[0]}`).toBe(z.config.rootfs.diff_ids[2]);
    const u = await buildIn(root, context, { outputs: [{ type: 'oci', dest: path.join(tmp, `unc-${n}`), tar: false, compression: 'uncompressed' }] });
    expect(u.layers.slice(-2).map((l) => l.digest)).toEqual(u.config.rootfs.diff_ids.slice(-2));
  });
});

describe('build(): sources', () => {
  it('FROM oci-layout://DIR:TAG reads a base image from an OCI layout', { timeout: 60_000 }, async () => {
    const busybox = await makeBusyboxImage();
    const { root, context } = await setup({ Dockerfile: `FROM oci-layout://${busybox.layoutDir}:latest\nRUN echo from-layout > /origin\n` });
    const r = await buildIn(root, context, { outputs: [{ type: 'local', dest: path.join(tmp, `local-${n}`) }] });
    expect(r.executedSteps).toBe(1);
    expect(await readFile(path.join(tmp, `local-${n}`, 'origin'), 'utf8')).toBe('from-layout\n');
    await expect(buildIn(root, context, { dockerfileText: `FROM oci-layout://${busybox.layoutDir}:nope\n` })).rejects.toThrow(/has no image "nope"; it has latest/);
  });

  it('RUN --mount=type=bind,from=<stage> after another RUN sees the stage (its view is mounted after the runtime started a spare helper)', { timeout: 60_000 }, async () => {
    const { root, context } = await setup({ Dockerfile: 'FROM busybox:latest AS a\nRUN echo from-a > /a\nFROM busybox:latest\nRUN echo first > /first\nRUN echo second > /second\nRUN --mount=type=bind,from=a,target=/m cat /m/a /first > /out\n', 'x.txt': 'x' });
    await buildIn(root, context, { parallelism: 1, outputs: [{ type: 'local', dest: path.join(tmp, `local-${n}`) }] });
    expect(await readFile(path.join(tmp, `local-${n}`, 'out'), 'utf8')).toBe('from-a\nfirst\n');
  });

  it('RUN --mount=type=bind from the context sees it as BuildKit sends it: without what .dockerignore excludes', { timeout: 60_000 }, async () => {
    const files = { 'keep.txt': 'k\n', 'secret.txt': 's\n', 'sub/deep.txt': 'd\n', 'sub/other.txt': 'o\n', '.dockerignore': 'secret.txt\nsub\n!sub/deep.txt\n' };
    const df = 'FROM busybox:latest\nRUN --mount=type=bind,target=/src find /src | sort > /list\nRUN --mount=type=bind,target=/src,rw rm /src/keep.txt && echo x > /src/new && ls /src > /rw-list\n';
    const { root, context } = await setup({ ...files, Dockerfile: df });
    const out = path.join(tmp, `local-${n}`);
    await buildIn(root, context, { outputs: [{ type: 'local', dest: out }] });
    // the list BuildKit 0.x (docker build) printed for this context
    expect(await readFile(path.join(out, 'list'), 'utf8')).toBe(['/src', '/src/.dockerignore', '/src/Dockerfile', '/src/sub', '/src/sub/deep.txt', '/src/keep.txt'].sort().join('\n') + '\n');
    expect(await readFile(path.join(out, 'rw-list'), 'utf8')).toBe('Dockerfile\nnew\nsub\n');
    // a writable bind changes nothing in the context, and no view stays mounted
    expect((await readdir(context)).sort()).toEqual(['.dockerignore', 'Dockerfile', 'keep.txt', 'secret.txt', 'sub']);
    expect(await readFile('/proc/self/mounts', 'utf8')).not.toContain(root);
    // an excluded file named as the source is an error, as the missing file it is to BuildKit
    await expect(buildIn(root, context, { dockerfileText: 'FROM busybox:latest\nRUN --mount=type=bind,source=secret.txt,target=/s cat /s\n' })).rejects.toThrow(/bind mount source secret.txt is excluded by .*\.dockerignore/);
  });

  it('a bind mount source that is a symlink resolves inside the context or the stage, never on the host', { timeout: 60_000 }, async () => {
    // A host file the build must not read: through the context's `hostroot -> /`, or a stage's `up -> /`.
    const hostFile = path.join(tmp, `host-secret-${n}`);
    await writeFile(hostFile, 'HOST SECRET\n');
    const df = [
      'FROM busybox:latest AS a',
      'RUN ln -s / /up && echo in-stage > /stage-marker',
      'FROM busybox:latest',
      `RUN --mount=type=bind,source=hostroot,target=/h (cat /h${hostFile} || true) > /via-context && ls /h > /context-list`,
      `RUN --mount=from=a,source=up,target=/h (cat /h${hostFile} || true) > /via-stage && cat /h/stage-marker > /stage-seen`,
      '',
    ].join('\n');
    const { root, context } = await setup({ Dockerfile: df });
    await symlink('/', path.join(context, 'hostroot'));
    const out = path.join(tmp, `local-${n}`);
    await buildIn(root, context, { outputs: [{ type: 'local', dest: out }] });
    expect(await readFile(path.join(out, 'via-context'), 'utf8')).toBe('');
    expect(await readFile(path.join(out, 'via-stage'), 'utf8')).toBe('');
    expect(await readFile(path.join(out, 'context-list'), 'utf8')).toBe('Dockerfile\nhostroot\n');
    expect(await readFile(path.join(out, 'stage-seen'), 'utf8')).toBe('in-stage\n');
  });

  it('RUN --mount=type=cache,from=STAGE,source=DIR starts the cache as that directory; it persists, apart from the plain cache of the same target', { timeout: 60_000 }, async () => {
    const df = [
      'FROM busybox:latest AS a',
      'RUN mkdir -p /seed/sub && echo seeded > /seed/sub/f && chown 123:45 /seed/sub/f',
      'FROM busybox:latest',
      'RUN --mount=type=cache,target=/c,from=a,source=/seed cat /c/sub/f > /first && stat -c %u:%g /c/sub/f >> /first && echo added > /c/g',
      'RUN --mount=type=cache,target=/c,from=a,source=/seed ls /c > /second',
      'RUN --mount=type=cache,target=/c ls /c > /plain',
      '',
    ].join('\n');
    const { root, context } = await setup({ Dockerfile: df });
    const out = path.join(tmp, `local-${n}`);
    await buildIn(root, context, { outputs: [{ type: 'local', dest: out }] });
    expect(await readFile(path.join(out, 'first'), 'utf8')).toBe('seeded\n123:45\n');
    expect(await readFile(path.join(out, 'second'), 'utf8')).toBe('g\nsub\n');
    expect(await readFile(path.join(out, 'plain'), 'utf8')).toBe('');
    await expect(buildIn(root, context, { dockerfileText: 'FROM busybox:latest AS a\nFROM busybox:latest\nRUN --mount=type=cache,target=/c,from=a,source=/nope true\n' })).rejects.toThrow('cache mount source /nope not found in stage 0');
  });

  it('RUN --mount=type=ssh: the step\'s socket has the mount\'s owner and mode (root 0600 by default, as BuildKit) and forwards to the agent', { timeout: 60_000 }, async () => {
    const { createServer, connect } = await import('node:net');
    const { agentProxy } = await import('../../src/builder/ssh-proxy.js');
    const agentSock = path.join(tmp, `agent-${n}.sock`);
    const agent = createServer((c) => c.on('data', (d: Buffer) => c.end(`agent saw ${d.toString()}`)));
    await new Promise<void>((resolve) => agent.listen(agentSock, resolve));
    try {
      const df = 'FROM busybox:latest\nRUN --mount=type=ssh stat -c "%a %u %g" $SSH_AUTH_SOCK > /default\nRUN --mount=type=ssh,target=/s,uid=1000,gid=1001,mode=0660 stat -c "%a %u %g" /s > /custom\n';
      const { root, context } = await setup({ Dockerfile: df });
      const out = path.join(tmp, `local-${n}`);
      await buildIn(root, context, { ssh: [{ id: 'default', paths: [agentSock] }], outputs: [{ type: 'local', dest: out }] });
      expect(await readFile(path.join(out, 'default'), 'utf8')).toBe('600 0 0\n');
      expect(await readFile(path.join(out, 'custom'), 'utf8')).toBe('660 1000 1001\n');
      // what the step connects to reaches the agent
      const proxy = await agentProxy(agentSock, { uid: 0, gid: 0, mode: 0o600 });
      const reply = await new Promise<string>((resolve, reject) => {
        const c = connect(proxy.socket, () => c.write('hello'));
        let got = '';
        c.on('data', (d: Buffer) => (got += d.toString())).on('end', () => resolve(got)).on('error', reject);
      });
      await proxy.close();
      expect(reply).toBe('agent saw hello');
    } finally {
      agent.close();
    }
  });

  it('ONBUILD triggers of a base image run at the start of the child stage', { timeout: 60_000 }, async () => {
    const { root, context } = await setup({ Dockerfile: 'FROM busybox:latest\nONBUILD RUN echo triggered > /onbuild\n', 'x.txt': 'x' });
    await buildIn(root, context, { tags: ['parent:1'] });
    const child = await buildIn(root, context, { dockerfileText: 'FROM parent:1\nRUN cat /onbuild > /seen\n', outputs: [{ type: 'local', dest: path.join(tmp, `local-${n}`) }] });
    expect(await readFile(path.join(tmp, `local-${n}`, 'seen'), 'utf8')).toBe('triggered\n');
    expect(child.config.config?.OnBuild ?? []).toEqual([]);
  });

  it('ADD: a local tar.gz is unpacked; a URL is downloaded, cached while the server says it is unchanged, fetched again when it changes', { timeout: 60_000 }, async () => {
    const { createServer } = await import('node:http');
    let body = 'version one\n';
    let etag = '"v1"';
    let gets = 0;
    const server = createServer((req, res) => {
      if (req.method === 'GET') gets++;
      res.writeHead(200, { ETag: etag, 'Last-Modified': 'Wed, 21 Oct 2015 07:28:00 GMT', 'Content-Length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as import('node:net').AddressInfo).port}/files/remote.txt`;
      const { root, context } = await setup({ 'src/inner/file.txt': 'packed\n' });
      await run('tar', ['-czf', path.join(context, 'bundle.tar.gz'), '-C', path.join(context, 'src'), 'inner']);
      await rm(path.join(context, 'src'), { recursive: true });
      const df = `FROM scratch\nADD bundle.tar.gz /unpacked/\nADD ${url} /dl/\n`;
      const out = path.join(tmp, `local-${n}`);
      const first = await buildIn(root, context, { dockerfileText: df, outputs: [{ type: 'local', dest: out }] });
      expect(await readFile(path.join(out, 'unpacked/inner/file.txt'), 'utf8')).toBe('packed\n');
      expect(await readFile(path.join(out, 'dl/remote.txt'), 'utf8')).toBe('version one\n');
      expect(first.executedSteps).toBe(2);
      expect(gets).toBe(1);
      const again = await buildIn(root, context, { dockerfileText: df });
      expect(again.executedSteps).toBe(0);
      expect(gets).toBe(1);
      body = 'version two\n';
      etag = '"v2"';
      const out2 = path.join(tmp, `local2-${n}`);
      const changed = await buildIn(root, context, { dockerfileText: df, outputs: [{ type: 'local', dest: out2 }] });
      expect(changed.steps.filter((s) => s.status === 'executed').map((s) => s.line)).toEqual([3]);
      expect(changed.steps.find((s) => s.line === 3)!.reason).toContain(url);
      expect(await readFile(path.join(out2, 'dl/remote.txt'), 'utf8')).toBe('version two\n');
    } finally {
      server.close();
    }
  });
});

describe('build(): parallel stages', () => {
  // Two stages that can only finish if they run at the same time: each marks a shared cache
  // mount and waits for the other's mark. Run one after the other, the first would time out.
  const RENDEZVOUS = (me: string, other: string) =>
    `RUN --mount=type=cache,id=rendezvous,target=/sync,sharing=shared touch /sync/${me} && i=0; while [ ! -e /sync/${other} ]; do i=$((i+1)); [ $i -gt 300 ] && echo "${other} never came" && exit 1; sleep 0.05; done; echo ${me} > /${me}`;
  const DF = `FROM busybox:latest AS left\n${RENDEZVOUS('left', 'right')}\nFROM busybox:latest AS right\n${RENDEZVOUS('right', 'left')}\nFROM scratch\nCOPY --from=left /left /\nCOPY --from=right /right /\n`;

  it('independent stages run at the same time', { timeout: 60_000 }, async () => {
    const { root, context } = await setup({ Dockerfile: DF });
    const out = path.join(tmp, `local-${n}`);
    await buildIn(root, context, { outputs: [{ type: 'local', dest: out }] });
    expect((await readdir(out)).sort()).toEqual(['left', 'right']);
  });

  it('with parallelism 1 they run one after the other (and so never meet)', { timeout: 60_000 }, async () => {
    const { root, context } = await setup({ Dockerfile: DF });
    await expect(buildIn(root, context, { parallelism: 1 })).rejects.toThrow(/exit code: 1/);
  });

  // Eight stages that each wait for all eight marks: they meet only if all run at once, which the
  // default allows on any machine (twice the CPUs, at least 8), as BuildKit runs them.
  const CROWD = (id: string, me: number) =>
    `RUN --mount=type=cache,id=${id},target=/sync,sharing=shared touch /sync/s${me} && i=0; while [ "$(ls /sync | wc -l)" -lt 8 ]; do i=$((i+1)); [ $i -gt 300 ] && echo "only $(ls /sync | wc -l) of 8 came" && exit 1; sleep 0.05; done; echo ${me} > /s${me}`;
  const EIGHT = (id: string) => [...Array.from({ length: 8 }, (_, i) => `FROM busybox:latest AS s${i}\n${CROWD(id, i)}\n`), 'FROM scratch\n', ...Array.from({ length: 8 }, (_, i) => `COPY --from=s${i} /s${i} /\n`)].join('');

  it('by default eight independent stages run at once, whatever the number of CPUs', { timeout: 90_000 }, async () => {
    expect(defaultParallelism()).toBeGreaterThanOrEqual(8);
    const { root, context } = await setup({});
    const out = path.join(tmp, `local-${n}`);
    await buildIn(root, context, { dockerfileText: EIGHT('crowd-a'), outputs: [{ type: 'local', dest: out }] });
    expect((await readdir(out)).sort()).toEqual(['s0', 's1', 's2', 's3', 's4', 's5', 's6', 's7']);
    const err = await buildIn(root, context, { dockerfileText: EIGHT('crowd-b'), parallelism: 7 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BuildError);
    expect(await (err as BuildError).render()).toContain('only 7 of 8 came');
  });
});

describe('build(): a failing step', () => {
  it('stops the steps running beside it at once and is the error reported (as BuildKit cancels them)', { timeout: 60_000 }, async () => {
    // Stage a would run for two minutes; the final stage waits for a before b. Without stopping
    // at the first failure the build would wait for a (the test's timeout) before reporting b.
    const marker = `tsbuild-failfast-${process.pid}-${Date.now()}`;
    const df = `FROM busybox:latest AS a\nRUN sh -c 'sleep 120; :' ${marker}\nFROM busybox:latest AS b\nRUN sleep 0.3; exit 4\nFROM busybox:latest\nCOPY --from=a /etc/passwd /a\nCOPY --from=b /etc/passwd /b\n`;
    const { root, context } = await setup({ Dockerfile: df });
    const events: ProgressEvent[] = [];
    const err = await build({ context, root, env: {}, onProgress: (e) => events.push(e) }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BuildError);
    expect((err as BuildError).step?.range.start.line).toBe(4);
    expect((err as BuildError).message).toContain('exit code: 4');
    const ends = events.flatMap((e) => (e.type === 'step' && e.status === 'error' ? [[e.name, e.error]] : []));
    expect(ends).toContainEqual([`[a 2/2] RUN sh -c 'sleep 120; :' ${marker}`, 'CANCELED']);
    // nothing of stage a is left running
    const { stdout: ps } = await run('ps', ['-eo', 'args']);
    expect(ps).not.toContain(marker);
  });
});

describe('build(): abort', () => {
  it('an aborted build stops its RUN step, leaves no process behind and rejects', { timeout: 60_000 }, async () => {
    const marker = `tsbuild-abort-${process.pid}-${Date.now()}`;
    const { root, context } = await setup({ Dockerfile: `FROM busybox:latest\nRUN echo started; sh -c 'sleep 300; :' ${marker}\n` });
    const controller = new AbortController();
    const started = build({
      context,
      root,
      env: {},
      signal: controller.signal,
      onProgress: (e) => {
        if (e.type === 'output' && e.data.includes('started')) controller.abort(new Error('user pressed ^C'));
      },
    });
    const t0 = Date.now();
    await expect(started).rejects.toThrow(/user pressed \^C|abort/i);
    expect(Date.now() - t0).toBeLessThan(20_000);
    const { readdir: ls, readFile: rf } = await import('node:fs/promises');
    const left: string[] = [];
    for (const pid of await ls('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      const cmd = await rf(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
      if (cmd.includes(marker)) left.push(pid);
    }
    expect(left).toEqual([]);
  });
});
