import { execFileSync } from 'node:child_process';
import { cp, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRuntime, MountError, RuntimeUnavailableError, type MountSpec, type Runtime } from '../../src/runtime/index.js';
import { makeBusyboxRootfs, tempDir } from '../helpers/rootfs.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
let base: string;
let rt: Runtime;

beforeAll(async () => {
  tmp = await tempDir();
  base = await makeBusyboxRootfs(join(tmp.dir, 'base'));
  rt = createRuntime({ stateDir: join(tmp.dir, 'state') });
});
afterAll(() => tmp.cleanup());

async function tarBytes(s: Readable): Promise<Buffer> {
  const c: Buffer[] = [];
  for await (const x of s) c.push(x as Buffer);
  return Buffer.concat(c);
}
const names = (t: Buffer) => execFileSync('tar', ['-t'], { input: t, encoding: 'utf8' }).split('\n').filter(Boolean);

async function run(cmd: string, mounts: MountSpec[], extra: { user?: string } = {}) {
  return rt.run({ rootfs: { lowerDirs: [base] }, env: ['PATH=/bin'], mounts, args: ['/bin/sh', '-c', cmd], ...extra });
}

/** Every file under dir, with its bytes. */
async function allFiles(dir: string): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(await readFile(join(e.parentPath, e.name)));
  }
  return out;
}

