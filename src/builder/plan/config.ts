import type {
  CmdInstruction,
  EntrypointInstruction,
  EnvInstruction,
  ExposeInstruction,
  HealthcheckInstruction,
  LabelInstruction,
  StopsignalInstruction,
  VolumeInstruction,
} from '../../parser/ast.js';
import type { Range } from '../../parser/diagnostics.js';
import type { HealthConfig } from '../../oci/types.js';
import { PlanAbort, makeDiagnostic } from './diagnostics.js';
import { envSet, shellEnv } from './env.js';
import { makeExpander, type Expander } from './expand.js';
import { goList, goQuoteList, healthcheckHistory, historyEntry } from './history.js';
import { commandArgs, nextMeta } from './ops.js';
import type { DispatchContext, StageState } from './state.js';
import type { ConfigOp } from './types.js';

/**
 * Config-only instructions (BuildKit's dispatchEnv, dispatchLabel, dispatchUser, dispatchExpose,
 * dispatchVolume, dispatchStopSignal, dispatchShell, dispatchCmd, dispatchEntrypoint,
 * dispatchHealthcheck, dispatchOnbuild, dispatchMaintainer): each updates the stage's config and
 * returns a `tsbuild.config.v1` op that records what changed and the history entry.
 */

export function expanderFor(state: StageState, ctx: DispatchContext, range: Range): Expander {
  return makeExpander(shellEnv(state.env), range, ctx.file, { escapeChar: ctx.escapeChar });
}

/** A config op; `createdBy` undefined writes no history (ONBUILD). */
export function configOp(
  state: StageState,
  ctx: DispatchContext,
  range: Range,
  instruction: string,
  changes: Record<string, unknown>,
  createdBy: string | undefined,
  name?: string,
): ConfigOp {
  const history = createdBy !== undefined ? historyEntry(createdBy, false) : undefined;
  const { id, meta } = nextMeta(state, ctx, range, name ?? createdBy ?? instruction, false, history);
  return { type: 'tsbuild.config.v1', id, inputs: state.parent !== undefined ? { parent: state.parent } : {}, instruction, changes, meta };
}

function fail(ctx: DispatchContext, code: string, message: string, range: Range): never {
  throw new PlanAbort(makeDiagnostic({ code, message, range }, ctx.file));
}

export function planEnv(instr: EnvInstruction, state: StageState, ctx: DispatchContext): ConfigOp {
  const ex = expanderFor(state, ctx, instr.range);
  const parts: string[] = [];
  const set: Record<string, string> = {};
  for (const p of instr.pairs) {
    // Every pair is expanded against the environment before this instruction (BuildKit expands the whole command first).
    const key = ex.word(p.key);
    const value = ex.word(p.value);
    parts.push(`${key}=${value}`);
    set[key] = value;
  }
  for (const [k, v] of Object.entries(set)) {
    state.imageEnv = envSet(state.imageEnv, k, v);
    state.env = envSet(state.env, k, v);
  }
  return configOp(state, ctx, instr.range, 'ENV', { Env: set }, `ENV ${parts.join(' ')}`);
}

export function planLabel(instr: LabelInstruction, state: StageState, ctx: DispatchContext): ConfigOp {
  const ex = expanderFor(state, ctx, instr.range);
  const labels = { ...(state.config.Labels ?? {}) };
  const parts: string[] = [];
  const set: Record<string, string> = {};
  for (const p of instr.pairs) {
    const key = ex.word(p.key);
    const value = ex.word(p.value);
    labels[key] = value;
    set[key] = value;
    parts.push(`${key}=${value}`);
  }
  state.config.Labels = labels;
  return configOp(state, ctx, instr.range, 'LABEL', { Labels: set }, `LABEL ${parts.join(' ')}`);
}

export function planUser(user: string, state: StageState, ctx: DispatchContext, range: Range): ConfigOp {
  const value = expanderFor(state, ctx, range).word(user);
  state.config.User = value;
  return configOp(state, ctx, range, 'USER', { User: value }, `USER ${value}`);
}

const PROTOS = new Set(['tcp', 'udp', 'sctp']);

function parsePortNumber(raw: string): number | undefined {
  if (!/^[+-]?\d+$/.test(raw)) return undefined;
  const n = Number.parseInt(raw, 10);
  return n < 0 || n > 65535 ? undefined : n;
}

/** BuildKit's `parsePort`: `[ip:][hostPort:]containerPort[-end][/proto]` → `port/proto` entries. */
export function parsePort(raw: string): string[] | { error: string } {
  let rest = raw;
  // strip an IP and a host port: the container port is after the last ':' outside brackets
  const close = rest.lastIndexOf(']');
  const colon = rest.lastIndexOf(':');
  if (colon > close) rest = rest.slice(colon + 1);
  const [portPart = '', protoPart] = rest.split('/', 2) as [string, string | undefined];
  const proto = protoPart === undefined || protoPart === '' ? 'tcp' : protoPart;
  if (portPart === '') return { error: `invalid port: ${JSON.stringify(raw)}: no port specified` };
  if (!PROTOS.has(proto.toLowerCase())) return { error: `invalid port: ${JSON.stringify(raw)}: invalid proto: ${proto}` };
  const [startText = '', endText] = portPart.split('-', 2) as [string, string | undefined];
  const start = parsePortNumber(startText);
  const end = endText === undefined || endText === startText ? start : parsePortNumber(endText);
  if (start === undefined || end === undefined || end < start) return { error: `invalid containerPort: ${portPart}` };
  const out: string[] = [];
  for (let p = start; p <= end; p++) out.push(`${p}/${proto.toLowerCase()}`);
  return out;
}

