import type { Range } from '../../parser/diagnostics.js';
import type { ContainerConfig, History, ImageConfig } from '../../oci/types.js';

/**
 * The build graph: what `planBuild` makes of a Dockerfile AST and the build options, and what the
 * builder executes. Readonly, JSON-able data (except nothing: no functions, no classes).
 *
 * Op ids are positional and stable for one plan: `s<stage>.<n>` for the n-th op of a stage
 * (0-based), `img<n>` for an external image source. They are NOT cache keys: `src/cache` derives
 * keys from `semanticOp(op)` (the op without `id` and `meta`) plus its inputs' keys.
 */

export type OpId = string;

/** Non-semantic data about an op: for progress, messages and the image history. Cache keys drop it. */
export interface OpMeta {
  /** Stage index the op belongs to (-1 for external image sources). */
  readonly stage: number;
  /** The stage's display name as BuildKit prints it: its `AS` name as written, else `stage-<index>`. */
  readonly stageName: string;
  /** 1-based step number among the stage's steps that BuildKit counts (RUN, COPY, ADD, WORKDIR, FROM image), 0 for others. */
  readonly step: number;
  /** Total such steps of the stage (for `[name step/total]`). */
  readonly steps: number;
  /** Progress name as BuildKit prints it: the instruction text, expanded, keyword upper-cased, e.g. `COPY foo foo`. */
  readonly name: string;
  /**
   * For counted steps: BuildKit's full vertex name, `[<stage> <step>/<steps>] <name>` (step
   * right-aligned to the width of `steps`, `ONBUILD ` before triggers, no stage name when the
   * Dockerfile dispatches a single state), e.g. `[base 1/2] WORKDIR /out`.
   */
  readonly progressName?: string;
  /** The instruction's source range (for ONBUILD triggers: the stage's FROM range). */
  readonly range: Range;
  /** The op comes from an ONBUILD trigger of the stage's base. */
  readonly onbuild?: boolean;
  /** The image history entry this op writes, if any (`created_by` exactly as BuildKit writes it). */
  readonly history?: History;
}

/** Where an op's filesystem input comes from. */
export interface OpInputs {
  /** The op whose output this op starts from; absent = scratch (empty filesystem). */
  readonly parent?: OpId;
  /** Other ops this op reads from (COPY --from, RUN --mount from=). */
  readonly sources?: readonly OpId[];
}

interface OpBase {
  readonly id: OpId;
  readonly inputs: OpInputs;
  readonly meta: OpMeta;
}

/** Pull (or find in the store) an image; its filesystem is the output. */
export interface ImageSourceOp extends OpBase {
  readonly type: 'tsbuild.source.image.v1';
  /** The reference as written after ARG expansion (not normalized: `alpine`, `busybox:1.36`). */
  readonly ref: string;
  /** Platform the image is resolved for, `os/arch[/variant]`. */
  readonly platform: string;
}

/** A named build context (`--build-context name=…`) used as a stage base or `--from`. */
export interface ContextSourceOp extends OpBase {
  readonly type: 'tsbuild.source.context.v1';
  readonly name: string;
}

/** Where a COPY/ADD or a bind/cache mount reads from. */
export type FileSource =
  /** The main build context. */
  | { readonly kind: 'context' }
  /** A stage's result; `op` is that stage's `result`. */
  | { readonly kind: 'stage'; readonly stage: number; readonly op: OpId }
  /** An external image or named context (op is an ImageSourceOp/ContextSourceOp in `graph.sources`). */
  | { readonly kind: 'image'; readonly ref: string; readonly op: OpId }
  | { readonly kind: 'named-context'; readonly name: string; readonly op: OpId };

export type ExecMount =
  | {
      readonly type: 'bind';
      readonly target: string;
      readonly source: string;
      readonly from: FileSource;
      readonly readonly: boolean;
    }
  | {
      readonly type: 'cache';
      readonly target: string;
      /** Cache id; BuildKit defaults it to the target path. */
      readonly id: string;
      readonly sharing: 'shared' | 'private' | 'locked';
      readonly readonly: boolean;
      /** Seed the cache from this source/path when it is created. */
      readonly from?: FileSource;
      readonly source?: string;
      readonly mode: number;
      readonly uid: number;
      readonly gid: number;
    }
  | { readonly type: 'tmpfs'; readonly target: string; /** Bytes; 0 = unlimited. */ readonly size: number }
  | {
      readonly type: 'secret';
      readonly id: string;
      /** File path in the container (`/run/secrets/<id>` by default unless `env` is given). */
      readonly target?: string;
      readonly env?: string;
      readonly required: boolean;
      readonly mode: number;
      readonly uid: number;
      readonly gid: number;
    }
  | {
      readonly type: 'ssh';
      readonly id: string;
      readonly target: string;
      readonly required: boolean;
      readonly mode: number;
      readonly uid: number;
      readonly gid: number;
    }
  /** A read-only directory of inline files (RUN heredoc with a shebang: `/dev/pipes/<name>`). */
  | { readonly type: 'inline'; readonly target: string; readonly files: readonly InlineFile[] };

