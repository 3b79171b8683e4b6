/**
 * BuildKit's Dockerfile build checks (moby/buildkit `frontend/dockerfile/linter`, run from
 * `instructions/parse.go` and `dockerfile2llb`), over a parsed Dockerfile. Pure: no files, no
 * registry. Each finding is a {@link Diagnostic} with code `lint/<Rule>`, BuildKit's message and
 * documentation URL, and the range of the offending word where it can be found.
 *
 * What differs from `docker build --check`, on purpose:
 * - Base images are not pulled. `UndefinedVar` runs only in stages whose environment is known:
 *   `scratch`, stages built on such stages, or images whose env `options.imageEnv` supplies.
 *   Likewise a base image's `SHELL` is assumed empty for `JSONArgsRecommended`.
 * - Every stage is checked, not only those the target reaches (as `--check` without `--target`).
 * - `CopyIgnoredFile` runs only when `options.ignore` describes the context's `.dockerignore`.
 */
import { parsePlatform } from '../oci/platform.js';
import { parseReference } from '../oci/reference.js';
import type {
  CopyInstruction,
  FromInstruction,
  Instruction,
  ParseResult,
  Stage,
} from './ast.js';
import type { Diagnostic, Range, Severity } from './diagnostics.js';
import { LineIndex } from './diagnostics.js';
import type { RawInstruction } from './raw-types.js';
import type { ShellEnv, ShellOptions } from './shell.js';
import { envFromList, processWord, processWords } from './shell.js';
import { cleanPath } from '../util/path.js';

/** One check, as BuildKit's `linter.LinterRule`. */
export interface LintRule {
  readonly name: string;
  readonly description: string;
  readonly url: string;
  /** Runs only when enabled with `experimental=<name>` or `experimental=all`. */
  readonly experimental?: boolean;
}

const docs = (kebab: string) => `https://docs.docker.com/go/dockerfile/rule/${kebab}/`;

/** Every rule tsbuild implements, with BuildKit's name, description and URL. */
export const LINT_RULES = {
  StageNameCasing: { name: 'StageNameCasing', description: 'Stage names should be lowercase', url: docs('stage-name-casing') },
  FromAsCasing: { name: 'FromAsCasing', description: "The 'as' keyword should match the case of the 'from' keyword", url: docs('from-as-casing') },
  NoEmptyContinuation: { name: 'NoEmptyContinuation', description: 'Empty continuation lines will become errors in a future release', url: docs('no-empty-continuation') },
  ConsistentInstructionCasing: {
    name: 'ConsistentInstructionCasing',
    description: 'All commands within the Dockerfile should use the same casing (either upper or lower)',
    url: docs('consistent-instruction-casing'),
  },
  DuplicateStageName: { name: 'DuplicateStageName', description: 'Stage names should be unique', url: docs('duplicate-stage-name') },
  ReservedStageName: { name: 'ReservedStageName', description: 'Reserved words should not be used as stage names', url: docs('reserved-stage-name') },
  JSONArgsRecommended: {
    name: 'JSONArgsRecommended',
    description: 'JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals',
    url: docs('json-args-recommended'),
  },
  MaintainerDeprecated: {
    name: 'MaintainerDeprecated',
    description: 'The MAINTAINER instruction is deprecated, use a label instead to define an image author',
    url: docs('maintainer-deprecated'),
  },
  UndefinedArgInFrom: { name: 'UndefinedArgInFrom', description: 'FROM command must use declared ARGs', url: docs('undefined-arg-in-from') },
  WorkdirRelativePath: {
    name: 'WorkdirRelativePath',
    description: 'Relative workdir without an absolute workdir declared within the build can have unexpected results if the base image changes',
    url: docs('workdir-relative-path'),
  },
  UndefinedVar: { name: 'UndefinedVar', description: 'Variables should be defined before their use', url: docs('undefined-var') },
  MultipleInstructionsDisallowed: {
    name: 'MultipleInstructionsDisallowed',
    description: 'Multiple instructions of the same type should not be used in the same stage',
    url: docs('multiple-instructions-disallowed'),
  },
  LegacyKeyValueFormat: {
    name: 'LegacyKeyValueFormat',
    description: 'Legacy key/value format with whitespace separator should not be used',
    url: docs('legacy-key-value-format'),
  },
  RedundantTargetPlatform: {
    name: 'RedundantTargetPlatform',
    description: 'Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior',
    url: docs('redundant-target-platform'),
  },
  SecretsUsedInArgOrEnv: {
    name: 'SecretsUsedInArgOrEnv',
    description: 'Sensitive data should not be used in the ARG or ENV commands',
    url: docs('secrets-used-in-arg-or-env'),
  },
  InvalidDefaultArgInFrom: {
    name: 'InvalidDefaultArgInFrom',
    description: 'Default value for global ARG results in an empty or invalid base image name',
    url: docs('invalid-default-arg-in-from'),
  },
  FromPlatformFlagConstDisallowed: {
    name: 'FromPlatformFlagConstDisallowed',
    description: 'FROM --platform flag should not use a constant value',
    url: docs('from-platform-flag-const-disallowed'),
  },
  CopyIgnoredFile: { name: 'CopyIgnoredFile', description: 'Attempting to Copy file that is excluded by .dockerignore', url: docs('copy-ignored-file') },
  InvalidDefinitionDescription: {
    name: 'InvalidDefinitionDescription',
    description:
      'Comment for build stage or argument should follow the format: `# <arg/stage name> <description>`. If this is not intended to be a description comment, add an empty line or comment between the instruction and the comment.',
    url: docs('invalid-definition-description'),
    experimental: true,
  },
  ExposeProtoCasing: { name: 'ExposeProtoCasing', description: 'Protocol in EXPOSE instruction should be lowercase', url: docs('expose-proto-casing') },
  ExposeInvalidFormat: {
    name: 'ExposeInvalidFormat',
    description: 'IP address and host-port mapping should not be used in EXPOSE instruction. This will become an error in a future release',
    url: docs('expose-invalid-format'),
  },
} as const satisfies Record<string, LintRule>;

