import type {
  ArgDeclaration,
  ArgInstruction,
  CommandForm,
  CopyInstruction,
  Dockerfile,
  FromInstruction,
  Heredoc,
  Instruction,
  KeyValue,
  Mount,
  Stage,
} from './ast.js';
import type { Diagnostic, Range, Severity } from './diagnostics.js';
import { LineIndex, positionsFor, type LinePositions } from './diagnostics.js';
import { formatGoDuration, parseGoDuration } from './duration.js';
import type { FlagSpec, ParsedFlags } from './flags.js';
import { INSTRUCTION_FLAGS, parseFlags, suggestWord } from './flags.js';
import { parseMount } from './mounts.js';
import type { RawDockerfile, RawInstruction } from './raw-types.js';

/**
 * Line-level AST to typed instructions and stages, with BuildKit's rules and messages
 * (frontend/dockerfile/instructions/parse.go). Every problem becomes a diagnostic; an instruction
 * that cannot be converted is left out of the AST.
 */

export interface ToAstOptions {
  /** Recorded on the AST and on every diagnostic. */
  readonly file?: string;
  /** The Dockerfile text: lets diagnostics point at the offending word and finds doc comments. */
  readonly source?: string;
}

export interface ToAstResult {
  readonly ast: Dockerfile;
  readonly diagnostics: Diagnostic[];
}

/** Instruction keywords, upper case, in BuildKit's command package order. */
export const INSTRUCTIONS = [
  'ADD', 'ARG', 'CMD', 'COPY', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'FROM', 'HEALTHCHECK', 'LABEL', 'MAINTAINER', 'ONBUILD',
  'RUN', 'SHELL', 'STOPSIGNAL', 'USER', 'VOLUME', 'WORKDIR',
] as const;

const VALID_STAGE_NAME = /^[a-z][a-z0-9-_.]*$/;

/** BuildKit's `MustParseHeredoc` pattern for a heredoc word such as `<<EOF`, `<<-"EOT"`, `3<<X`. */
const HEREDOC_WORD = /^(\d*)<<(-?)\s*([^<]*)$/;

/** The name a heredoc word refers to (quotes removed), or undefined when the word is not a heredoc. */
export function heredocWordName(word: string): string | undefined {
  const m = HEREDOC_WORD.exec(word);
  if (!m || m[3] === '') return undefined;
  let name = '';
  const rest = m[3]!;
  let quote: string | undefined;
  for (let i = 0; i < rest.length; i++) {
    const c = rest[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"' && i + 1 < rest.length) name += rest[++i];
      else name += c;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '\\' && i + 1 < rest.length) name += rest[++i];
    else if (/\s/.test(c)) return undefined;
    else name += c;
  }
  return name === '' ? undefined : name;
}

/** The flags of an instruction that has none (most): read only here, so shared. */
const NO_FLAGS: ParsedFlags = { values: new Map(), lists: new Map(), used: [], diagnostics: [] };

/** Where each instruction's problems are collected and placed. */
class Context {
  readonly diagnostics: Diagnostic[] = [];
  readonly index: LineIndex | LinePositions | undefined;
  /** Severity for this conversion (ONBUILD triggers report warnings). */
  severity: Severity = 'error';
  prefix = '';

  constructor(
    readonly options: ToAstOptions,
    readonly source: string | undefined,
    positions: LinePositions | undefined,
  ) {
    this.index = source === undefined ? undefined : (positions ?? new LineIndex(source));
  }

  report(code: string, message: string, range: Range, suggestion?: string): void {
    this.diagnostics.push({
      code,
      severity: this.severity,
      message: this.prefix + message,
      range,
      ...(suggestion !== undefined ? { suggestion } : {}),
      ...(this.options.file !== undefined ? { file: this.options.file } : {}),
    });
  }

  /** The range of `word` as written after `from` inside the instruction, else `fallback`. */
  find(ri: RawInstruction, word: string, fallback: Range, from = ri.restRange.start.offset): Range {
    if (this.source === undefined || this.index === undefined || word === '') return fallback;
    // Searched inside the instruction only: a word that is not there (quotes removed, say) must not
    // cost a scan of the rest of the file, which made the conversion quadratic in the file size.
    const end = ri.range.end.offset;
    if (from >= end) return fallback;
    const i = this.source.slice(from, end).indexOf(word);
    if (i < 0) return fallback;
    const at = from + i;
    return this.index.range(at, at + word.length);
  }

