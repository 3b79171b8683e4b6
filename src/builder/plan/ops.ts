import { posix } from 'node:path';
import type { CommandForm, CopyInstruction, Heredoc, Mount, RunInstruction } from '../../parser/ast.js';
import type { Range } from '../../parser/diagnostics.js';
import type { History } from '../../oci/types.js';
import { PlanAbort, makeDiagnostic } from './diagnostics.js';
import { envGet, envToStrings, shellEnv } from './env.js';
import { makeExpander } from './expand.js';
import { historyEntry, runCommandString } from './history.js';
import { resolveFrom } from './stages.js';
import type { StageState, DispatchContext } from './state.js';
import type { CopyOp, ExecMount, ExecOp, FileSource, InlineFile, MkdirOp, OpMeta } from './types.js';
import { normalizeWorkdir, resolveDest } from './workdir.js';

/**
 * Filesystem ops: RUN → `tsbuild.exec.v1`, COPY/ADD → `tsbuild.file.copy.v1`, WORKDIR →
 * `tsbuild.file.mkdir.v1` (BuildKit's dispatchRun, dispatchCopy, dispatchWorkdir).
 */

export function defaultShell(os: string): string[] {
  return os === 'windows' ? ['cmd', '/S', '/C'] : ['/bin/sh', '-c'];
}

/** BuildKit's `withShell`: the image's SHELL (or the default) plus the command as one argument. */
export function withShell(state: StageState, command: string): string[] {
  const shell = state.config.Shell && state.config.Shell.length > 0 ? state.config.Shell : defaultShell(state.os);
  return [...shell, command];
}

export function commandArgs(state: StageState, command: CommandForm): string[] {
  return command.form === 'exec' ? [...command.args] : withShell(state, command.command);
}

/** BuildKit's `summarizeHeredoc`: the first line of the trimmed body, `...` when there are more. */
export function summarizeHeredoc(doc: string): string {
  const lines = doc.trim().replace(/\r\n/g, '\n').split('\n');
  return lines.length > 1 ? `${lines[0]}...` : lines[0]!;
}

/** BuildKit's `ChompHeredocContent`: strips leading tabs from every line (`<<-`). */
export function chompHeredoc(content: string): string {
  return content.replace(/^\t+/gm, '');
}

/** The next op id and meta for a step of the stage; counts the step when `counted`. */
export function nextMeta(state: StageState, ctx: DispatchContext, range: Range, name: string, counted: boolean, history?: History): { id: string; meta: OpMeta } {
  if (counted) state.step++;
  const id = `s${state.index}.${state.ops.length}`;
  let progressName: string | undefined;
  if (counted && state.steps > 0) {
    const width = String(state.steps).length;
    const prefix = ctx.singleState ? '' : `${state.displayName} `;
    progressName = `[${prefix}${String(state.step).padStart(width, ' ')}/${state.steps}] ${state.onbuild ? 'ONBUILD ' : ''}${name}`;
  }
  return {
    id,
    meta: {
      stage: state.index,
      stageName: state.displayName,
      step: counted ? state.step : 0,
      steps: state.steps,
      name,
      ...(progressName !== undefined ? { progressName } : {}),
      range: state.onbuild ? state.fromRange : range,
      ...(state.onbuild ? { onbuild: true } : {}),
      ...(history ? { history } : {}),
    },
  };
}

/** The FileSource for a `--from` / `from=` value, checking that a stage source is built before this one. */
function fileSource(value: string, allowIndex: boolean, state: StageState, ctx: DispatchContext, range: Range): FileSource {
  const ref = resolveFrom(value, ctx.stages, allowIndex, range, ctx);
  if (ref.kind === 'stage') {
    const done = ctx.done.get(ref.stage);
    if (ref.stage >= state.index || done === undefined) {
      throw new PlanAbort(
        makeDiagnostic(
          { code: 'stage-not-built', message: `cannot copy from stage ${JSON.stringify(value)}, it needs to be defined before current stage ${JSON.stringify(state.displayName)}`, range },
          ctx.file,
        ),
      );
    }
    if (done.result === undefined) return { kind: 'stage', stage: ref.stage, op: '' };
    return { kind: 'stage', stage: ref.stage, op: done.result };
  }
  if (ref.kind === 'image') {
    if (ref.ref.toLowerCase() === 'scratch') return { kind: 'image', ref: 'scratch', op: '' };
    return { kind: 'image', ref: ref.ref, op: ctx.sourceOp({ kind: 'image', ref: ref.ref }, state.platform) };
  }
  return { kind: 'named-context', name: ref.name, op: ctx.sourceOp({ kind: 'named-context', name: ref.name }, state.platform) };
}

