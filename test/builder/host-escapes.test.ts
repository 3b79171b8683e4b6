/**
 * Paths from a context, a tar, a layer, a URL or an OCI layout never lead the host (not the
 * sandboxed process) outside its root. Each case is one a review reproduced against the built
 * CLI with a victim file of its own: it wrote, changed or read that file before the fix. The
 * victims here are files this test makes; each assertion checks the victim is untouched.
 */
import { createServer } from 'node:http';
import { lstat, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile, chmod } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build } from '../../src/builder/build.js';
import type { BuildOptions } from '../../src/builder/options.js';
import { mountReadOnlyOverlay } from '../../src/builder/snapshots.js';
import { OciLayout } from '../../src/oci/layout.js';
import { extractLayer } from '../../src/oci/extract.js';
import { createRuntime } from '../../src/runtime/index.js';
import { runCli } from '../helpers/cli.js';
import { makeBusyboxImage } from '../helpers/base-images.js';
import { makeBusyboxRootfs } from '../helpers/rootfs.js';

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'tsbuild-escape-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

let n = 0;
async function caseDir(): Promise<{ dir: string; victim: string }> {
  const dir = path.join(tmp, `case-${++n}`);
  await mkdir(path.join(dir, 'host'), { recursive: true });
  const victim = path.join(dir, 'host', 'victim');
  await writeFile(victim, 'original\n', { mode: 0o600 });
  return { dir, victim };
}

