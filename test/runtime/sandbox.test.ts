import { existsSync } from 'node:fs';
import { readdir, readFile, symlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRuntime, SandboxAbortedError, SandboxTimeoutError, shellCommand, UserResolutionError, type RunSpec, type Runtime } from '../../src/runtime/index.js';
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

async function sh(cmd: string, extra: Partial<RunSpec> = {}) {
  let stdout = '';
  let stderr = '';
  const r = await rt.run({
    rootfs: { lowerDirs: [base] },
    env: ['PATH=/bin'],
    args: shellCommand(['/bin/sh', '-c'], cmd),
    onStdout: (b) => { stdout += String(b); },
    onStderr: (b) => { stderr += String(b); },
    ...extra,
  });
  return { r, stdout, stderr };
}

/** Host processes whose command line is exactly `argv`. */
async function hostProcesses(argv: string[]): Promise<number[]> {
  const want = argv.join('\0');
  const out: number[] = [];
  for (const p of await readdir('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    const cmd = await readFile(`/proc/${p}/cmdline`, 'utf8').catch(() => '');
    if (cmd.replace(/\0$/, '') === want) out.push(Number(p));
  }
  return out;
}

describe('sandbox process', () => {
  it('runs under a reaper as pid 1 and sees no host process', async () => {
    const { r, stdout } = await sh('echo $$; echo $PPID; ls /proc | grep -E "^[0-9]+$" | sort -n | tr "\\n" " "');
    await r.dispose();
    expect(r.exitCode).toBe(0);
    const [self, parent, pids] = stdout.split('\n');
    expect(self).toBe('2');
    expect(parent).toBe('1');
    const seen = pids!.trim().split(' ').map(Number);
    expect(seen[0]).toBe(1);
    expect(Math.max(...seen)).toBeLessThan(10);
  });

  it('has its own hostname', async () => {
    const { r, stdout } = await sh('hostname; cat /etc/hostname 2>/dev/null; grep step-host /etc/hosts', { hostname: 'step-host' });
    await r.dispose();
    expect(stdout.split('\n')[0]).toBe('step-host');
    expect(stdout).toContain('127.0.0.1');
    expect(hostname()).not.toBe('step-host');
  });

  it('resolves USER from the image passwd and group files', async () => {
    const cases: [string | undefined, string][] = [
      [undefined, '0 0 0'],
      ['app', '1000 1000 1000 10 29'],
      ['app:audio', '1000 29 29'],
      ['1000:10', '1000 10 10'],
      ['4242', '4242 0 0'],
      ['daemon', '1 1 1 29'],
    ];
    for (const [user, want] of cases) {
      const { r, stdout } = await sh('echo $(id -u) $(id -g) $(id -G)', user === undefined ? {} : { user });
      await r.dispose();
      expect(stdout.trim(), `USER ${user}`).toBe(want);
    }
    await expect(sh('true', { user: 'nosuchuser' })).rejects.toBeInstanceOf(UserResolutionError);
    await expect(sh('true', { user: 'app:nosuchgroup' })).rejects.toThrow(/unable to find group nosuchgroup/);
  });

  it('creates a missing working directory, root-owned', async () => {
    const { r, stdout } = await sh('pwd; stat -c "%u %a" /w/a/b', { cwd: '/w/a/b', user: 'app' });
    await r.dispose();
    expect(stdout).toBe('/w/a/b\n0 755\n');
  });

  it('passes exactly the given environment, and HOME from passwd when it has none (as runc)', async () => {
    const { r, stdout } = await sh('env | sort', { env: ['PATH=/bin', 'FOO=bar baz', 'EMPTY='] });
    await r.dispose();
    expect(stdout.split('\n').filter(Boolean).filter((l) => !l.startsWith('PWD=') && !l.startsWith('SHLVL='))).toEqual(['EMPTY=', 'FOO=bar baz', 'HOME=/root', 'PATH=/bin']);
    const given = await sh('echo $HOME', { env: ['PATH=/bin', 'HOME=/elsewhere'] });
    await given.r.dispose();
    expect(given.stdout).toBe('/elsewhere\n');
  });

  it('returns exit codes, signals and exec failures', async () => {
    const a = await sh('echo last words >&2; exit 42');
    await a.r.dispose();
    expect(a.r.exitCode).toBe(42);
    expect(a.r.lastOutput).toContain('last words');
    const b = await sh('kill -SEGV $$');
    await b.r.dispose();
    expect(b.r.exitCode).toBe(139);
    expect(b.r.signal).toBe('SIGSEGV');
    const c = await rt.run({ rootfs: { lowerDirs: [base] }, env: ['PATH=/bin'], args: ['no-such-binary', 'x'] });
    await c.dispose();
    expect(c.exitCode).toBe(127);
    expect(c.lastOutput).toMatch(/exec no-such-binary: No such file or directory/);
  });

  it('streams stdout and stderr live and in order', async () => {
    const events: [string, string, number][] = [];
    const t0 = performance.now();
    const r = await rt.run({
      rootfs: { lowerDirs: [base] },
      env: ['PATH=/bin'],
      args: ['/bin/sh', '-c', 'echo one; sleep 0.3; echo two >&2; sleep 0.3; echo three; sleep 0.6'],
      onStdout: (b) => events.push(['out', String(b), performance.now() - t0]),
      onStderr: (b) => events.push(['err', String(b), performance.now() - t0]),
    });
    const end = performance.now() - t0;
    await r.dispose();
    expect(events.map(([s, d]) => `${s}:${d}`)).toEqual(['out:one\n', 'err:two\n', 'out:three\n']);
    // "three" arrived while the command was still sleeping, not at its end.
    expect(end - events[2]![2]).toBeGreaterThan(300);
  });

  it('abort kills the whole process tree promptly', async () => {
    const n = String(100000 + Math.floor(Math.random() * 800000));
    const ac = new AbortController();
    const p = sh(`sleep ${n} & sleep ${n} & sleep ${n}`, { signal: ac.signal });
    for (let i = 0; i < 100 && (await hostProcesses(['sleep', n])).length < 2; i++) await new Promise((r) => setTimeout(r, 50));
    expect((await hostProcesses(['sleep', n])).length).toBeGreaterThanOrEqual(2);
    const t0 = performance.now();
    ac.abort(new Error('user cancelled'));
    await expect(p).rejects.toBeInstanceOf(SandboxAbortedError);
    expect(performance.now() - t0).toBeLessThan(3000);
    expect(await hostProcesses(['sleep', n])).toEqual([]);
  });

  it('times out and kills the namespace', async () => {
    const n = String(100000 + Math.floor(Math.random() * 800000));
    await expect(sh(`sleep ${n}`, { timeoutMs: 300 })).rejects.toBeInstanceOf(SandboxTimeoutError);
    expect(await hostProcesses(['sleep', n])).toEqual([]);
  });

  it('network none has only loopback, up; default shares the host network', async () => {
    const none = await sh('cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d " "; ls /sys/class/net; cat /sys/class/net/lo/flags', { network: 'none' });
    await none.r.dispose();
    // Only lo, and up (IFF_UP | IFF_LOOPBACK = 0x9).
    expect(none.stdout).toBe('lo\nlo\n0x9\n');
    const host = await sh('cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d " "');
    await host.r.dispose();
    const hostIfs = (await readFile('/proc/net/dev', 'utf8')).split('\n').slice(2).map((l) => l.split(':')[0]!.trim()).filter(Boolean);
    expect(host.stdout.trim().split('\n').sort()).toEqual(hostIfs.sort());
  });

  it('has /dev, /proc, read-only /sys and the host resolv.conf', async () => {
    const { r, stdout } = await sh('ls /dev | tr "\\n" " "; echo; touch /sys/x 2>/dev/null || echo sys-ro; cat /etc/resolv.conf; head -c 4 /dev/urandom | wc -c; echo x > /dev/null && echo null-ok');
    await r.dispose();
    for (const d of ['null', 'zero', 'full', 'random', 'urandom', 'tty', 'pts', 'shm', 'fd', 'ptmx']) expect(stdout.split('\n')[0]!.split(' ')).toContain(d);
    expect(stdout).toContain('sys-ro');
    expect(stdout).toContain(await readFile('/etc/resolv.conf', 'utf8'));
    expect(stdout).toMatch(/\n4\nnull-ok\n$/);
  });

  it('writes to / land in the upper dir, never on the host', async () => {
    const name = `tsbuild-escape-${process.pid}`;
    const { r } = await sh(`echo x > /${name}; echo y > /tmp/${name}`);
    expect(existsSync(`/${name}`)).toBe(false);
    expect(existsSync(`/tmp/${name}`)).toBe(false);
    expect(await readFile(join(r.changesDir!, name), 'utf8')).toBe('x\n');
    await r.dispose();
  });

  it('symlinks in the rootfs cannot lead cwd or mount targets out of it', async () => {
    const t = await tempDir();
    try {
      const root = await makeBusyboxRootfs(join(t.dir, 'root'));
      await symlink('../../../../../../etc', join(root, 'up'));
      await symlink('/etc', join(root, 'abs'));
      const name = `tsbuild-escape-${process.pid}`;
      const r = await rt.run({
        rootfs: { lowerDirs: [root] },
        env: ['PATH=/bin'],
        cwd: `/up/${name}-cwd`,
        mounts: [{ type: 'tmpfs', target: `/abs/${name}-mnt` }],
        args: ['/bin/sh', '-c', 'pwd; ls -d /etc/*-cwd /etc/*-mnt'],
      });
      expect(r.exitCode).toBe(0);
      expect(r.lastOutput).toContain(`/etc/${name}-cwd`);
      expect(existsSync(`/etc/${name}-cwd`)).toBe(false);
      expect(existsSync(`/etc/${name}-mnt`)).toBe(false);
      expect(existsSync(join(r.changesDir!, 'etc', `${name}-cwd`))).toBe(true);
      await r.dispose();
    } finally {
      await t.cleanup();
    }
  });

  it('runs over a plain directory root', async () => {
    const t = await tempDir();
    try {
      const root = await makeBusyboxRootfs(join(t.dir, 'root'));
      const r = await rt.run({ rootfs: { dir: root }, env: ['PATH=/bin'], args: ['/bin/sh', '-c', 'echo kept > /kept'] });
      expect(r.exitCode).toBe(0);
      expect(await readFile(join(root, 'kept'), 'utf8')).toBe('kept\n');
      expect(() => r.diff()).toThrow(/no diff/);
      await r.dispose();
    } finally {
      await t.cleanup();
    }
  });
});
