/**
 * The built command's output when its reader goes away (`tsbuild parse … | head -c 10`): EPIPE
 * ends the output quietly and the command exits with its own code, as a shell pipeline expects;
 * never "tsbuild: internal error". Any other write failure (a full device) is said once and fails
 * the command. Run against dist (built by `npm test` before vitest), in fresh processes.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/base-images.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'tsbuild-stdio-epipe-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const cli = path.join(repoRoot, 'dist/cli.cjs');

// A valid Dockerfile whose JSON AST is many times a pipe's buffer (64 KiB), so that the reader
// is long gone before the command has written it all.
const big = path.join(tmp, 'Dockerfile');
writeFileSync(big, `FROM busybox\n${Array.from({ length: 3000 }, (_, i) => `RUN echo line ${i} && touch /f${i}\n`).join('')}`);
// A stage graph as large: a chain of stages.
const stages = path.join(tmp, 'Dockerfile.stages');
writeFileSync(stages, `FROM busybox AS s0\n${Array.from({ length: 300 }, (_, i) => `FROM s${i} AS s${i + 1}\nRUN echo ${i}\n`).join('')}`);

/** Runs a bash pipeline; stdout, stderr, and the exit status of each command of it. */
function pipeline(script: string): { stdout: string; stderr: string; statuses: number[] } {
  const r = spawnSync('bash', ['-c', `${script}; echo "statuses \${PIPESTATUS[*]}" >&2`], { encoding: 'utf8', cwd: tmp });
  const m = /statuses ([\d ]+)\n$/.exec(r.stderr);
  expect(m).not.toBeNull();
  return { stdout: r.stdout, stderr: r.stderr.slice(0, m!.index), statuses: m![1]!.trim().split(' ').map(Number) };
}

describe('a reader that goes away', () => {
  it('parse | head -c 10: the first bytes, nothing on stderr, exit code 0', () => {
    const r = pipeline(`${process.execPath} ${cli} parse ${big} | head -c 10`);
    expect(r.stdout).toBe('{\n  "file"');
    expect(r.stderr).toBe('');
    expect(r.statuses).toEqual([0, 0]);
  });

  it('graph | head -1: the first line, nothing on stderr, exit code 0', () => {
    const r = pipeline(`${process.execPath} ${cli} graph -f ${stages} --format json . | head -1`);
    expect(r.stdout).toBe('{\n');
    expect(r.stderr).toBe('');
    expect(r.statuses).toEqual([0, 0]);
  });

  it('a parent that closes its end of the pipe after the first chunk: exit code 0, nothing on stderr', async () => {
    const child = spawn(process.execPath, [cli, 'parse', big], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    let first = '';
    child.stdout.once('data', (d: Buffer) => {
      first = d.toString();
      child.stdout.destroy();
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(first.startsWith('{')).toBe(true);
    expect(stderr).toBe('');
    expect(code).toBe(0);
  });
});

describe('an output that refuses writes', () => {
  it('> /dev/full: said once, exit code 1, no internal error', () => {
    const r = pipeline(`${process.execPath} ${cli} parse ${big} > /dev/full`);
    expect(r.stderr).toBe('tsbuild: cannot write to standard output: ENOSPC: no space left on device, write\n');
    expect(r.statuses).toEqual([1]);
  });
});
