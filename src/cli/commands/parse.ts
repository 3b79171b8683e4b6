import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { formatDiagnostic } from '../../parser/diagnostics.js';
import { dumpBuildkit } from '../../parser/dump.js';
import { parseDockerfile } from '../../parser/index.js';
import type { Command } from '../context.js';
import { UsageError } from '../context.js';

const USAGE = `Usage: tsbuild parse [--format json|buildkit] FILE...

Parse Dockerfiles and print, per file, the typed AST as JSON ({file, ast, diagnostics}) or
BuildKit's parser dump. Diagnostics go to stderr as code frames. With several files each output is
preceded by "==> FILE <==". FILE "-" reads standard input.

Options:
  -f, --format string   Output format: json or buildkit (default "json")
      --no-color        Never colour the code frames
  -h, --help            Print this help

Exit status: 0 when no file has an error diagnostic (warnings do not fail), 1 otherwise.
`;

export const run: Command = async (argv, ctx) => {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      format: { type: 'string', short: 'f', default: 'json' },
      'no-color': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    ctx.stdout.write(USAGE);
    return 0;
  }
  const format = values.format;
  if (format !== 'json' && format !== 'buildkit') throw new UsageError(`invalid --format ${JSON.stringify(format)}: expected json or buildkit\n\n${USAGE}`);
  if (positionals.length === 0) throw new UsageError(`requires at least 1 FILE argument\n\n${USAGE}`);
  const color = !values['no-color'] && ctx.stderr.isTTY === true && ctx.env.NO_COLOR === undefined;

  let failed = false;
  for (const [i, file] of positionals.entries()) {
    let text: string;
    try {
      text = file === '-' ? await readStream(ctx.stdin) : await readFile(path.resolve(ctx.cwd, file), 'utf8');
    } catch (err) {
      ctx.stderr.write(`tsbuild parse: ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}\n`);
      failed = true;
      continue;
    }
    const result = parseDockerfile(text, { file });
    if (positionals.length > 1) ctx.stdout.write(`${i > 0 ? '\n' : ''}==> ${file} <==\n`);
    if (format === 'json') {
      ctx.stdout.write(`${JSON.stringify({ file, ast: result.ast, diagnostics: result.diagnostics }, null, 2)}\n`);
    } else {
      // The dump is BuildKit's parser output: printed whenever the syntax is valid, even when
      // the instructions have semantic errors (those are diagnostics beside it).
      if (result.syntaxValid) ctx.stdout.write(dumpBuildkit(result.raw));
    }
    for (const d of result.diagnostics) ctx.stderr.write(`${formatDiagnostic(d, text, { file, color })}\n`);
    if (result.diagnostics.some((d) => d.severity === 'error')) failed = true;
  }
  return failed ? 1 : 0;
};

async function readStream(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}