function sourceOpId(s: FileSource): string | undefined {
  return s.kind === 'context' || s.op === '' ? undefined : s.op;
}

/** LLB's default socket path for the n-th ssh mount: `/run/buildkit/ssh_agent.<n>`. */
const DEFAULT_SSH_TARGET = '/run/buildkit/ssh_agent';

function planMount(m: Mount, state: StageState, ctx: DispatchContext, range: Range, index: number): ExecMount {
  const ex = makeExpander(shellEnv(state.env), range, ctx.file, { escapeChar: ctx.escapeChar });
  const e = (v: string | undefined) => (v === undefined ? undefined : ex.word(v));
  const target = e(m.target);
  const source = e(m.source);
  const need = (what: string): never => {
    throw new PlanAbort(makeDiagnostic({ code: 'invalid-mount', message: `mount ${what} is required`, range: m.range }, ctx.file));
  };
  const abs = (t: string) => (t.startsWith('/') ? t : normalizeWorkdir(state.config.WorkingDir ?? '/', t));
  switch (m.type) {
    case 'bind': {
      const from: FileSource = m.from ? fileSource(m.from, false, state, ctx, range) : { kind: 'context' };
      return { type: 'bind', target: abs(target ?? need('target')), source: source ?? '/', from, readonly: m.readonly ?? true };
    }
    case 'cache': {
      const t = abs(target ?? need('target'));
      const from = m.from ? fileSource(m.from, false, state, ctx, range) : undefined;
      return {
        type: 'cache',
        target: t,
        id: e(m.id) || t,
        sharing: m.sharing ?? 'shared',
        readonly: m.readonly ?? false,
        ...(from ? { from } : {}),
        ...(source !== undefined ? { source } : {}),
        mode: m.mode ?? 0o755,
        uid: m.uid ?? 0,
        gid: m.gid ?? 0,
      };
    }
    case 'tmpfs':
      return { type: 'tmpfs', target: abs(target ?? need('target')), size: m.size ?? 0 };
    case 'secret': {
      const env = e(m.env);
      // BuildKit's dispatchSecret: the id is source= when given, else id=, else the target's base
      // name; the file goes to the target, else (unless it is only an env) /run/secrets/<base of id>.
      const id = source || e(m.id) || (target ? posix.basename(target) : '');
      if (id === '') need('id, source or target');
      const t = target ?? (env === undefined ? `/run/secrets/${posix.basename(id)}` : undefined);
      return {
        type: 'secret',
        id,
        ...(t !== undefined ? { target: abs(t) } : {}),
        ...(env !== undefined ? { env } : {}),
        required: m.required ?? false,
        mode: m.mode ?? 0o400,
        uid: m.uid ?? 0,
        gid: m.gid ?? 0,
      };
    }
    case 'ssh':
      return {
        type: 'ssh',
        id: e(m.id) || 'default',
        target: abs(target ?? `${DEFAULT_SSH_TARGET}.${index}`),
        required: m.required ?? false,
        mode: m.mode ?? 0o600,
        uid: m.uid ?? 0,
        gid: m.gid ?? 0,
      };
  }
}