export type LintRuleName = keyof typeof LINT_RULES;

/** Which checks run and how findings are reported: BuildKit's `linter.Config`. */
export interface LintConfig {
  readonly skipAll: boolean;
  readonly skip: ReadonlySet<string>;
  readonly experimentalAll: boolean;
  readonly experimental: ReadonlySet<string>;
  /** `error=true`: findings are errors (the build fails). */
  readonly error: boolean;
}

/** The `# check=` directive or `--check` value could not be read. */
export class LintConfigError extends Error {
  readonly code = 'TSBUILD_LINT_CONFIG';
}

const EMPTY_CONFIG: LintConfig = { skipAll: false, skip: new Set(), experimentalAll: false, experimental: new Set(), error: false };

const GO_TRUE = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);
const GO_FALSE = new Set(['0', 'f', 'F', 'FALSE', 'false', 'False']);

/**
 * Parses a check configuration such as `skip=StageNameCasing,JSONArgsRecommended;error=true`
 * (BuildKit's `ParseLintOptions`: keys `skip`, `experimental`, `error`; `all` for every rule).
 * @throws LintConfigError
 */
export function parseCheckOptions(text: string): LintConfig {
  const s = text.trim();
  if (s === '') return EMPTY_CONFIG;
  // Go strings.SplitN(s, ";", 3): at most three parts, the last keeps any further ';'.
  const parts: string[] = [];
  let rest = s;
  while (parts.length < 2) {
    const i = rest.indexOf(';');
    if (i < 0) break;
    parts.push(rest.slice(0, i));
    rest = rest.slice(i + 1);
  }
  parts.push(rest);
  let skipAll = false;
  let experimentalAll = false;
  let error = false;
  let skip: string[] = [];
  let experimental: string[] = [];
  for (const p of parts) {
    const eq = p.indexOf('=');
    if (eq < 0) throw new LintConfigError(`invalid check option ${goQuoteSimple(p)}`);
    const k = p.slice(0, eq).trim();
    const v = p.slice(eq + 1).trim();
    switch (k) {
      case 'skip':
        if (v === 'all') skipAll = true;
        else skip = v.split(',').map((r) => r.trim());
        break;
      case 'experimental':
        if (v === 'all') experimentalAll = true;
        else experimental = v.split(',').map((r) => r.trim());
        break;
      case 'error':
        if (GO_TRUE.has(v)) error = true;
        else if (GO_FALSE.has(v)) error = false;
        else throw new LintConfigError(`failed to parse check option ${goQuoteSimple(p)}: strconv.ParseBool: parsing ${goQuoteSimple(v)}: invalid syntax`);
        break;
      default:
        throw new LintConfigError(`invalid check option ${goQuoteSimple(k)}`);
    }
  }
  return { skipAll, skip: new Set(skip), experimentalAll, experimental: new Set(experimental), error };
}

function goQuoteSimple(s: string): string {
  return JSON.stringify(s);
}

/** BuildKit's `WithMergedConfig`: skips and experiments add up; `error` stays the file's. */
function mergeConfig(base: LintConfig, other: LintConfig): LintConfig {
  return {
    skipAll: base.skipAll || other.skipAll,
    skip: other.skip.size ? new Set([...base.skip, ...other.skip]) : base.skip,
    experimentalAll: base.experimentalAll || other.experimentalAll,
    experimental: other.experimental.size ? new Set([...base.experimental, ...other.experimental]) : base.experimental,
    error: base.error,
  };
}

function ruleEnabled(config: LintConfig, rule: LintRule): boolean {
  if (rule.experimental) return config.experimentalAll || config.experimental.has(rule.name);
  return !(config.skipAll || config.skip.has(rule.name));
}

/** What a `.dockerignore` says about a context path, for `CopyIgnoredFile`. */
export interface IgnoreMatcher {
  /** The path (slash-separated, relative to the context root) or one of its parents is excluded. */
  matchesOrParentMatches(path: string): boolean;
  /** The file has `!` exceptions: BuildKit then skips the check. */
  readonly hasExclusions: boolean;
  /** Some pattern is `*`, `**` or `**\/*` (the whole context root is excluded). */
  readonly excludesRoot: boolean;
}

/** The parts of a base image's config the checks use. */
export interface BaseImageInfo {
  /** `config.Env`, `KEY=value` entries. */
  readonly env: readonly string[];
  /** `config.Shell`. */
  readonly shell?: readonly string[];
}

