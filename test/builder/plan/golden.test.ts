import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, test } from 'vitest';
import { planBuild, type PlanOptions } from '../../../src/builder/plan/index.js';
import { parseDockerfile } from '../../../src/parser/index.js';

/**
 * Golden graphs: test/fixtures/plan/<case>/{Dockerfile, options.json, expected.json}. Ranges are
 * shown as `line:col-line:col` to keep the files readable. `UPDATE_GOLDEN=1` rewrites
 * expected.json (review the diff before committing).
 */
const dir = resolve(import.meta.dirname, '../../fixtures/plan');
const cases = readdirSync(dir).filter((n) => existsSync(join(dir, n, 'Dockerfile'))).sort();

function compact(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(compact);
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const s = o.start as { line?: number; column?: number } | undefined;
    const e = o.end as { line?: number; column?: number } | undefined;
    if (s && e && typeof s.line === 'number' && Object.keys(o).length === 2) return `${s.line}:${s.column}-${e.line}:${e.column}`;
    return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, compact(x)]));
  }
  return v;
}

describe('golden plans', () => {
  test('fixtures exist', () => expect(cases.length).toBeGreaterThanOrEqual(6));
  for (const name of cases) {
    test(name, () => {
      const text = readFileSync(join(dir, name, 'Dockerfile'), 'utf8');
      const optFile = join(dir, name, 'options.json');
      const options = (existsSync(optFile) ? JSON.parse(readFileSync(optFile, 'utf8')) : {}) as PlanOptions;
      const parsed = parseDockerfile(text, { file: 'Dockerfile' });
      const { graph, diagnostics } = planBuild(parsed.ast, { buildPlatform: 'linux/amd64', ...options, source: text });
      const actual = compact({ diagnostics: [...parsed.diagnostics, ...diagnostics], graph });
      const expectedFile = join(dir, name, 'expected.json');
      if (process.env.UPDATE_GOLDEN === '1' || !existsSync(expectedFile)) writeFileSync(expectedFile, `${JSON.stringify(actual, null, 2)}\n`);
      expect(actual).toEqual(JSON.parse(readFileSync(expectedFile, 'utf8')));
    });
  }
});
