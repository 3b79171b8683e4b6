import type { Range } from '../../parser/diagnostics.js';
import type { HealthConfig, History } from '../../oci/types.js';
import type { DeclaredArg } from './args.js';
import type { EnvList } from './env.js';
import type { StageInfo, ResolveContext } from './stages.js';
import type { OpId, StageOp } from './types.js';

/** The image config while a stage is dispatched (plain mutable data, local to one stage's dispatch). */
export interface WorkingConfig {
  User?: string;
  ExposedPorts?: Record<string, Record<string, never>>;
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Volumes?: Record<string, Record<string, never>>;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
  ArgsEscaped?: boolean;
  Healthcheck?: HealthConfig;
  OnBuild?: string[] | null;
  Shell?: string[];
}

/** One stage's dispatch state (BuildKit's dispatchState, minus what lives in the context). */
export interface StageState {
  readonly index: number;
  readonly displayName: string;
  readonly fromRange: Range;
  readonly os: string;
  readonly platform: string;
  config: WorkingConfig;
  /** The image config's Env. */
  imageEnv: EnvList;
  /** The build-time environment: image Env plus ARG values (what expansion and RUN see). */
  env: EnvList;
  buildArgs: DeclaredArg[];
  history: History[];
  author?: string;
  /** The op whose output is the current filesystem; undefined = scratch. */
  parent?: OpId;
  ops: StageOp[];
  /** CMD was set in this stage (ENTRYPOINT then keeps it). */
  cmdSet: boolean;
  step: number;
  readonly steps: number;
  /** Dispatching an ONBUILD trigger of the base. */
  onbuild: boolean;
}

/** What a dispatched stage leaves for stages built on it or copying from it. */
export interface DispatchedStage {
  readonly result?: OpId;
  readonly state: StageState;
  readonly baseConfigKnown: boolean;
}

export interface DispatchContext extends ResolveContext {
  readonly stages: readonly StageInfo[];
  readonly buildArgs: Readonly<Record<string, string>>;
  readonly proxyEnv: Readonly<Record<string, string>>;
  readonly done: Map<number, DispatchedStage>;
  readonly usedArgs: Set<string>;
  /**
   * BuildKit names steps without a stage when it dispatches exactly one state: one stage and no
   * COPY --from image / RUN --mount whose source is not a stage (each of those adds a state).
   */
  readonly singleState: boolean;
  /** Registers (once) an external source for a platform and returns its op id. */
  sourceOp(src: { kind: 'image'; ref: string } | { kind: 'named-context'; name: string }, platform: string): OpId;
  /** BuildKit's step name: the instruction's source text expanded (RUN: quotes kept, unset names kept), keyword upper-cased; `fallback` without source text. */
  stepName(range: Range, state: StageState, raw: boolean, fallback: string): string;
}
