// Writes V8's code caches (src/util/code-cache.ts) for the node running this script:
// - of the vendored Chevrotain (dist/vendor/chevrotain.cjs), after a warm-up parse that runs the
//   lexer's and parser's paths (src/parser/chevrotain-loader.ts);
// - of the command line (dist/cli/main.cjs), after a warm-up run of the commands a user runs
//   most: help, parse, and a build of a small context (cold, no-op, one file changed) into a
//   temporary root, then images, inspect and du (src/cli/loader.ts).
// Run by the build and at install (for the installing node's V8); never fails either: without a
// cache, the parser and the command line only start slower.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const entry = join(root, 'dist', 'parser', 'index.js');
if (!existsSync(join(root, 'dist', 'vendor', 'chevrotain.cjs')) || !existsSync(entry)) process.exit(0);
try {
  const parser = await import(pathToFileURL(entry).href);
  const warmUp = [
    '# syntax=docker/dockerfile:1',
    '# escape=\\',
    'ARG BASE=busybox',
    'FROM ${BASE} AS build',
    'RUN --mount=type=cache,target=/root/.cache echo a \\',
    '',
    '  # a comment inside a continuation',
    '  && echo b',
    'COPY <<EOF /x',
    'hello',
    'EOF',
    'RUN <<-A cat > /a && cat <<"B" > /b',
    '\tone',
    '\tA',
    'two',
    'B',
    'ENV A=1 B="2 3"',
    'LABEL x=y',
    'HEALTHCHECK --interval=5s CMD true',
    'FROBNICATE x',
    'FROM scratch',
    'COPY --from=build /x /',
    'CMD ["sh", "-c", "true"]',
    '',
  ].join('\n');
  for (let i = 0; i < 3; i++) parser.parseDockerfile(warmUp, { file: 'Dockerfile' });
  parser.parseDockerfile(`# escape=\`\nFROM busybox\nRUN echo a \`\n  b\n`);
  const out = parser.writeChevrotainCodeCache();
  if (!out) console.warn('tsbuild: Chevrotain was not loaded from dist/vendor; no code cache written');
} catch (err) {
  console.warn(`tsbuild: no V8 code cache for the parser (${err.message})`);
}

// The command line. A warm-up command that fails (no permission to change owners, say) still
// compiles most of what it runs: the cache is written whatever the commands return.
if (existsSync(join(root, 'dist', 'cli', 'main.cjs')) && existsSync(join(root, 'dist', 'cli', 'loader.js'))) {
  const tmp = mkdtempSync(join(tmpdir(), 'tsbuild-prime-'));
  try {
    const loader = await import(pathToFileURL(join(root, 'dist', 'cli', 'loader.js')).href);
    const cli = loader.loadCommandLine();
    const sink = () => new Writable({ write: (_chunk, _enc, cb) => cb() });
    const run = (argv) => cli.main(argv, { stdout: sink(), stderr: sink(), stdin: process.stdin, env: { ...process.env, TSBUILD_ROOT: join(tmp, 'root') }, cwd: tmp, signal: new AbortController().signal }).catch(() => 1);
    const ctx = join(tmp, 'ctx');
    mkdirSync(ctx);
    writeFileSync(join(ctx, 'Dockerfile'), 'ARG V=1\nFROM scratch AS base\nENV A=1 V=${V}\nWORKDIR /app\nCOPY . .\nLABEL x=y\nFROM base\nCOPY --from=base /app/a.txt /b.txt\nCMD ["/bin/x"]\n');
    writeFileSync(join(ctx, 'a.txt'), 'a\n');
    await run(['--help']);
    await run(['build', '--help']);
    await run(['parse', join(ctx, 'Dockerfile')]);
    for (const change of ['a', 'a', 'b']) {
      writeFileSync(join(ctx, 'a.txt'), `${change}\n`);
      await run(['build', '--progress', 'plain', '-t', 'prime:latest', ctx]);
    }
    await run(['images']);
    await run(['inspect', 'prime:latest']);
    await run(['du']);
    const out = loader.writeCommandLineCodeCache();
    if (!out) console.warn('tsbuild: the command line was not loaded; no code cache written');
  } catch (err) {
    console.warn(`tsbuild: no V8 code cache for the command line (${err.message})`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
