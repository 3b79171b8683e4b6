import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LineIndex, positionsFor } from '../../src/parser/diagnostics.js';
import { parseRaw, parseRawInChunks } from '../../src/parser/raw.js';
import { toAst } from '../../src/parser/to-ast.js';

// parseRaw keeps the line starts its lexer collected (no second scan of the text) and toAst reuses
// them: they must be exactly the starts of a plain scan for '\n', whatever the file looks like.
const root = resolve(__dirname, '../../../shared/conformance');

function newlineStarts(text: string): number[] {
  const starts = [0];
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) starts.push(i + 1);
  return starts;
}

function corpusTexts(): string[] {
  const dir = join(root, 'corpus');
  const out: string[] = [];
  for (const repo of readdirSync(dir, { withFileTypes: true })) {
    if (!repo.isDirectory()) continue;
    for (const f of readdirSync(join(dir, repo.name))) out.push(readFileSync(join(dir, repo.name, f, 'Dockerfile'), 'utf8'));
  }
  return out;
}

const long = 'x'.repeat(65536);
const tricky: Record<string, string> = {
  empty: '',
  'no final newline': 'FROM a\nRUN b',
  'comments and blanks': '# c\n\n  # d\n\t\nFROM a\n\n# e\nRUN b\n\n',
  continuation: 'FROM a\nRUN b \\\n\n  # c\n  c \\\n\nd\n',
  'continued at EOF': 'FROM a\nRUN b \\\n# c\n\n',
  'crlf and bom': '\ufeffFROM a\r\nRUN b \\\r\n c\r\n\r\n',
  heredocs: 'FROM a\nRUN <<A <<-B cat\na\nA\n\tb\n\tB\nCOPY <<X /x\nnever closed\n\n',
  'long line in a continuation': `FROM a\nRUN b \\\n# c\n${long}\nRUN d\n`,
  'long line in a heredoc': `FROM a\nRUN <<EOF\nx\n${long}\nEOF\nRUN e\n`,
  'long line at the top': `${long}\n# c\nFROM a\n`,
  'escape directive': '# escape=`\nFROM a\nRUN b `\n c\n',
};

describe('line index kept from the lexer', () => {
  it.each(Object.entries(tricky))('%s', (_name, text) => {
    const { raw } = parseRaw(text);
    expect(positionsFor(raw, text)?.starts).toEqual(newlineStarts(text));
  });

  it('is exact on every corpus file and on corpus-big', () => {
    const texts = [...corpusTexts(), readFileSync(join(root, 'corpus-big/Dockerfile'), 'utf8')];
    expect(texts.length).toBe(1655);
    let bad = 0;
    for (const text of texts) {
      const { raw } = parseRaw(text);
      const starts = positionsFor(raw, text)?.starts;
      const want = newlineStarts(text);
      if (starts === undefined || starts.length !== want.length || starts.some((s, i) => s !== want[i])) bad++;
    }
    expect(bad).toBe(0);
  });

  it('gives toAst the same positions and comments as a fresh LineIndex', () => {
    const text = tricky.continuation! + '# doc\n# build the thing\nFROM b AS build\nCOPY --bogus=7 x y\nFROM c AS 9x\nEXPOSE 80/xyz\n' + tricky.heredocs!;
    const { raw } = parseRaw(text);
    const shared = toAst(raw, { source: text });
    // a copy of the raw result has no recorded index: toAst builds its own LineIndex
    const fresh = toAst(structuredClone(raw), { source: text });
    expect(shared).toEqual(fresh);
    expect(shared.ast.stages[1]?.docComment).toBe('the thing');
    const index = new LineIndex(text);
    for (const d of shared.diagnostics) expect(d.range.start).toEqual(index.position(d.range.start.offset));
    expect(shared.diagnostics.length).toBeGreaterThan(0);
  });

  it('is not used for another text', () => {
    const { raw } = parseRaw('FROM a\n');
    expect(positionsFor(raw, 'FROM b\n')).toBeUndefined();
  });
});

describe('chunked lexing and parsing', () => {
  // parseRaw lexes, parses and converts 64 KiB at a time; with tiny chunks every line group
  // boundary of these files is a chunk boundary, and the result must be the same.
  it.each([1, 7, 300])('gives the same result with chunks of %i characters, on every tricky input and corpus file', (size) => {
    const texts = [...Object.values(tricky), ...corpusTexts()];
    let differ = 0;
    let chunked = 0;
    for (const text of texts) {
      const whole = parseRawInChunks(text, {}, Number.MAX_SAFE_INTEGER);
      const parts = parseRawInChunks(text, {}, size);
      if (JSON.stringify(parts) !== JSON.stringify(whole)) differ++;
      if (text.length > size) chunked++;
    }
    expect(differ).toBe(0);
    expect(chunked).toBeGreaterThan(1000);
  });

  it('splits corpus-big into many chunks and gives the same result as one chunk', () => {
    const text = readFileSync(join(root, 'corpus-big/Dockerfile'), 'utf8');
    const whole = parseRawInChunks(text, {}, Number.MAX_SAFE_INTEGER);
    expect(JSON.stringify(parseRaw(text))).toBe(JSON.stringify(whole));
    expect(whole.raw.instructions.length).toBe(11633);
  });
});