  /** A narrower range inside a flag for one of its fields. */
  within(range: Range, text: string): Range {
    if (this.source === undefined || this.index === undefined || text === '') return range;
    const at = this.source.slice(range.start.offset, range.end.offset).indexOf(text);
    if (at < 0) return range;
    const start = range.start.offset + at;
    return this.index.range(start, start + text.length);
  }

  flags(ri: RawInstruction, spec: FlagSpec): ParsedFlags {
    if (ri.flags.length === 0) return NO_FLAGS;
    const parsed = parseFlags(ri.flags, spec);
    for (const d of parsed.diagnostics) this.report(d.code, d.message, d.range, d.suggestion);
    return parsed;
  }
}

/** BuildKit's `nodeArgs`: ONBUILD's child contributes its keyword and its own arguments. */
function nodeArgs(ri: RawInstruction): string[] {
  if (ri.child) return [ri.child.keyword, ...nodeArgs(ri.child)];
  return [...ri.args];
}

/** BuildKit's `handleJSONArgs` folded into a command form. */
function commandForm(args: readonly string[], json: boolean): CommandForm {
  if (json) return { form: 'exec', args: [...args] };
  return { form: 'shell', command: args.join(' ') };
}

function errExactlyOne(kw: string) {
  return `${kw} requires exactly one argument`;
}
function errAtLeastOne(kw: string) {
  return `${kw} requires at least one argument`;
}

