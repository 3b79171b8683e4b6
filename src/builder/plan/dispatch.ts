import type { Instruction } from '../../parser/ast.js';
import type { ContainerConfig } from '../../oci/types.js';
import { resolveStageArgs } from './args.js';
import { configOp, expanderFor, planCmd, planEntrypoint, planEnv, planExpose, planHealthcheck, planLabel, planMaintainer, planOnbuild, planShell, planStopsignal, planUser, planVolume } from './config.js';
import { envFromStrings, envGet, envSet, envToStrings, type EnvList } from './env.js';
import { historyEntry } from './history.js';
import { planCopy, planMkdir, planRun } from './ops.js';
import { formatPlatform, type StageInfo } from './stages.js';
import type { DispatchContext, DispatchedStage, StageState, WorkingConfig } from './state.js';
import type { BaseImageConfig, StagePlan, StageBase, StageEdge } from './types.js';
import { normalizeWorkdir } from './workdir.js';

/**
 * Dispatches one reachable stage: starts from its base (scratch, an image's config, or the
 * parent stage's final state), runs its instructions (the parent's ONBUILD triggers first) and
 * returns the stage plan. Pure apart from registering external sources in the context.
 */

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function cloneConfig(c: ContainerConfig | WorkingConfig | undefined): WorkingConfig {
  if (!c) return {};
  const out: WorkingConfig = {};
  if (c.User !== undefined) out.User = c.User;
  if (c.ExposedPorts) out.ExposedPorts = { ...c.ExposedPorts };
  if (c.Entrypoint !== undefined) out.Entrypoint = c.Entrypoint === null ? null : [...c.Entrypoint];
  if (c.Cmd !== undefined) out.Cmd = c.Cmd === null ? null : [...c.Cmd];
  if (c.Volumes) out.Volumes = { ...c.Volumes };
  if (c.WorkingDir !== undefined) out.WorkingDir = c.WorkingDir;
  if (c.Labels) out.Labels = { ...c.Labels };
  if (c.StopSignal !== undefined) out.StopSignal = c.StopSignal;
  if (c.ArgsEscaped !== undefined) out.ArgsEscaped = c.ArgsEscaped;
  if (c.Healthcheck) out.Healthcheck = { ...c.Healthcheck, ...(c.Healthcheck.Test ? { Test: [...c.Healthcheck.Test] } : {}) };
  if (c.OnBuild !== undefined) out.OnBuild = c.OnBuild === null ? null : [...c.OnBuild];
  if (c.Shell) out.Shell = [...c.Shell];
  return out;
}

export interface StageInput {
  readonly info: StageInfo;
  /** Instructions to run, ONBUILD triggers of the base first. */
  readonly instructions: readonly { instr: Instruction; onbuild: boolean }[];
  readonly edges: readonly StageEdge[];
  /** The base image's config, when the base is an image and the builder resolved it. */
  readonly baseImage?: BaseImageConfig;
}

export function dispatchStage(input: StageInput, ctx: DispatchContext): { plan: StagePlan; done: DispatchedStage } {
  const { info } = input;
  let steps = 0;
  if (info.base.kind === 'image' || info.base.kind === 'named-context') steps++;
  for (const { instr } of input.instructions) if (['RUN', 'COPY', 'ADD', 'WORKDIR'].includes(instr.kind)) steps++;

  let config: WorkingConfig;
  let imageEnv: EnvList;
  let env: EnvList;
  let base: StageBase;
  let baseConfigKnown = true;
  let parent: string | undefined;
  const state0: Omit<StageState, 'config' | 'imageEnv' | 'env'> = {
    index: info.index,
    displayName: info.displayName,
    fromRange: info.ast.from.range,
    os: info.platform.os,
    platform: formatPlatform(info.platform),
    buildArgs: [],
    history: [],
    ops: [],
    cmdSet: false,
    // FROM <image> is step 1 of the stage, as BuildKit counts.
    step: info.base.kind === 'image' || info.base.kind === 'named-context' ? 1 : 0,
    steps,
    onbuild: false,
  };
  let inherited: Partial<StageState> = {};

  switch (info.base.kind) {
    case 'scratch':
      base = { kind: 'scratch' };
      config = { WorkingDir: '/' };
      imageEnv = [];
      break;
    case 'image':
    case 'named-context': {
      const op = ctx.sourceOp(info.base.kind === 'image' ? { kind: 'image', ref: info.base.ref } : { kind: 'named-context', name: info.base.name }, formatPlatform(info.platform));
      base = info.base.kind === 'image' ? { kind: 'image', ref: info.base.ref, op } : { kind: 'named-context', name: info.base.name, op };
      parent = op;
      const img = input.baseImage;
      baseConfigKnown = img !== undefined;
      config = cloneConfig(img?.config);
      config.OnBuild = null; // the triggers run here; they do not carry over
      imageEnv = envFromStrings(img?.config?.Env ?? []);
      if (img?.author !== undefined) inherited = { author: img.author };
      break;
    }
    case 'stage': {
      const p = ctx.done.get(info.base.stage)!;
      base = { kind: 'stage', stage: info.base.stage };
      parent = p.result;
      config = cloneConfig(p.state.config);
      config.OnBuild = null;
      imageEnv = p.state.imageEnv;
      baseConfigKnown = p.baseConfigKnown;
      inherited = {
        buildArgs: [...p.state.buildArgs],
        history: [...p.state.history],
        ...(p.state.author !== undefined ? { author: p.state.author } : {}),
      };
      env = p.state.env;
      break;
    }
  }
  // PATH is always set (BuildKit's dispatchStages), then the build env starts from the image env.
  if (envGet(imageEnv, 'PATH') === undefined && info.platform.os !== 'windows') imageEnv = [...imageEnv, ['PATH', DEFAULT_PATH]];
  if (info.base.kind !== 'stage') env = imageEnv;
  else if (envGet(env!, 'PATH') === undefined) env = envSet(env!, 'PATH', DEFAULT_PATH);
  if (config.WorkingDir) config.WorkingDir = normalizeWorkdir('', config.WorkingDir);

  const state: StageState = { ...state0, ...inherited, config, imageEnv, env: env!, ...(parent !== undefined ? { parent } : {}) };

  for (const { instr, onbuild } of input.instructions) {
    state.onbuild = onbuild;
    dispatchInstruction(instr, state, ctx);
  }

  const plan: StagePlan = {
    index: info.index,
    ...(info.name !== undefined ? { name: info.name } : {}),
    displayName: info.displayName,
    baseName: info.baseName,
    base,
    platform: formatPlatform(info.platform),
    dependsOn: input.edges,
    reachable: true,
    baseConfigKnown,
    ops: state.ops,
    ...(state.parent !== undefined ? { result: state.parent } : {}),
    config: finalConfig(state),
    ...(state.author !== undefined ? { author: state.author } : {}),
    history: state.history,
    range: info.ast.range,
  };
  return { plan, done: { ...(state.parent !== undefined ? { result: state.parent } : {}), state, baseConfigKnown } };
}

