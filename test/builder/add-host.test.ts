/**
 * `--add-host` (docker build / buildx): extra /etc/hosts lines for RUN steps, part of each RUN's
 * cache key; and `tsbuild run --add-host`. Real builds on the busybox fixture, real sandboxes.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build } from '../../src/builder/build.js';
import type { BuildOptions, BuildResult, StepResult } from '../../src/builder/options.js';
import { parseBuildArgv } from '../../src/cli/commands/build.js';
import { parseAddHost } from '../../src/runtime/spec.js';
import { makeBusyboxImage } from '../helpers/base-images.js';
import { runCli } from '../helpers/cli.js';

/** A RUN step's /etc/hosts before --add-host lines (its hostname is BuildKit's, buildkitsandbox). */
const DEFAULT_LINES = ['127.0.0.1\tlocalhost buildkitsandbox', '::1\tlocalhost ip6-localhost ip6-loopback'];

let tmp: string;
let root: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'tsbuild-add-host-'));
  root = path.join(tmp, 'root');
  await makeBusyboxImage(root);
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

let n = 0;
async function context(dockerfile: string): Promise<string> {
  const dir = path.join(tmp, `ctx-${++n}`);
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'Dockerfile'), dockerfile);
  return dir;
}

/** Builds to a fresh local dir; returns the result, the RUN step and the dir. */
async function buildLocal(ctx: string, extra: Partial<BuildOptions> = {}): Promise<{ result: BuildResult; run: StepResult; out: string }> {
  const out = path.join(tmp, `out-${++n}`);
  const result = await build({ context: ctx, root, env: {}, outputs: [{ type: 'local', dest: out }], ...extra });
  const runs = result.steps.filter((s) => / RUN /.test(s.name));
  expect(runs).toHaveLength(1);
  return { result, run: runs[0]!, out };
}

const CAT_HOSTS = 'FROM busybox:latest\nRUN cat /etc/hosts > /hosts\n';

