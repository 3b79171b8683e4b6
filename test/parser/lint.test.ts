import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { dockerignoreMatcher } from '../../src/cli/commands/lint.js';
import type { Diagnostic } from '../../src/parser/diagnostics.js';
import { parseDockerfile } from '../../src/parser/index.js';
import type { LintOptions } from '../../src/parser/lint.js';
import { LINT_RULES, lint, LintConfigError, lintWithConfig, parseCheckOptions } from '../../src/parser/lint.js';

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/lint');
/** Set UPDATE_GOLDEN=1 to write missing expected.json files (review them before committing). */
const update = process.env.UPDATE_GOLDEN === '1';

interface CaseOptions {
  checks?: string;
  buildArgs?: Record<string, string>;
  imageEnv?: Record<string, string[]>;
  dockerignore?: string;
  withoutSource?: boolean;
}

/** A finding in golden form: `line:col-line:col` ranges (1-based, end exclusive). */
function compact(d: Diagnostic) {
  const r = d.range;
  return {
    code: d.code,
    severity: d.severity,
    message: d.message,
    range: `${r.start.line}:${r.start.column}-${r.end.line}:${r.end.column}`,
    ...(d.suggestion !== undefined ? { suggestion: d.suggestion } : {}),
  };
}

function runCase(dir: string) {
  const text = readFileSync(path.join(dir, 'Dockerfile'), 'utf8');
  const optFile = path.join(dir, 'options.json');
  const co: CaseOptions = existsSync(optFile) ? (JSON.parse(readFileSync(optFile, 'utf8')) as CaseOptions) : {};
  const result = parseDockerfile(text, { file: 'Dockerfile' });
  const options: LintOptions = {
    ...(co.withoutSource ? {} : { source: text }),
    ...(co.checks !== undefined ? { checks: co.checks } : {}),
    ...(co.buildArgs ? { buildArgs: co.buildArgs } : {}),
    ...(co.imageEnv ? { baseImage: (image: string) => (co.imageEnv![image] ? { env: co.imageEnv![image]! } : undefined) } : {}),
    ...(co.dockerignore !== undefined ? { ignore: dockerignoreMatcher(co.dockerignore) } : {}),
  };
  return { result, findings: lint(result, options), text };
}

