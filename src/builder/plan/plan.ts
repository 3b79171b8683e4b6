import type { Dockerfile, Instruction } from '../../parser/ast.js';
import type { Diagnostic, Range } from '../../parser/diagnostics.js';
import type { ParseResult } from '../../parser/index.js';
import { processWord } from '../../parser/shell.js';
import { globalScope, proxyEnv, unusedBuildArgs } from './args.js';
import { FILE_START, PlanAbort, makeDiagnostic } from './diagnostics.js';
import { dispatchStage } from './dispatch.js';
import { shellEnv } from './env.js';
import { defaultBuildPlatform, formatPlatform, parsePlatform, type PlatformSpec } from './platform.js';
import {
  checkCycles,
  instructionDeps,
  levels,
  reachable,
  resolveFrom,
  resolveStages,
  resolveTarget,
  stageEdges,
  stageInstructions,
  type Dependency,
  type StageInfo,
} from './stages.js';
import type { DispatchContext, DispatchedStage } from './state.js';
import type { BaseImageConfig, BuildGraph, OpId, PlanOptions, SourceOp, StageEdge, StagePlan } from './types.js';

export interface PlanResult {
  readonly graph: BuildGraph;
  /** Errors (the graph is then empty or partial and must not be built) and warnings. */
  readonly diagnostics: readonly Diagnostic[];
}

/** Parses a Dockerfile text (for the ONBUILD triggers of base images): `parseDockerfile`. */
export type TriggerParser = (text: string) => ParseResult;

/**
 * `planBuild` with the parser of ONBUILD triggers given by the caller (the builder loads the
 * parser only when a base image has triggers: a rebuild whose Dockerfile AST is cached never
 * loads it). Without `parse`, a base image with triggers is a plan error.
 *
 * Plans a build: stages, ARG/ENV expansion, dependency edges, cycle and target checks, pruning
 * to the target, and one op per step (BuildKit's dockerfile2llb, split by concern). Never throws:
 * errors come back as diagnostics (`severity: 'error'`) with the graph as far as it got.
 */
export function planWith(parse: TriggerParser | undefined, ast: Dockerfile, options: PlanOptions = {}): PlanResult {
  const file = ast.file;
  const diagnostics: Diagnostic[] = [];
  let platforms: { build: PlatformSpec; target: PlatformSpec } = { build: defaultBuildPlatform(), target: defaultBuildPlatform() };
  const empty = (): BuildGraph => ({
    version: 1,
    target: -1,
    stages: [],
    sources: [],
    levels: [],
    platform: { target: formatPlatform(platforms.target), build: formatPlatform(platforms.build) },
    globalArgs: {},
  });
  try {
    const build = options.buildPlatform ? parsePlatformOption(options.buildPlatform, defaultBuildPlatform(), file) : defaultBuildPlatform();
    const target = options.platform ? parsePlatformOption(options.platform, build, file) : build;
    platforms = { build, target };
    const graph = plan(ast, options, platforms, diagnostics, parse);
    return { graph, diagnostics };
  } catch (err) {
    if (err instanceof PlanAbort) return { graph: empty(), diagnostics: [...diagnostics, err.diagnostic] };
    const message = err instanceof Error ? err.message : String(err);
    return { graph: empty(), diagnostics: [...diagnostics, makeDiagnostic({ code: 'internal-error', message: `planner failed: ${message}`, range: FILE_START }, file)] };
  }
}

function parsePlatformOption(text: string, host: PlatformSpec, file: string | undefined): PlatformSpec {
  try {
    return parsePlatform(text, host);
  } catch (err) {
    throw new PlanAbort(makeDiagnostic({ code: 'invalid-platform', message: `failed to parse platform ${text}: ${(err as Error).message}`, range: FILE_START }, file));
  }
}

