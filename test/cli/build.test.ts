/** `tsbuild build` through the CLI: docker build's flags, outputs, metadata, errors, targets. */
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxImage, repoRoot } from '../helpers/base-images.js';
import { runCli } from '../helpers/cli.js';

const run = promisify(execFile);
let tmp: string;
let root: string;
let context: string;

const DF = `# syntax=docker/dockerfile:1
FROM busybox:latest AS base
ARG MSG=default
RUN echo "$MSG" > /msg

FROM base
LABEL org.example.kind=test
COPY hello.txt /hello.txt
CMD ["cat", "/msg"]
`;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'tsbuild-cli-build-'));
  root = path.join(tmp, 'root');
  context = path.join(tmp, 'ctx');
  await mkdir(context);
  await writeFile(path.join(context, 'Dockerfile'), DF);
  await writeFile(path.join(context, 'hello.txt'), 'hello\n');
  await makeBusyboxImage(root);
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const cli = (args: string[]) => runCli([...args, '--root', root], { cwd: tmp });

describe('tsbuild build', () => {
  it('tags into the local store, writes metadata and an iidfile', async () => {
    const r = await cli(['build', '-t', 'app:1', '-t', 'app:latest', '--build-arg', 'MSG=hi', '--metadata-file', 'meta.json', '--iidfile', 'iid', '--progress', 'plain', 'ctx']);
    // As BuildKit names it: the command with the build arg's value.
    expect(r.stderr).toMatch(/#\d+ \[base 2\/2\] RUN echo "hi" > \/msg\n#\d+ cache miss: first build of this step/);
    expect(r.code).toBe(0);
    const meta = JSON.parse(await readFile(path.join(tmp, 'meta.json'), 'utf8')) as Record<string, string>;
    expect(meta['containerimage.digest']).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(await readFile(path.join(tmp, 'iid'), 'utf8')).toBe(meta['containerimage.config.digest']);
    const images = await cli(['images']);
    expect(images.stdout).toContain('app');
    const inspect = await cli(['inspect', '--format', 'json', 'app:1']);
    expect(inspect.stdout).toContain('"org.example.kind": "test"');
    // The image is a base for the next build.
    await writeFile(path.join(tmp, 'Dockerfile.child'), 'FROM app:1\nRUN test "$(cat /msg)" = hi\n');
    const child = await cli(['build', '-f', 'Dockerfile.child', 'ctx']);
    expect(child.stderr).not.toContain('ERROR');
    expect(child.code).toBe(0);
  });

  it('writes OCI archives, OCI layouts and docker archives that skopeo reads, and a local rootfs', async () => {
    const ociTar = path.join(tmp, 'img.oci.tar');
    const ociDir = path.join(tmp, 'img-layout');
    const docker = path.join(tmp, 'img.docker.tar');
    const local = path.join(tmp, 'rootfs');
    const r = await cli([
      'build', '-q', '-t', 'out:v2',
      '--output', `type=oci,dest=${ociTar}`,
      '--output', `type=oci,dest=${ociDir},tar=false`,
      '--output', `type=docker,dest=${docker}`,
      '--output', `type=local,dest=${local}`,
      'ctx',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const id = r.stdout.trim();
    expect(id).toMatch(/^sha256:/);
    const a = JSON.parse((await run('skopeo', ['inspect', '--config', `oci-archive:${ociTar}:v2`])).stdout) as { config: { Cmd: string[]; Labels: Record<string, string> } };
    expect(a.config.Cmd).toEqual(['cat', '/msg']);
    expect(a.config.Labels['org.example.kind']).toBe('test');
    const d = JSON.parse((await run('skopeo', ['inspect', '--config', `docker-archive:${docker}:out:v2`])).stdout) as { config: { Cmd: string[] } };
    expect(d.config.Cmd).toEqual(['cat', '/msg']);
    await run('oci-image-tool', ['validate', '--type', 'image', '--ref', 'name=v2', ociDir]);
    expect(await readFile(path.join(local, 'hello.txt'), 'utf8')).toBe('hello\n');
    expect(await readFile(path.join(local, 'msg'), 'utf8')).toBe('default\n');
    expect(await readdir(path.join(local, 'bin'))).toContain('busybox');
  });

  it('--root before the command is for every command (as docker\'s global flags are)', async () => {
    const other = path.join(tmp, 'root-global');
    await makeBusyboxImage(other);
    // the default command (build) and a named one
    const b = await runCli(['--root', other, '-t', 'global/root:1', '--progress', 'plain', context], { cwd: tmp, env: { TSBUILD_ROOT: root } });
    expect(b.code, b.stderr).toBe(0);
    const listed = await runCli([`--root=${other}`, 'images'], { cwd: tmp, env: { TSBUILD_ROOT: root } });
    expect(listed.stdout).toMatch(/global\/root\s+1/);
    const elsewhere = await runCli(['images'], { cwd: tmp, env: { TSBUILD_ROOT: root } });
    expect(elsewhere.stdout).not.toMatch(/global\/root/);
    // a command's own --root wins
    const own = await runCli(['--root', root, 'images', '--root', other], { cwd: tmp });
    expect(own.stdout).toMatch(/global\/root\s+1/);
  });

  it('json progress is one event per line; a cached rebuild says CACHED', async () => {
    await cli(['build', '--progress', 'plain', 'ctx']);
    const r = await cli(['build', '--progress', 'json', 'ctx']);
    expect(r.code).toBe(0);
    const events = r.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { type: string; status?: string });
    expect(events.filter((e) => e.type === 'step' && e.status === 'cached').length).toBeGreaterThanOrEqual(2);
    const plain = await cli(['build', '--progress', 'plain', 'ctx']);
    expect(plain.stderr).toMatch(/#\d+ \[stage-1 1\/1\] COPY hello.txt \/hello.txt\n#\d+ CACHED/);
  });

  it('a failing step exits 1 with file:line:col, the line, a caret and the last output', async () => {
    await writeFile(path.join(tmp, 'Dockerfile.bad'), 'FROM busybox:latest\nRUN echo building; echo "missing file" >&2; false\n');
    const r = await cli(['build', '-f', 'Dockerfile.bad', 'ctx']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Dockerfile.bad:2:1: error: process "/bin/sh -c echo building;');
    expect(r.stderr).toMatch(/ 2 \| RUN echo building;/);
    expect(r.stderr).toMatch(/\| \^~~~/);
    expect(r.stderr).toContain('> missing file');
  });

  it('a Dockerfile error names the file, line and column before anything runs', async () => {
    await writeFile(path.join(tmp, 'Dockerfile.typo'), 'FROM busybox:latest\nRUN echo ok\nCOPPY a b\n');
    const r = await cli(['build', '-f', 'Dockerfile.typo', 'ctx']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Dockerfile.typo:3:1');
    expect(r.stderr).toContain('COPY');
    expect(r.stderr).not.toContain('RUN echo ok\n#');
  });

  it('--call targets lists stages as BuildKit\'s targets subrequest does (behaviors/targets-list)', async () => {
    const dir = path.resolve(repoRoot, '../shared/conformance/behaviors/targets-list');
    const expected = (JSON.parse(await readFile(path.join(dir, 'case.json'), 'utf8')) as { runs: { expect: { targets: { Name: string; Base: string; Description: string; Default: boolean; Line: number }[] } }[] }).runs[0]!.expect.targets;
    const r = await runCli(['build', '--call', 'targets,format=json', '-f', path.join(dir, 'Dockerfile'), dir]);
    expect(r.code).toBe(0);
    const got = (JSON.parse(r.stdout) as { targets: { name?: string; base?: string; description?: string; default?: boolean; location: { line: number } }[] }).targets;
    expect(got.map((t) => ({ Name: t.name ?? '', Base: t.base ?? '', Description: t.description ?? '', Default: t.default ?? false, Line: t.location.line }))).toEqual(expected);
    const text = await runCli(['build', '--call', 'targets', '-f', path.join(dir, 'Dockerfile'), dir]);
    expect(text.stdout).toBe('TARGET             DESCRIPTION\nbuild              defines stage for compiling the binary\nsecond\nbinary (default)   returns the compiled binary\n');
  });
});

describe('tsbuild build - (the context from stdin, as docker build - reads it)', () => {
  const leftovers = async () => (await readdir(tmpdir())).filter((n) => n.startsWith('tsbuild-stdin-')).length;
  const indexes = async () => (await readdir(path.join(root, 'cache', 'context-index')).catch(() => [] as string[])).length;

  it('a Dockerfile alone: built with no context', async () => {
    const before = await leftovers();
    const out = path.join(tmp, 'stdin-df');
    const r = await runCli(['build', '--root', root, '--output', `type=local,dest=${out}`, '-'], { cwd: tmp, stdin: 'FROM busybox:latest\nRUN echo from stdin > /said\n' });
    expect(r.stderr).toContain('RUN echo from stdin');
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(path.join(out, 'said'), 'utf8')).toBe('from stdin\n');
    expect(await leftovers()).toBe(before);
    // COPY has nothing to copy from
    const copy = await runCli(['build', '--root', root, '-'], { cwd: tmp, stdin: 'FROM busybox:latest\nCOPY hello.txt /\n' });
    expect(copy.code).toBe(1);
    expect(copy.stderr).toMatch(/hello\.txt/);
  });

  it('a compressed tar: the context, with its .dockerignore, and -f naming the Dockerfile in it; its temp files and index go afterwards', async () => {
    const src = path.join(tmp, 'stdin-tar-src');
    await mkdir(path.join(src, 'docker'), { recursive: true });
    await writeFile(path.join(src, 'docker', 'app.Dockerfile'), 'FROM busybox:latest\nCOPY . /ctx/\nRUN ls -A /ctx | sort | tr "\\n" " " > /listing\n');
    await writeFile(path.join(src, 'kept.txt'), 'kept\n');
    await writeFile(path.join(src, 'secret.env'), 'TOKEN=1\n');
    await writeFile(path.join(src, '.dockerignore'), '*.env\n');
    await run('tar', ['-czf', path.join(tmp, 'ctx.tar.gz'), '-C', src, '.']);
    const before = await leftovers();
    const indexesBefore = await indexes();
    const out = path.join(tmp, 'stdin-tar');
    const r = await runCli(['build', '--root', root, '-f', 'docker/app.Dockerfile', '--output', `type=local,dest=${out}`, '-'], { cwd: tmp, stdin: await readFile(path.join(tmp, 'ctx.tar.gz')) });
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(path.join(out, 'listing'), 'utf8')).toBe('.dockerignore docker kept.txt ');
    expect(await readFile(path.join(out, 'ctx', 'kept.txt'), 'utf8')).toBe('kept\n');
    expect(await leftovers()).toBe(before);
    expect(await indexes()).toBe(indexesBefore);
    // a Dockerfile outside the tar is refused; stdin cannot be both
    const outside = await runCli(['build', '--root', root, '-f', '../x', '-'], { cwd: tmp, stdin: await readFile(path.join(tmp, 'ctx.tar.gz')) });
    expect(outside.code).toBe(2);
    expect(outside.stderr).toContain('must be inside the context read from stdin');
    const both = await runCli(['build', '--root', root, '-f', '-', '-'], { cwd: tmp, stdin: 'FROM scratch\n' });
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('cannot read both the build context and the Dockerfile');
    expect(await leftovers()).toBe(before);
  });
});

describe('--output compression', () => {
  it('parses compression= and compression-level= as buildx does, and rejects bad values', async () => {
    const { parseOutput } = await import('../../src/cli/commands/build.js');
    expect(parseOutput('type=oci,dest=x.tar,compression=zstd,compression-level=12', '/w')).toEqual({ type: 'oci', dest: '/w/x.tar', tar: true, compression: 'zstd', compressionLevel: 12 });
    expect(parseOutput('type=image,push=true,compression=uncompressed', '/w')).toEqual({ type: 'image', push: true, compression: 'uncompressed' });
    expect(() => parseOutput('type=oci,dest=x,compression=lz4', '/w')).toThrow(/gzip, zstd or uncompressed/);
    expect(() => parseOutput('type=oci,dest=x,compression=gzip,compression-level=12', '/w')).toThrow(/1 to 9/);
    const r = await runCli(['build', '--root', root, '--output', `type=docker,dest=${path.join(tmp, 'c.tar')},compression=bogus`, context]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/compression wants gzip, zstd or uncompressed/);
  });
});

describe('--output dest=- (standard output), as buildx writes it', () => {
  const bin = path.join(repoRoot, 'dist/cli.cjs');
  /** The built command, its stdout as bytes (dist is built by `npm test` before vitest). */
  const spawnBuild = (args: string[]) =>
    new Promise<{ code: number | null; stdout: Buffer; stderr: string }>((resolve, reject) => {
      const child = spawn(bin, ['build', '--root', root, '--progress', 'plain', ...args], { cwd: tmp, stdio: ['ignore', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      let err = '';
      child.stdout.on('data', (d: Buffer) => out.push(d));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: err }));
    });
  const tarNames = async (buf: Buffer): Promise<string[]> => {
    const names: string[] = [];
    const ex = tar.extract();
    const done = new Promise<void>((resolve, reject) => ex.on('finish', resolve).on('error', reject));
    ex.on('entry', (h, s, next) => {
      names.push(h.name);
      s.on('end', next);
      s.resume();
    });
    ex.end(buf);
    await done;
    return names;
  };

  it('-o - is a tar of the filesystem on stdout; progress stays on stderr', { timeout: 60_000 }, async () => {
    const r = await spawnBuild(['-o', '-', 'ctx']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('writing image sha256:');
    const names = await tarNames(r.stdout);
    expect(names).toEqual(expect.arrayContaining(['hello.txt', 'msg', 'bin/busybox']));
  });

  it('type=oci,dest=- and type=docker,dest=- are archives skopeo reads', { timeout: 60_000 }, async () => {
    const oci = await spawnBuild(['--output', 'type=oci,dest=-', '-t', 'stdout:oci', 'ctx']);
    expect(oci.code).toBe(0);
    expect(await tarNames(oci.stdout)).toEqual(expect.arrayContaining(['oci-layout', 'index.json']));
    await writeFile(path.join(tmp, 'from-stdout.oci.tar'), oci.stdout);
    const inspected = JSON.parse((await run('skopeo', ['inspect', '--raw', `oci-archive:${path.join(tmp, 'from-stdout.oci.tar')}`])).stdout) as { layers: unknown[] };
    expect(inspected.layers.length).toBeGreaterThan(0);
    const docker = await spawnBuild(['--output', 'type=docker,dest=-', '-t', 'stdout:docker', 'ctx']);
    expect(docker.code).toBe(0);
    await writeFile(path.join(tmp, 'from-stdout.docker.tar'), docker.stdout);
    const config = JSON.parse((await run('skopeo', ['inspect', '--config', `docker-archive:${path.join(tmp, 'from-stdout.docker.tar')}`])).stdout) as { config?: { Cmd?: string[] } };
    expect(config.config?.Cmd).toEqual(['cat', '/msg']);
  });

  it('refuses what cannot go to stdout: two outputs there, -q with it, a directory output', async () => {
    expect((await cli(['build', '-o', '-', '--output', 'type=oci,dest=-', 'ctx'])).stderr).toContain('only one --output can write to standard output');
    expect((await cli(['build', '-q', '-o', '-', 'ctx'])).stderr).toContain('-q prints the image ID on standard output');
    expect((await cli(['build', '--output', 'type=local,dest=-', 'ctx'])).stderr).toContain('type=local writes a directory');
    expect((await cli(['build', '--output', 'type=oci,tar=false,dest=-', 'ctx'])).stderr).toContain('dest=- (standard output) takes a tar only');
  });
});
