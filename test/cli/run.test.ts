import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { makeBusyboxImage, repoRoot } from '../helpers/base-images.js';
import { runCli } from '../helpers/cli.js';
import { withConfig, writeImage } from '../../src/oci/image.js';
import { digestHex } from '../../src/oci/digest.js';
import type { ImageConfig } from '../../src/oci/types.js';
import { splitAtImage } from '../../src/cli/commands/run.js';

let root: string;
let work: string;
let diffId: string;

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(tmpdir(), 'tsbuild-cli-run-'));
  work = await fs.mkdtemp(path.join(tmpdir(), 'tsbuild-cli-run-host-'));
  const { image, store } = await makeBusyboxImage(root);
  const config = await image.config();
  diffId = config.rootfs.diff_ids[0]!;
  // An image whose config sets everything `run` must honour.
  const app = await withConfig(image, (old: ImageConfig) => ({
    ...old,
    config: {
      ...old.config,
      Entrypoint: ['/bin/sh', '-c'],
      Cmd: ['echo "$GREETING from $(pwd) as $(id -u):$(id -g) home=$HOME"; exit 3'],
      Env: ['PATH=/usr/bin:/bin', 'GREETING=hello'],
      WorkingDir: '/srv/app',
      User: 'nobody',
    },
  }));
  await store!.tag('app:1', await writeImage(store!, app));
});

afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
  await fs.rm(work, { recursive: true, force: true });
});

const run = (...argv: string[]) => runCli(['run', '--root', root, ...argv]);