/** ONBUILD triggers of an image base, parsed (they run first in the stage built on it). */
function imageTriggers(triggers: readonly string[], range: Range, file: string | undefined, parse: TriggerParser | undefined): Instruction[] {
  const out: Instruction[] = [];
  for (const t of triggers) {
    if (!parse) throw new PlanAbort(makeDiagnostic({ code: 'internal-error', message: 'planner: ONBUILD triggers of a base image need a parser', range }, file));
    const { ast, diagnostics } = parse(`FROM scratch\n${t}\n`);
    const err = diagnostics.find((d) => d.severity === 'error');
    const instr = ast.stages[0]?.instructions[0];
    if (err || !instr || ast.stages[0]!.instructions.length !== 1) {
      throw new PlanAbort(makeDiagnostic({ code: 'invalid-onbuild-trigger', message: `invalid ONBUILD trigger of the base image ${JSON.stringify(t)}: ${err?.message ?? 'onbuild trigger should be a single expression'}`, range }, file));
    }
    out.push(instr);
  }
  return out;
}

function plan(ast: Dockerfile, options: PlanOptions, platforms: { build: PlatformSpec; target: PlatformSpec }, diagnostics: Diagnostic[], parse: TriggerParser | undefined): BuildGraph {
  const file = ast.file;
  if (ast.stages.length === 0) {
    throw new PlanAbort(makeDiagnostic({ code: 'no-stages', message: 'dockerfile contains no stages to build', range: FILE_START }, file));
  }
  const buildArgs = options.buildArgs ?? {};
  const last = ast.stages[ast.stages.length - 1]!;
  const targetStage = options.target || last.name || 'default';
  const global = globalScope(ast, buildArgs, platforms, targetStage, file);
  const namedContexts = new Set(options.namedContexts ?? []);
  const resolveCtx = { file, escapeChar: ast.escapeChar, global: global.env, targetPlatform: platforms.target, buildPlatform: platforms.build, namedContexts };

  const stages = resolveStages(ast, resolveCtx);

  // Base images' configs (when the builder resolved them) and their ONBUILD triggers.
  const baseImages = new Map<number, BaseImageConfig>();
  const instructions = stages.map((info) => {
    const list = stageInstructions(info, stages);
    const img =
      info.base.kind === 'image'
        ? options.baseImage?.(info.base.ref, formatPlatform(info.platform))
        : info.base.kind === 'named-context'
          ? options.namedContextImage?.(info.base.name, formatPlatform(info.platform))
          : undefined;
    if (img) {
      baseImages.set(info.index, img);
      // a stage a named context replaces runs nothing, its image's triggers neither
      if (info.replaced) return list;
      const triggers = imageTriggers(img.config?.OnBuild ?? [], info.ast.from.range, file, parse);
      return [...triggers.map((instr) => ({ instr, onbuild: true })), ...list];
    }
    return list;
  });

  const targetIndex = resolveTarget(options.target, stages, resolveCtx, FILE_START);
  const deps: Dependency[][] = stages.map((info) => instructionDeps(instructions[info.index]!, stages, resolveCtx, info.ast.from.range));
  checkCycles(stages, deps, resolveCtx);
  const edges = stageEdges(stages, deps);
  const reach = reachable(targetIndex, edges);

  const sources: SourceOp[] = [];
  const sourceIds = new Map<string, OpId>();
  const done = new Map<number, DispatchedStage>();
  const usedArgs = new Set<string>(global.declared);
  const source = options.source;
  const ctx: DispatchContext = {
    ...resolveCtx,
    stages,
    buildArgs,
    proxyEnv: proxyEnv(buildArgs),
    done,
    usedArgs,
    singleState: countStates(ast, stages, resolveCtx) === 1,
    sourceOp(src, platform) {
      const key = src.kind === 'image' ? `image ${src.ref} ${platform}` : `context ${src.name}`;
      let id = sourceIds.get(key);
      if (id === undefined) {
        id = `img${sources.length}`;
        sourceIds.set(key, id);
        const meta = { stage: -1, stageName: 'internal', step: 0, steps: 0, range: FILE_START };
        sources.push(
          src.kind === 'image'
            ? { type: 'tsbuild.source.image.v1', id, inputs: {}, ref: src.ref, platform, meta: { ...meta, name: `FROM ${src.ref}` } }
            : { type: 'tsbuild.source.context.v1', id, inputs: {}, name: src.name, meta: { ...meta, name: `context ${src.name}` } },
        );
      }
      return id;
    },
    stepName(range, state, raw, fallback) {
      if (source === undefined) return fallback;
      const text = instructionText(source, range, ast.escapeChar);
      if (text === '') return fallback;
      let expanded = text;
      try {
        expanded = processWord(text, shellEnv(state.env), raw ? { escapeChar: ast.escapeChar, rawQuotes: true, skipUnsetEnv: true } : { escapeChar: ast.escapeChar }).result;
      } catch {
        expanded = text;
      }
      const sp = expanded.indexOf(' ');
      return sp < 0 ? expanded.toUpperCase() : expanded.slice(0, sp).toUpperCase() + expanded.slice(sp);
    },
  };

  const plans: StagePlan[] = [];
  for (const info of stages) {
    const stageEdgesList = toEdges(info, deps[info.index]!);
    if (!reach.has(info.index)) {
      plans.push(unreachablePlan(info, stageEdgesList));
      continue;
    }
    const img = baseImages.get(info.index);
    const { plan: p, done: d } = dispatchStage({ info, instructions: instructions[info.index]!, edges: stageEdgesList, ...(img ? { baseImage: img } : {}) }, ctx);
    done.set(info.index, d);
    plans.push(p);
  }

  diagnostics.push(...unusedBuildArgs(buildArgs, usedArgs, file));
  return {
    version: 1,
    target: targetIndex,
    stages: plans,
    sources,
    levels: levels(reach, edges),
    platform: { target: formatPlatform(platforms.target), build: formatPlatform(platforms.build) },
    globalArgs: Object.fromEntries(global.env),
  };
}

