import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, test } from 'vitest';
import { normalizeWorkdir, resolveDest } from '../../../src/builder/plan/workdir.js';

const vectors = JSON.parse(
  readFileSync(resolve(import.meta.dirname, '../../../../shared/conformance/buildkit-instructions/normalize-workdir.json'), 'utf8'),
) as { cases: { current: string; new: string; expected: string }[] };

describe('normalizeWorkdir (BuildKit TestNormalizeWorkdir, every vector)', () => {
  test('has vectors', () => expect(vectors.cases.length).toBeGreaterThanOrEqual(8));
  for (const c of vectors.cases) {
    test(`${JSON.stringify(c.current)} + ${JSON.stringify(c.new)} → ${c.expected}`, () => {
      expect(normalizeWorkdir(c.current, c.new)).toBe(c.expected);
    });
  }
  test('absolute paths are taken as given, relative ones cleaned', () => {
    expect(normalizeWorkdir('/a', '/x/../y')).toBe('/x/../y');
    expect(normalizeWorkdir('/a/b', './c/../../d')).toBe('/a/d');
    expect(normalizeWorkdir('/a', '../../..')).toBe('/');
  });
});

describe('resolveDest (COPY/ADD destination against WORKDIR)', () => {
  test.each([
    ['/app', '.', '/app/'],
    ['/app', '', '/app/'],
    ['/app', 'x', '/app/x'],
    ['/app', 'x/', '/app/x/'],
    ['/app', 'x/.', '/app/x/.'],
    ['/app', '/abs', '/abs'],
    ['/app', '/abs/', '/abs/'],
    ['/', '.', '/'],
    ['/', './', '/'],
    ['/app', '../up', '/up'],
  ])('workdir %s, dest %s → %s', (wd, dest, want) => {
    expect(resolveDest(wd, dest)).toBe(want);
  });
});
