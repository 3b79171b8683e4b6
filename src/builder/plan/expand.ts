import type { Range } from '../../parser/diagnostics.js';
import { processWord, processWords, ShellExpansionError, type ShellEnv, type ShellOptions } from '../../parser/shell.js';
import { PlanAbort, makeDiagnostic } from './diagnostics.js';

/** Expands words of one instruction; an expansion error becomes a diagnostic at the instruction. */
export interface Expander {
  word(word: string): string;
  words(word: string): string[];
  /** Names looked up and found unset so far (for lint-style hints). */
  readonly unmatched: Set<string>;
}

export function makeExpander(env: ShellEnv, range: Range, file: string | undefined, options: ShellOptions = {}): Expander {
  const unmatched = new Set<string>();
  const fail = (err: unknown): never => {
    if (err instanceof ShellExpansionError) {
      throw new PlanAbort(makeDiagnostic({ code: 'expansion-error', message: err.message, range }, file));
    }
    throw err;
  };
  return {
    unmatched,
    word(word) {
      try {
        const r = processWord(word, env, options);
        for (const n of r.unmatched) unmatched.add(n);
        return r.result;
      } catch (err) {
        return fail(err);
      }
    },
    words(word) {
      try {
        return processWords(word, env, options);
      } catch (err) {
        return fail(err);
      }
    },
  };
}