/** BuildKit's dispatch states before ONBUILD triggers: stages plus one per non-stage COPY --from or RUN mount source. */
function countStates(ast: Dockerfile, stages: readonly StageInfo[], ctx: Parameters<typeof resolveFrom>[4]): number {
  let n = stages.length;
  for (const st of ast.stages) {
    for (const i of st.instructions) {
      if (i.kind === 'COPY' && i.from !== undefined && resolveFrom(i.from, stages, true, i.range, ctx).kind !== 'stage') n++;
      if (i.kind === 'RUN') {
        for (const m of i.mounts) {
          if (m.from === undefined || m.from === '' || resolveFrom(m.from, stages, false, i.range, ctx).kind !== 'stage') n++;
        }
      }
    }
  }
  return n;
}

function toEdges(info: StageInfo, deps: readonly Dependency[]): StageEdge[] {
  const out: StageEdge[] = [];
  if (info.base.kind === 'stage') out.push({ kind: 'from', stage: info.base.stage, range: info.ast.from.imageRange });
  for (const d of deps) {
    if (d.target.kind === 'stage') out.push({ kind: d.kind, stage: d.target.stage, range: d.range, ...(d.onbuild ? { onbuild: true } : {}) });
  }
  return out;
}

function unreachablePlan(info: StageInfo, edges: StageEdge[]): StagePlan {
  const base: StagePlan['base'] =
    info.base.kind === 'stage'
      ? { kind: 'stage', stage: info.base.stage }
      : info.base.kind === 'image'
        ? { kind: 'image', ref: info.base.ref, op: '' }
        : info.base.kind === 'named-context'
          ? { kind: 'named-context', name: info.base.name, op: '' }
          : { kind: 'scratch' };
  return {
    index: info.index,
    ...(info.name !== undefined ? { name: info.name } : {}),
    displayName: info.displayName,
    baseName: info.baseName,
    base,
    platform: formatPlatform(info.platform),
    dependsOn: edges,
    reachable: false,
    baseConfigKnown: false,
    ops: [],
    config: {},
    history: [],
    range: info.ast.range,
  };
}

/** The instruction's first logical line from the source (continuations joined, comment lines skipped), as BuildKit's `original`. */
function instructionText(source: string, range: Range, escapeChar: string): string {
  const lines = source.slice(range.start.offset, range.end.offset).split('\n');
  let out = '';
  let first = true;
  for (const raw of lines) {
    const line = raw.replace(/\r$/, '');
    if (!first && /^\s*#/.test(line)) continue;
    first = false;
    const trimmed = line.replace(/[ \t]+$/, '');
    if (trimmed.endsWith(escapeChar)) {
      out += trimmed.slice(0, -1);
      continue;
    }
    out += line;
    break;
  }
  return out.trim();
}