describe('tsbuild run', () => {
  test('exits with the command\'s exit code and streams stdout and stderr', async () => {
    const r = await run('busybox', 'sh', '-c', 'echo out; echo err >&2; exit 7');
    expect(r).toEqual({ code: 7, stdout: 'out\n', stderr: 'err\n' });
    expect((await run('busybox', 'true')).code).toBe(0);
  });

  test('-i passes standard input to the command (and without it the command reads nothing); -t is refused', async () => {
    const input = 'first line\nsecond line\n'.repeat(2000); // more than a pipe holds
    // in process: the stream is copied into a pipe
    const r = await runCli(['run', '--root', root, '-i', 'busybox', 'sh', '-c', 'tr a-z A-Z | tail -n 1; wc -l'], { stdin: input });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('SECOND LINE\n0\n'); // tr read all of it; nothing was left for wc
    expect(r.code).toBe(0);
    const counted = await runCli(['run', '--root', root, '--interactive', 'busybox', 'wc', '-c'], { stdin: input });
    expect(counted.stdout.trim()).toBe(String(Buffer.byteLength(input)));
    const without = await runCli(['run', '--root', root, 'busybox', 'wc', '-c'], { stdin: input });
    expect(without.stdout.trim()).toBe('0');
    // the command as a user runs it: the command reads tsbuild's own standard input, here a file
    // (so /dev/stdin opens, and the process could seek it)
    const file = path.join(work, 'input.txt');
    await fs.writeFile(file, input);
    const bin = path.join(repoRoot, 'dist/cli.cjs');
    const direct = spawnSync('sh', ['-c', `"$0" run --root "$1" -i busybox sh -c 'wc -c < /dev/stdin' < "$2"`, bin, root, file], { encoding: 'utf8' });
    expect(direct.stderr).toBe('');
    expect(direct.stdout.trim()).toBe(String(Buffer.byteLength(input)));
    const tty = await runCli(['run', '--root', root, '-it', 'busybox', 'sh']);
    expect(tty.code).toBe(2);
    expect(tty.stderr).toContain('-t/--tty is not supported');
  });

  test('a missing command exits 127, like docker', async () => {
    const r = await run('busybox', '/no/such/program');
    expect(r.code).toBe(127);
    expect(r.stderr).toContain('/no/such/program');
  });

  test('options stop at the image: later flags belong to the command', async () => {
    const r = await run('-e', 'X=1', 'busybox', 'sh', '-c', 'echo "$X $0 $1"', '-e', '--rm');
    expect(r.stdout).toBe('1 -e --rm\n');
    expect(splitAtImage(['-e', 'A=1', '--env=B=2', '-eC=3', '--rm', 'img', '-v', 'x'])).toEqual({
      options: ['-e', 'A=1', '--env=B=2', '-eC=3', '--rm'],
      image: 'img',
      command: ['-v', 'x'],
    });
  });

  test('Entrypoint, Cmd, Env, WorkingDir and User come from the image config', async () => {
    const r = await run('app:1');
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('hello from /srv/app as 65534:65534 home=/nonexistent\n');
    expect(r.code).toBe(3);
  });

  test('COMMAND replaces Cmd but keeps the Entrypoint; --entrypoint replaces both', async () => {
    let r = await run('app:1', 'echo replaced $GREETING');
    expect(r).toMatchObject({ code: 0, stdout: 'replaced hello\n' });
    r = await run('--entrypoint', '/bin/echo', 'app:1', 'a', 'b');
    expect(r).toMatchObject({ code: 0, stdout: 'a b\n' });
    r = await run('--entrypoint', '', 'app:1');
    expect(r.code).toBe(125);
    expect(r.stderr).toContain('no command specified');
  });

  test('-e adds and overrides variables, KEY alone passes this environment\'s value, --env-file reads a file', async () => {
    const envFile = path.join(work, 'vars.env');
    await fs.writeFile(envFile, '# comment\nFROM_FILE=file value\nGREETING=from file\n\n');
    const r = await runCli(
      ['run', '--root', root, '--env-file', envFile, '-e', 'GREETING=bye', '--env', 'NEW=1', '-e', 'PASSED', '-e', 'UNSET_HERE', 'app:1',
        'echo "$GREETING|$NEW|$PASSED|${UNSET_HERE-unset}|$FROM_FILE|$PATH"'],
      { env: { PASSED: 'from host', UNSET_HERE: undefined } },
    );
    expect(r.stdout).toBe('bye|1|from host|unset|file value|/usr/bin:/bin\n');
  });

  test('-w and -u override WorkingDir and User; a missing working directory is created', async () => {
    let r = await run('-w', '/made/here', '-u', '0:10', 'app:1', 'echo "$(pwd) $(id -u):$(id -g) $HOME"');
    expect(r).toMatchObject({ code: 0, stdout: '/made/here 0:10 /root\n' });
    r = await run('-u', '4242', 'busybox', 'id', '-u');
    expect(r.stdout).toBe('4242\n');
    r = await run('-u', 'nosuchuser', 'busybox', 'true');
    expect(r.code).toBe(125);
    expect(r.stderr).toContain('unable to find user nosuchuser');
    r = await run('-w', 'relative', 'busybox', 'true');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('absolute');
  });

  test('-v binds a host directory read-write: writes land on the host', async () => {
    const dir = path.join(work, 'rw');
    await fs.mkdir(dir);
    await fs.writeFile(path.join(dir, 'in'), 'from host\n');
    const r = await run('-v', `${dir}:/data`, 'busybox', 'sh', '-c', 'cat /data/in; echo from sandbox > /data/out');
    expect(r).toMatchObject({ code: 0, stdout: 'from host\n' });
    expect(await fs.readFile(path.join(dir, 'out'), 'utf8')).toBe('from sandbox\n');
  });

  test('-v HOST:CTR:ro binds read-only, and relative host paths resolve from the working directory', async () => {
    const dir = path.join(work, 'ro');
    await fs.mkdir(dir);
    await fs.writeFile(path.join(dir, 'in'), 'readable\n');
    const r = await runCli(['run', '--root', root, '-v', './ro:/data:ro', 'busybox', 'sh', '-c', 'cat /data/in; echo x > /data/new'], { cwd: work });
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe('readable\n');
    expect(r.stderr).toMatch(/Read-only file system/);
    expect(await fs.readdir(dir)).toEqual(['in']);
  });

  test('bad volumes are clear errors', async () => {
    let r = await run('-v', path.join(work, 'nope') + ':/data', 'busybox', 'true');
    expect(r.code).toBe(125);
    expect(r.stderr).toContain(`host path ${path.join(work, 'nope')} does not exist`);
    r = await run('-v', 'named:/data', 'busybox', 'true');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('named volumes are not supported');
    r = await run('-v', `${work}:/data:z`, 'busybox', 'true');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown option "z"');
  });

  test('--network none sees only lo; host sees the host\'s interfaces', async () => {
    let r = await run('--network', 'none', 'busybox', 'ls', '/sys/class/net');
    expect(r).toMatchObject({ code: 0, stdout: 'lo\n' });
    r = await run('--network', 'none', 'busybox', 'sh', '-c', 'ip -o link show up | cut -d: -f2');
    expect(r.stdout.trim()).toBe('lo');
    r = await run('--network', 'host', 'busybox', 'ls', '/sys/class/net');
    expect(r.stdout.trim().split(/\s+/).sort()).toEqual((await fs.readdir('/sys/class/net')).sort());
    r = await run('--network', 'bridge', 'busybox', 'true');
    expect(r.code).toBe(2);
  });

  test('-h sets the hostname; HOSTNAME is set', async () => {
    const r = await run('-h', 'box1', 'busybox', 'sh', '-c', 'echo $(hostname) $HOSTNAME');
    expect(r.stdout).toBe('box1 box1\n');
  });

  test('the writable layer is thrown away; the image layers are shared snapshots', async () => {
    let r = await run('--rm', 'busybox', 'sh', '-c', 'echo x > /tmp/left; echo y > /bin/new');
    expect(r.code).toBe(0);
    r = await run('busybox', 'sh', '-c', 'ls /tmp /bin/new 2>&1; true');
    expect(r.stdout).toContain('/bin/new: No such file');
    expect(r.stdout).not.toContain('left');
    expect(await fs.readdir(path.join(root, 'runtime', 'runs'))).toEqual([]);
    const snapshot = path.join(root, 'snapshots', digestHex(diffId as never).slice(0, 24));
    expect((await fs.stat(path.join(snapshot, 'bin', 'busybox'))).isFile()).toBe(true);
    await expect(fs.stat(path.join(snapshot, 'tmp', 'left'))).rejects.toThrow();
  });

  test('an unknown image names the image and `tsbuild images`', async () => {
    const r = await run('no-such-image:2', 'true');
    expect(r.code).toBe(125);
    expect(r.stderr).toContain('no-such-image:2');
    expect(r.stderr).toContain('tsbuild images');
    const near = await run('busybx', 'true');
    expect(near.stderr).toContain('did you mean docker.io/library/busybox:latest');
  });

  test('--help prints usage; no image is a usage error', async () => {
    const r = await runCli(['run', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: tsbuild run \[OPTIONS\] IMAGE \[COMMAND\] \[ARG\.\.\.\]/);
    const none = await runCli(['run', '--root', root]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('requires at least 1 argument');
  });
});
