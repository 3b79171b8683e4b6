import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LineIndex } from '../../src/parser/diagnostics.js';
import { dumpBuildkit } from '../../src/parser/dump.js';
import { parseRaw } from '../../src/parser/raw.js';

// 1,654 real-world Dockerfiles with BuildKit's parser dump (`result`) or parse error (`error`),
// read straight from ../shared/conformance/corpus. No case is skipped.
const root = resolve(__dirname, '../../../shared/conformance');
const corpus = join(root, 'corpus');

function corpusDirs(): string[] {
  const dirs: string[] = [];
  for (const repo of readdirSync(corpus, { withFileTypes: true })) {
    if (!repo.isDirectory()) continue;
    for (const f of readdirSync(join(corpus, repo.name))) dirs.push(join(repo.name, f));
  }
  return dirs.sort();
}

describe('corpus', () => {
  const dirs = corpusDirs();

  it('has every file listed in INDEX.tsv', () => {
    const listed = readFileSync(join(corpus, 'INDEX.tsv'), 'utf8').trim().split('\n').length - 1;
    expect(dirs.length).toBe(listed);
    expect(dirs.length).toBe(1654);
  });

  it('dumps every accepted file byte for byte and rejects the others with BuildKit’s message', () => {
    const mismatches: string[] = [];
    let accepted = 0;
    let rejected = 0;
    for (const d of dirs) {
      const text = readFileSync(join(corpus, d, 'Dockerfile'), 'utf8');
      const { raw, diagnostics } = parseRaw(text);
      const errors = diagnostics.filter((x) => x.severity === 'error').map((x) => x.message);
      const resultFile = join(corpus, d, 'result');
      if (existsSync(resultFile)) {
        accepted++;
        if (errors.length > 0) mismatches.push(`${d}: unexpected errors ${JSON.stringify(errors)}`);
        else if (dumpBuildkit(raw) !== readFileSync(resultFile, 'utf8')) mismatches.push(`${d}: dump differs`);
      } else {
        rejected++;
        const expected = readFileSync(join(corpus, d, 'error'), 'utf8').trim();
        if (!errors.includes(expected)) mismatches.push(`${d}: expected error ${expected}, got ${JSON.stringify(errors)}`);
      }
    }
    expect(mismatches).toEqual([]);
    expect([accepted, rejected]).toEqual([1650, 4]);
  });

  it('reports the empty-continuation warnings PARSE.tsv counts, one per instruction', () => {
    const rows = readFileSync(join(corpus, 'PARSE.tsv'), 'utf8').trim().split('\n').slice(1);
    const mismatches: string[] = [];
    for (const row of rows) {
      const [path, status, instructions, warnings] = row.split('\t');
      if (status !== 'ok') continue;
      const { raw, diagnostics } = parseRaw(readFileSync(join(corpus, path!), 'utf8'));
      const got = diagnostics.filter((x) => x.code === 'empty-continuation').length;
      if (got !== Number(warnings) || raw.instructions.length !== Number(instructions)) {
        mismatches.push(`${path}: ${got} warnings, ${raw.instructions.length} instructions; want ${warnings}, ${instructions}`);
      }
    }
    expect(mismatches).toEqual([]);
  });

  it('gives ranges whose line/column agree with LineIndex and whose text is the keyword and flags', () => {
    const bad: string[] = [];
    for (const d of dirs.filter((_, i) => i % 7 === 0)) {
      const text = readFileSync(join(corpus, d, 'Dockerfile'), 'utf8');
      const index = new LineIndex(text);
      const { raw } = parseRaw(text);
      for (const ins of raw.instructions) {
        const ranges = [ins.range, ins.keywordRange, ins.restRange, ...ins.flags.map((f) => f.range), ...ins.heredocs.map((h) => h.range)];
        for (const r of ranges) {
          for (const p of [r.start, r.end]) {
            const want = index.position(p.offset);
            if (want.line !== p.line || want.column !== p.column) bad.push(`${d}: ${JSON.stringify(p)} vs ${JSON.stringify(want)}`);
          }
        }
        if (text.slice(ins.keywordRange.start.offset, ins.keywordRange.end.offset) !== ins.keyword) bad.push(`${d}: keyword ${ins.keyword}`);
        if (ins.startLine !== ins.range.start.line) bad.push(`${d}: startLine ${ins.startLine}`);
        for (const f of ins.flags) {
          const src = text.slice(f.range.start.offset, f.range.end.offset);
          if (!src.includes('\\') && !src.includes('`') && !/["']/.test(src) && src !== f.text) bad.push(`${d}: flag ${src} vs ${f.text}`);
        }
      }
    }
    expect(bad.slice(0, 20)).toEqual([]);
  });
});

describe('corpus-big', () => {
  it('dumps the 3 MB concatenation exactly, without errors or warnings', () => {
    const dir = join(root, 'corpus-big');
    const { raw, diagnostics } = parseRaw(readFileSync(join(dir, 'Dockerfile'), 'utf8'));
    expect(diagnostics).toEqual([]);
    expect(raw.instructions.length).toBe(11633);
    expect(dumpBuildkit(raw)).toBe(readFileSync(join(dir, 'result'), 'utf8'));
  });
});