export interface LintOptions {
  /**
   * A check configuration that replaces the file's `# check=` directive, as `--check` /
   * `BUILDKIT_DOCKERFILE_CHECK` do (`skip=…;error=true;experimental=…`).
   */
  readonly checks?: string;
  /** The Dockerfile text. Gives findings the exact range of the offending word, and enables per-instruction `# check=` comments and `InvalidDefinitionDescription`. */
  readonly source?: string;
  /** `--build-arg` values (they count as declared for `UndefinedVar`). */
  readonly buildArgs?: Readonly<Record<string, string>>;
  /**
   * What is known of an external base image (by its expanded name, e.g. `python:3.12`): its
   * `Env` enables `UndefinedVar` in stages built on it, its `Shell` informs `JSONArgsRecommended`.
   * Return undefined when the image is unknown.
   */
  readonly baseImage?: (image: string) => BaseImageInfo | undefined;
  /** The context's `.dockerignore`; enables `CopyIgnoredFile`. */
  readonly ignore?: IgnoreMatcher;
  /** The target platform for predefined ARGs. Default `linux/amd64`. */
  readonly platform?: { readonly os: string; readonly architecture: string; readonly variant?: string };
  /** The build target (`TARGETSTAGE`). Default: the last stage. */
  readonly target?: string;
}

export interface LintResult {
  /** Findings, sorted by position. */
  readonly diagnostics: Diagnostic[];
  /** The effective configuration (from the directive or `options.checks`). */
  readonly config: LintConfig;
}

/**
 * Runs BuildKit's checks over a parsed Dockerfile and returns the findings, sorted by position.
 * Severity is `warning`, or `error` when the configuration says `error=true`. A check directive
 * that cannot be parsed disables linting (BuildKit fails the build; the parser reports the
 * directive itself).
 */
export function lint(result: ParseResult, options: LintOptions = {}): Diagnostic[] {
  return lintWithConfig(result, options).diagnostics;
}

/** {@link lint}, also returning the effective configuration (the CLI needs `error`). */
export function lintWithConfig(result: ParseResult, options: LintOptions = {}): LintResult {
  let config: LintConfig;
  try {
    const directive = result.ast.directives.find((d) => d.name === 'check');
    config = parseCheckOptions(options.checks ?? directive?.value ?? '');
  } catch (err) {
    if (err instanceof LintConfigError) return { diagnostics: [], config: EMPTY_CONFIG };
    throw err;
  }
  const linter = new Linter(result, options, config);
  linter.run();
  const diagnostics = linter.findings.sort((a, b) => a.range.start.offset - b.range.start.offset || a.code.localeCompare(b.code));
  return { diagnostics, config };
}

/**
 * The external base images of a Dockerfile, as `lint` will ask `options.baseImage` about them:
 * FROM names expanded with the default global ARGs (and `options.buildArgs`), without stage
 * names and `scratch`. Lets a caller look them up (say, in the local store) before linting.
 */
export function externalBaseImages(result: ParseResult, options: LintOptions = {}): string[] {
  const linter = new Linter(result, options, EMPTY_CONFIG);
  return linter.externalBaseImages();
}

// ---------------------------------------------------------------------------------------------

const RESERVED_STAGE_NAMES = new Set(['context', 'scratch']);
const NON_ENV_ARGS = new Set(['BUILDKIT_SBOM_SCAN_CONTEXT', 'BUILDKIT_SBOM_SCAN_STAGE']);
const SECRET = /(?:_|^)(?:apikey|auth|credential|credentials|key|password|pword|passwd|secret|token)(?:_|$)/i;
const SECRET_ALLOW = /(?:_|^)(?:public|file|version)(?:_|$)/i;
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** BuildKit's `suggest.Search`, case-sensitive: the closest option at distance < 3, none on an exact match. */
function suggestSearch(value: string, options: Iterable<string>): string | undefined {
  let match: string | undefined;
  let min = 3;
  for (const opt of options) {
    if (opt === value) return undefined;
    const d = levenshtein(value, opt);
    if (d < min) {
      match = opt;
      min = d;
    }
  }
  return match;
}