export interface InlineFile {
  /** Relative file name. */
  readonly name: string;
  readonly content: string;
  readonly mode: number;
}

/** RUN. */
export interface ExecOp extends OpBase {
  readonly type: 'tsbuild.exec.v1';
  /** argv, shell already prepended for the shell form (the command itself is not expanded). */
  readonly args: readonly string[];
  /** `KEY=value` in order: the image env, then ARG values of the stage (ARGs override nothing in the image config). */
  readonly env: readonly string[];
  /** Working directory (absolute). */
  readonly cwd: string;
  /** `USER` as set (name or uid[:gid]); empty = root. */
  readonly user: string;
  readonly mounts: readonly ExecMount[];
  readonly network: 'default' | 'none' | 'host';
  readonly security: 'sandbox' | 'insecure';
  /** Proxy variables from build args (HTTP_PROXY…): given to the process, never in history/config. */
  readonly proxyEnv: Readonly<Record<string, string>>;
}

/** COPY and ADD. */
export interface CopyOp extends OpBase {
  readonly type: 'tsbuild.file.copy.v1';
  readonly instruction: 'COPY' | 'ADD';
  readonly from: FileSource;
  /** Source paths/patterns/URLs after expansion, as written otherwise. */
  readonly sources: readonly string[];
  /** Heredoc sources: files created with mode 0644 (or chmod) named after the heredoc word. */
  readonly inline: readonly InlineFile[];
  /** Destination resolved against the WORKDIR; a trailing `/` is kept (it means "directory"). */
  readonly dest: string;
  /** `--chown` after expansion (resolved against the image's /etc/passwd by the builder). */
  readonly chown?: string;
  /** `--chmod`: octal mode, or a symbolic mode string. */
  readonly chmod?: { readonly mode: number } | { readonly symbolic: string };
  readonly link: boolean;
  readonly parents: boolean;
  readonly exclude: readonly string[];
  /** ADD only. */
  readonly checksum?: string;
  readonly keepGitDir?: boolean;
  /** ADD: unpack local archives (default true for ADD). */
  readonly unpack?: boolean;
  /** The stage's USER at this point (BuildKit resolves `--chown` names in the destination image). */
  readonly user: string;
}

/** WORKDIR other than `/`: create the directory (mode 0755, parents), owned by the current USER. */
export interface MkdirOp extends OpBase {
  readonly type: 'tsbuild.file.mkdir.v1';
  readonly path: string;
  readonly mode: number;
  readonly user: string;
}

/** An instruction that only changes the image config (ENV, LABEL, ARG, CMD, WORKDIR /, …). */
export interface ConfigOp extends OpBase {
  readonly type: 'tsbuild.config.v1';
  readonly instruction: string;
  /** The config fields this instruction set (values after it ran). `null` clears a field. */
  readonly changes: Readonly<Record<string, unknown>>;
}

export type SourceOp = ImageSourceOp | ContextSourceOp;
export type StageOp = ExecOp | CopyOp | MkdirOp | ConfigOp;
export type Op = SourceOp | StageOp;
export type OpType = Op['type'];

/** What a stage starts from. */
export type StageBase =
  | { readonly kind: 'scratch' }
  | { readonly kind: 'image'; readonly ref: string; readonly op: OpId }
  | { readonly kind: 'named-context'; readonly name: string; readonly op: OpId }
  | { readonly kind: 'stage'; readonly stage: number };

export type EdgeKind = 'from' | 'copy' | 'mount';

/** A dependency of one stage on another. */
export interface StageEdge {
  readonly kind: EdgeKind;
  /** The stage depended on. */
  readonly stage: number;
  /** The instruction (or FROM) that makes the dependency. */
  readonly range: Range;
  readonly onbuild?: boolean;
}

