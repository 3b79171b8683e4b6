import type { ShellEnv } from '../../parser/shell.js';

/**
 * An ordered environment (`KEY=value` list semantics, case-sensitive keys as on Linux). Setting an
 * existing key keeps its position (BuildKit's `addEnv`), so `ENV` overrides stay in place.
 */
export type EnvList = readonly (readonly [string, string])[];

export function envGet(env: EnvList, key: string): string | undefined {
  for (let i = env.length - 1; i >= 0; i--) if (env[i]![0] === key) return env[i]![1];
  return undefined;
}

export function envSet(env: EnvList, key: string, value: string): EnvList {
  const i = env.findIndex(([k]) => k === key);
  if (i < 0) return [...env, [key, value]];
  const out = env.slice();
  out[i] = [key, value];
  return out;
}

export function envFromStrings(list: readonly string[]): EnvList {
  let env: EnvList = [];
  for (const s of list) {
    const eq = s.indexOf('=');
    env = eq < 0 ? envSet(env, s, '') : envSet(env, s.slice(0, eq), s.slice(eq + 1));
  }
  return env;
}

export function envToStrings(env: EnvList): string[] {
  return env.map(([k, v]) => `${k}=${v}`);
}

export function shellEnv(env: EnvList): ShellEnv {
  return { get: (name) => envGet(env, name), keys: () => env.map(([k]) => k) };
}
