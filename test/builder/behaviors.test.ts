/**
 * BuildKit's build behaviours (../shared/conformance/behaviors), built through the real CLI
 * (dist/cli.js, built by `npm test`) and checked by the conformance harness, which reads the
 * OCI output itself. Every run must pass; the harness names the reason for each skip, and the
 * only skips allowed are listed below with theirs.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxImage, repoRoot } from '../helpers/base-images.js';

const run = promisify(execFile);
const conformance = path.resolve(repoRoot, '../shared/conformance');
const cli = path.join(repoRoot, 'dist/cli.js');

/** Skips we accept, with why. Anything else skipped is a failure. */
const ALLOWED_SKIPS: Record<string, string> = {
  // The harness has no tsbuild mapping for BuildKit's frontend.targets subrequest; the same
  // listing is checked directly by `tsbuild build --call targets` in test/cli/build.test.ts.
  'targets-list': 'no way to make a frontend.targets subrequest',
};

describe('BuildKit build behaviours through tsbuild build', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'tsbuild-behaviors-'));
    await makeBusyboxImage(root);
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('passes every case', { timeout: 600_000 }, async () => {
    expect(existsSync(cli), 'dist/cli.js is built by `npm test` before vitest runs').toBe(true);
    const { stdout } = await run(
      'python3',
      [path.join(conformance, 'tools/run_behaviors.py'), '--builder', 'tsbuild', '--tsbuild-cmd', `${process.execPath} ${cli}`, '--assume', 'image:busybox', '--assume', 'run', '--jobs', '2'],
      { env: { ...process.env, TSBUILD_ROOT: root }, maxBuffer: 64 << 20 },
    ).catch((err: { stdout?: string; stderr?: string }) => ({ stdout: `${err.stdout ?? ''}\n${err.stderr ?? ''}` }));
    const lines = stdout.split('\n');
    const failed = lines.filter((l) => /^(FAIL|ERROR)\b/.test(l));
    const skipped = lines.filter((l) => l.startsWith('SKIP ')).map((l) => l.split(' ')[1]!);
    const summary = /(\d+) passed, (\d+) failed, (\d+) skipped/.exec(stdout);
    expect(summary, stdout.slice(-2000)).not.toBeNull();
    expect(failed).toEqual([]);
    expect(skipped.filter((s) => !(s in ALLOWED_SKIPS))).toEqual([]);
    // 119 runs in 101 cases: all but the allowed skips pass.
    expect(Number(summary![1])).toBeGreaterThanOrEqual(118);
  });
});
