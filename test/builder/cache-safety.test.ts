/** One root shared by concurrent builds, and a build killed with SIGKILL mid-step. */
import { spawn } from 'node:child_process';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build } from '../../src/builder/build.js';
import { makeBusyboxImage, repoRoot } from '../helpers/base-images.js';

let tmp: string;
let root: string;
let context: string;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'tsbuild-cache-safety-'));
  root = path.join(tmp, 'root');
  context = path.join(tmp, 'ctx');
  await mkdir(context);
  for (let i = 0; i < 50; i++) await writeFile(path.join(context, `f${i}.txt`), `file ${i}\n`.repeat(100));
  await makeBusyboxImage(root);
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('cache safety', () => {
  it('four builds at once on one root all succeed and agree', { timeout: 120_000 }, async () => {
    const df = 'FROM busybox:latest\nCOPY . /ctx\nRUN cat /ctx/*.txt | wc -l > /lines\nRUN sleep 0.2; cat /lines\n';
    const results = await Promise.all([1, 2, 3, 4].map(() => build({ context, root, env: {}, dockerfileText: df, sourceDateEpoch: 0 })));
    expect(new Set(results.map((r) => r.manifestDigest)).size).toBe(1);
    const again = await build({ context, root, env: {}, dockerfileText: df, sourceDateEpoch: 0 });
    expect(again.executedSteps).toBe(0);
    expect(again.manifestDigest).toBe(results[0]!.manifestDigest);
  });

  it('a build killed with SIGKILL in the middle leaves a root the next build uses', { timeout: 120_000 }, async () => {
    await writeFile(path.join(tmp, 'Dockerfile.kill'), 'FROM busybox:latest\nCOPY f1.txt /f1\nRUN echo running; sleep 30\n');
    const child = spawn(process.execPath, [path.join(repoRoot, 'dist/cli.js'), 'build', '--progress', 'plain', '--root', root, '-f', path.join(tmp, 'Dockerfile.kill'), context], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    await new Promise<void>((resolve, reject) => {
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
        if (err.includes('running')) resolve();
      });
      child.on('exit', () => reject(new Error(`build ended before it was killed:\n${err}`)));
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    // The COPY step finished before the kill and stays cached; the killed RUN runs again.
    const events: string[] = [];
    const r = await build({
      context,
      root,
      env: {},
      dockerfileText: 'FROM busybox:latest\nCOPY f1.txt /f1\nRUN cat /f1 | head -1\n',
      onProgress: (e) => e.type === 'step' && events.push(`${e.status} ${e.name}`),
    });
    expect(events).toContain('cached [stage-0 2/3] COPY f1.txt /f1');
    expect(r.executedSteps).toBe(1);
    // Every record in the cache still parses.
    const { readdir } = await import('node:fs/promises');
    const walk = async (d: string): Promise<string[]> =>
      (await readdir(d, { withFileTypes: true })).flatMap((e) => (e.isDirectory() ? [] : [path.join(d, e.name)])).concat(...(await Promise.all((await readdir(d, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => walk(path.join(d, e.name))))));
    const records = (await walk(path.join(root, 'cache'))).filter((f) => f.endsWith('.json'));
    expect(records.length).toBeGreaterThan(0);
    for (const f of records) JSON.parse(await readFile(f, 'utf8'));
  });
});