describe('build({ addHosts })', () => {
  it('appends <ip>\\t<host> lines after the default ones, in order, IPv6 normalized', { timeout: 120_000 }, async () => {
    const ctx = await context(CAT_HOSTS);
    const { out } = await buildLocal(ctx, {
      addHosts: [
        { host: 'db.internal', ip: '10.1.2.3' },
        { host: 'v6', ip: '[0:0::0001]' },
        { host: 'gw', ip: 'host-gateway' },
        { host: 'db.internal', ip: '10.1.2.4' },
      ],
    });
    const lines = (await readFile(path.join(out, 'hosts'), 'utf8')).split('\n');
    expect(lines).toEqual([...DEFAULT_LINES, '10.1.2.3\tdb.internal', '::1\tv6', '127.0.0.1\tgw', '10.1.2.4\tdb.internal', '']);
  });

  it('a RUN without network (--network none, RUN --network=none) still gets the lines', { timeout: 120_000 }, async () => {
    const ctx = await context('FROM busybox:latest\nRUN --network=none grep -w registry.example /etc/hosts > /found\n');
    const { out } = await buildLocal(ctx, { network: 'none', addHosts: [{ host: 'registry.example', ip: '10.7.7.7' }] });
    expect(await readFile(path.join(out, 'found'), 'utf8')).toBe('10.7.7.7\tregistry.example\n');
  });

  it('is part of the RUN key: same list cached, changed list re-run, none keeps its own key', { timeout: 180_000 }, async () => {
    const ctx = await context('FROM busybox:latest\nRUN cat /etc/hosts > /hosts && echo ran\n');
    const a = await buildLocal(ctx, { addHosts: [{ host: 'h', ip: '10.0.0.1' }] });
    expect(a.run.status).toBe('executed');

    const same = await buildLocal(ctx, { addHosts: [{ host: 'h', ip: '10.0.0.1' }] });
    expect(same.run.status).toBe('cached');
    expect(same.run.key).toBe(a.run.key);
    expect((await readFile(path.join(same.out, 'hosts'), 'utf8')).endsWith('10.0.0.1\th\n')).toBe(true);

    const changed = await buildLocal(ctx, { addHosts: [{ host: 'h', ip: '10.0.0.2' }] });
    expect(changed.run.status).toBe('executed');
    expect(changed.run.key).not.toBe(a.run.key);
    expect(changed.run.reason).toContain('add-host');
    expect((await readFile(path.join(changed.out, 'hosts'), 'utf8')).endsWith('10.0.0.2\th\n')).toBe(true);

    // Written differently, the same mapping: the same key.
    const spelled = await buildLocal(ctx, { addHosts: parseAddHost('h=[10.0.0.2]') });
    expect(spelled.run.status).toBe('cached');
    expect(spelled.run.key).toBe(changed.run.key);

    const none = await buildLocal(ctx);
    expect(none.run.status).toBe('executed');
    expect([a.run.key, changed.run.key]).not.toContain(none.run.key);
    expect((await readFile(path.join(none.out, 'hosts'), 'utf8')).split('\n')).toEqual([...DEFAULT_LINES, '']);
    const empty = await buildLocal(ctx, { addHosts: [] });
    expect(empty.run.status).toBe('cached');
    expect(empty.run.key).toBe(none.run.key);

    // Back to the first list: its record is still there.
    const again = await buildLocal(ctx, { addHosts: [{ host: 'h', ip: '10.0.0.1' }] });
    expect(again.run.status).toBe('cached');
    expect(again.run.key).toBe(a.run.key);
  });

  it('leaves the keys of steps that are not RUN alone', { timeout: 120_000 }, async () => {
    const ctx = await context('FROM busybox:latest\nCOPY Dockerfile /df\nWORKDIR /w\n');
    const plain = await build({ context: ctx, root, env: {} });
    const hosts = await build({ context: ctx, root, env: {}, addHosts: [{ host: 'h', ip: '10.9.9.9' }] });
    expect(hosts.steps.map((s) => s.key)).toEqual(plain.steps.map((s) => s.key));
    expect(hosts.executedSteps).toBe(0);
  });

  it('rejects a bad entry before building, naming it', async () => {
    const ctx = await context(CAT_HOSTS);
    await expect(build({ context: ctx, root, env: {}, addHosts: [{ host: 'ok', ip: '1.2.3.4' }, { host: 'bad', ip: '1.2.3.999' }] })).rejects.toMatchObject({
      code: 'TSBUILD_INVALID_HOST',
      message: expect.stringContaining('"1.2.3.999" is not an IP address'),
    });
    await expect(build({ context: ctx, root, env: {}, addHosts: [{ host: 'two names', ip: '1.2.3.4' }] })).rejects.toMatchObject({
      code: 'TSBUILD_INVALID_HOST',
      message: expect.stringContaining('"two names"'),
    });
    await expect(build({ context: ctx, root, env: {}, addHosts: [{ host: '', ip: '1.2.3.4' }] })).rejects.toMatchObject({ code: 'TSBUILD_INVALID_HOST' });
  });
});

