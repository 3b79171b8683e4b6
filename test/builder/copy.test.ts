/**
 * COPY/ADD semantics against BuildKit's expectations in ../shared/conformance/behaviors: each
 * case's COPY/ADD lines are transcribed below as CopySpec fields (the planner's job: variables
 * expanded, WORKDIR made absolute), run against the case's real context, and the resulting root
 * filesystem is checked against the case's case.json `expect` (read from disk, not copied here).
 */
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cp, chmod, lstat, mkdir, mkdtemp, readFile, readlink, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { existsSync, readdirSync, lstatSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { applyCopy, parseChmod, resolveChown, type CopySpec, type CopySourceRoot } from '../../src/builder/copy.js';
import { openContext } from '../../src/builder/context.js';
import { createHash } from 'node:crypto';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const behaviors = path.resolve(repoRoot, '../shared/conformance/behaviors');
const tmpRoot = await mkdtemp(path.join(os.tmpdir(), 'tsbuild-copy-test-'));
afterAll(() => rm(tmpRoot, { recursive: true, force: true }));

type Step =
  | { readonly workdir: string }
  | { readonly copy: Omit<CopySpec, 'kind' | 'sources'> & { kind?: 'COPY' | 'ADD'; src?: readonly string[]; inline?: readonly [string, string][] }; readonly from?: string };

interface CaseDef {
  readonly stages: Readonly<Record<string, readonly Step[]>>;
  /** Stage whose rootfs is checked; default 'main'. */
  readonly target?: string;
  /** Which run of case.json to check (default 0). */
  readonly run?: number;
}

const c = (src: string[] | string, dest: string, extra: Partial<CopySpec> & { kind?: 'COPY' | 'ADD' } = {}): Step => ({
  copy: { src: Array.isArray(src) ? src : [src], dest, ...extra },
});
const add = (src: string[] | string, dest: string, extra: Partial<CopySpec> = {}): Step => c(src, dest, { ...extra, kind: 'ADD' });

const CASES: Record<string, CaseDef> = {
  'add-archive-implied-parent-dir': { stages: { main: [add('t.tar.gz', '/')] } },
  'add-archive-tar': { stages: { main: [add('t.tar', '/')] } },
  'add-archive-targz': { stages: { main: [add('t.tar.gz', '/')] } },
  'add-archive-through-absolute-symlink': { stages: { main: [add('rootfs.tar', '/'), add('payload.tar', '/')] } },
  'add-archive-unpack-false': { stages: { main: [add('t.tar.gz', '/', { unpack: false })] } },
  'add-archive-wildcard': { stages: { main: [add('*.tar', '/dest')] } },
  'add-chmod-invalid': { stages: { main: [add('foo', '/', { chmod: '64a' })] } },
  'add-chown-archive': { stages: { main: [add('t.tar', '/out/', { chown: '100:200' })] } },
  'add-symlink-destination': { stages: { main: [add('t.tar', '/'), c('foo', '/symlink/')] } },
  'copy-archive-not-extracted': { stages: { main: [c('t.tar.gz', '/')] } },
  'copy-chmod': {
    stages: {
      main: [
        c('foo', '/', { chmod: '0644' }),
        c('bar', '/baz', { chmod: '777' }),
        c('foo', '/foobis', { chmod: '0' }),
        c('foo', '/parent/foo', { chmod: '777' }),
        c('foo', '/parent/sub/foo', { chmod: '770' }),
        c('foo', '/footer', { chmod: '755' }),
      ],
    },
  },
  'copy-chmod-invalid-nonoctal': { stages: { main: [c('foo', '/', { chmod: '64a' })] } },
  'copy-chmod-invalid-range': { stages: { main: [c('foo', '/', { chmod: '10000' })] } },
  'copy-chmod-symbolic': {
    stages: { main: [c('file', '/f1', { chmod: 'go-w' }), c('file', '/f2', { chmod: 'u=rw,g=r,o=r' }), c('file', '/f3', { chmod: 'a+X' })] },
  },
  'copy-chown-numeric': {
    stages: { main: [c('foo', '/', { chown: '100' }), c('bar', '/baz', { chown: '1000:1001' }), c('foo', '/foobis', { chown: '1000:2000' })] },
  },
  'copy-chown-unknown-name': { stages: { main: [c('foo', '/bar'), c('foo', '/', { chown: 'daemon:nobody' })] } },
  'copy-dest-trailing-slash': { stages: { main: [c('testfile', '/sample/'), c('testfile', '/plain')] } },
  'copy-empty-dest': { stages: { main: [c('testfile', '')] } },
  'copy-empty-dest-workdir-link': { stages: { main: [{ workdir: '/var/www' }, c('testfile', '', { workdir: '/var/www' })] } },
  'copy-empty-wildcard': { stages: { main: [c(['foo', 'nomatch*'], '/')] } },
  'copy-escaped-dollar-source': { stages: { main: [{ workdir: '/bar' }, add('.', '/bar', { workdir: '/bar' }), c('$FOO', '/quux', { workdir: '/bar' })] } },
  'copy-exclude-patterns': {
    stages: {
      builder1: [c('.', '/1', { exclude: ['*/*.png', '*/*.jpeg'] })],
      builder2: [c('.', '/2', { exclude: ['*/*.pdf', '*/*.txt'] })],
      builder3: [add('dir3/', '/3/', { exclude: ['*.mp3'] })],
      builder4: [c('dir*', '/4/', { exclude: ['*.mp3', '*.jpeg', '*.png', '*.pdf', '*.txt'] })],
      builder5: [add('dir*', '/5', { exclude: ['*.mp*', '*.jpeg', '*.png', '*.pdf'] })],
      builder6: [add('dir*', '/6', { exclude: ['*'] })],
      main: [
        { copy: { src: ['/'], dest: '/builder1' }, from: 'builder1' },
        { copy: { src: ['/'], dest: '/builder2' }, from: 'builder2' },
        { copy: { src: ['/'], dest: '/builder3' }, from: 'builder3' },
        { copy: { src: ['/'], dest: '/builder4' }, from: 'builder4' },
        { copy: { src: ['/'], dest: '/builder5' }, from: 'builder5' },
        { copy: { src: ['/'], dest: '/builder6' }, from: 'builder6' },
      ],
    },
  },
  'copy-follow-all-symlinks': { stages: { main: [c('foo', '/'), c('foo/sub', 'bar')] } },
  'copy-override-files': {
    stages: { main: [c('sub', 'sub'), c('sub', 'sub'), c('files/foo.go', 'dest/foo.go'), c('files/foo.go', 'dest/foo.go'), c('files', 'dest')] },
  },
  'copy-parents': {
    stages: { main: [c('foo1/foo2/bar', '/', { parents: true }), { workdir: '/test' }, c('foo1/foo2/ba*', '.', { parents: true, workdir: '/test' })] },
  },
  'copy-parents-pivot': { stages: { main: [c('test/a/b/./c/d', '/out/', { parents: true })] } },
  'copy-relative-workdir': {
    stages: {
      main: [
        { workdir: '/test1/test2' },
        c('foo', './', { workdir: '/test1/test2' }),
        add('foo', './bar/baz', { workdir: '/test1/test2' }),
        c('foo', './bar/baz2', { workdir: '/test1/test2' }),
        c('foo', './', { workdir: '/test1' }),
        c('foo', '/test3/', { workdir: '/test1' }),
        { workdir: '/test4' },
        c('.', '.', { workdir: '/test4' }),
        { workdir: '/test5/test6' },
        c('foo', '../', { workdir: '/test5/test6' }),
      ],
    },
  },
  'copy-symlinks-followed': { stages: { main: [c('foo', '/'), c('sub/l*', 'alllinks/')] } },
  'copy-through-symlink-context': { stages: { main: [c('link/foo', '.')] } },
  'copy-unicode-path': { stages: { main: [c('test-äöü.txt', '/'), c('test-%C3%A4%C3%B6%C3%BC.txt', '/'), c('test+aou.txt', '/')] } },
  'copy-url-error': { stages: { main: [c('http://github.com/moby/buildkit/blob/master/README.md', '/')] } },
  'copy-var-substitution': { stages: { main: [c('bar', 'baz')] } },
  'copy-wildcards': {
    stages: {
      main: [
        c('*.go', '/gofiles/'),
        c('f*.go', 'foo2.go'),
        c('sub/*', '/subdest/'),
        c('sub/*/dir2/foo', '/subdest2/'),
        c('sub/*/dir2/foo', '/subdest3/bar'),
        c('.', 'all/'),
        c('sub/dir1/', 'subdest4'),
        c('sub/dir1/.', 'subdest5'),
        c('sub/dir1', 'subdest6'),
      ],
    },
  },
  dockerignore: { stages: { main: [c('.', '.')] } },
  'dockerignore-invalid': { stages: { main: [c('.', '.')] } },
  'dockerignore-per-dockerfile': { stages: { main: [c('.', '.')] } },
  'error-copy-missing-source': { stages: { main: [c('foo', 'bar')] } },
  'heredoc-copy-basic': {
    stages: {
      main: [
        { workdir: '/dest' },
        c([], 'single', { workdir: '/dest', inline: [['single', 'single file\n']] } as never),
        c([], 'double/', { workdir: '/dest', inline: [['EOF', 'first file\n'], ['EOF2', 'second file\n']] } as never),
        c([], '/permfiles/all', { chmod: '777', inline: [['EOF', 'dummy content\n']] } as never),
        c([], '/permfiles/rw', { chmod: '0644', inline: [['EOF', 'dummy content\n']] } as never),
        c([], '/permfiles/owned', { chown: '1000:1000', inline: [['EOF', 'dummy content\n']] } as never),
        c([], '/permfiles/default', { inline: [['EOF', 'dummy content\n']] } as never),
      ],
    },
  },
  'workdir-copy-ignore-relative': {
    stages: {
      base: [{ workdir: '/foo' }, c('file.txt', '/', { workdir: '/foo' })],
      main: [{ copy: { src: ['file.txt'], dest: '.' }, from: 'base' }],
    },
  },
};

// copy-parents-pivot has three runs, one per stage; add them as separate entries.
const EXTRA_RUNS: [string, CaseDef][] = [
  ['copy-parents-pivot', { stages: { main: [c('test/a/./b/./c', '/out/', { parents: true })] }, run: 1 }],
  ['copy-parents-pivot', { stages: { main: [c('test/a/./*/c', '/out/', { parents: true })] }, run: 2 }],
];

interface Extra {
  path: string;
  type?: 'symlink' | 'dir';
  target?: string;
  mode?: string;
}

async function prepareContext(name: string): Promise<string> {
  const dir = path.join(tmpRoot, `${name}-${Math.random().toString(36).slice(2)}`);
  const ctx = path.join(dir, 'context');
  await mkdir(ctx, { recursive: true });
  if (existsSync(path.join(behaviors, name, 'context'))) await cp(path.join(behaviors, name, 'context'), ctx, { recursive: true });
  const caseJson = JSON.parse(await readFile(path.join(behaviors, name, 'case.json'), 'utf8')) as { contextExtras?: Extra[] };
  for (const e of caseJson.contextExtras ?? []) {
    const p = path.join(ctx, e.path);
    if (e.type === 'symlink') {
      await mkdir(path.dirname(p), { recursive: true });
      await symlink(e.target!, p);
    } else if (e.type === 'dir') {
      await mkdir(p, { recursive: true });
      if (e.mode) await chmod(p, parseInt(e.mode, 8));
    } else if (e.mode) await chmod(p, parseInt(e.mode, 8));
  }
  return dir;
}

async function runCase(name: string, def: CaseDef): Promise<{ root: string; ctx: string }> {
  const dir = await prepareContext(name);
  const ctxDir = path.join(dir, 'context');
  const context = await openContext({ dir: ctxDir, dockerfile: path.join(behaviors, name, 'Dockerfile') });
  const roots: Record<string, string> = {};
  const order = Object.keys(def.stages).filter((s) => s !== 'main').concat('main');
  for (const stage of order) {
    const root = path.join(dir, 'rootfs-' + stage);
    await mkdir(root);
    roots[stage] = root;
    for (const step of def.stages[stage]!) {
      if ('workdir' in step) {
        await mkdir(path.join(root, step.workdir), { recursive: true });
        continue;
      }
      const { src = [], inline = [], kind = 'COPY', ...rest } = step.copy;
      const source: CopySourceRoot =
        step.from !== undefined ? { root: roots[step.from]!, preserveOwnership: true } : { root: ctxDir, isHidden: context.isHidden };
      await applyCopy(
        {
          kind,
          ...rest,
          sources: [...src.map((p) => ({ kind: 'path' as const, path: p })), ...inline.map(([n, content]) => ({ kind: 'inline' as const, name: n, content }))],
        },
        { source, destRoot: root },
      );
    }
  }
  return { root: roots[def.target ?? 'main']!, ctx: ctxDir };
}

interface FileExpect {
  type?: 'file' | 'dir' | 'symlink';
  content?: string;
  mode?: string;
  uid?: number;
  gid?: number;
  target?: string;
  absent?: boolean;
  sameAsContext?: string;
  hardlinkOf?: string;
}
interface Expect {
  result: 'success' | 'error';
  error?: { contains: string[] };
  files?: Record<string, FileExpect>;
  exhaustive?: boolean;
}

function listFiles(root: string, rel = ''): string[] {
  const out: string[] = [];
  for (const n of readdirSync(path.join(root, rel))) {
    const r = rel === '' ? n : `${rel}/${n}`;
    const st = lstatSync(path.join(root, r));
    if (st.isDirectory()) out.push(...listFiles(root, r));
    else out.push('/' + r);
  }
  return out;
}

async function check(root: string, ctx: string, exp: Expect): Promise<void> {
  for (const [p, f] of Object.entries(exp.files ?? {})) {
    const abs = path.join(root, p);
    if (f.absent) {
      expect(existsSync(abs) || (await lstat(abs).then(() => true, () => false)), `${p} absent`).toBe(false);
      continue;
    }
    const st = await lstat(abs);
    if (f.type === 'dir') expect(st.isDirectory(), `${p} is a dir`).toBe(true);
    if (f.type === 'file') expect(st.isFile(), `${p} is a file`).toBe(true);
    if (f.type === 'symlink') {
      expect(st.isSymbolicLink(), `${p} is a symlink`).toBe(true);
      expect(await readlink(abs)).toBe(f.target);
    }
    if (f.content !== undefined) expect(await readFile(abs, 'utf8'), `${p} content`).toBe(f.content);
    if (f.sameAsContext !== undefined) expect((await readFile(abs)).equals(await readFile(path.join(ctx, f.sameAsContext)))).toBe(true);
    if (f.mode !== undefined) expect((st.mode & 0o7777).toString(8).padStart(4, '0'), `${p} mode`).toBe(f.mode);
    if (f.uid !== undefined) expect(st.uid, `${p} uid`).toBe(f.uid);
    if (f.gid !== undefined) expect(st.gid, `${p} gid`).toBe(f.gid);
    if (f.hardlinkOf !== undefined) expect(st.ino).toBe((await lstat(path.join(root, f.hardlinkOf))).ino);
  }
  if (exp.exhaustive) {
    const listed = Object.entries(exp.files ?? {})
      .filter(([, f]) => !f.absent && f.type !== 'dir')
      .map(([p]) => p)
      .sort();
    expect(listFiles(root).sort()).toEqual(listed);
  }
}

describe('COPY/ADD against BuildKit conformance cases', () => {
  const all: [string, CaseDef][] = [...Object.entries(CASES), ...EXTRA_RUNS];
  it.each(all)('%s', async (name, def) => {
    const caseJson = JSON.parse(await readFile(path.join(behaviors, name, 'case.json'), 'utf8')) as { runs: { expect: Expect }[] };
    const exp = caseJson.runs[def.run ?? 0]!.expect;
    if (exp.result === 'error') {
      const err = await runCase(name, def).then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(err, 'an error').toBeInstanceOf(Error);
      for (const s of exp.error?.contains ?? []) expect(err!.message).toContain(s);
      return;
    }
    const { root, ctx } = await runCase(name, def);
    await check(root, ctx, exp);
  });
});

describe('copy details', () => {
  it('parses octal and symbolic chmod like chmod(1)', () => {
    const m = parseChmod('u+x,g-w');
    expect(m.kind).toBe('symbolic');
    if (m.kind === 'symbolic') {
      expect(m.apply(0o664, false)).toBe(0o744);
      expect(m.apply(0o666, true)).toBe(0o746);
    }
    const x = parseChmod('a+X');
    if (x.kind === 'symbolic') {
      expect(x.apply(0o644, true)).toBe(0o755);
      expect(x.apply(0o644, false)).toBe(0o644);
      expect(x.apply(0o744, false)).toBe(0o755);
    }
    expect(parseChmod('755')).toEqual({ kind: 'octal', mode: 0o755 });
    expect(() => parseChmod('8')).toThrow(/invalid chmod parameter: '8'/);
  });

  it('resolves --chown names from the destination passwd/group', async () => {
    const root = await mkdtemp(path.join(tmpRoot, 'ids-'));
    await mkdir(path.join(root, 'etc'));
    await writeFile(path.join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1::/:/bin/false\napp:x:1000:1001::/home/app:/bin/sh\n');
    await writeFile(path.join(root, 'etc/group'), 'root:x:0:\ndaemon:x:1:\nstaff:x:50:\n');
    const { rootfsIdLookup } = await import('../../src/builder/copy.js');
    const ids = rootfsIdLookup(root);
    expect(await resolveChown('app', ids)).toEqual({ uid: 1000, gid: 1001 });
    expect(await resolveChown('app:staff', ids)).toEqual({ uid: 1000, gid: 50 });
    expect(await resolveChown('7:staff', ids)).toEqual({ uid: 7, gid: 50 });
    await expect(resolveChown('nobody', ids)).rejects.toThrow(/unable to find user nobody/);
    await expect(resolveChown('app:nogroup', ids)).rejects.toThrow(/unable to find group nogroup/);
  });

  it('keeps the source mtime for files from the context, symlinks as links, hardlinks as links', async () => {
    const dir = await mkdtemp(path.join(tmpRoot, 'mtime-'));
    const ctx = path.join(dir, 'ctx');
    const root = path.join(dir, 'root');
    await mkdir(path.join(ctx, 'd'), { recursive: true });
    await mkdir(root);
    await writeFile(path.join(ctx, 'd/a'), 'a');
    await symlink('a', path.join(ctx, 'd/l'));
    execFileSync('ln', [path.join(ctx, 'd/a'), path.join(ctx, 'd/h')]);
    const t = new Date('2001-02-03T04:05:06Z');
    await utimes(path.join(ctx, 'd/a'), t, t);
    const r = await applyCopy({ kind: 'COPY', sources: [{ kind: 'path', path: 'd' }], dest: '/out/' }, { source: { root: ctx }, destRoot: root });
    expect(r.changed).toEqual(['out', 'out/a', 'out/h', 'out/l']);
    expect((await lstat(path.join(root, 'out/a'))).mtime.toISOString()).toBe(t.toISOString());
    expect(await readlink(path.join(root, 'out/l'))).toBe('a');
    expect((await lstat(path.join(root, 'out/h'))).ino).toBe((await lstat(path.join(root, 'out/a'))).ino);
  });

  it('never writes outside the destination root through absolute or .. symlinks', async () => {
    const dir = await mkdtemp(path.join(tmpRoot, 'escape-'));
    const ctx = path.join(dir, 'ctx');
    const root = path.join(dir, 'root');
    const outside = path.join(dir, 'outside');
    await mkdir(ctx);
    await mkdir(root);
    await mkdir(outside);
    await writeFile(path.join(ctx, 'f'), 'x');
    await symlink(outside, path.join(root, 'abs'));
    await symlink('../../outside', path.join(root, 'rel'));
    await symlink('/../../../', path.join(ctx, 'up'));
    await applyCopy({ kind: 'COPY', sources: [{ kind: 'path', path: 'f' }], dest: '/abs/' }, { source: { root: ctx }, destRoot: root });
    await applyCopy({ kind: 'COPY', sources: [{ kind: 'path', path: 'f' }], dest: '/rel/' }, { source: { root: ctx }, destRoot: root });
    await applyCopy({ kind: 'COPY', sources: [{ kind: 'path', path: '../../f' }], dest: '/x' }, { source: { root: ctx }, destRoot: root });
    await applyCopy({ kind: 'COPY', sources: [{ kind: 'path', path: 'up/f' }], dest: '/y' }, { source: { root: ctx }, destRoot: root });
    expect(readdirSync(outside)).toEqual([]);
    expect(await readFile(path.join(root, outside, 'f'), 'utf8')).toBe('x');
    expect(await readFile(path.join(root, 'outside/f'), 'utf8')).toBe('x');
    expect(await readFile(path.join(root, 'x'), 'utf8')).toBe('x');
    expect(await readFile(path.join(root, 'y'), 'utf8')).toBe('x');
  });

  it('does not let a tar entry escape through .. or a planted symlink', async () => {
    const dir = await mkdtemp(path.join(tmpRoot, 'tar-escape-'));
    const ctx = path.join(dir, 'ctx');
    const root = path.join(dir, 'root');
    const outside = path.join(dir, 'outside');
    await mkdir(ctx);
    await mkdir(root);
    await mkdir(outside);
    const tarStream = (await import('tar-stream')).default;
    const pack = tarStream.pack();
    pack.entry({ name: '../../evil', type: 'file' }, 'evil');
    pack.entry({ name: 'link', type: 'symlink', linkname: outside });
    pack.entry({ name: 'link/evil2', type: 'file' }, 'evil2');
    pack.finalize();
    const chunks: Buffer[] = [];
    for await (const ch of pack) chunks.push(ch as Buffer);
    await writeFile(path.join(ctx, 'bad.tar'), Buffer.concat(chunks));
    await applyCopy({ kind: 'ADD', sources: [{ kind: 'path', path: 'bad.tar' }], dest: '/' }, { source: { root: ctx }, destRoot: root });
    expect(readdirSync(outside)).toEqual([]);
    expect(await readFile(path.join(root, 'evil'), 'utf8')).toBe('evil');
    expect(await readFile(path.join(root, outside, 'evil2'), 'utf8')).toBe('evil2');
  });

  it('unpacks bzip2 and xz archives detected by content, whatever their name', async () => {
    const dir = await mkdtemp(path.join(tmpRoot, 'bz-'));
    const ctx = path.join(dir, 'ctx');
    await mkdir(path.join(dir, 'src'), { recursive: true });
    await mkdir(ctx);
    await writeFile(path.join(dir, 'src/inside'), 'packed');
    execFileSync('tar', ['-cjf', path.join(ctx, 'a.data'), '-C', path.join(dir, 'src'), 'inside']);
    execFileSync('tar', ['-cJf', path.join(ctx, 'b.bin'), '-C', path.join(dir, 'src'), 'inside']);
    for (const f of ['a.data', 'b.bin']) {
      const root = await mkdtemp(path.join(dir, 'root-'));
      await applyCopy({ kind: 'ADD', sources: [{ kind: 'path', path: f }], dest: '/x/' }, { source: { root: ctx }, destRoot: root });
      expect(await readFile(path.join(root, 'x/inside'), 'utf8')).toBe('packed');
    }
  });

  it('ADD URL: mode 0600, mtime from Last-Modified, --checksum verified', async () => {
    const body = 'remote file\n';
    const digest = 'sha256:' + createHash('sha256').update(body).digest('hex');
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'last-modified': 'Wed, 21 Oct 2015 07:28:00 GMT', 'content-type': 'text/plain' });
      res.end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/dir/remote.txt`;
      const root = await mkdtemp(path.join(tmpRoot, 'url-'));
      await applyCopy({ kind: 'ADD', sources: [{ kind: 'url', url }], dest: '/dl/', checksum: digest }, { source: { root }, destRoot: root });
      const st = await lstat(path.join(root, 'dl/remote.txt'));
      expect(st.mode & 0o7777).toBe(0o600);
      expect(st.mtime.toISOString()).toBe('2015-10-21T07:28:00.000Z');
      expect(await readFile(path.join(root, 'dl/remote.txt'), 'utf8')).toBe(body);
      await expect(
        applyCopy({ kind: 'ADD', sources: [{ kind: 'url', url }], dest: '/bad', checksum: 'sha256:' + '0'.repeat(64) }, { source: { root }, destRoot: root }),
      ).rejects.toThrow(/digest mismatch/);
      expect(existsSync(path.join(root, 'bad'))).toBe(false);
      expect(readdirSync(root)).toEqual(['dl']);
    } finally {
      server.close();
    }
  });

  it('a big tree keeps the event loop running and stops on abort part-way through the walk', async () => {
    const src = await mkdtemp(path.join(tmpRoot, 'abort-src-'));
    for (let i = 0; i < 1000; i++) await writeFile(path.join(src, `f${String(i).padStart(4, '0')}`), `file ${i}\n`);
    const root = await mkdtemp(path.join(tmpRoot, 'abort-dest-'));
    const ac = new AbortController();
    let turns = 0;
    // Runs only when the copy yields: abort once part of the tree has landed.
    const watch = (): void => {
      turns++;
      if (existsSync(path.join(root, 'app/f0100'))) ac.abort(new Error('stop'));
      else setImmediate(watch);
    };
    setImmediate(watch);
    await expect(
      applyCopy({ kind: 'COPY', sources: [{ kind: 'path', path: '.' }], dest: '/app' }, { source: { root: src }, destRoot: root, signal: ac.signal }),
    ).rejects.toMatchObject({ code: 'TSBUILD_ABORTED' });
    const landed = readdirSync(path.join(root, 'app')).length;
    expect(turns).toBeGreaterThan(1);
    expect(landed).toBeGreaterThan(100);
    expect(landed).toBeLessThan(1000);
  });
});
