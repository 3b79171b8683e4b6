import type { Dockerfile, Instruction, Stage } from '../../parser/ast.js';
import type { Range } from '../../parser/diagnostics.js';
import { processWord, emptyEnv } from '../../parser/shell.js';
import { editDistance } from '../../util/suggest.js';
import { PlanAbort, makeDiagnostic } from './diagnostics.js';
import { shellEnv, type EnvList } from './env.js';
import { makeExpander } from './expand.js';
import { formatPlatform, parsePlatform, type PlatformSpec } from './platform.js';
import type { EdgeKind } from './types.js';
import { familiarString, parseReference } from '../../oci/reference.js';

/**
 * Stage resolution (BuildKit's `buildDispatchStates`, `toCommand`, `validateCircularDependency`,
 * `resolveTarget`, `allReachableStages`): what each FROM names, which stages each stage reads,
 * cycles, the target and the stages it reaches, and a parallel order.
 */

export type ResolvedBase =
  | { readonly kind: 'scratch' }
  | { readonly kind: 'image'; readonly ref: string }
  | { readonly kind: 'named-context'; readonly name: string }
  | { readonly kind: 'stage'; readonly stage: number };

export interface StageInfo {
  readonly index: number;
  readonly ast: Stage;
  readonly name?: string;
  readonly displayName: string;
  readonly baseName: string;
  readonly base: ResolvedBase;
  readonly platform: PlatformSpec;
  /** FROM --platform was given. */
  readonly explicitPlatform: boolean;
  /**
   * A named context has this stage's name (`--build-context build=…` for `FROM … AS build`): it
   * replaces the whole stage, whose instructions are not run (BuildKit's dispatch skips them).
   */
  readonly replaced?: true;
}

/** What a `--from` / mount `from=` refers to. */
export type FromRef =
  | { readonly kind: 'stage'; readonly stage: number }
  | { readonly kind: 'image'; readonly ref: string }
  | { readonly kind: 'named-context'; readonly name: string };

export interface Dependency {
  readonly kind: EdgeKind;
  readonly target: FromRef;
  readonly range: Range;
  readonly onbuild: boolean;
}

export interface ResolveContext {
  readonly file: string | undefined;
  readonly escapeChar: '\\' | '`';
  readonly global: EnvList;
  readonly targetPlatform: PlatformSpec;
  readonly buildPlatform: PlatformSpec;
  readonly namedContexts: ReadonlySet<string>;
}

/** An image name as BuildKit matches it to a named context: familiar form, without `:latest`. */
function contextKey(name: string): string | undefined {
  try {
    const s = familiarString(parseReference(name, { defaultTag: false }));
    return s.endsWith(':latest') ? s.slice(0, -':latest'.length) : s;
  } catch {
    return undefined;
  }
}

/**
 * The `--build-context` name that `value` (a FROM image, a stage name, a `--from`) refers to,
 * matched as BuildKit matches them: as written, or as the same image name (`alpine`,
 * `alpine:latest` and `docker.io/library/alpine` are one name). `scratch` and `context` never
 * refer to one.
 */
export function namedContextFor(value: string, names: ReadonlySet<string>): string | undefined {
  if (names.size === 0) return undefined;
  const lower = value.toLowerCase();
  if (lower === 'scratch' || lower === 'context') return undefined;
  if (names.has(value)) return value;
  const want = contextKey(value);
  if (want === undefined) return undefined;
  for (const n of names) if (contextKey(n) === want) return n;
  return undefined;
}

const abort = (ctx: { file: string | undefined }, code: string, message: string, range: Range, suggestion?: string): never => {
  throw new PlanAbort(makeDiagnostic({ code, message, range, ...(suggestion !== undefined ? { suggestion } : {}) }, ctx.file));
};