/** Converts one raw instruction; undefined (with diagnostics) when it cannot be converted. */
function convert(ri: RawInstruction, ctx: Context, comments: readonly string[]): Instruction | undefined {
  const kw = ri.keyword.toUpperCase();
  const base = { keyword: ri.keyword, range: ri.range };
  const args = nodeArgs(ri);
  const missing = (message: string) => {
    ctx.report('missing-argument', message, ri.keywordRange);
    return undefined;
  };
  const noFlags = () => ctx.flags(ri, {}).diagnostics.length === 0;

  switch (kw) {
    case 'FROM': {
      const flags = ctx.flags(ri, INSTRUCTION_FLAGS.FROM!);
      let stageName: string | undefined;
      let ok = flags.diagnostics.length === 0;
      if (args.length === 3 && args[1]!.toLowerCase() === 'as') {
        stageName = args[2]!;
        if (!VALID_STAGE_NAME.test(stageName.toLowerCase())) {
          ctx.report(
            'invalid-stage-name',
            `invalid name for build stage: ${JSON.stringify(stageName)}, name can't start with a number or contain symbols`,
            ctx.find(ri, stageName, ri.restRange, ctx.find(ri, args[1]!, ri.restRange, ctx.find(ri, args[0]!, ri.restRange).end.offset).end.offset),
          );
          ok = false;
        }
      } else if (args.length !== 1) {
        ctx.report(args.length === 0 ? 'missing-argument' : 'invalid-arguments', 'FROM requires either one or three arguments', args.length === 0 ? ri.keywordRange : ri.restRange);
        return undefined;
      }
      if (!ok) return undefined;
      const imageRange = ctx.find(ri, args[0]!, ri.restRange);
      const platform = flags.values.get('platform')?.value;
      const from: FromInstruction = {
        kind: 'FROM',
        ...base,
        image: args[0]!,
        imageRange,
        ...(stageName !== undefined
          ? { stageName, stageNameRange: ctx.find(ri, stageName, ri.restRange, ctx.find(ri, args[1]!, ri.restRange, imageRange.end.offset).end.offset) }
          : {}),
        ...(platform !== undefined ? { platform } : {}),
      };
      return from;
    }

    case 'RUN': {
      const flags = ctx.flags(ri, INSTRUCTION_FLAGS.RUN!);
      let ok = flags.diagnostics.length === 0;
      const mounts: Mount[] = [];
      for (const f of flags.lists.get('mount') ?? []) {
        const r = parseMount(f.value, { range: f.range });
        if (r.error) {
          ctx.report(r.error.code, r.error.message, r.error.field ? ctx.within(f.range, r.error.field) : f.range, r.error.suggestion);
          ok = false;
        } else mounts.push(r.mount);
      }
      const network = flags.values.get('network');
      if (network && !['default', 'none', 'host'].includes(network.value)) {
        ctx.report('invalid-flag-value', `invalid network mode ${JSON.stringify(network.value)}`, network.range);
        ok = false;
      }
      const security = flags.values.get('security');
      if (security && !['sandbox', 'insecure'].includes(security.value)) {
        ctx.report('invalid-flag-value', `security ${JSON.stringify(security.value)} is not valid`, security.range);
        ok = false;
      }
      if (!ok) return undefined;
      const devices = flags.lists.get('device')?.map((d) => d.value);
      return {
        kind: 'RUN',
        ...base,
        command: commandForm(args, ri.json),
        mounts,
        ...(network ? { network: network.value as 'default' | 'none' | 'host' } : {}),
        ...(security ? { security: security.value as 'sandbox' | 'insecure' } : {}),
        ...(devices ? { devices } : {}),
        heredocs: ri.heredocs,
      };
    }

    case 'CMD':
    case 'ENTRYPOINT': {
      if (!noFlags()) return undefined;
      return { kind: kw, ...base, command: commandForm(args, ri.json) };
    }

    case 'SHELL': {
      if (!noFlags()) return undefined;
      if (args.length === 0) return missing(errAtLeastOne('SHELL'));
      if (!ri.json) {
        ctx.report('shell-not-json', 'SHELL requires the arguments to be in JSON form', ri.restRange);
        return undefined;
      }
      return { kind: 'SHELL', ...base, shell: args };
    }

    case 'COPY':
    case 'ADD':
      return convertCopy(ri, kw, args, ctx);

    case 'ENV':
    case 'LABEL': {
      const flagsOk = noFlags();
      if (args.length === 0) return missing(errAtLeastOne(kw));
      if (args.length % 3 !== 0) {
        ctx.report('invalid-arguments', `Bad input to ${kw}, too many arguments`, ri.restRange);
        return undefined;
      }
      const pairs: KeyValue[] = [];
      for (let j = 0; j < args.length; j += 3) {
        if (args[j] === '') {
          ctx.report('blank-name', `${kw} names can not be blank`, ri.restRange);
          return undefined;
        }
        pairs.push({ key: args[j]!, value: args[j + 1]!, legacy: args[j + 2] === '' });
      }
      if (!flagsOk) return undefined;
      return { kind: kw, ...base, pairs };
    }

    case 'ARG': {
      // BuildKit does not check ARG's flags.
      if (args.length === 0) return missing(errAtLeastOne('ARG'));
      const decls: ArgDeclaration[] = [];
      for (const arg of args) {
        const eq = arg.indexOf('=');
        const name = eq < 0 ? arg : arg.slice(0, eq);
        if (eq === 0) {
          ctx.report('blank-name', 'ARG names can not be blank', ctx.find(ri, arg, ri.restRange));
          return undefined;
        }
        const docComment = docCommentFor(comments, name);
        decls.push({ name, ...(eq >= 0 ? { defaultValue: arg.slice(eq + 1) } : {}), ...(docComment ? { docComment } : {}) });
      }
      return { kind: 'ARG', ...base, args: decls };
    }

    case 'EXPOSE': {
      if (args.length === 0) return missing(errAtLeastOne('EXPOSE'));
      if (!noFlags()) return undefined;
      // BuildKit sorts the ports (byte order).
      const ports = [...args].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      return { kind: 'EXPOSE', ...base, ports };
    }

    case 'USER':
    case 'WORKDIR':
    case 'MAINTAINER': {
      if (args.length !== 1) {
        if (args.length === 0) return missing(errExactlyOne(kw));
        ctx.report('invalid-arguments', errExactlyOne(kw), ri.restRange);
        return undefined;
      }
      if (!noFlags()) return undefined;
      const v = args[0]!;
      if (kw === 'USER') return { kind: 'USER', ...base, user: v };
      if (kw === 'WORKDIR') return { kind: 'WORKDIR', ...base, path: v };
      return { kind: 'MAINTAINER', ...base, maintainer: v };
    }

    case 'STOPSIGNAL': {
      // BuildKit does not check STOPSIGNAL's flags.
      if (args.length !== 1) {
        if (args.length === 0) return missing(errExactlyOne(kw));
        ctx.report('invalid-arguments', errExactlyOne(kw), ri.restRange);
        return undefined;
      }
      return { kind: 'STOPSIGNAL', ...base, signal: args[0]! };
    }

    case 'VOLUME': {
      if (args.length === 0) return missing(errAtLeastOne('VOLUME'));
      if (!noFlags()) return undefined;
      const paths: string[] = [];
      for (const a of args) {
        const v = a.trim();
        if (v === '') {
          ctx.report('invalid-arguments', 'VOLUME specified can not be an empty string', ri.restRange);
          return undefined;
        }
        paths.push(v);
      }
      return { kind: 'VOLUME', ...base, paths };
    }

    case 'HEALTHCHECK':
      return convertHealthcheck(ri, args, ctx);

    case 'ONBUILD':
      return convertOnbuild(ri, args, ctx, comments);

    default: {
      const match = suggestWord(ri.keyword, INSTRUCTIONS, false);
      ctx.report(
        'unknown-instruction',
        `unknown instruction: ${ri.keyword}${match !== undefined ? ` (did you mean ${match}?)` : ''}`,
        ri.keywordRange,
        match,
      );
      return undefined;
    }
  }
}