describe('mounts', () => {
  it('a cache mount keeps files across runs and stays out of the layer', async () => {
    const cache: MountSpec = { type: 'cache', id: 'apt', target: '/var/cache/apt' };
    const a = await run('echo first > /var/cache/apt/kept; echo out > /made', [cache]);
    expect(a.exitCode, a.lastOutput).toBe(0);
    expect(names(await tarBytes(a.diff()))).toEqual(['made']);
    await a.dispose();
    const b = await run('cat /var/cache/apt/kept', [cache]);
    expect(b.lastOutput).toBe('first\n');
    expect(names(await tarBytes(b.diff()))).toEqual([]);
    await b.dispose();
    // Another id is another directory.
    const c = await run('ls /var/cache/apt | wc -l', [{ type: 'cache', id: 'other', target: '/var/cache/apt' }]);
    expect(c.lastOutput.trim()).toBe('0');
    await c.dispose();
  });

  it('cache sharing: locked runs one at a time, private gives concurrent runs their own dir', async () => {
    const locked: MountSpec = { type: 'cache', id: 'lk', target: '/c', sharing: 'locked' };
    const cmd = 'echo start $(date +%s%N) >> /c/log; sleep 0.4; echo end $(date +%s%N) >> /c/log';
    const [x, y] = await Promise.all([run(cmd, [locked]), run(cmd, [locked])]);
    await x.dispose();
    await y.dispose();
    const log = await run('cat /c/log', [locked]);
    await log.dispose();
    const kinds = log.lastOutput.trim().split('\n').map((l) => l.split(' ')[0]);
    expect(kinds).toEqual(['start', 'end', 'start', 'end']);

    const priv: MountSpec = { type: 'cache', id: 'pv', target: '/c', sharing: 'private', uid: 1000, gid: 1000, mode: 0o700 };
    const [p, q] = await Promise.all([run('echo $$ > /c/mine; sleep 0.3; ls /c | wc -l; stat -c "%u %a" /c', [priv], { user: 'app' }), run('echo $$ > /c/mine; sleep 0.3; ls /c | wc -l', [priv])]);
    expect(p.lastOutput).toBe('1\n1000 700\n');
    expect(q.lastOutput).toBe('1\n');
    await p.dispose();
    await q.dispose();
  });

  it('tmpfs mounts are tmpfs, sized, and not in the layer', async () => {
    const r = await run('grep " /scratch " /proc/mounts; echo x > /scratch/f', [{ type: 'tmpfs', target: '/scratch', size: 1 << 20 }]);
    expect(r.lastOutput).toMatch(/^tmpfs \/scratch tmpfs rw.*size=1024k/);
    expect(names(await tarBytes(r.diff()))).toEqual([]);
    await r.dispose();
  });

  it('a secret is readable in the step and written nowhere on disk', async () => {
    const secret = `s3cr3t-${Math.random().toString(36).slice(2)}`;
    const r = await run('cat /run/secrets/tok; echo; stat -c "%a %u %g" /run/secrets/tok; echo "env:$TOKEN"; cat /run/secrets/tok > /dev/null', [
      { type: 'secret', id: 'tok', data: Buffer.from(secret), target: '/run/secrets/tok', env: 'TOKEN', uid: 1000, gid: 29, mode: 0o440 },
    ]);
    expect(r.lastOutput).toBe(`${secret}\n440 1000 29\nenv:${secret}\n`);
    expect(names(await tarBytes(r.diff()))).toEqual([]);
    expect((await allFiles(r.changesDir!)).some((b) => b.includes(secret))).toBe(false);
    expect((await allFiles(join(tmp.dir, 'state'))).some((b) => b.includes(secret))).toBe(false);
    await r.dispose();
    await expect(run('true', [{ type: 'secret', id: 'missing', data: undefined, required: true }])).rejects.toBeInstanceOf(MountError);
  });

  it('bind mounts are read-only unless rw, and rw writes are discarded', async () => {
    const src = join(tmp.dir, 'ctx');
    await mkdir(src, { recursive: true });
    await writeFile(join(src, 'in.txt'), 'from host');
    const ro = await run('cat /src/in.txt; echo; touch /src/new 2>/dev/null || echo read-only', [{ type: 'bind', source: src, target: '/src' }]);
    expect(ro.lastOutput).toBe('from host\nread-only\n');
    expect(names(await tarBytes(ro.diff()))).toEqual([]);
    await ro.dispose();
    const rw = await run('echo changed > /src/in.txt && touch /src/new && cat /src/in.txt', [{ type: 'bind', source: src, target: '/src', readwrite: true }]);
    expect(rw.lastOutput).toBe('changed\n');
    expect(await readFile(join(src, 'in.txt'), 'utf8')).toBe('from host');
    await expect(stat(join(src, 'new'))).rejects.toThrow();
    await rw.dispose();
  });

  it('an ssh mount binds the given agent socket and sets SSH_AUTH_SOCK', async () => {
    const { createServer } = await import('node:net');
    const sock = join(tmp.dir, 'agent.sock');
    const server = createServer((c) => c.end());
    await new Promise<void>((r) => server.listen(sock, r));
    try {
      // busybox has no unix-socket client: check that the agent's socket is there, as a socket.
      const r = await run('echo $SSH_AUTH_SOCK; stat -c %F $SSH_AUTH_SOCK', [{ type: 'ssh', socket: sock }]);
      expect(r.lastOutput).toBe('/run/buildkit/ssh_agent.0\nsocket\n');
      expect(names(await tarBytes(r.diff()))).toEqual([]);
      await r.dispose();
    } finally {
      server.close();
    }
  });
});

describe('without the helper', () => {
  it('installing with a failing compiler succeeds, and RUN then says why it cannot run', async () => {
    const pkg = join(tmp.dir, 'pkg');
    await mkdir(join(pkg, 'scripts'), { recursive: true });
    await mkdir(join(pkg, 'native'));
    await cp('scripts/build-native.mjs', join(pkg, 'scripts', 'build-native.mjs'));
    await cp('native/tsbuild-sandbox.c', join(pkg, 'native', 'tsbuild-sandbox.c'));
    const out = execFileSync(process.execPath, [join(pkg, 'scripts', 'build-native.mjs')], { env: { ...process.env, CC: 'false' }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    void out;
    const helperPath = join(pkg, 'native', 'build', 'tsbuild-sandbox');
    await expect(stat(helperPath)).rejects.toThrow();
    const broken = createRuntime({ stateDir: join(tmp.dir, 'state2'), helperPath });
    const p = broken.run({ rootfs: { lowerDirs: [base] }, args: ['true'] });
    await expect(p).rejects.toBeInstanceOf(RuntimeUnavailableError);
    await expect(p).rejects.toThrow(/C compiler.*runc or crun/s);
  });
});