export interface StagePlan {
  readonly index: number;
  /** `AS` name lower-cased (lookups are case-insensitive). */
  readonly name?: string;
  /** BuildKit's stage name: the `AS` name as written, else `stage-<index>`. */
  readonly displayName: string;
  /** The FROM image word after global ARG expansion (`scratch`, an image, or a stage name). */
  readonly baseName: string;
  readonly base: StageBase;
  /** The stage's platform: FROM --platform, else the target platform. */
  readonly platform: string;
  /** Stages this one depends on (FROM <stage>, COPY --from, RUN --mount from=), in instruction order. */
  readonly dependsOn: readonly StageEdge[];
  /** The target reaches this stage; unreachable stages are not dispatched (no ops, no config). */
  readonly reachable: boolean;
  /**
   * For image-based stages (or stages built on one): whether the base image's config was given
   * (`PlanOptions.baseImage`). When false the stage was planned against an empty config and must
   * be planned again with it before execution (ENV/WORKDIR/USER/SHELL of the base matter).
   */
  readonly baseConfigKnown: boolean;
  /** This stage's ops in order (ONBUILD triggers of the base first). */
  readonly ops: readonly StageOp[];
  /** The op whose output is the stage's filesystem; absent when the stage is empty scratch. */
  readonly result?: OpId;
  /** The final container config: base config (or scratch defaults) plus this stage's changes. */
  readonly config: ContainerConfig;
  /** MAINTAINER. */
  readonly author?: string;
  /**
   * History written by this Dockerfile for this stage, parent stages' entries first (an
   * image base's own history is not included: the builder prepends it).
   */
  readonly history: readonly History[];
  /** The FROM instruction's range. */
  readonly range: Range;
}

export interface BuildGraph {
  /** Format version of this structure. */
  readonly version: 1;
  /** Index of the target stage (the last stage unless `--target`). */
  readonly target: number;
  /** Every stage of the Dockerfile, in order. */
  readonly stages: readonly StagePlan[];
  /** External sources (images and named contexts), deduplicated, referenced by op id. */
  readonly sources: readonly SourceOp[];
  /**
   * Reachable stages in dependency levels: every stage of a level depends only on stages of
   * earlier levels, so the stages of one level can be built in parallel.
   */
  readonly levels: readonly (readonly number[])[];
  readonly platform: { readonly target: string; readonly build: string };
  /** Global scope (meta ARGs and predefined platform args) after build args, for reference. */
  readonly globalArgs: Readonly<Record<string, string>>;
}

/** A base image's config as the builder found it (an OCI image config). */
export type BaseImageConfig = Pick<ImageConfig, 'config' | 'os' | 'architecture' | 'variant' | 'author' | 'history'>;

export interface PlanOptions {
  /** Stage to build (name, case-insensitive); default the last stage. */
  readonly target?: string;
  /** `--build-arg` values; they override ARG defaults (also predefined platform args). */
  readonly buildArgs?: Readonly<Record<string, string>>;
  /** Target platform `os/arch[/variant]`; default the build platform. */
  readonly platform?: string;
  /** Build (host) platform; default `linux/amd64` on x64, `linux/arm64` on arm64 (from `process.arch`). */
  readonly buildPlatform?: string;
  /**
   * The config of an image base, when the builder has resolved it (`ref` as in
   * `ImageSourceOp.ref`). Missing or returning undefined: planned against an empty config
   * (`baseConfigKnown: false`). Must be synchronous and pure.
   */
  readonly baseImage?: (ref: string, platform: string) => BaseImageConfig | undefined;
  /**
   * Names given with `--build-context name=…`: a stage of that name is replaced by the context
   * (its instructions are not run), and a FROM, `--from` or mount `from=` naming it (or the same
   * image name: `alpine`, `alpine:latest`) reads it, before stages and images, as in BuildKit.
   */
  readonly namedContexts?: readonly string[];
  /**
   * The image config of a named context that is an image (`docker-image://`, `oci-layout://`),
   * when the builder has resolved it; undefined for a directory (an empty config). Must be
   * synchronous and pure.
   */
  readonly namedContextImage?: (name: string, platform: string) => BaseImageConfig | undefined;
  /** The Dockerfile's text, used for exact step names (BuildKit prints the source text). Optional. */
  readonly source?: string;
}

/** The op without its non-semantic fields (`id`, `meta`): what cache keys digest (with inputs mapped to keys). */
export function semanticOp<T extends Op>(op: T): Omit<T, 'id' | 'meta'> {
  const { id: _id, meta: _meta, ...rest } = op;
  return rest;
}