/** `--chmod`: octal up to 07777, or a chmod(1) symbolic mode (`u+x,g-w`). Variables are checked later. */
function checkChmod(value: string): string | undefined {
  if (value.includes('$')) return undefined;
  const nonOctal = `invalid chmod parameter: '${value}'. it should be octal string and between 0 and 07777`;
  // A value starting with a digit is read as octal (BuildKit: ParseUint, then mode.Parse's ParseInt).
  if (/^[0-9]/.test(value)) return /^[0-7]+$/.test(value) && parseInt(value, 8) <= 0o7777 ? undefined : nonOctal;
  const clause = '[ugoa]*(?:[-+=](?:[rwxXst]*|[ugo]))+';
  if (new RegExp(`^${clause}(?:,${clause})*$`).test(value)) return undefined;
  return `invalid chmod parameter: '${value}': invalid syntax`;
}

function convertCopy(ri: RawInstruction, kw: 'COPY' | 'ADD', args: string[], ctx: Context): CopyInstruction | undefined {
  if (args.length < 2) {
    ctx.report('missing-argument', `${kw} requires at least two arguments, but only one was provided. Destination could not be determined`, ri.keywordRange);
    // Still check the flags, so every error shows at once.
    ctx.flags(ri, INSTRUCTION_FLAGS[kw]!);
    return undefined;
  }
  const flags = ctx.flags(ri, INSTRUCTION_FLAGS[kw]!);
  let ok = flags.diagnostics.length === 0;
  const dest = args[args.length - 1]!;
  if (heredocWordName(dest) !== undefined) {
    ctx.report('heredoc-destination', `${kw} cannot accept a heredoc as a destination`, ctx.find(ri, dest, ri.restRange));
    ok = false;
  }
  const byName = new Map<string, Heredoc>();
  for (const h of ri.heredocs) byName.set(h.name, h);
  const sources: string[] = [];
  const heredocs: Heredoc[] = [];
  for (const src of args.slice(0, -1)) {
    const name = heredocWordName(src);
    if (name === undefined) sources.push(src);
    else {
      const h = byName.get(name);
      if (h) heredocs.push(h);
      else sources.push(src);
    }
  }
  const chmod = flags.values.get('chmod');
  if (chmod) {
    const err = checkChmod(chmod.value);
    if (err) {
      ctx.report('invalid-flag-value', err, chmod.range);
      ok = false;
    }
  }
  if (!ok) return undefined;
  const str = (n: string) => flags.values.get(n)?.value;
  const bool = (n: string) => str(n) === 'true';
  const from = str('from');
  const chown = str('chown');
  const checksum = str('checksum');
  return {
    kind: kw,
    keyword: ri.keyword,
    range: ri.range,
    sources,
    dest,
    ...(from !== undefined && from !== '' ? { from } : {}),
    ...(chown !== undefined && chown !== '' ? { chown } : {}),
    ...(chmod && chmod.value !== '' ? { chmod: chmod.value } : {}),
    link: bool('link'),
    parents: bool('parents'),
    exclude: (flags.lists.get('exclude') ?? []).map((f) => f.value),
    ...(checksum !== undefined && checksum !== '' ? { checksum } : {}),
    ...(flags.values.has('keep-git-dir') ? { keepGitDir: bool('keep-git-dir') } : {}),
    ...(flags.values.has('unpack') ? { unpack: bool('unpack') } : {}),
    heredocs,
    json: ri.json,
  };
}

