/**
 * RUN behaviours matched to BuildKit, through real builds with the library's build() on the
 * busybox fixture (root:/root and nobody:/nonexistent in its /etc/passwd) and through the planner:
 * HOME from the step user's passwd entry, a secret mount's `source=`, and `--device` refused.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build, BuildError } from '../../src/builder/build.js';
import type { BuildOptions, BuildResult } from '../../src/builder/options.js';
import { planBuild, type ExecOp } from '../../src/builder/plan/index.js';
import { parseDockerfile } from '../../src/parser/index.js';
import { makeBusyboxImage } from '../helpers/base-images.js';

let tmp: string;
let root: string;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'tsbuild-run-compat-'));
  root = path.join(tmp, 'root');
  await makeBusyboxImage(root);
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

let n = 0;
/** Builds `dockerfile` into a local output; returns the result and the output directory. */
async function buildLocal(dockerfile: string, extra: Partial<BuildOptions> = {}): Promise<{ result: BuildResult; out: string }> {
  const dir = path.join(tmp, `case-${++n}`);
  const context = path.join(dir, 'context');
  await mkdir(context, { recursive: true });
  await writeFile(path.join(context, 'Dockerfile'), dockerfile);
  const out = path.join(dir, 'out');
  const result = await build({ context, root, env: {}, outputs: [{ type: 'local', dest: out }], ...extra });
  return { result, out };
}

const read = (out: string, p: string) => readFile(path.join(out, p), 'utf8');

function planExecs(text: string) {
  const parsed = parseDockerfile(text, { file: 'Dockerfile' });
  expect(parsed.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  const r = planBuild(parsed.ast, { platform: 'linux/amd64', buildPlatform: 'linux/amd64', source: text });
  const errors = r.diagnostics.filter((d) => d.severity === 'error');
  const execs = r.graph.stages.flatMap((s) => s.ops.filter((o): o is ExecOp => o.type === 'tsbuild.exec.v1'));
  return { errors, execs };
}

describe('RUN: HOME as runc sets it', () => {
  it('is the step user\'s passwd home, "/" for a uid not in passwd, and an ENV HOME wins (an empty one does not); the config keeps only what ENV set', { timeout: 120_000 }, async () => {
    const { result, out } = await buildLocal(
      [
        'FROM busybox:latest',
        'RUN echo "[$HOME]" > /home-root && mkdir -m 1777 /o',
        'USER nobody',
        'RUN echo "[$HOME]" > /o/home-nobody',
        'USER 4321:4321',
        'RUN echo "[$HOME]" > /o/home-numeric',
        'USER root',
        'ENV HOME=/custom',
        'RUN echo "[$HOME]" > /home-env',
        'ENV HOME=',
        'RUN echo "[$HOME]" > /home-empty',
        '',
      ].join('\n'),
    );
    expect(await read(out, 'home-root')).toBe('[/root]\n');
    expect(await read(out, 'o/home-nobody')).toBe('[/nonexistent]\n');
    expect(await read(out, 'o/home-numeric')).toBe('[/]\n');
    expect(await read(out, 'home-env')).toBe('[/custom]\n');
    // runc sets HOME when it is unset or empty.
    expect(await read(out, 'home-empty')).toBe('[/root]\n');
    expect(result.config.config?.Env).toEqual(['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOME=']);
  });

  it('a build ARG named HOME wins over the passwd home', { timeout: 120_000 }, async () => {
    const { out } = await buildLocal('FROM busybox:latest\nARG HOME=/from-arg\nRUN echo "[$HOME]" > /home-default\n');
    expect(await read(out, 'home-default')).toBe('[/from-arg]\n');
    const cli = await buildLocal('FROM busybox:latest\nARG HOME\nRUN echo "[$HOME]" > /home-cli\n', { buildArgs: { HOME: '/from-cli' } });
    expect(await read(cli.out, 'home-cli')).toBe('[/from-cli]\n');
  });
});

describe('RUN --mount=type=secret,source=', () => {
  it('source= names the secret (not the target\'s base name), and alone puts it at /run/secrets/<source>', { timeout: 120_000 }, async () => {
    const src = path.join(tmp, 'mytok.txt');
    await writeFile(src, 's3cret-value');
    const { out } = await buildLocal(
      [
        'FROM busybox:latest',
        'RUN --mount=type=secret,source=mytok,target=/tok,required cat /tok > /seen-target',
        'RUN --mount=type=secret,src=mytok,required cat /run/secrets/mytok > /seen-default',
        '',
      ].join('\n'),
      { secrets: [{ id: 'mytok', src }] },
    );
    expect(await read(out, 'seen-target')).toBe('s3cret-value');
    expect(await read(out, 'seen-default')).toBe('s3cret-value');
  });

  it('the planner resolves the id as BuildKit does: source, else id, else the target\'s base name', () => {
    const { errors, execs } = planExecs(
      [
        'FROM scratch',
        'RUN --mount=type=secret,source=a,target=/x/tok true',
        'RUN --mount=type=secret,source=a true',
        'RUN --mount=type=secret,id=b,target=/y/other true',
        'RUN --mount=type=secret,target=/z/c/ true',
        'RUN --mount=type=secret,source=a,env=TOKEN true',
        '',
      ].join('\n'),
    );
    expect(errors).toEqual([]);
    const secrets = execs.map((e) => e.mounts.find((m) => m.type === 'secret'));
    expect(secrets.map((m) => m && { id: m.id, target: 'target' in m ? m.target : undefined })).toEqual([
      { id: 'a', target: '/x/tok' },
      { id: 'a', target: '/run/secrets/a' },
      { id: 'b', target: '/y/other' },
      { id: 'c', target: '/z/c/' },
      { id: 'a', target: undefined },
    ]);
  });
});

describe('RUN --device', () => {
  it('the planner refuses it at the RUN, naming the flag (stable BuildKit refuses it too)', () => {
    const { errors } = planExecs('FROM scratch\nRUN true\nRUN --device=nvidia.com/gpu=all true\n');
    expect(errors).toHaveLength(1);
    expect(errors[0]!.code).toBe('unsupported-flag');
    expect(errors[0]!.message).toContain('--device=nvidia.com/gpu=all');
    expect(errors[0]!.range.start.line).toBe(3);
  });

  it('a build with it fails with that diagnostic', { timeout: 120_000 }, async () => {
    const err = await buildLocal('FROM busybox:latest\nRUN touch /ran\nRUN --device=vendor.com/dev=x true\n').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BuildError);
    const e = err as BuildError;
    expect(e.diagnostics.map((d) => [d.code, d.range.start.line])).toEqual([['unsupported-flag', 3]]);
    const text = await e.render();
    expect(text).toContain('--device=vendor.com/dev=x');
    expect(text).toContain('Dockerfile:3');
  });
});