/** RUN: argv (shell form with the stage's SHELL, heredocs as BuildKit runs them), env, mounts, history. */
export function planRun(instr: RunInstruction, state: StageState, ctx: DispatchContext): ExecOp {
  // Stable BuildKit refuses --device (CDI devices are a labs-channel feature); tsbuild has no CDI.
  if (instr.devices !== undefined && instr.devices.length > 0) {
    const list = instr.devices.map((d) => `--device=${d}`).join(' ');
    throw new PlanAbort(
      makeDiagnostic(
        { code: 'unsupported-flag', message: `RUN ${list}: the device flag is not supported (BuildKit: device feature is only supported in Dockerfile frontend 1.14.0-labs or later)`, range: instr.range },
        ctx.file,
      ),
    );
  }
  const mounts: ExecMount[] = [];
  let sshIndex = 0;
  for (const m of instr.mounts) mounts.push(planMount(m, state, ctx, instr.range, m.type === 'ssh' ? sshIndex++ : 0));

  let args: string[];
  let summary = '';
  const cmd = instr.command;
  if (cmd.form === 'shell' && instr.heredocs.length > 0) {
    const first = instr.heredocs[0]!;
    if (/^[0-9]*<<-?\s*["']?[^"'\s]+["']?\s*$/.test(cmd.command.trim()) && instr.heredocs.length === 1) {
      const data = first.chomp ? chompHeredoc(first.content) : first.content;
      summary = ` (${summarizeHeredoc(first.content)})`;
      if (data.startsWith('#!') && state.os !== 'windows') {
        mounts.push({ type: 'inline', target: '/dev/pipes', files: [{ name: first.name, content: data, mode: 0o755 }] });
        args = withShell(state, `/dev/pipes/${first.name}`);
      } else args = withShell(state, data);
    } else {
      let text = cmd.command;
      for (const h of instr.heredocs) text += `\n${h.content}${h.name}`;
      args = withShell(state, text);
    }
  } else args = commandArgs(state, cmd);

  const createdBy = `RUN ${runCommandString(args, state.buildArgs, (k) => envGet(state.env, k))}`;
  const history = historyEntry(createdBy, true);
  const { id, meta } = nextMeta(state, ctx, instr.range, ctx.stepName(instr.range, state, true, cmd.form === 'exec' ? `RUN ${JSON.stringify(cmd.args)}` : `RUN ${cmd.command}`) + summary, true, history);
  const sources = mounts.flatMap((m) => ('from' in m && m.from ? (sourceOpId(m.from) ?? []) : []));
  return {
    type: 'tsbuild.exec.v1',
    id,
    inputs: { ...(state.parent !== undefined ? { parent: state.parent } : {}), ...(sources.length > 0 ? { sources: [...new Set(sources)] } : {}) },
    args,
    env: envToStrings(state.env),
    cwd: state.config.WorkingDir || '/',
    user: state.config.User ?? '',
    mounts,
    network: instr.network ?? 'default',
    security: instr.security ?? 'sandbox',
    proxyEnv: ctx.proxyEnv,
    meta,
  };
}

const NON_OCTAL = (v: string) => `invalid chmod parameter: '${v}'. it should be octal string and between 0 and 07777`;
const SYMBOLIC = /^[ugoa]*(?:[-+=](?:[rwxXst]*|[ugo]))+(?:,[ugoa]*(?:[-+=](?:[rwxXst]*|[ugo]))+)*$/;

/** `--chmod` after expansion: octal ≤ 07777, or a symbolic mode (BuildKit's dispatchCopy checks). */
export function parseChmod(value: string): { mode: number } | { symbolic: string } | { error: string } {
  if (/^[0-7]+$/.test(value)) {
    const n = Number.parseInt(value, 8);
    return n > 0o7777 ? { error: NON_OCTAL(value) } : { mode: n };
  }
  if (/^[+-]?[0-9]/.test(value)) return { error: NON_OCTAL(value) };
  if (SYMBOLIC.test(value)) return { symbolic: value };
  return { error: `invalid chmod parameter: '${value}'` };
}

function inlineFiles(heredocs: readonly Heredoc[], state: StageState, ctx: DispatchContext, range: Range): InlineFile[] {
  return heredocs.map((h) => {
    let content = h.chomp ? chompHeredoc(h.content) : h.content;
    if (h.expand) {
      // BuildKit's ExpandRaw: a `\` lexer that leaves quotes alone.
      content = makeExpander(shellEnv(state.env), range, ctx.file, { escapeChar: '\\', skipProcessQuotes: true }).word(content);
    }
    return { name: h.name, content, mode: 0o644 };
  });
}

