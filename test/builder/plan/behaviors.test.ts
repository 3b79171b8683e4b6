import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, test } from 'vitest';
import { planBuild } from '../../../src/builder/plan/index.js';
import { parseDockerfile } from '../../../src/parser/index.js';

/**
 * Every BuildKit behavior case (../shared/conformance/behaviors) through parse + plan: runs that
 * BuildKit builds must plan without errors and give the expected config and history (the parts a
 * plan decides); runs that fail at the Dockerfile level must fail here with BuildKit's message.
 */
const root = resolve(import.meta.dirname, '../../../../shared/conformance/behaviors');

/** Errors BuildKit raises only while building (reading the context), which a plan cannot see. */
const BUILD_TIME_ERRORS = new Set(['error-copy-missing-source', 'dockerignore-invalid']);

interface Run {
  target?: string;
  buildArgs?: Record<string, string>;
  frontendAttrs?: Record<string, string>;
  expect: {
    result: 'success' | 'error';
    error?: { contains: string[]; lines?: number[] };
    config?: Record<string, unknown>;
    history?: { created_by: string; empty_layer: boolean }[];
    historyTail?: { created_by: string; empty_layer: boolean }[];
    author?: string;
    stepNames?: string[];
  };
}

const cases = existsSync(root) ? readdirSync(root).filter((n) => existsSync(join(root, n, 'case.json'))).sort() : [];

function mapKeys(v: unknown): string[] | null {
  if (v === undefined || v === null) return null;
  const keys = Object.keys(v as object).sort();
  return keys.length === 0 ? null : keys;
}
function listOrNull(v: unknown): unknown {
  return v === undefined || v === null || (Array.isArray(v) && v.length === 0) ? null : v;
}

describe('behaviors: parse + plan', () => {
  test('the conformance data is there', () => {
    expect(cases.length).toBeGreaterThan(90);
  });
  for (const name of cases) {
    const c = JSON.parse(readFileSync(join(root, name, 'case.json'), 'utf8')) as { runs: Run[]; dockerfile?: string };
    c.runs.forEach((run, i) => {
      test(`${name} #${i} (${run.expect.result})`, () => {
        const text = readFileSync(join(root, name, c.dockerfile ?? 'Dockerfile'), 'utf8');
        const parsed = parseDockerfile(text, { file: 'Dockerfile' });
        const attrs = run.frontendAttrs ?? {};
        const planned = planBuild(parsed.ast, {
          ...(run.target !== undefined ? { target: run.target } : {}),
          buildArgs: run.buildArgs ?? {},
          platform: attrs.platform ?? 'linux/amd64',
          buildPlatform: 'linux/amd64',
          source: text,
        });
        const errors = [...parsed.diagnostics, ...planned.diagnostics].filter((d) => d.severity === 'error');
        const e = run.expect;
        if (e.result === 'error' && !BUILD_TIME_ERRORS.has(name)) {
          expect(errors.length, 'expected an error').toBeGreaterThan(0);
          const first = errors[0]!;
          for (const s of e.error?.contains ?? []) expect(errors.map((d) => d.message).join('\n')).toContain(s);
          if (e.error?.lines) expect(e.error.lines).toContain(first.range.start.line);
          return;
        }
        expect(errors.map((d) => d.message)).toEqual([]);
        const g = planned.graph;
        const stage = g.stages[g.target]!;
        expect(stage.reachable).toBe(true);
        if (attrs.requestid) return;
        const cfg = stage.config as Record<string, unknown>;
        for (const [k, want] of Object.entries(e.config ?? {})) {
          if (k === 'Labels' && Object.keys(attrs).some((a) => a.startsWith('label:'))) continue;
          if (k === 'ExposedPorts' || k === 'Volumes') expect(mapKeys(cfg[k]), k).toEqual(want);
          else if (k === 'Healthcheck') expect(cfg[k], k).toEqual(want);
          else if (want === null || Array.isArray(want)) expect(listOrNull(cfg[k]), k).toEqual(listOrNull(want));
          else expect(cfg[k], k).toEqual(want);
        }
        const hist = stage.history.map((h) => ({ created_by: h.created_by, empty_layer: h.empty_layer }));
        if (e.history && stage.base.kind === 'scratch') expect(hist).toEqual(e.history);
        if (e.history && stage.base.kind === 'stage') expect(hist).toEqual(e.history);
        if (e.historyTail) expect(hist.slice(-e.historyTail.length)).toEqual(e.historyTail);
        if (e.author !== undefined) expect(stage.author).toBe(e.author);
        if (e.stepNames) {
          const names = g.stages.flatMap((s) => s.ops.flatMap((o) => (o.meta.progressName !== undefined ? [o.meta.progressName] : [])));
          for (const n of e.stepNames) expect(names).toContain(n);
        }
      });
    });
  }
});
