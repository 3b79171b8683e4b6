/**
 * The built command's standard output and error (src/cli/main.ts `stdioWriter`): written with
 * writeSync to a pipe or a file, through node's own stream once a command asks whether the
 * output is a terminal. Run against dist (built by `npm test` before vitest), in fresh processes.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/base-images.js';
import { runCli } from '../helpers/cli.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'tsbuild-stdio-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const cli = path.join(repoRoot, 'dist/cli.cjs');

// A Dockerfile whose JSON AST is several times a pipe's buffer (64 KiB): partial writes and a
// reader slower than the writer.
const big = path.join(tmp, 'Dockerfile');
writeFileSync(big, `FROM busybox\n${Array.from({ length: 600 }, (_, i) => `RUN echo line ${i} && touch /f${i}\n`).join('')}FROBNICATE x\n`);

describe('standard output and error of the built command', () => {
  it('a pipe gets all of a large output, the same as in process', async () => {
    const expected = await runCli(['parse', big]);
    expect(expected.stdout.length).toBeGreaterThan(256 * 1024);
    const r = spawnSync(process.execPath, [cli, 'parse', big], { encoding: 'utf8', maxBuffer: 64 << 20 });
    expect(r.stdout).toBe(expected.stdout);
    expect(r.stderr).toBe(expected.stderr);
    expect(r.stderr).toContain(`${big}:602:1: error: unknown instruction: FROBNICATE`);
  });

  it('a file gets it too', async () => {
    const expected = await runCli(['parse', big]);
    const out = path.join(tmp, 'out.json');
    const fd = openSync(out, 'w');
    try {
      spawnSync(process.execPath, [cli, 'parse', big], { stdio: ['ignore', fd, 'ignore'] });
    } finally {
      closeSync(fd);
    }
    expect(readFileSync(out, 'utf8')).toBe(expected.stdout);
  });

  it('a terminal is recognised (diagnostics in colour), through node\'s own stream', () => {
    // script(1) gives the command a pseudo-terminal
    const r = spawnSync('script', ['-qefc', `${process.execPath} ${cli} parse ${big} >/dev/null`, '/dev/null'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stdout).toContain('\u001b[31merror\u001b[0m: unknown instruction: FROBNICATE');
    const plain = spawnSync(process.execPath, [cli, 'parse', big], { encoding: 'utf8', maxBuffer: 64 << 20 });
    expect(plain.stderr).not.toContain('\u001b[');
  });
});

describe('a bug that escapes every handler', () => {
  it('is one message with its stack and exit code 1, not node\'s dump of the bundled source line', async () => {
    // A rejection nobody handles, planted in the command's process while `build -` waits for its
    // standard input (kept open).
    const plant = path.join(tmp, 'plant.mjs');
    writeFileSync(plant, "setTimeout(() => { Promise.reject(new Error('planted bug')); }, 300);\n");
    const child = spawn(cli, ['build', '--root', path.join(tmp, 'root'), '-'], { env: { ...process.env, NODE_OPTIONS: `--import=${plant}` }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(1);
    expect(stderr).toMatch(/^tsbuild: internal error \(a bug in tsbuild; please report it with the command line\):\nError: planted bug\n {4}at /);
    expect(stderr).not.toContain('Node.js v');
    expect(stderr.length).toBeLessThan(4000);
  });
});
