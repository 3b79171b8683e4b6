// Writes V8's code cache of the vendored Chevrotain (dist/vendor/chevrotain.cjs) for the node
// running this script, after a warm-up parse that runs the lexer's and parser's paths (see
// src/parser/chevrotain-loader.ts). Run by the build and at install (for the installing node's
// V8); never fails either: without a cache the parser only starts slower.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
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