function convertHealthcheck(ri: RawInstruction, args: string[], ctx: Context): Instruction | undefined {
  const base = { kind: 'HEALTHCHECK' as const, keyword: ri.keyword, range: ri.range };
  if (args.length === 0) {
    ctx.report('missing-argument', errAtLeastOne('HEALTHCHECK'), ri.keywordRange);
    return undefined;
  }
  const typ = args[0]!.toUpperCase();
  const rest = args.slice(1);
  if (typ === 'NONE') {
    // BuildKit does not check flags of HEALTHCHECK NONE.
    if (rest.length !== 0) {
      ctx.report('invalid-arguments', 'HEALTHCHECK NONE takes no arguments', ri.restRange);
      return undefined;
    }
    return { ...base, test: { type: 'NONE' } };
  }
  const flags = ctx.flags(ri, INSTRUCTION_FLAGS.HEALTHCHECK!);
  let ok = flags.diagnostics.length === 0;
  if (typ !== 'CMD') {
    ctx.report('invalid-arguments', `Unknown type ${JSON.stringify(typ)} in HEALTHCHECK (try CMD)`, ctx.find(ri, args[0]!, ri.restRange), suggestWord(typ, ['CMD', 'NONE'], false));
    return undefined;
  }
  if (rest.length === 0) {
    ctx.report('missing-argument', 'Missing command after HEALTHCHECK CMD', ri.restRange);
    return undefined;
  }
  const durations: Record<string, number> = {};
  for (const [flag, key] of [
    ['interval', 'interval'],
    ['timeout', 'timeout'],
    ['start-period', 'startPeriod'],
    ['start-interval', 'startInterval'],
  ] as const) {
    const f = flags.values.get(flag);
    if (!f || f.value === '') continue;
    const d = parseGoDuration(f.value);
    if ('error' in d) {
      ctx.report('invalid-flag-value', d.error, f.range);
      ok = false;
      continue;
    }
    if (d.ns !== 0 && d.ns < 1e6) {
      ctx.report('invalid-flag-value', `Interval ${JSON.stringify(flag)} cannot be less than ${formatGoDuration(1e6)}`, f.range);
      ok = false;
      continue;
    }
    durations[key] = d.ns;
  }
  let retries: number | undefined;
  const r = flags.values.get('retries');
  if (r && r.value !== '') {
    if (!/^[+-]?[0-9]+$/.test(r.value)) {
      ctx.report('invalid-flag-value', `strconv.ParseInt: parsing ${JSON.stringify(r.value)}: invalid syntax`, r.range);
      ok = false;
    } else {
      const n = Number(r.value);
      if (n > 2147483647 || n < -2147483648) {
        ctx.report('invalid-flag-value', `strconv.ParseInt: parsing ${JSON.stringify(r.value)}: value out of range`, r.range);
        ok = false;
      } else if (n < 0) {
        ctx.report('invalid-flag-value', `--retries cannot be negative (${n})`, r.range);
        ok = false;
      } else retries = n;
    }
  }
  if (!ok) return undefined;
  return {
    ...base,
    test: { type: 'CMD', command: commandForm(rest, ri.json) },
    ...durations,
    ...(retries !== undefined ? { retries } : {}),
  };
}

function convertOnbuild(ri: RawInstruction, args: string[], ctx: Context, comments: readonly string[]): Instruction | undefined {
  if (args.length === 0 || !ri.child) {
    ctx.report('missing-argument', errAtLeastOne('ONBUILD'), ri.keywordRange);
    return undefined;
  }
  if (!(ctx.flags(ri, {}).diagnostics.length === 0)) return undefined;
  const trigger = args[0]!.trim().toUpperCase();
  const triggerRange = ri.child.keywordRange;
  if (trigger === 'ONBUILD') {
    ctx.report('invalid-onbuild-trigger', 'Chaining ONBUILD via `ONBUILD ONBUILD` isn\'t allowed', triggerRange);
    return undefined;
  }
  if (trigger === 'MAINTAINER' || trigger === 'FROM') {
    ctx.report('invalid-onbuild-trigger', `${trigger} isn't allowed as an ONBUILD trigger`, triggerRange);
    return undefined;
  }
  let expression = ri.original.replace(/^\s*ONBUILD\s*/i, '');
  const heredocs = ri.heredocs.length > 0 ? ri.heredocs : ri.child.heredocs;
  for (const h of heredocs) expression += `\n${h.content}${h.name}`;
  // BuildKit checks a trigger only when a child image runs it; we look now and warn.
  const { severity, prefix } = ctx;
  ctx.severity = 'warning';
  ctx.prefix = 'ONBUILD trigger: ';
  const converted = convert(ri.child, ctx, comments);
  ctx.severity = severity;
  ctx.prefix = prefix;
  return { kind: 'ONBUILD', keyword: ri.keyword, range: ri.range, expression, ...(converted ? { trigger: converted } : {}) };
}

