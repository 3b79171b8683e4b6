import type { ParseResult } from './ast.js';
import type { Diagnostic } from './diagnostics.js';
import { parseRaw } from './raw.js';
import type { Directive } from './raw-types.js';
import { toAst } from './to-ast.js';

export type * from './ast.js';
export type * from './raw-types.js';
export type { Diagnostic, FormatOptions, Position, Range, Severity } from './diagnostics.js';
export { formatDiagnostic, LineIndex } from './diagnostics.js';
export { parseRaw } from './raw.js';
export { dumpBuildkit } from './dump.js';
export { toAst, heredocWordName, INSTRUCTIONS } from './to-ast.js';
export type { ToAstOptions, ToAstResult } from './to-ast.js';
export { parseFlags, suggestWord, INSTRUCTION_FLAGS } from './flags.js';
export type { FlagSpec, FlagType, FlagValue, ParsedFlags } from './flags.js';
export { parseMount, splitCsv, MOUNT_TYPES, MOUNT_KEYS } from './mounts.js';
export type { MountError, MountResult, ParseMountOptions } from './mounts.js';
export { parseGoDuration } from './duration.js';
/** For tsbuild's own build (scripts/bundle.mjs) and benchmark: V8's code cache of the vendored Chevrotain. */
export { chevrotainCodeCache, chevrotainCodeCacheRejected, writeChevrotainCodeCache } from './chevrotain-loader.js';
export { processWord, processWords, envFromList, envFromMap, emptyEnv, ShellExpansionError } from './shell.js';
export type { ShellEnv, ShellOptions, ProcessWordResult } from './shell.js';

export interface ParseOptions {
  /** The file name recorded on the AST and on diagnostics. */
  readonly file?: string;
}

/**
 * Frontends that mean "the standard Dockerfile syntax", which tsbuild implements itself:
 * docker/dockerfile[-upstream] from any registry or mirror, any tag or digest.
 */
const STANDARD_SYNTAX = /^(?:[\w.-]+(?::\d+)?\/)*docker\/dockerfile(?:-upstream)?(?::[\w.-]+)?(?:@sha256:[0-9a-f]{64})?$/;

/** Checks the `# syntax=` directive; `escape` is validated by the raw parser, `check` by the linter. */
function checkDirectives(directives: readonly Directive[], file: string | undefined): Diagnostic[] {
  const out: Diagnostic[] = [];
  const at = (d: Directive, message: string, code: string): Diagnostic => ({
    code,
    severity: 'warning',
    message,
    range: d.range,
    ...(file !== undefined ? { file } : {}),
  });
  for (const d of directives) {
    if (d.name === 'syntax' && !STANDARD_SYNTAX.test(d.value.trim())) {
      out.push(at(d, `syntax directive ${JSON.stringify(d.value)} ignored: tsbuild always uses its built-in Dockerfile frontend`, 'unsupported-syntax'));
    }
    // `check` is read and validated by the linter (src/parser/lint.ts), which owns the rules.
  }
  return out;
}

/**
 * Parses a Dockerfile: the line-level parse (BuildKit's parser), then typed instructions and stages
 * (BuildKit's instructions package). Never throws; every error and warning in the file is in
 * `diagnostics`, sorted by position.
 */
export function parseDockerfile(text: string, options: ParseOptions = {}): ParseResult {
  const file = options.file;
  const { raw, diagnostics: rawDiagnostics } = parseRaw(text, file !== undefined ? { file } : {});
  const { ast, diagnostics } = toAst(raw, { ...(file !== undefined ? { file } : {}), source: text });
  const all = [...rawDiagnostics, ...checkDirectives(raw.directives, file), ...diagnostics];
  const syntaxOk = !rawDiagnostics.some((d) => d.severity === 'error');
  if (syntaxOk && raw.instructions.length > 0 && ast.stages.length === 0 && !diagnostics.some((d) => d.severity === 'error')) {
    const first = raw.instructions[0]!;
    all.push({
      code: 'no-stages',
      severity: 'error',
      message: 'dockerfile contains no stages to build',
      range: first.keywordRange,
      ...(file !== undefined ? { file } : {}),
    });
  }
  all.sort((a, b) => a.range.start.offset - b.range.start.offset);
  return { ast, raw, diagnostics: all, syntaxValid: syntaxOk };
}
