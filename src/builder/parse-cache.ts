/**
 * The parsed Dockerfile and the plan of a build, kept in the root between builds.
 *
 * Parsing itself is quick (a few ms for a usual Dockerfile), but a fresh process must first load
 * Chevrotain and build the lexer and parser, about 30–40 ms of the ~0.3 s a no-op rebuild takes
 * from the command line. The AST is plain JSON (tested: every corpus file round-trips exactly),
 * so a rebuild of an unchanged Dockerfile reads it back and never loads the parser.
 *
 * An entry is named by the sha256 of the file name, the text and the identity of the code that
 * parsed it: `AST_FORMAT` (bumped when the AST changes shape) and the size and mtime of this
 * module's file (a new build or install of tsbuild is a new file). Entries are written
 * atomically; one that does not read back as JSON is a miss. At most `KEEP` entries are kept
 * (the oldest go first).
 *
 * The plan (planner output, also plain JSON, tested on every conformance case) is kept the same
 * way, named by the parse entry's name and everything else the planner reads (target, build
 * args, platforms, named contexts, the base images' configs): ~20 ms of a small no-op rebuild,
 * most of it compiling the planner's code in a fresh process.
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ParseResult } from '../parser/ast.js';
import type { PlanResult } from './plan/plan.js';
import { writeFileAtomic } from '../oci/store.js';

/** Bump when the shape of `ParseResult` changes. */
const AST_FORMAT = 1;
/** Entries kept in the cache directory. */
const KEEP = 200;

let codeId: string | undefined;
/** The identity of this build of tsbuild's code (the size and mtime of this module's file): what made a kept result. */
export async function codeIdentity(): Promise<string> {
  if (codeId === undefined) {
    try {
      const s = statSync(fileURLToPath(import.meta.url));
      codeId = `${s.size}:${s.mtimeMs}`;
    } catch {
      codeId = 'unknown';
    }
  }
  return codeId;
}

/** The parser, loaded on first use (the module graph behind it loads Chevrotain). */
export async function loadParser(): Promise<typeof import('../parser/index.js')> {
  return import('../parser/index.js');
}

/**
 * The value kept under `dir` as `<key>.json` when it is there and `valid` says it has the right
 * shape, else `compute()`'s, kept for next time when `keep` says so. A cache that cannot be read
 * or written only costs the next build the work.
 */
async function memo<T>(dir: string, key: string, valid: (v: T) => boolean, compute: () => T | Promise<T>, keep: (v: T) => boolean = () => true): Promise<{ result: T; cached: boolean }> {
  const entry = path.join(dir, `${key}.json`);
  try {
    // One synchronous read of a small file: an awaited readFile is four trips through the threadpool.
    const result = JSON.parse(readFileSync(entry, 'utf8')) as T;
    if (result && typeof result === 'object' && valid(result)) return { result, cached: true };
  } catch {
    // missing or unreadable
  }
  const result = await compute();
  if (keep(result)) {
    try {
      await mkdir(dir, { recursive: true });
      await writeFileAtomic(entry, JSON.stringify(result), 0o644, { syncDir: false });
      await trim(dir);
    } catch {
      // not kept: the next build does the work again
    }
  }
  return { result, cached: false };
}

async function trim(dir: string): Promise<void> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.json'));
  if (names.length <= KEEP) return;
  const aged = await Promise.all(names.map(async (n) => ({ n, t: (await stat(path.join(dir, n)).catch(() => undefined))?.mtimeMs ?? 0 })));
  aged.sort((a, b) => a.t - b.t);
  await Promise.all(aged.slice(0, names.length - KEEP).map((a) => rm(path.join(dir, a.n), { force: true })));
}

/**
 * `parseDockerfile(source, { file })`, from `<root>/cache/parse` when this text was parsed
 * before by the same code. `cached` says whether it was; `key` names the parse for `planWithCache`.
 */
export async function parseWithCache(root: string, source: string, file: string): Promise<{ result: ParseResult; cached: boolean; key: string }> {
  const key = createHash('sha256')
    .update(`tsbuild-ast-${AST_FORMAT}\0${await codeIdentity()}\0${file}\0`)
    .update(source)
    .digest('hex');
  const parsed = await memo<ParseResult>(
    path.join(root, 'cache', 'parse'),
    key,
    (r) => Boolean(r.ast) && Array.isArray(r.diagnostics),
    async () => (await loadParser()).parseDockerfile(source, { file }),
  );
  return { ...parsed, key };
}

/**
 * `plan()`, from `<root>/cache/plan` when the same parse (`parseKey`, from `parseWithCache`) was
 * planned with the same `inputs` (JSON-able: every option and base image config the planner
 * reads) by the same code. A plan with errors is not kept.
 */
export async function planWithCache(root: string, parseKey: string, inputs: unknown, plan: () => PlanResult | Promise<PlanResult>): Promise<{ result: PlanResult; cached: boolean }> {
  const key = createHash('sha256').update(`tsbuild-plan-${AST_FORMAT}\0${parseKey}\0${JSON.stringify(inputs)}`).digest('hex');
  return memo<PlanResult>(
    path.join(root, 'cache', 'plan'),
    key,
    (r) => Boolean(r.graph) && Array.isArray(r.diagnostics),
    plan,
    (r) => !r.diagnostics.some((d) => d.severity === 'error'),
  );
}
