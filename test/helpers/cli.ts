import { PassThrough, Writable } from 'node:stream';
import { main } from '../../src/cli/main.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI in-process with captured output. */
export async function runCli(argv: string[], opts: { cwd?: string; env?: Record<string, string | undefined>; stdin?: string | Buffer } = {}): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const out = new Writable({ write(chunk, _enc, cb) { stdout += String(chunk); cb(); } });
  const err = new Writable({ write(chunk, _enc, cb) { stderr += String(chunk); cb(); } });
  const stdin = new PassThrough();
  stdin.end(opts.stdin ?? '');
  const code = await main(argv, {
    stdout: out,
    stderr: err,
    stdin,
    env: { ...process.env, ...opts.env },
    cwd: opts.cwd ?? process.cwd(),
    signal: new AbortController().signal,
  });
  return { code, stdout, stderr };
}