/** Expands each FROM (image and --platform) with the global scope and resolves what it names. */
export function resolveStages(ast: Dockerfile, ctx: ResolveContext): StageInfo[] {
  const out: StageInfo[] = [];
  const byName = new Map<string, number>();
  for (const st of ast.stages) {
    const from = st.from;
    const expand = makeExpander(shellEnv(ctx.global), from.range, ctx.file, { escapeChar: ctx.escapeChar });
    const baseName = expand.word(from.image);
    if (baseName === '') abort(ctx, 'blank-base-name', `base name (${from.image}) should not be blank`, from.imageRange);
    let platform = ctx.targetPlatform;
    let explicitPlatform = false;
    if (from.platform !== undefined) {
      const p = makeExpander(shellEnv(ctx.global), from.range, ctx.file, { escapeChar: ctx.escapeChar }).word(from.platform);
      if (p === '') abort(ctx, 'invalid-platform', `empty platform value from expression ${from.platform}`, from.range);
      try {
        platform = parsePlatform(p, ctx.buildPlatform);
      } catch (err) {
        abort(ctx, 'invalid-platform', `failed to parse platform ${from.platform}: ${(err as Error).message}`, from.range);
      }
      explicitPlatform = true;
    }
    const name = st.name ?? st.nameAsWritten?.toLowerCase();
    let base: ResolvedBase;
    const parent = byName.get(baseName.toLowerCase());
    const replacedBy = name !== undefined ? namedContextFor(name, ctx.namedContexts) : undefined;
    const baseContext = namedContextFor(baseName, ctx.namedContexts);
    if (replacedBy !== undefined) base = { kind: 'named-context', name: replacedBy };
    else if (parent !== undefined) base = { kind: 'stage', stage: parent };
    else if (baseContext !== undefined) base = { kind: 'named-context', name: baseContext };
    else if (baseName.toLowerCase() === 'scratch') base = { kind: 'scratch' };
    else base = { kind: 'image', ref: baseName };
    // A stage built on another runs on that stage's platform.
    if (base.kind === 'stage' && !explicitPlatform) platform = out[base.stage]!.platform;
    out.push({
      index: st.index,
      ast: st,
      ...(name !== undefined ? { name } : {}),
      displayName: name ?? `stage-${st.index}`,
      baseName,
      base,
      platform,
      explicitPlatform,
      ...(replacedBy !== undefined ? { replaced: true as const } : {}),
    });
    if (name !== undefined) byName.set(name, st.index);
  }
  return out;
}

/** The stage index or name a `--from` refers to (BuildKit's `toCommand`), else an image/named context. */
export function resolveFrom(value: string, stages: readonly StageInfo[], allowIndex: boolean, range: Range, ctx: ResolveContext): FromRef {
  if (processWord(value, emptyEnv, { escapeChar: ctx.escapeChar }).result !== value) {
    abort(ctx, 'from-variable', 'variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround', range);
  }
  if (allowIndex && /^[+-]?\d+$/.test(value)) {
    const index = Number.parseInt(value, 10);
    if (index < 0 || index >= stages.length) abort(ctx, 'invalid-stage-index', `invalid stage index ${index}`, range);
    return { kind: 'stage', stage: index };
  }
  const lower = value.toLowerCase();
  const st = stages.find((s) => s.name === lower);
  if (st) return { kind: 'stage', stage: st.index };
  const named = namedContextFor(value, ctx.namedContexts);
  if (named !== undefined) return { kind: 'named-context', name: named };
  return { kind: 'image', ref: value };
}

/** The instructions a stage runs: its parent stage's ONBUILD triggers first, then its own. */
export function stageInstructions(info: StageInfo, stages: readonly StageInfo[]): { instr: Instruction; onbuild: boolean }[] {
  const out: { instr: Instruction; onbuild: boolean }[] = [];
  if (info.replaced) return out;
  if (info.base.kind === 'stage' && !stages[info.base.stage]!.replaced) {
    for (const i of stages[info.base.stage]!.ast.instructions) {
      if (i.kind === 'ONBUILD' && i.trigger) out.push({ instr: i.trigger, onbuild: true });
    }
  }
  for (const i of info.ast.instructions) out.push({ instr: i, onbuild: false });
  return out;
}

/** Stage dependencies of a list of instructions (COPY --from, RUN --mount from=). */
export function instructionDeps(
  list: readonly { instr: Instruction; onbuild: boolean }[],
  stages: readonly StageInfo[],
  ctx: ResolveContext,
  triggerRange?: Range,
): Dependency[] {
  const deps: Dependency[] = [];
  for (const { instr, onbuild } of list) {
    const range = onbuild && triggerRange ? triggerRange : instr.range;
    if (instr.kind === 'COPY' && instr.from !== undefined) {
      deps.push({ kind: 'copy', target: resolveFrom(instr.from!, stages, true, range, ctx), range, onbuild });
    } else if (instr.kind === 'RUN') {
      for (const m of instr.mounts) {
        if (m.from === undefined || m.from === '' || (m.type !== 'bind' && m.type !== 'cache')) continue;
        deps.push({ kind: 'mount', target: resolveFrom(m.from, stages, false, range, ctx), range, onbuild });
      }
    }
  }
  return deps;
}

