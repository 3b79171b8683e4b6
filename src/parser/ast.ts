import type { Diagnostic, Range } from './diagnostics.js';
import type { Directive, RawDockerfile, RawHeredoc } from './raw-types.js';

/**
 * The typed Dockerfile AST: readonly, JSON-able data. Values are NOT variable-expanded: words keep
 * their quotes and `$VAR` references exactly as the instruction rules of BuildKit's
 * `instructions` package leave them; the planner expands them with `src/parser/shell.ts`
 * against the stage's environment.
 */

export type Heredoc = RawHeredoc;

/** RUN/CMD/ENTRYPOINT/HEALTHCHECK command: exec form (JSON array) or shell form (one string). */
export type CommandForm =
  | { readonly form: 'exec'; readonly args: readonly string[] }
  | { readonly form: 'shell'; readonly command: string };

interface Base {
  /** The keyword as written. */
  readonly keyword: string;
  readonly range: Range;
}

export interface FromInstruction extends Base {
  readonly kind: 'FROM';
  /** The image reference or stage name, unexpanded (may contain `$ARG`). */
  readonly image: string;
  readonly imageRange: Range;
  /** `AS name`, as written (stage names compare case-insensitively). */
  readonly stageName?: string;
  readonly stageNameRange?: Range;
  /** `--platform` value, unexpanded. */
  readonly platform?: string;
}

export type MountType = 'bind' | 'cache' | 'tmpfs' | 'secret' | 'ssh';

export interface Mount {
  readonly type: MountType;
  readonly target?: string;
  readonly source?: string;
  /** Stage name, index or image for bind/cache mounts. */
  readonly from?: string;
  readonly readonly?: boolean;
  /** cache/secret/ssh id. */
  readonly id?: string;
  readonly sharing?: 'shared' | 'private' | 'locked';
  /** Octal file mode for cache/secret/ssh. */
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
  readonly required?: boolean;
  /** tmpfs size in bytes. */
  readonly size?: number;
  /** secret: expose as this environment variable. */
  readonly env?: string;
  /**
   * The `--mount` value as written. When it contains `$`, the fields holding variables were not
   * checked and typed fields from them are unset: the planner re-parses it with
   * `parseMount(spec, { expand })` from src/parser/mounts.ts.
   */
  readonly spec: string;
  readonly range: Range;
}

export interface RunInstruction extends Base {
  readonly kind: 'RUN';
  readonly command: CommandForm;
  readonly mounts: readonly Mount[];
  readonly network?: 'default' | 'none' | 'host';
  readonly security?: 'sandbox' | 'insecure';
  /** `--device` values as written (CDI device requests); not interpreted by the parser. */
  readonly devices?: readonly string[];
  readonly heredocs: readonly Heredoc[];
}

export interface CmdInstruction extends Base {
  readonly kind: 'CMD';
  readonly command: CommandForm;
}

export interface EntrypointInstruction extends Base {
  readonly kind: 'ENTRYPOINT';
  readonly command: CommandForm;
}

export interface ShellInstruction extends Base {
  readonly kind: 'SHELL';
  readonly shell: readonly string[];
}

export interface CopyInstruction extends Base {
  readonly kind: 'COPY' | 'ADD';
  /** Source path words (unexpanded); heredoc sources (`<<EOF`) are not here but in `heredocs`. */
  readonly sources: readonly string[];
  readonly dest: string;
  readonly from?: string;
  readonly chown?: string;
  /** `--chmod` as written: octal (`755`) or symbolic (`u+x,g-w`). */
  readonly chmod?: string;
  readonly link: boolean;
  readonly parents: boolean;
  readonly exclude: readonly string[];
  /** ADD only. */
  readonly checksum?: string;
  readonly keepGitDir?: boolean;
  readonly unpack?: boolean;
  /**
   * Heredoc sources in order (BuildKit's SourceContents): the file name is `name`, the data is
   * `content`, with leading tabs of each line removed when `chomp`; expand variables when `expand`.
   */
  readonly heredocs: readonly Heredoc[];
  readonly json: boolean;
}