/** BuildKit's getDocComment: the first comment line that starts with `<name> `, minus that prefix. */
function docCommentFor(comments: readonly string[], name: string): string | undefined {
  if (name === '') return undefined;
  for (const line of comments) if (line.startsWith(`${name} `)) return line.slice(name.length + 1);
  return undefined;
}

/**
 * BuildKit's PrevComment: comment lines between the previous instruction and this one (`#` and
 * leading space removed, trimmed); an empty `#` line resets the list; directives are not comments.
 */
function commentsBefore(index: LineIndex | LinePositions, fromLine: number, toLine: number, skip: ReadonlySet<number>): string[] {
  let out: string[] = [];
  for (let line = fromLine; line < toLine; line++) {
    if (skip.has(line)) continue;
    const text = index.lineText(line).replace(/^\uFEFF/, '').trimStart();
    if (!text.startsWith('#')) continue;
    const c = text.slice(1).trim();
    if (c === '') out = [];
    else out.push(c);
  }
  return out;
}

/** Converts a raw Dockerfile to the typed AST: meta ARGs, stages, and every diagnostic. */
export function toAst(raw: RawDockerfile, options: ToAstOptions = {}): ToAstResult {
  const source = options.source;
  const ctx = new Context(options, source, source === undefined ? undefined : positionsFor(raw, source));
  const directiveLines = new Set<number>();
  for (const d of raw.directives) for (let l = d.range.start.line; l <= d.range.end.line; l++) directiveLines.add(l);

  const metaArgs: ArgInstruction[] = [];
  const stages: { from: FromInstruction; name?: string; docComment?: string; instructions: Instruction[] }[] = [];
  let prevEnd = 0;
  // A FROM that does not convert still opens a (dropped) stage: what follows belongs to it, not to
  // the stage before, and is not "before the first FROM".
  let current: { instructions: Instruction[] } | undefined;
  for (const ri of raw.instructions) {
    const comments = ctx.index ? commentsBefore(ctx.index, prevEnd + 1, ri.startLine, directiveLines) : [];
    prevEnd = ri.endLine;
    const ins = convert(ri, ctx, comments);
    if (ins === undefined) {
      if (ri.keyword.toUpperCase() === 'FROM') current = { instructions: [] };
      continue;
    }
    if (ins.kind === 'FROM') {
      const docComment = ins.stageName ? docCommentFor(comments, ins.stageName) : undefined;
      const stage = { from: ins, ...(ins.stageName ? { name: ins.stageName.toLowerCase() } : {}), ...(docComment ? { docComment } : {}), instructions: [] };
      stages.push(stage);
      current = stage;
      continue;
    }
    if (!current) {
      if (ins.kind === 'ARG') metaArgs.push(ins);
      else ctx.report('instruction-before-from', 'no build stage in current context', ri.keywordRange);
      continue;
    }
    current.instructions.push(ins);
  }

  const ast: Dockerfile = {
    ...(options.file !== undefined ? { file: options.file } : {}),
    directives: raw.directives,
    escapeChar: raw.escapeChar,
    metaArgs,
    stages: stages.map((s, index): Stage => {
      const last = s.instructions[s.instructions.length - 1];
      return {
        index,
        ...(s.name !== undefined ? { name: s.name, nameAsWritten: s.from.stageName! } : {}),
        from: s.from,
        ...(s.docComment !== undefined ? { docComment: s.docComment } : {}),
        instructions: s.instructions,
        range: { start: s.from.range.start, end: (last ?? s.from).range.end },
      };
    }),
  };
  return { ast, diagnostics: ctx.diagnostics };
}