function finalConfig(state: StageState): ContainerConfig {
  const c = state.config;
  const out: Record<string, unknown> = {};
  if (c.User !== undefined && c.User !== '') out.User = c.User;
  if (c.ExposedPorts && Object.keys(c.ExposedPorts).length > 0) out.ExposedPorts = c.ExposedPorts;
  out.Env = envToStrings(state.imageEnv);
  if (c.Entrypoint) out.Entrypoint = c.Entrypoint;
  if (c.Cmd) out.Cmd = c.Cmd;
  if (c.Volumes && Object.keys(c.Volumes).length > 0) out.Volumes = c.Volumes;
  if (c.WorkingDir !== undefined && c.WorkingDir !== '') out.WorkingDir = c.WorkingDir;
  if (c.Labels && Object.keys(c.Labels).length > 0) out.Labels = c.Labels;
  if (c.StopSignal !== undefined) out.StopSignal = c.StopSignal;
  if (c.ArgsEscaped) out.ArgsEscaped = true;
  if (c.Healthcheck) out.Healthcheck = c.Healthcheck;
  if (c.OnBuild && c.OnBuild.length > 0) out.OnBuild = c.OnBuild;
  if (c.Shell && c.Shell.length > 0) out.Shell = c.Shell;
  return out as ContainerConfig;
}

function push(state: StageState, op: StageState['ops'][number], fs: boolean): void {
  state.ops.push(op);
  if (op.meta.history) state.history.push(op.meta.history);
  if (fs) state.parent = op.id;
}

function dispatchInstruction(instr: Instruction, state: StageState, ctx: DispatchContext): void {
  switch (instr.kind) {
    case 'FROM':
      return; // not an instruction inside a stage
    case 'ENV':
      return push(state, planEnv(instr, state, ctx), false);
    case 'LABEL':
      return push(state, planLabel(instr, state, ctx), false);
    case 'ARG': {
      const r = resolveStageArgs(instr, state.env, ctx.global, ctx.buildArgs, ctx.escapeChar, ctx.file);
      state.env = r.env;
      state.buildArgs.push(...r.args);
      for (const a of r.args) ctx.usedArgs.add(a.key);
      const changes = Object.fromEntries(r.args.map((a) => [a.key, a.value ?? null]));
      return push(state, configOp(state, ctx, instr.range, 'ARG', { args: changes }, r.history), false);
    }
    case 'RUN':
      return push(state, planRun(instr, state, ctx), true);
    case 'COPY':
    case 'ADD':
      return push(state, planCopy(instr, state, ctx), true);
    case 'WORKDIR': {
      const path = expanderFor(state, ctx, instr.range).word(instr.path);
      const wd = normalizeWorkdir(state.config.WorkingDir ?? '', path);
      state.config.WorkingDir = wd;
      if (wd !== '/') return push(state, planMkdir(wd, state, ctx, instr.range, historyEntry(`WORKDIR ${wd}`, true, false)), true);
      return push(state, configOp(state, ctx, instr.range, 'WORKDIR', { WorkingDir: wd }, `WORKDIR ${wd}`), false);
    }
    case 'USER':
      return push(state, planUser(instr.user, state, ctx, instr.range), false);
    case 'EXPOSE':
      return push(state, planExpose(instr, state, ctx), false);
    case 'VOLUME':
      return push(state, planVolume(instr, state, ctx), false);
    case 'STOPSIGNAL':
      return push(state, planStopsignal(instr, state, ctx), false);
    case 'SHELL':
      return push(state, planShell(instr.shell, state, ctx, instr.range), false);
    case 'CMD':
      return push(state, planCmd(instr, state, ctx), false);
    case 'ENTRYPOINT':
      return push(state, planEntrypoint(instr, state, ctx), false);
    case 'HEALTHCHECK':
      return push(state, planHealthcheck(instr, state, ctx), false);
    case 'ONBUILD':
      return push(state, planOnbuild(instr.expression, state, ctx, instr.range), false);
    case 'MAINTAINER':
      return push(state, planMaintainer(instr.maintainer, state, ctx, instr.range), false);
  }
}