function levenshtein(a: string, b: string): number {
  const s = Array.from(a);
  const t = Array.from(b);
  let prev = Array.from({ length: t.length + 1 }, (_, j) => j);
  for (let i = 1; i <= s.length; i++) {
    const cur = [i];
    for (let j = 1; j <= t.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (s[i - 1] === t[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[t.length]!;
}

/** A growing environment, in declaration order (keys are case-sensitive). */
class Env implements ShellEnv {
  readonly #map = new Map<string, string>();
  constructor(entries: Iterable<readonly [string, string]> = []) {
    for (const [k, v] of entries) this.set(k, v);
  }
  get(name: string): string | undefined {
    return this.#map.get(name);
  }
  keys(): readonly string[] {
    return [...this.#map.keys()];
  }
  set(k: string, v: string): void {
    this.#map.set(k, v);
  }
  has(k: string): boolean {
    return this.#map.has(k);
  }
  clone(): Env {
    return new Env(this.#map);
  }
}

/** Per-stage dispatch state: what BuildKit's `dispatchState` holds that the checks need. */
interface StageState {
  /** undefined: the base image's environment is unknown. */
  env: Env | undefined;
  buildArgs: Set<string>;
  workdirSet: boolean;
  shellSet: boolean;
}

class Linter {
  readonly findings: Diagnostic[] = [];
  readonly #index: LineIndex | undefined;
  readonly #source: string | undefined;
  readonly #raw = new Map<number, RawInstruction>();
  readonly #comments = new Map<number, string[]>();
  readonly #file: string | undefined;
  readonly #shellOpts: ShellOptions;

  constructor(
    readonly result: ParseResult,
    readonly options: LintOptions,
    readonly config: LintConfig,
  ) {
    this.#source = options.source;
    this.#index = options.source === undefined ? undefined : new LineIndex(options.source);
    this.#file = result.ast.file;
    this.#shellOpts = { escapeChar: result.ast.escapeChar };
    for (const ri of result.raw.instructions) this.#raw.set(ri.range.start.offset, ri);
    if (this.#index) this.#collectComments(this.#index);
  }

  run(): void {
    const { ast } = this.result;
    this.#emptyContinuations();
    for (const ins of [...ast.metaArgs, ...ast.stages.flatMap((s) => [s.from as Instruction, ...s.instructions])]) this.#parseLevel(ins);
    this.#stageNames(ast.stages);
    this.#commandCasing(ast.stages);
    const globalArgs = this.#globalArgs();
    this.#invalidDefaultArgs(ast.stages, globalArgs.defaults);
    this.#fromChecks(ast.stages, globalArgs.args, globalArgs.keys);
    this.#dispatch(ast.stages, globalArgs.args);
  }

  externalBaseImages(): string[] {
    const args = this.#globalArgs().args;
    const names = new Set<string>();
    const out = new Set<string>();
    for (const st of this.result.ast.stages) {
      const base = tryProcess(st.from.image, args, this.#shellOpts)?.result;
      if (base !== undefined && base !== '' && base !== 'scratch' && !names.has(base.toLowerCase())) out.add(base);
      if (st.name !== undefined) names.add(st.name);
    }
    return [...out];
  }

  // --- reporting -----------------------------------------------------------------------------

  #report(rule: LintRule, message: string, range: Range, config: LintConfig = this.config, suggestion?: string): void {
    if (!ruleEnabled(config, rule)) return;
    const severity: Severity = this.config.error ? 'error' : 'warning';
    this.findings.push({
      code: `lint/${rule.name}`,
      severity,
      message,
      range,
      url: rule.url,
      ...(suggestion !== undefined ? { suggestion } : {}),
      ...(this.#file !== undefined ? { file: this.#file } : {}),
    });
  }

  /** The configuration for one instruction: the file's, merged with a `# check=` comment right above it. */
  #configFor(ins: { range: Range }): LintConfig {
    const comments = this.#comments.get(ins.range.start.offset);
    if (!comments) return this.config;
    for (const c of comments) {
      const m = /^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$/.exec(c);
      if (!m || m[1]!.toLowerCase() !== 'check') continue;
      const v = m[2]!.split(' ')[0]!;
      try {
        return mergeConfig(this.config, parseCheckOptions(v));
      } catch {
        return this.config;
      }
    }
    return this.config;
  }

  /** BuildKit's `PrevComment`: comment lines since the previous instruction; an empty `#` resets them. */
  #collectComments(index: LineIndex): void {
    const directiveLines = new Set(this.result.raw.directives.map((d) => d.range.start.line));
    let prevEnd = 0;
    for (const ri of this.result.raw.instructions) {
      let out: string[] = [];
      for (let line = prevEnd + 1; line < ri.startLine; line++) {
        if (directiveLines.has(line)) continue;
        const text = index.lineText(line).replace(/^\uFEFF/, '').replace(/^[ \t\r\n\v\f]+/, '');
        if (!text.startsWith('#')) continue;
        const c = text.slice(1).trim();
        if (c === '') out = [];
        else out.push(c);
      }
      this.#comments.set(ri.range.start.offset, out);
      prevEnd = ri.endLine;
    }
  }

  /** The range of `word` inside `within` (first occurrence at or after `from`), else `within`. */
  #find(within: Range, word: string, from = within.start.offset): Range {
    if (this.#source === undefined || this.#index === undefined || word === '') return within;
    const at = this.#source.indexOf(word, from);
    if (at < 0 || at + word.length > within.end.offset) return within;
    return this.#index.range(at, at + word.length);
  }

  /** Where `$name` / `${name…}` is used inside `within`. */
  #findVar(within: Range, name: string): Range {
    if (this.#source === undefined || this.#index === undefined) return within;
    const text = this.#source.slice(within.start.offset, within.end.offset);
    const re = new RegExp(`\\$(?:\\{${escapeRe(name)}(?![A-Za-z0-9_])[^}]*\\}?|${escapeRe(name)}(?![A-Za-z0-9_]))`);
    const m = re.exec(text);
    if (!m) return within;
    const start = within.start.offset + m.index;
    return this.#index.range(start, start + m[0].length);
  }

  #keywordRange(ins: Instruction): Range {
    const ri = this.#raw.get(ins.range.start.offset);
    if (ri) return ri.keywordRange;
    const s = ins.range.start;
    return { start: s, end: { line: s.line, column: s.column + ins.keyword.length, offset: s.offset + ins.keyword.length } };
  }

  /** From the keyword to the end of the instruction's first line. */
  #firstLine(ins: Instruction): Range {
    const ri = this.#raw.get(ins.range.start.offset);
    if (ri && this.#index) {
      const lineEnd = ins.range.start.offset - ins.range.start.column + 1 + this.#index.lineText(ins.range.start.line).length;
      return { start: ins.range.start, end: this.#index.position(Math.min(lineEnd, ins.range.end.offset)) };
    }
    return ins.range;
  }

  #restRange(ins: Instruction): Range {
    return this.#raw.get(ins.range.start.offset)?.restRange ?? ins.range;
  }

  // --- parser-level checks -------------------------------------------------------------------

  #emptyContinuations(): void {
    for (const d of this.result.diagnostics) {
      if (isEmptyContinuationDiagnostic(d)) this.#report(LINT_RULES.NoEmptyContinuation, 'Empty continuation line', d.range);
    }
  }

  /** Checks BuildKit runs while turning nodes into instructions (`ParseInstructionWithLinter`). */
  #parseLevel(ins: Instruction): void {
    const config = this.#configFor(ins);
    const kw = ins.keyword;
    if (ins.kind === 'MAINTAINER') {
      this.#report(LINT_RULES.MaintainerDeprecated, 'Maintainer instruction is deprecated in favor of using label', this.#keywordRange(ins), config);
    }
    if (ins.kind === 'FROM' && ins.stageName !== undefined) {
      const nameRange = ins.stageNameRange ?? ins.range;
      if (ins.stageName !== ins.stageName.toLowerCase()) {
        this.#report(LINT_RULES.StageNameCasing, `Stage name '${ins.stageName}' should be lowercase`, nameRange, config, ins.stageName.toLowerCase());
      }
      const ri = this.#raw.get(ins.range.start.offset);
      const as = ri?.args[1] ?? 'AS';
      const fromLower = kw === kw.toLowerCase();
      const fromUpper = kw === kw.toUpperCase();
      if ((fromLower || fromUpper) && as !== (fromLower ? as.toLowerCase() : as.toUpperCase())) {
        this.#report(
          LINT_RULES.FromAsCasing,
          `'${as}' and '${kw}' keywords' casing do not match`,
          this.#find(ins.range, as, ins.imageRange.end.offset),
          config,
          fromLower ? as.toLowerCase() : as.toUpperCase(),
        );
      }
      this.#definitionDescription('FROM', [ins.stageName], ins, config);
    }
    if (ins.kind === 'ARG') {
      this.#definitionDescription('ARG', ins.args.map((a) => a.name), ins, config);
    }
  }

  #definitionDescription(instruction: string, keys: readonly string[], ins: Instruction, config: LintConfig): void {
    const comments = this.#comments.get(ins.range.start.offset);
    if (!comments || comments.length === 0 || keys.length === 0) return;
    const first = comments[comments.length - 1]!.split(' ')[0]!;
    if (keys.includes(first)) return;
    const example = keys.length > 1 ? '<arg_key>' : keys[0]!;
    this.#report(LINT_RULES.InvalidDefinitionDescription, `Comment for ${instruction} should follow the format: \`# ${example} <description>\``, this.#firstLine(ins), config);
  }

  // --- whole-file checks ---------------------------------------------------------------------

  #stageNames(stages: readonly Stage[]): void {
    const seen = new Set<string>();
    for (const st of stages) {
      const name = st.from.stageName;
      if (name === undefined) continue;
      // BuildKit lower-cases stage names when it parses FROM.
      const lower = name.toLowerCase();
      const range = st.from.stageNameRange ?? st.from.range;
      if (RESERVED_STAGE_NAMES.has(lower)) this.#report(LINT_RULES.ReservedStageName, `Stage name should not use the same name as reserved stage ${JSON.stringify(lower)}`, range);
      if (seen.has(lower)) this.#report(LINT_RULES.DuplicateStageName, `Duplicate stage name ${JSON.stringify(lower)}, stage names should be unique`, range);
      seen.add(lower);
    }
  }

  #commandCasing(stages: readonly Stage[]): void {
    let lower = 0;
    let upper = 0;
    const all = stages.flatMap((s) => [s.from as Instruction, ...s.instructions]);
    for (const ins of all) {
      const k = ins.keyword;
      if (k === k.toLowerCase()) lower++;
      else if (k === k.toUpperCase()) upper++;
    }
    const majorityLower = lower > upper;
    for (const ins of all) {
      const k = ins.keyword;
      let correct: string | undefined;
      if (majorityLower && k.toLowerCase() !== k) correct = 'lowercase';
      else if (!majorityLower && k.toUpperCase() !== k) correct = 'uppercase';
      if (correct) {
        this.#report(
          LINT_RULES.ConsistentInstructionCasing,
          `Command '${k}' should match the case of the command majority (${correct})`,
          this.#keywordRange(ins),
          this.config,
          majorityLower ? k.toLowerCase() : k.toUpperCase(),
        );
      }
    }
  }

  /** Predefined platform ARGs, then the meta ARGs: BuildKit's `defaultArgs` + `buildMetaArgs`. */
  #globalArgs(): { args: Env; defaults: Env | undefined; keys: Set<string> } {
    const p = this.options.platform ?? { os: 'linux', architecture: 'amd64' };
    const platform = [p.os, p.architecture, ...(p.variant ? [p.variant] : [])].join('/');
    const stages = this.result.ast.stages;
    const target = this.options.target ?? stages[stages.length - 1]?.name ?? 'default';
    const predefined: [string, string][] = [
      ['BUILDPLATFORM', platform],
      ['BUILDOS', p.os],
      ['BUILDOSVERSION', ''],
      ['BUILDARCH', p.architecture],
      ['BUILDVARIANT', p.variant ?? ''],
      ['TARGETPLATFORM', platform],
      ['TARGETOS', p.os],
      ['TARGETOSVERSION', ''],
      ['TARGETARCH', p.architecture],
      ['TARGETVARIANT', p.variant ?? ''],
      ['TARGETSTAGE', target || 'default'],
    ];
    const buildArgs = this.options.buildArgs ?? {};
    const base = new Env(predefined.map(([k, v]) => [k, buildArgs[k] ?? v] as [string, string]));
    const build = (withBuildArgs: boolean): Env | undefined => {
      const env = base.clone();
      for (const cmd of this.result.ast.metaArgs) {
        for (const a of cmd.args) {
          const given = withBuildArgs ? buildArgs[a.name] : undefined;
          if (given !== undefined) env.set(a.name, given);
          else if (a.defaultValue !== undefined) {
            try {
              env.set(a.name, processWord(a.defaultValue, env, this.#shellOpts).result);
            } catch {
              return undefined;
            }
          }
        }
      }
      return env;
    };
    const args = build(true) ?? base.clone();
    const keys = new Set<string>([...args.keys(), ...this.result.ast.metaArgs.flatMap((c) => c.args.map((a) => a.name))]);
    return { args, defaults: build(false), keys };
  }

  #invalidDefaultArgs(stages: readonly Stage[], defaults: Env | undefined): void {
    if (!defaults) return;
    for (const st of stages) {
      let name: string;
      try {
        name = processWord(st.from.image, defaults, this.#shellOpts).result;
      } catch {
        return;
      }
      if (!validReference(name)) {
        this.#report(LINT_RULES.InvalidDefaultArgInFrom, `Default value for ARG ${st.from.image} results in empty or invalid base image name`, st.from.imageRange);
      }
    }
  }

  #fromChecks(stages: readonly Stage[], args: Env, argKeys: ReadonlySet<string>): void {
    for (const st of stages) {
      const from = st.from;
      const config = this.#configFor(from);
      const undefinedArgs = (unmatched: ReadonlySet<string>, within: Range) => {
        for (const arg of unmatched) {
          if (argKeys.has(arg)) continue;
          const suggest = suggestSearch(arg, argKeys);
          this.#report(
            LINT_RULES.UndefinedArgInFrom,
            `FROM argument '${arg}' is not declared${suggest ? ` (did you mean ${suggest}?)` : ''}`,
            this.#findVar(within, arg),
            config,
            suggest,
          );
        }
      };
      const name = tryProcess(from.image, args, this.#shellOpts);
      if (name) undefinedArgs(name.unmatched, from.imageRange);
      if (from.platform !== undefined && from.platform !== '') {
        const platformRange = this.#platformRange(from);
        const plat = tryProcess(from.platform, args, this.#shellOpts);
        if (!plat) continue;
        undefinedArgs(plat.unmatched, platformRange);
        if (plat.matched.size === 1 && plat.unmatched.size === 0 && plat.matched.has('TARGETPLATFORM') && plat.result === args.get('TARGETPLATFORM')) {
          this.#report(
            LINT_RULES.RedundantTargetPlatform,
            `Setting platform to predefined ${from.platform} in FROM is redundant as this is the default behavior`,
            platformRange,
            config,
          );
        }
        if (plat.matched.size === 0 && plat.unmatched.size === 0) {
          let p: { os: string; architecture: string } | undefined;
          try {
            p = parsePlatform(plat.result);
          } catch {
            p = undefined;
          }
          const stageName = from.stageName ?? '';
          if (p && !stageName.includes(p.os) && !stageName.includes(p.architecture)) {
            this.#report(LINT_RULES.FromPlatformFlagConstDisallowed, `FROM --platform flag should not use constant value ${JSON.stringify(plat.result)}`, platformRange, config);
          }
        }
      }
    }
  }

  #platformRange(from: FromInstruction): Range {
    const ri = this.#raw.get(from.range.start.offset);
    const flag = ri?.flags.find((f) => /^--platform(=|$)/.test(f.text));
    return flag?.range ?? this.#find(from.range, '--platform');
  }

  // --- dispatch-level checks -----------------------------------------------------------------

  #dispatch(stages: readonly Stage[], globalArgs: Env): void {
    const states: StageState[] = [];
    const byName = new Map<string, number>();
    const buildArgs = this.options.buildArgs ?? {};
    stages.forEach((st, i) => {
      const baseName = tryProcess(st.from.image, globalArgs, this.#shellOpts)?.result ?? st.from.image;
      const parentIndex = byName.get(baseName.toLowerCase());
      let state: StageState;
      if (parentIndex !== undefined) {
        const parent = states[parentIndex]!;
        state = { env: parent.env?.clone(), buildArgs: new Set(parent.buildArgs), workdirSet: parent.workdirSet, shellSet: parent.shellSet };
      } else {
        const info: BaseImageInfo | undefined = baseName === 'scratch' ? { env: [] } : this.options.baseImage?.(baseName);
        let env: Env | undefined;
        if (info !== undefined) {
          const e = envFromList(info.env);
          env = new Env(e.keys().map((k) => [k, e.get(k) ?? ''] as [string, string]));
          if (!env.has('PATH')) env.set('PATH', DEFAULT_PATH);
        }
        state = { env, buildArgs: new Set(), workdirSet: false, shellSet: (info?.shell?.length ?? 0) > 0 };
      }
      states.push(state);
      if (st.name !== undefined) byName.set(st.name, i);
      const used: Partial<Record<'CMD' | 'ENTRYPOINT' | 'HEALTHCHECK', Instruction>> = {};
      for (const ins of st.instructions) this.#dispatchOne(ins, state, used, globalArgs, buildArgs);
    });
  }

  /** Expands `word` against the stage env and reports undefined variables (BuildKit's `reportUnmatchedVariables`). */
  #expand(word: string, ins: Instruction, state: StageState, config: LintConfig, within: Range, opts: ShellOptions = this.#shellOpts): string | undefined {
    if (!state.env) {
      // The base image's environment is unknown: a word that uses variables has no known value.
      const r = tryProcess(word, new Env(), opts);
      return r && r.unmatched.size === 0 ? r.result : undefined;
    }
    const r = tryProcess(word, state.env, opts);
    if (!r) return undefined;
    for (const name of r.unmatched) {
      if (state.buildArgs.has(name) || NON_ENV_ARGS.has(name)) continue;
      const suggest = suggestSearch(name, state.env.keys());
      this.#report(
        LINT_RULES.UndefinedVar,
        `Usage of undefined variable '$${name}'${suggest ? ` (did you mean $${suggest}?)` : ''}`,
        this.#findVar(within, name),
        config,
        suggest,
      );
    }
    return r.result;
  }

  #dispatchOne(
    ins: Instruction,
    state: StageState,
    used: Partial<Record<'CMD' | 'ENTRYPOINT' | 'HEALTHCHECK', Instruction>>,
    globalArgs: Env,
    buildArgs: Readonly<Record<string, string>>,
  ): void {
    const config = this.#configFor(ins);
    const rest = this.#restRange(ins);
    const expand = (word: string | undefined) => (word === undefined ? undefined : this.#expand(word, ins, state, config, rest));
    switch (ins.kind) {
      case 'ENV': {
        const expanded = ins.pairs.map((p) => ({ key: expand(p.key), value: expand(p.value), legacy: p.legacy, raw: p }));
        for (const p of expanded) {
          if (p.legacy) this.#report(LINT_RULES.LegacyKeyValueFormat, legacyMessage(ins.keyword), ins.range, config);
          if (p.key !== undefined) this.#secret('ENV', p.key, ins, config);
        }
        for (const p of expanded) if (p.key !== undefined) state.env?.set(p.key, p.value ?? '');
        break;
      }
      case 'LABEL':
        for (const p of ins.pairs) {
          expand(p.key);
          expand(p.value);
          if (p.legacy) this.#report(LINT_RULES.LegacyKeyValueFormat, legacyMessage(ins.keyword), ins.range, config);
        }
        break;
      case 'ARG':
        for (const a of ins.args) {
          this.#secret('ARG', a.name, ins, config);
          let value: string | undefined;
          if (buildArgs[a.name] !== undefined) value = buildArgs[a.name];
          else if (a.defaultValue !== undefined) value = this.#expand(a.defaultValue, ins, state, config, rest) ?? '';
          else value = globalArgs.get(a.name);
          if (value !== undefined && !NON_ENV_ARGS.has(a.name)) state.env?.set(a.name, value);
          state.buildArgs.add(a.name);
        }
        break;
      case 'COPY':
      case 'ADD':
        this.#copy(ins, state, config, expand);
        break;
      case 'WORKDIR': {
        const path = expand(ins.path);
        if (path !== undefined && !state.workdirSet && !path.startsWith('/')) {
          this.#report(
            LINT_RULES.WorkdirRelativePath,
            `Relative workdir ${JSON.stringify(path)} can have unexpected results if the base image changes`,
            this.#find(ins.range, ins.path, rest.start.offset),
            config,
          );
        }
        state.workdirSet = true;
        break;
      }
      case 'USER':
        expand(ins.user);
        break;
      case 'VOLUME':
        for (const p of ins.paths) expand(p);
        break;
      case 'STOPSIGNAL':
        expand(ins.signal);
        break;
      case 'RUN':
        for (const m of ins.mounts) for (const w of [m.target, m.source, m.from, m.id, m.env]) expand(w);
        break;
      case 'EXPOSE':
        this.#expose(ins.ports, ins, state, config);
        break;
      case 'SHELL':
        state.shellSet = true;
        break;
      case 'CMD':
      case 'ENTRYPOINT':
      case 'HEALTHCHECK': {
        const prev = used[ins.kind];
        if (prev) this.#report(LINT_RULES.MultipleInstructionsDisallowed, `Multiple ${ins.keyword} instructions should not be used in the same stage because only the last one will be used`, prev.range, config);
        used[ins.kind] = ins;
        if (ins.kind !== 'HEALTHCHECK' && ins.command.form === 'shell' && !state.shellSet) {
          this.#report(
            LINT_RULES.JSONArgsRecommended,
            `JSON arguments recommended for ${ins.keyword} to prevent unintended behavior related to OS signals`,
            this.#restRange(ins),
            config,
          );
        }
        break;
      }
      default:
        break;
    }
  }

  #secret(instruction: 'ARG' | 'ENV', key: string, ins: Instruction, config: LintConfig): void {
    if (SECRET.test(key) && !SECRET_ALLOW.test(key)) {
      this.#report(LINT_RULES.SecretsUsedInArgOrEnv, `Do not use ARG or ENV instructions for sensitive data (${instruction} ${JSON.stringify(key)})`, this.#find(ins.range, key, this.#restRange(ins).start.offset), config);
    }
  }

  #copy(ins: CopyInstruction, state: StageState, config: LintConfig, expand: (w: string | undefined) => string | undefined): void {
    expand(ins.chown);
    expand(ins.chmod);
    if (ins.kind === 'ADD') expand(ins.checksum);
    const sources = ins.sources.map((s) => expand(s));
    expand(ins.dest);
    for (const h of ins.heredocs) {
      if (h.expand) this.#expand(h.content, ins, state, config, h.range, { escapeChar: '\\', skipProcessQuotes: true });
    }
    const ignore = this.options.ignore;
    if (!ignore || ignore.hasExclusions || ins.from !== undefined) return;
    ins.sources.forEach((written, i) => {
      const src = sources[i];
      if (src === undefined || /^[a-z][a-z0-9+.-]*:\/\//i.test(src) || src.startsWith('git@')) return;
      const clean = cleanPath(src);
      if ((clean === '.' || clean === '/') && !ignore.excludesRoot) return;
      if (ignore.matchesOrParentMatches(clean.replace(/^\/+/, '') || '.')) {
        const cmd = ins.kind === 'ADD' ? 'Add' : 'Copy';
        this.#report(LINT_RULES.CopyIgnoredFile, `Attempting to ${cmd} file ${JSON.stringify(clean)} that is excluded by .dockerignore`, this.#find(ins.range, written, this.#restRange(ins).start.offset), config);
      }
    });
  }

  #expose(ports: readonly string[], ins: Instruction, state: StageState, config: LintConfig): void {
    for (const written of ports) {
      let words: string[];
      if (!state.env && tryProcess(written, new Env(), this.#shellOpts)?.unmatched.size !== 0) continue; // value unknown
      try {
        words = processWords(written, state.env ?? new Env(), this.#shellOpts);
      } catch {
        continue;
      }
      for (const raw of words) {
        const parts = raw.split(':');
        const ip = parts.length >= 3 ? parts.slice(0, -2).join(':') : '';
        const hostPort = parts.length >= 2 ? parts[parts.length - 2]! : '';
        const container = parts[parts.length - 1]!;
        const slash = container.indexOf('/');
        const port = slash < 0 ? container : container.slice(0, slash);
        const proto = slash < 0 ? '' : container.slice(slash + 1);
        if (port === '' || !['', 'tcp', 'udp', 'sctp'].includes(proto.toLowerCase())) continue; // an error, not a lint finding
        const range = this.#find(ins.range, written, this.#restRange(ins).start.offset);
        if (proto !== proto.toLowerCase()) this.#report(LINT_RULES.ExposeProtoCasing, `Defined protocol '${raw}' in EXPOSE instruction should be lowercase`, range, config);
        if (ip !== '' || hostPort !== '') this.#report(LINT_RULES.ExposeInvalidFormat, `EXPOSE instruction should not define an IP address or host-port mapping, found '${raw}'`, range, config);
      }
    }
  }
}

function legacyMessage(keyword: string): string {
  return `"${keyword} key=value" should be used instead of legacy "${keyword} key value" format`;
}

function tryProcess(word: string, env: ShellEnv, opts: ShellOptions) {
  try {
    return processWord(word, env, opts);
  } catch {
    return undefined;
  }
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Whether BuildKit's `reference.ParseNormalizedNamed` accepts the name. */
function validReference(name: string): boolean {
  if (name === '' || /^[a-f0-9]{64}$/.test(name)) return false;
  try {
    parseReference(name);
    return true;
  } catch {
    return false;
  }
}


/** The raw parser's warning for an empty continuation line (BuildKit reports it as NoEmptyContinuation). */
export function isEmptyContinuationDiagnostic(d: Diagnostic): boolean {
  return d.code === 'lint/NoEmptyContinuation' || /empty-continuation/i.test(d.code) || (d.url ?? '').includes('no-empty-continuation');
}

