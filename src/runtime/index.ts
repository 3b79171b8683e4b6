export { Runtime, createRuntime, type RuntimeOptions, type RunResult } from './sandbox.js';
export { shellCommand, parseAddHost, checkExtraHost } from './spec.js';
export type { RunSpec, RootfsSpec, MountSpec, CacheMount, BindMount, TmpfsMount, SecretMount, SshMount, NetworkMode, ExtraHost } from './spec.js';
export { diffUpperDir, diffTrees, type DiffOptions } from './diff.js';
export { copyLayers, type TreeSnapshot } from './copy.js';
export { resolveUser, type ResolvedUser } from './user.js';
export { DEFAULT_HELPER_PATH, ensureHelper } from './helper.js';
export type { MtimePolicy } from './tar.js';
export {
  RuntimeUnavailableError,
  SandboxSetupError,
  SandboxAbortedError,
  SandboxTimeoutError,
  UserResolutionError,
  MountError,
} from './errors.js';