/** COPY and ADD: expanded sources, flags and destination, the source stage/image/context, history. */
export function planCopy(instr: CopyInstruction, state: StageState, ctx: DispatchContext): CopyOp {
  const ex = makeExpander(shellEnv(state.env), instr.range, ctx.file, { escapeChar: ctx.escapeChar });
  const isAdd = instr.kind === 'ADD';
  const chown = instr.chown !== undefined ? ex.word(instr.chown) : '';
  const chmodText = instr.chmod !== undefined ? ex.word(instr.chmod) : '';
  const checksum = isAdd && instr.checksum !== undefined ? ex.word(instr.checksum) : '';
  const sources = instr.sources.map((s) => ex.word(s));
  const destText = ex.word(instr.dest);
  const fail = (code: string, message: string): never => {
    throw new PlanAbort(makeDiagnostic({ code, message, range: instr.range }, ctx.file));
  };

  let chmod: CopyOp['chmod'];
  if (chmodText !== '') {
    const c = parseChmod(chmodText);
    if ('error' in c) fail('invalid-chmod', c.error);
    else chmod = c;
  }
  if (!isAdd) {
    for (const s of sources) if (/^https?:\/\//.test(s)) fail('copy-url', "source can't be a URL for COPY");
  }
  if (checksum !== '') {
    if (sources.length !== 1) fail('invalid-checksum', "checksum can't be specified for multiple sources");
    if (!/^(https?:\/\/|git@|git:\/\/)/.test(sources[0]!) && !/\.git(#|$)/.test(sources[0]!)) fail('invalid-checksum', 'checksum requires HTTP(S) or Git sources');
  }

  const from: FileSource = !isAdd && instr.from !== undefined ? fileSource(instr.from, true, state, ctx, instr.range) : { kind: 'context' };
  const inline = inlineFiles(instr.heredocs, state, ctx, instr.range);
  const dest = resolveDest(state.config.WorkingDir || '/', destText);

  let createdBy = isAdd ? 'ADD' : 'COPY';
  if (instr.parents) createdBy += ' --parents';
  if (chown !== '') createdBy += ` --chown=${chown}`;
  if (chmodText !== '') createdBy += ` --chmod=${chmodText}`;
  for (const s of sources) createdBy += ` ${s}`;
  for (const h of inline) createdBy += ` <<${h.name}`;
  createdBy += ` ${destText}`;
  const history = historyEntry(createdBy, true);

  const { id, meta } = nextMeta(state, ctx, instr.range, ctx.stepName(instr.range, state, false, createdBy), true, history);
  const src = sourceOpId(from);
  return {
    type: 'tsbuild.file.copy.v1',
    id,
    inputs: { ...(state.parent !== undefined ? { parent: state.parent } : {}), ...(src !== undefined ? { sources: [src] } : {}) },
    instruction: isAdd ? 'ADD' : 'COPY',
    from,
    sources,
    inline,
    dest,
    ...(chown !== '' ? { chown } : {}),
    ...(chmod ? { chmod } : {}),
    link: instr.link,
    parents: instr.parents,
    exclude: instr.exclude.map((p) => ex.word(p)),
    ...(checksum !== '' ? { checksum } : {}),
    ...(isAdd && instr.keepGitDir !== undefined ? { keepGitDir: instr.keepGitDir } : {}),
    ...(isAdd ? { unpack: instr.unpack ?? true } : {}),
    user: state.config.User ?? '',
    meta,
  };
}

/** WORKDIR other than `/`: a mkdir op (mode 0755, parents, owned by the current USER). */
export function planMkdir(path: string, state: StageState, ctx: DispatchContext, range: Range, history: History): MkdirOp {
  const { id, meta } = nextMeta(state, ctx, range, ctx.stepName(range, state, false, `WORKDIR ${path}`), true, history);
  return {
    type: 'tsbuild.file.mkdir.v1',
    id,
    inputs: state.parent !== undefined ? { parent: state.parent } : {},
    path,
    mode: 0o755,
    user: state.config.User ?? '',
    meta,
  };
}