describe('lint golden fixtures', () => {
  const cases = readdirSync(fixtures, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort();
  it('has fixtures', () => expect(cases.length).toBeGreaterThan(20));
  for (const name of cases) {
    it(name, () => {
      const dir = path.join(fixtures, name);
      const { result, findings } = runCase(dir);
      // Fixtures are valid Dockerfiles: no parse errors hide behind the findings.
      expect(result.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
      const got = findings.map(compact);
      const expectedFile = path.join(dir, 'expected.json');
      if (!existsSync(expectedFile) && update) writeFileSync(expectedFile, `${JSON.stringify(got, null, 2)}\n`);
      expect(got).toEqual(JSON.parse(readFileSync(expectedFile, 'utf8')));
      for (const d of findings) {
        const rule = d.code.replace(/^lint\//, '') as keyof typeof LINT_RULES;
        expect(LINT_RULES[rule], d.code).toBeDefined();
        expect(d.url).toBe(LINT_RULES[rule].url);
        expect(d.file).toBe('Dockerfile');
      }
    });
  }
});

describe('rule table', () => {
  it('names every rule with its kebab-case docs URL', () => {
    for (const [key, rule] of Object.entries(LINT_RULES)) {
      expect(rule.name).toBe(key);
      const kebab = key.replace(/([a-z0-9])([A-Z])/g, '$1-$2').replace(/([A-Z]+)([A-Z][a-z])/g, '$1-$2').toLowerCase();
      expect(rule.url).toBe(`https://docs.docker.com/go/dockerfile/rule/${kebab}/`);
    }
  });
});

describe('check configuration', () => {
  it('parses skip, error and experimental like ParseLintOptions', () => {
    const c = parseCheckOptions(' skip = A, B ; error = true ; experimental=all ');
    expect([...c.skip]).toEqual(['A', 'B']);
    expect(c.error).toBe(true);
    expect(c.experimentalAll).toBe(true);
    expect(parseCheckOptions('skip=all').skipAll).toBe(true);
    expect(parseCheckOptions('error=1').error).toBe(true);
    expect(parseCheckOptions('').skipAll).toBe(false);
  });

  it('rejects unknown keys and non-boolean error values with BuildKit messages', () => {
    expect(() => parseCheckOptions('skp=A')).toThrow(new LintConfigError('invalid check option "skp"'));
    expect(() => parseCheckOptions('skip')).toThrow(new LintConfigError('invalid check option "skip"'));
    expect(() => parseCheckOptions('error=yes')).toThrow(/failed to parse check option "error=yes"/);
  });

  it('an unreadable directive disables linting instead of throwing', () => {
    const text = '# check=bogus\nFROM alpine AS Bad\n';
    const r = lintWithConfig(parseDockerfile(text), { source: text });
    expect(r.diagnostics).toEqual([]);
  });

  it('options.checks replaces the directive', () => {
    const text = '# check=skip=all\nFROM alpine AS Bad\n';
    const parsed = parseDockerfile(text);
    expect(lint(parsed, { source: text })).toEqual([]);
    expect(lint(parsed, { source: text, checks: '' }).map((d) => d.code)).toEqual(['lint/StageNameCasing']);
  });
});

describe('without the source text', () => {
  it('still reports, at instruction ranges', () => {
    const text = 'FROM alpine AS Bad\nCMD run me\n';
    const parsed = parseDockerfile(text);
    const findings = lint(parsed);
    expect(findings.map((d) => d.code)).toEqual(['lint/StageNameCasing', 'lint/JSONArgsRecommended']);
    expect(findings[0]!.range.start.line).toBe(1);
    expect(findings[1]!.range.start.line).toBe(2);
  });
});

describe('build args and platform', () => {
  it('a --build-arg counts as declared for UndefinedVar; TARGETSTAGE follows the target', () => {
    const text = 'FROM scratch\nCOPY $SRC /\n';
    const parsed = parseDockerfile(text);
    expect(lint(parsed, { source: text }).map((d) => d.code)).toEqual(['lint/UndefinedVar']);
    // BuildKit only removes ARG-declared names; a build arg that no ARG declares is still undefined.
    expect(lint(parsed, { source: text, buildArgs: { SRC: 'x' } }).map((d) => d.code)).toEqual(['lint/UndefinedVar']);
    const declared = 'FROM scratch\nARG SRC\nCOPY $SRC /\n';
    expect(lint(parseDockerfile(declared), { source: declared, buildArgs: { SRC: 'x' } })).toEqual([]);
  });

  it('a constant --platform that names the stage platform is allowed', () => {
    const text = 'FROM --platform=linux/arm64 alpine AS build-arm64\n';
    expect(lint(parseDockerfile(text), { source: text })).toEqual([]);
  });
});

describe('real-world corpus', () => {
  const corpus = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../shared/conformance/corpus');
  it('lints all 1,654 files without throwing; NoEmptyContinuation matches BuildKit\'s parser warnings', () => {
    const rows = readFileSync(path.join(corpus, 'PARSE.tsv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split('\t'));
    expect(rows.length).toBe(1654);
    const counts = new Map<string, number>();
    let checked = 0;
    for (const [file, status, , warnings] of rows) {
      const text = readFileSync(path.join(corpus, file!), 'utf8');
      const parsed = parseDockerfile(text, { file: file! });
      // checks: '' ignores the files' own check directives, so every rule runs.
      const findings = lint(parsed, { source: text, checks: '' });
      for (const d of findings) {
        counts.set(d.code, (counts.get(d.code) ?? 0) + 1);
        expect(d.range.start.offset).toBeLessThanOrEqual(d.range.end.offset);
        expect(d.range.end.offset).toBeLessThanOrEqual(text.length);
      }
      if (status === 'ok') {
        expect(findings.filter((d) => d.code === 'lint/NoEmptyContinuation').length, file).toBe(Number(warnings));
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(1600);
    // Real files trip the common rules.
    for (const rule of ['lint/JSONArgsRecommended', 'lint/LegacyKeyValueFormat', 'lint/MaintainerDeprecated', 'lint/FromAsCasing']) {
      expect(counts.get(rule) ?? 0, rule).toBeGreaterThan(0);
    }
  });
});