export interface KeyValue {
  readonly key: string;
  /** Unexpanded value (quotes kept); `legacy` form values are verbatim text. */
  readonly value: string;
  /** `ENV k v` (legacy, no `=`). */
  readonly legacy: boolean;
}

export interface EnvInstruction extends Base {
  readonly kind: 'ENV';
  readonly pairs: readonly KeyValue[];
}

export interface LabelInstruction extends Base {
  readonly kind: 'LABEL';
  readonly pairs: readonly KeyValue[];
}

export interface ArgDeclaration {
  readonly name: string;
  /** Unexpanded default, absent when the ARG has none. */
  readonly defaultValue?: string;
  /** BuildKit's DocComment: the preceding comment line starting with `<name> `, minus that prefix. */
  readonly docComment?: string;
}

export interface ArgInstruction extends Base {
  readonly kind: 'ARG';
  readonly args: readonly ArgDeclaration[];
}

export interface ExposeInstruction extends Base {
  readonly kind: 'EXPOSE';
  readonly ports: readonly string[];
}

export interface UserInstruction extends Base {
  readonly kind: 'USER';
  readonly user: string;
}

export interface WorkdirInstruction extends Base {
  readonly kind: 'WORKDIR';
  readonly path: string;
}

export interface VolumeInstruction extends Base {
  readonly kind: 'VOLUME';
  readonly paths: readonly string[];
}

export interface StopsignalInstruction extends Base {
  readonly kind: 'STOPSIGNAL';
  readonly signal: string;
}

export interface HealthcheckInstruction extends Base {
  readonly kind: 'HEALTHCHECK';
  /** `NONE` disables the base image's check. */
  readonly test: { readonly type: 'NONE' } | { readonly type: 'CMD'; readonly command: CommandForm };
  /** Durations in nanoseconds, as the image config stores them. */
  readonly interval?: number;
  readonly timeout?: number;
  readonly startPeriod?: number;
  readonly startInterval?: number;
  readonly retries?: number;
}

export interface OnbuildInstruction extends Base {
  readonly kind: 'ONBUILD';
  /** The trigger text as stored in the image config's OnBuild list. */
  readonly expression: string;
  /** The trigger as a typed instruction; absent when it does not convert (reported as a warning). */
  readonly trigger?: Instruction;
}

export interface MaintainerInstruction extends Base {
  readonly kind: 'MAINTAINER';
  readonly maintainer: string;
}

export type Instruction =
  | FromInstruction
  | RunInstruction
  | CmdInstruction
  | EntrypointInstruction
  | ShellInstruction
  | CopyInstruction
  | EnvInstruction
  | LabelInstruction
  | ArgInstruction
  | ExposeInstruction
  | UserInstruction
  | WorkdirInstruction
  | VolumeInstruction
  | StopsignalInstruction
  | HealthcheckInstruction
  | OnbuildInstruction
  | MaintainerInstruction;

export type InstructionKind = Instruction['kind'];

export interface Stage {
  /** 0-based position among the file's stages. */
  readonly index: number;
  /** `AS` name, lower-cased for lookup; `nameAsWritten` keeps the case. */
  readonly name?: string;
  readonly nameAsWritten?: string;
  readonly from: FromInstruction;
  /** BuildKit's DocComment: the preceding comment line starting with `<name> `, minus that prefix. */
  readonly docComment?: string;
  /** Instructions after FROM, up to the next FROM. */
  readonly instructions: readonly Instruction[];
  readonly range: Range;
}

export interface Dockerfile {
  readonly file?: string;
  readonly directives: readonly Directive[];
  readonly escapeChar: '\\' | '`';
  /** ARGs before the first FROM. */
  readonly metaArgs: readonly ArgInstruction[];
  readonly stages: readonly Stage[];
}

export interface ParseResult {
  readonly ast: Dockerfile;
  /** The line-level AST (BuildKit's parser output), for dumps and tools. */
  readonly raw: RawDockerfile;
  /**
   * False when BuildKit's line-level parser would reject the file (a syntax error): then there is
   * no dump. Semantic errors (unknown instruction, bad flag, argument counts) leave it true.
   */
  readonly syntaxValid: boolean;
  /** Every error and warning in the file; parsing never throws. */
  readonly diagnostics: readonly Diagnostic[];
}
