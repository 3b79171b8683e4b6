import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseWithCache, planWithCache } from '../../src/builder/parse-cache.js';
import { planBuild } from '../../src/builder/plan/index.js';
import { parseDockerfile } from '../../src/parser/index.js';

const text = [
  '# syntax=docker/dockerfile:1',
  'ARG BASE=busybox',
  'FROM $BASE AS build',
  'RUN --mount=type=cache,target=/root/.cache <<EOF',
  'echo hi > /x',
  'EOF',
  'COPY --chmod=0755 --from=build /x /y',
  'RUN echo a \\',
  '',
  '  && echo b',
  'maintainer someone',
  'CMD ["sh"]',
  '',
].join('\n');

let root: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'tsbuild-parse-cache-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const entries = async () => (await readdir(path.join(root, 'cache', 'parse'))).filter((n) => n.endsWith('.json'));

describe('parse cache', () => {
  it('parses once, then reads back exactly what the parser gives (diagnostics included)', async () => {
    const expected = parseDockerfile(text, { file: 'Dockerfile' });
    expect(expected.diagnostics.length).toBeGreaterThan(0); // the empty continuation line's warning travels too
    const first = await parseWithCache(root, text, 'Dockerfile');
    expect(first.cached).toBe(false);
    expect(first.result).toStrictEqual(expected);
    const second = await parseWithCache(root, text, 'Dockerfile');
    expect(second.cached).toBe(true);
    expect(second.result).toStrictEqual(expected);
    expect(await entries()).toHaveLength(1);
  });

  it('keys by text and file name: a changed Dockerfile or another file is parsed again', async () => {
    await parseWithCache(root, text, 'Dockerfile');
    const changed = await parseWithCache(root, text.replace('echo hi', 'echo bye'), 'Dockerfile');
    expect(changed.cached).toBe(false);
    expect(JSON.stringify(changed.result.ast)).toContain('echo bye');
    const other = await parseWithCache(root, text, 'sub/Dockerfile');
    expect(other.cached).toBe(false);
    expect(other.result.ast.file).toBe('sub/Dockerfile');
    expect(await entries()).toHaveLength(3);
  });

  it('treats an unreadable entry as a miss and replaces it', async () => {
    await parseWithCache(root, text, 'Dockerfile');
    const [name] = await entries();
    const file = path.join(root, 'cache', 'parse', name!);
    await writeFile(file, '{"ast": {"stag'); // torn by hand (the cache itself writes atomically)
    const again = await parseWithCache(root, text, 'Dockerfile');
    expect(again.cached).toBe(false);
    expect(again.result).toStrictEqual(parseDockerfile(text, { file: 'Dockerfile' }));
    expect(JSON.parse(await readFile(file, 'utf8'))).toStrictEqual(again.result);
  });

  it('caches a Dockerfile with errors as it parses it (the build reports them the same way)', async () => {
    const bad = 'FROM busybox\nFROBNICATE x\n';
    const first = await parseWithCache(root, bad, 'Dockerfile');
    const second = await parseWithCache(root, bad, 'Dockerfile');
    expect(second.cached).toBe(true);
    expect(second.result.diagnostics.some((d) => d.severity === 'error')).toBe(true);
    expect(second.result).toStrictEqual(first.result);
  });
});

describe('plan cache', () => {
  it('plans once per parse and inputs, reads the same plan back, and keeps no plan with errors', async () => {
    const planText = 'ARG BASE=busybox\nFROM $BASE AS build\nRUN echo hi > /x\nFROM scratch\nCOPY --from=build /x /y\n';
    const { result: parsed, key } = await parseWithCache(root, planText, 'Dockerfile');
    let runs = 0;
    const plan = (opts: { buildArgs: Record<string, string> }) => () => {
      runs++;
      return planBuild(parsed.ast, { ...opts, platform: 'linux/amd64', buildPlatform: 'linux/amd64' });
    };
    const inputs = { buildArgs: { BASE: 'busybox' } };
    const first = await planWithCache(root, key, inputs, plan(inputs));
    expect(first.cached).toBe(false);
    expect(first.result.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    const second = await planWithCache(root, key, { buildArgs: { BASE: 'busybox' } }, plan(inputs));
    expect(second.cached).toBe(true);
    expect(runs).toBe(1);
    expect(second.result).toStrictEqual(JSON.parse(JSON.stringify(first.result)));
    expect(second.result).toStrictEqual(first.result);

    const other = { buildArgs: { BASE: 'alpine' } };
    const third = await planWithCache(root, key, other, plan(other));
    expect(third.cached).toBe(false);
    expect(JSON.stringify(third.result.graph)).toContain('alpine');

    const bad = { buildArgs: {}, target: 'nope' };
    const failing = () => planBuild(parsed.ast, { target: 'nope' });
    expect((await planWithCache(root, key, bad, failing)).result.diagnostics.some((d) => d.severity === 'error')).toBe(true);
    expect((await planWithCache(root, key, bad, failing)).cached).toBe(false);
  });
});

describe('the AST is plain JSON (what the parse cache relies on)', () => {
  it('round-trips through JSON exactly for every corpus Dockerfile (no undefined fields, Maps, classes or cycles)', () => {
    const corpus = path.resolve(__dirname, '../../../shared/conformance/corpus');
    const differ: string[] = [];
    let n = 0;
    for (const repo of readdirSync(corpus, { withFileTypes: true })) {
      if (!repo.isDirectory()) continue;
      for (const f of readdirSync(path.join(corpus, repo.name))) {
        const file = path.join(repo.name, f, 'Dockerfile');
        const result = parseDockerfile(readFileSync(path.join(corpus, file), 'utf8'), { file });
        n++;
        if (!isDeepStrictEqual(JSON.parse(JSON.stringify(result)), result)) differ.push(file);
      }
    }
    expect(n).toBe(1654);
    expect(differ).toEqual([]);
  });
});