export function planExpose(instr: ExposeInstruction, state: StageState, ctx: DispatchContext): ConfigOp {
  const ex = expanderFor(state, ctx, instr.range);
  // BuildKit sorts the words at parse time (before expansion).
  const words = [...instr.ports].sort().flatMap((p) => ex.words(p));
  const ports: string[] = [];
  for (const w of words) {
    const r = parsePort(w);
    if ('error' in r) fail(ctx, 'invalid-port', r.error, instr.range);
    ports.push(...r);
  }
  const exposed = { ...(state.config.ExposedPorts ?? {}) };
  for (const p of ports) exposed[p] = {};
  state.config.ExposedPorts = exposed;
  return configOp(state, ctx, instr.range, 'EXPOSE', { ExposedPorts: ports }, `EXPOSE ${goList(ports)}`);
}

export function planVolume(instr: VolumeInstruction, state: StageState, ctx: DispatchContext): ConfigOp {
  const ex = expanderFor(state, ctx, instr.range);
  const paths = instr.paths.map((p) => ex.word(p));
  const volumes = { ...(state.config.Volumes ?? {}) };
  for (const p of paths) {
    if (p === '') fail(ctx, 'empty-volume', 'VOLUME specified can not be an empty string', instr.range);
    volumes[p] = {};
  }
  state.config.Volumes = volumes;
  return configOp(state, ctx, instr.range, 'VOLUME', { Volumes: paths }, `VOLUME ${goList(paths)}`);
}

const SIGNALS = [
  'ABRT', 'ALRM', 'BUS', 'CHLD', 'CLD', 'CONT', 'FPE', 'HUP', 'ILL', 'INT', 'IO', 'IOT', 'KILL', 'PIPE', 'POLL', 'PROF', 'PWR',
  'QUIT', 'SEGV', 'STKFLT', 'STOP', 'SYS', 'TERM', 'TRAP', 'TSTP', 'TTIN', 'TTOU', 'URG', 'USR1', 'USR2', 'VTALRM', 'WINCH',
  'XCPU', 'XFSZ', 'RTMIN', 'RTMAX',
];

/** moby's `signal.ParseSignal`: a number, or a name with or without `SIG` (also `RTMIN+n`). */
export function isValidSignal(s: string): boolean {
  if (/^\d+$/.test(s)) return Number(s) > 0;
  const name = s.toUpperCase().replace(/^SIG/, '');
  if (SIGNALS.includes(name)) return true;
  const rt = /^RTM(IN\+|AX-)(\d+)$/.exec(name);
  return rt !== null && Number(rt[2]) <= 15;
}

export function planStopsignal(instr: StopsignalInstruction, state: StageState, ctx: DispatchContext): ConfigOp {
  const signal = expanderFor(state, ctx, instr.range).word(instr.signal);
  if (!isValidSignal(signal)) fail(ctx, 'invalid-signal', `Invalid signal: ${signal}`, instr.range);
  state.config.StopSignal = signal;
  return configOp(state, ctx, instr.range, 'STOPSIGNAL', { StopSignal: signal }, `STOPSIGNAL ${signal}`);
}

export function planShell(shell: readonly string[], state: StageState, ctx: DispatchContext, range: Range): ConfigOp {
  state.config.Shell = [...shell];
  return configOp(state, ctx, range, 'SHELL', { Shell: [...shell] }, `SHELL ${goList(shell)}`);
}

export function planCmd(instr: CmdInstruction, state: StageState, ctx: DispatchContext): ConfigOp {
  const args = commandArgs(state, instr.command);
  state.config.Cmd = args;
  state.config.ArgsEscaped = true;
  state.cmdSet = true;
  return configOp(state, ctx, instr.range, 'CMD', { Cmd: args }, `CMD ${goQuoteList(args)}`);
}

export function planEntrypoint(instr: EntrypointInstruction, state: StageState, ctx: DispatchContext): ConfigOp {
  const args = commandArgs(state, instr.command);
  state.config.Entrypoint = args;
  const changes: Record<string, unknown> = { Entrypoint: args };
  if (!state.cmdSet) {
    state.config.Cmd = null;
    changes.Cmd = null;
  }
  return configOp(state, ctx, instr.range, 'ENTRYPOINT', changes, `ENTRYPOINT ${goQuoteList(args)}`);
}

export function planHealthcheck(instr: HealthcheckInstruction, state: StageState, ctx: DispatchContext): ConfigOp {
  let test: string[];
  if (instr.test.type === 'NONE') test = ['NONE'];
  else if (instr.test.command.form === 'exec') test = ['CMD', ...instr.test.command.args];
  else test = ['CMD-SHELL', instr.test.command.command];
  const hc: HealthConfig = {
    Test: test,
    ...(instr.interval ? { Interval: instr.interval } : {}),
    ...(instr.timeout ? { Timeout: instr.timeout } : {}),
    ...(instr.startPeriod ? { StartPeriod: instr.startPeriod } : {}),
    ...(instr.startInterval ? { StartInterval: instr.startInterval } : {}),
    ...(instr.retries ? { Retries: instr.retries } : {}),
  };
  state.config.Healthcheck = hc;
  return configOp(state, ctx, instr.range, 'HEALTHCHECK', { Healthcheck: hc }, healthcheckHistory(hc));
}

export function planOnbuild(expression: string, state: StageState, ctx: DispatchContext, range: Range): ConfigOp {
  state.config.OnBuild = [...(state.config.OnBuild ?? []), expression];
  return configOp(state, ctx, range, 'ONBUILD', { OnBuild: [expression] }, undefined, `ONBUILD ${expression}`);
}

export function planMaintainer(maintainer: string, state: StageState, ctx: DispatchContext, range: Range): ConfigOp {
  state.author = maintainer;
  return configOp(state, ctx, range, 'MAINTAINER', { author: maintainer }, `MAINTAINER ${maintainer}`);
}
