import type { ArgInstruction, Dockerfile } from '../../parser/ast.js';
import { makeDiagnostic, FILE_START } from './diagnostics.js';
import type { Diagnostic } from '../../parser/diagnostics.js';
import { envGet, envSet, shellEnv, type EnvList } from './env.js';
import { makeExpander } from './expand.js';
import { platformArgs, type PlatformSpec } from './platform.js';

/** Proxy variables: predefined build args, given to RUN but kept out of history and config. */
export const PROXY_ARGS: readonly string[] = ['HTTP_PROXY', 'HTTPS_PROXY', 'FTP_PROXY', 'NO_PROXY', 'ALL_PROXY'];

/** Build args that are consumed without an ARG declaration (predefined by BuildKit). */
export function isPredefinedArg(name: string): boolean {
  return (
    PROXY_ARGS.includes(name.toUpperCase()) ||
    name.startsWith('BUILDKIT_') ||
    name === 'SOURCE_DATE_EPOCH' ||
    /^(BUILD|TARGET)(PLATFORM|OS|OSVERSION|ARCH|VARIANT)$/.test(name) ||
    name === 'TARGETSTAGE'
  );
}

/** Proxy build args (any case), sorted by name, as BuildKit's `proxyEnvFromBuildArgs`. */
export function proxyEnv(buildArgs: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(buildArgs).sort()) {
    if (PROXY_ARGS.includes(k.toUpperCase())) out[k] = buildArgs[k]!;
  }
  return out;
}

export interface GlobalScope {
  /** Predefined platform args plus meta ARGs (after build args), in declaration order. */
  readonly env: EnvList;
  /** Names declared by meta ARGs. */
  readonly declared: ReadonlySet<string>;
}

/**
 * BuildKit's `defaultArgs` + `buildMetaArgs`: the predefined platform args (overridable by build
 * args), then each ARG before the first FROM: its build arg if given, else its default expanded
 * against the scope so far; an ARG with neither is declared but unset.
 */
export function globalScope(
  ast: Dockerfile,
  buildArgs: Readonly<Record<string, string>>,
  platforms: { build: PlatformSpec; target: PlatformSpec },
  targetStage: string,
  file: string | undefined,
): GlobalScope {
  let env: EnvList = [];
  for (const [k, v] of platformArgs(platforms.build, platforms.target, targetStage)) {
    env = envSet(env, k, Object.hasOwn(buildArgs, k) ? buildArgs[k]! : v);
  }
  const declared = new Set<string>();
  for (const instr of ast.metaArgs) {
    for (const a of instr.args) {
      declared.add(a.name);
      let value: string | undefined;
      if (Object.hasOwn(buildArgs, a.name)) value = buildArgs[a.name]!;
      else if (a.defaultValue !== undefined) {
        value = makeExpander(shellEnv(env), instr.range, file, { escapeChar: ast.escapeChar }).word(a.defaultValue);
      }
      if (value !== undefined) env = envSet(env, a.name, value);
    }
  }
  return { env, declared };
}

/** One declared stage ARG, as BuildKit keeps it for RUN's history (`|n k=v`). */
export interface DeclaredArg {
  readonly key: string;
  readonly value?: string;
}

/**
 * BuildKit's `dispatchArg` for one ARG instruction inside a stage: a build arg wins, else the
 * default (expanded against the stage env), else the global value of that name. Returns the
 * declarations and the history text (`ARG a=1 b`).
 */
export function resolveStageArgs(
  instr: ArgInstruction,
  stageEnv: EnvList,
  global: EnvList,
  buildArgs: Readonly<Record<string, string>>,
  escapeChar: '\\' | '`',
  file: string | undefined,
): { args: DeclaredArg[]; env: EnvList; history: string } {
  let env = stageEnv;
  const args: DeclaredArg[] = [];
  const parts: string[] = [];
  for (const a of instr.args) {
    let value: string | undefined;
    if (Object.hasOwn(buildArgs, a.name)) value = buildArgs[a.name]!;
    else if (a.defaultValue !== undefined) {
      value = makeExpander(shellEnv(env), instr.range, file, { escapeChar }).word(a.defaultValue);
    } else value = envGet(global, a.name);
    if (value !== undefined) env = envSet(env, a.name, value);
    args.push(value !== undefined ? { key: a.name, value } : { key: a.name });
    parts.push(value !== undefined ? `${a.name}=${value}` : a.name);
  }
  return { args, env, history: `ARG ${parts.join(' ')}` };
}

/** A warning for build args that no ARG of the built stages (or the global scope) declares. */
export function unusedBuildArgs(buildArgs: Readonly<Record<string, string>>, used: ReadonlySet<string>, file: string | undefined): Diagnostic[] {
  const unused = Object.keys(buildArgs)
    .filter((k) => !used.has(k) && !isPredefinedArg(k))
    .sort();
  if (unused.length === 0) return [];
  return [
    makeDiagnostic(
      {
        code: 'unused-build-arg',
        severity: 'warning',
        message: `One or more build-args [${unused.join(' ')}] were not consumed`,
        range: FILE_START,
      },
      file,
    ),
  ];
}