describe('parseAddHost: the forms docker and buildx accept', () => {
  it.each([
    ['db:10.0.0.1', [['db', '10.0.0.1']]],
    ['db=10.0.0.1', [['db', '10.0.0.1']]],
    ['db:::1', [['db', '::1']]],
    ['db=::1', [['db', '::1']]],
    ['db:[::1]', [['db', '::1']]],
    ['db=[2001:DB8::0:1]', [['db', '2001:db8::1']]],
    ['db:[10.0.0.1]', [['db', '10.0.0.1']]],
    ['db:::ffff:10.0.0.1', [['db', '10.0.0.1']]],
    ['db=10.0.0.1,::1', [['db', '10.0.0.1'], ['db', '::1']]],
    ['host.docker.internal:host-gateway', [['host.docker.internal', '127.0.0.1']]],
    ['a:b=10.0.0.1', [['a:b', '10.0.0.1']]],
  ])('%s', (text, want) => {
    expect(parseAddHost(text)).toEqual(want.map(([host, ip]) => ({ host, ip })));
  });

  it.each([
    ['db', 'want host:ip or host=ip'],
    ['db:', 'want host:ip or host=ip'],
    [':10.0.0.1', 'want host:ip or host=ip'],
    ['=10.0.0.1', 'want host:ip or host=ip'],
    ['db:10.0.0', '"10.0.0" is not an IP address'],
    ['db:010.0.0.1', '"010.0.0.1" is not an IP address'],
    ['db:256.0.0.1', '"256.0.0.1" is not an IP address'],
    ['db:fe80::1%eth0', 'is not an IP address'],
    ['db:1::2::3', '"1::2::3" is not an IP address'],
    ['db:example.com', '"example.com" is not an IP address'],
    ['db=10.0.0.1,', '"" is not an IP address'],
    ['d b:10.0.0.1', 'contains whitespace'],
    ['d#b:10.0.0.1', 'contains whitespace or #'],
  ])('%s is refused', (text, why) => {
    expect(() => parseAddHost(text)).toThrow(why);
    expect(() => parseAddHost(text)).toThrow(`invalid host ${JSON.stringify(text)}`);
  });
});

describe('tsbuild build --add-host', () => {
  it('parses repeated flags into addHosts, in order', () => {
    const p = parseBuildArgv(['--add-host', 'a:10.0.0.1', '--add-host=b=::1', '--add-host', 'c:[::2]', '.'], { cwd: tmp, env: {} });
    expect(p.options.addHosts).toEqual([
      { host: 'a', ip: '10.0.0.1' },
      { host: 'b', ip: '::1' },
      { host: 'c', ip: '::2' },
    ]);
    expect(parseBuildArgv(['.'], { cwd: tmp, env: {} }).options.addHosts).toBeUndefined();
  });

  it('a bad value is a usage error naming it', async () => {
    const ctx = await context(CAT_HOSTS);
    for (const [bad, why] of [
      ['db:not-an-ip', '"not-an-ip" is not an IP address'],
      ['db', 'want host:ip or host=ip'],
      [':1.2.3.4', 'want host:ip or host=ip'],
    ] as const) {
      const r = await runCli(['build', '--root', root, '--add-host', bad, ctx], { cwd: tmp });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`--add-host: invalid host ${JSON.stringify(bad)}`);
      expect(r.stderr).toContain(why);
    }
  });

  it('builds with the mapping; --help lists the flag', { timeout: 120_000 }, async () => {
    const ctx = await context(CAT_HOSTS);
    const out = path.join(tmp, `cli-out-${++n}`);
    const r = await runCli(['build', '--root', root, '--progress', 'plain', '--add-host', 'cache.local:192.168.7.7', '--add-host', 'v6.local=::1', '-o', `type=local,dest=${out}`, ctx], { cwd: tmp });
    expect(r.stderr).not.toContain('ERROR');
    expect(r.code).toBe(0);
    expect((await readFile(path.join(out, 'hosts'), 'utf8')).split('\n')).toEqual([...DEFAULT_LINES, '192.168.7.7\tcache.local', '::1\tv6.local', '']);
    const help = await runCli(['build', '--help']);
    expect(help.stdout).toMatch(/--add-host host:ip +Add a custom host-to-IP mapping for RUN steps \(repeatable\)/);
  });
});

describe('tsbuild run --add-host', () => {
  it('the command sees the extra lines; a bad value is a usage error', { timeout: 60_000 }, async () => {
    const r = await runCli(['run', '--root', root, '--add-host', 'db:10.4.4.4', '--add-host', 'gw=host-gateway', '-h', 'box', 'busybox:latest', 'cat', '/etc/hosts']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')).toEqual(['127.0.0.1\tlocalhost box', DEFAULT_LINES[1], '10.4.4.4\tdb', '127.0.0.1\tgw', '']);
    const bad = await runCli(['run', '--root', root, '--add-host', 'db:10.4.4', 'busybox:latest', 'true']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--add-host: invalid host "db:10.4.4"');
  });
});