/**
 * BuildKit's `validateCircularDependency`: a depth-first walk over COPY/mount dependencies (FROM
 * cannot form a cycle: it only sees earlier stages). Reports the first stage, in file order, from
 * which a cycle is reachable, at the instruction that closes it.
 */
export function checkCycles(stages: readonly StageInfo[], deps: readonly (readonly Dependency[])[], ctx: ResolveContext): void {
  const visited = new Set<number>();
  const path = new Set<number>();
  const visit = (s: number, trail: Range[]): Range[] | undefined => {
    if (visited.has(s)) return undefined;
    visited.add(s);
    path.add(s);
    for (const d of deps[s] ?? []) {
      if (d.target.kind !== 'stage') continue;
      const next = [...trail, d.range];
      if (path.has(d.target.stage)) return next;
      const found = visit(d.target.stage, next);
      if (found) return found;
    }
    path.delete(s);
    return undefined;
  };
  for (const st of stages) {
    const trail = visit(st.index, []);
    if (trail) abort(ctx, 'circular-dependency', `circular dependency detected on stage: ${st.displayName}`, trail[0]!);
  }
}

/** BuildKit's `resolveTarget`: by name (case-insensitive), else the last stage; unknown → error with a suggestion. */
export function resolveTarget(target: string | undefined, stages: readonly StageInfo[], ctx: ResolveContext, range: Range): number {
  if (target === undefined || target === '') return stages.length - 1;
  const lower = target.toLowerCase();
  const st = stages.find((s) => s.name === lower);
  if (st) return st.index;
  const names = stages.flatMap((s) => (s.name !== undefined ? [s.name] : []));
  const suggestion = suggestName(target, names);
  return abort(
    ctx,
    'unknown-target',
    `target stage ${JSON.stringify(target)} could not be found${suggestion !== undefined ? ` (did you mean ${suggestion}?)` : ''}`,
    range,
    suggestion,
  );
}

/** Stage indexes each stage needs directly: its FROM parent and its COPY/mount sources. */
export function stageEdges(stages: readonly StageInfo[], deps: readonly (readonly Dependency[])[]): number[][] {
  return stages.map((s) => {
    const set = new Set<number>();
    if (s.base.kind === 'stage') set.add(s.base.stage);
    for (const d of deps[s.index] ?? []) if (d.target.kind === 'stage') set.add(d.target.stage);
    return [...set];
  });
}

/** The stages `target` reaches (itself included). */
export function reachable(target: number, edges: readonly (readonly number[])[]): Set<number> {
  const seen = new Set<number>();
  const walk = (s: number) => {
    if (seen.has(s)) return;
    seen.add(s);
    for (const d of edges[s] ?? []) walk(d);
  };
  walk(target);
  return seen;
}

/** Reachable stages grouped by depth: level n holds stages whose dependencies all sit in levels < n. */
export function levels(reach: ReadonlySet<number>, edges: readonly (readonly number[])[]): number[][] {
  const depth = new Map<number, number>();
  const visiting = new Set<number>();
  const depthOf = (s: number): number => {
    const known = depth.get(s);
    if (known !== undefined) return known;
    if (visiting.has(s)) return 0; // cycles are rejected earlier
    visiting.add(s);
    let d = 0;
    for (const e of edges[s] ?? []) d = Math.max(d, depthOf(e) + 1);
    visiting.delete(s);
    depth.set(s, d);
    return d;
  };
  const out: number[][] = [];
  for (const s of [...reach].sort((a, b) => a - b)) {
    const d = depthOf(s);
    (out[d] ??= []).push(s);
  }
  return out.filter((l) => l !== undefined);
}

export { formatPlatform };

/**
 * BuildKit's `suggest.Search` (case-insensitive): the closest name at Levenshtein distance < 3;
 * none when a name matches exactly. Looser than `didYouMean`, to give BuildKit's very messages.
 */
export function suggestName(value: string, names: readonly string[]): string | undefined {
  const v = value.toLowerCase();
  let best: string | undefined;
  let min = 3;
  for (const n of names) {
    const o = n.toLowerCase();
    if (o === v) return undefined;
    const d = editDistance(v, o);
    if (d < min) {
      min = d;
      best = value === value.toUpperCase() && value !== value.toLowerCase() ? n.toUpperCase() : n;
    }
  }
  return best;
}