async function tarOf(entries: { name: string; type?: 'file' | 'directory' | 'symlink'; body?: string; linkname?: string; mode?: number }[]): Promise<Buffer> {
  const pack = tar.pack();
  for (const e of entries) {
    if (e.type === 'file' || e.type === undefined) pack.entry({ name: e.name, mode: e.mode ?? 0o644 }, e.body ?? '');
    else pack.entry({ name: e.name, type: e.type, mode: e.mode ?? 0o755, ...(e.linkname !== undefined ? { linkname: e.linkname } : {}) });
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('paths never lead the host out of its root', () => {
  it('ADD <url>: an encoded / in the file name is a separator, not a way to a host file', { timeout: 60_000 }, async () => {
    const { dir, victim } = await caseDir();
    const server = createServer((_req, res) => res.end('from the server\n'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      const root = path.join(dir, 'root');
      await makeBusyboxImage(root);
      const context = path.join(dir, 'context');
      await mkdir(context);
      const up = '..%2F'.repeat(16);
      const encoded = `${up}${victim.slice(1).split('/').join('%2F')}`;
      const out = path.join(dir, 'out');
      await build({ context, root, env: {}, dockerfileText: `FROM busybox:latest\nADD http://127.0.0.1:${port}/${encoded} /app/\n`, outputs: [{ type: 'local', dest: out }] });
      expect(await readFile(victim, 'utf8')).toBe('original\n');
      expect(await readFile(path.join(out, 'app', 'victim'), 'utf8')).toBe('from the server\n');
    } finally {
      server.close();
    }
  });

  it('a tar whose directory is later replaced by a symlink: the directory\'s mode is not applied through the link', async () => {
    const { dir, victim } = await caseDir();
    const layer = await tarOf([
      { name: 'd/', type: 'directory', mode: 0o4777 },
      { name: 'd', type: 'symlink', linkname: victim },
    ]);
    await extractLayer(Readable.from([layer]), path.join(dir, 'out'));
    expect((await stat(victim)).mode & 0o7777).toBe(0o600);
    expect((await lstat(path.join(dir, 'out', 'd'))).isSymbolicLink()).toBe(true);
  });

  it('the copy fallback (no overlayfs): a lower layer\'s symlink is replaced, not written through', { timeout: 60_000 }, async () => {
    const { dir, victim } = await caseDir();
    const base = await makeBusyboxRootfs(path.join(dir, 'base'));
    const l1 = path.join(dir, 'l1');
    const l2 = path.join(dir, 'l2');
    await mkdir(l1);
    await mkdir(l2);
    await symlink(victim, path.join(l1, 'f'));
    await writeFile(path.join(l2, 'f'), 'from the upper layer\n');
    const rt = await createRuntime({ stateDir: path.join(dir, 'state') });
    const r = await rt.run({ rootfs: { lowerDirs: [base, l1, l2] }, rootfsMode: 'copy', env: ['PATH=/bin'], args: ['/bin/sh', '-c', 'cat /f'] });
    try {
      expect(r.exitCode).toBe(0);
      expect(await readFile(victim, 'utf8')).toBe('original\n');
    } finally {
      await r.dispose();
    }
  });

  it('build -: a Dockerfile (or .dockerignore) in the tar that is a symlink is read inside the context, never the host file it names', { timeout: 60_000 }, async () => {
    const { dir, victim } = await caseDir();
    await writeFile(victim, 'FROM busybox:latest\nRUN echo HOST-FILE-LINE\n');
    const root = path.join(dir, 'root');
    await makeBusyboxImage(root);
    const ctx = await tarOf([
      { name: 'Dockerfile', type: 'symlink', linkname: victim },
      { name: '.dockerignore', type: 'symlink', linkname: victim },
    ]);
    const r = await runCli(['build', '--root', root, '--progress', 'plain', '-'], { stdin: ctx, cwd: dir });
    expect(r.code).not.toBe(0);
    expect(r.stderr).not.toContain('HOST-FILE-LINE');
  });

  it('an OCI layout whose index.json names a digest that is a path: refused, the file it names not read', { timeout: 60_000 }, async () => {
    const { dir, victim } = await caseDir();
    await writeFile(victim, '{"secret": "HOST-JSON"}\n');
    const layout = path.join(dir, 'lay');
    await OciLayout.create(layout);
    const traversal = `sha256:${'/..'.repeat(16)}${victim}`;
    await writeFile(path.join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: traversal, size: 10 }] }));
    const root = path.join(dir, 'root');
    await makeBusyboxImage(root);
    const context = path.join(dir, 'context');
    await mkdir(context);
    const err = await build({ context, root, env: {}, dockerfileText: `FROM oci-layout://${layout}\n` } as BuildOptions).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toContain('invalid digest');
    expect(err?.message).not.toContain('HOST-JSON');
  });

  it('an overlay of a directory whose name holds ":" is one layer; a "," is refused', async () => {
    const { dir } = await caseDir();
    const odd = path.join(dir, 'x:', path.join(dir, 'host'));
    await mkdir(odd, { recursive: true });
    await writeFile(path.join(odd, 'inside'), 'in the odd dir\n');
    const other = path.join(dir, 'other');
    await mkdir(other);
    const target = path.join(dir, 'm');
    // `x:/…/host` split at its colon would stack `…/x` and the host dir `…/host` (with the victim)
    const unmount = await mountReadOnlyOverlay([odd, other], target);
    try {
      expect(await readFile(path.join(target, 'inside'), 'utf8')).toBe('in the odd dir\n');
      await expect(lstat(path.join(target, 'victim'))).rejects.toThrow();
    } finally {
      await unmount();
    }
    await mkdir(path.join(dir, 'a,b'));
    await expect(mountReadOnlyOverlay([path.join(dir, 'a,b'), other], target)).rejects.toThrow(/comma/);
  });

  it('COPY reusing the previous snapshot\'s files never hard-links a host file reached through a link the context had', { timeout: 60_000 }, async () => {
    const { dir, victim } = await caseDir();
    const root = path.join(dir, 'root');
    await makeBusyboxImage(root);
    const context = path.join(dir, 'context');
    await mkdir(context);
    const opts = { context, root, env: {}, dockerfileText: 'FROM busybox:latest\nCOPY . /app/\n' };
    // first build: d -> the host dir; second: d is a real dir holding the victim's exact bytes and times
    await symlink(path.dirname(victim), path.join(context, 'd'));
    await build(opts);
    await rm(path.join(context, 'd'));
    await mkdir(path.join(context, 'd'));
    await writeFile(path.join(context, 'd', 'victim'), await readFile(victim));
    const st = await stat(victim);
    await chmod(path.join(context, 'd', 'victim'), st.mode & 0o7777);
    const { utimes } = await import('node:fs/promises');
    await utimes(path.join(context, 'd', 'victim'), st.atime, st.mtime);
    await build(opts);
    expect((await stat(victim)).nlink).toBe(1);
  });
});
