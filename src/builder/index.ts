/** tsbuild/builder: the build, its plan and the pieces it is made of, for tools that want them. */
export { build, BuildError } from './build.js';
export type { CachedLayer } from './build.js';
export type { BuildOptions, BuildResult, LayerCompression, OutputSpec, ProgressEvent, SecretSpec, SshSpec, StepResult } from './options.js';
export { listTargets, formatTargets } from './targets.js';
export type { BuildTarget } from './targets.js';
export { planBuild } from './plan/index.js';
export type { PlanResult } from './plan/index.js';
export type * from './plan/types.js';
export { openContext, parseDockerignore, PatternMatcher, ContextError, PathEscapeError } from './context.js';
export type { BuildContext, OpenContextOptions } from './context.js';
export { applyCopy, CopyError } from './copy.js';
export type { CopySpec, CopySource, CopyEnv, CopyResult } from './copy.js';
export { writeLayer, LayerError } from './layer.js';
/** Unpacked layers (overlayfs lower dirs) under a root, by diffID: for tools that prepare a root. */
export { SnapshotStore } from './snapshots.js';
export type { WriteLayerOptions, LayerResult } from './layer.js';
export { CacheStore, CacheStoreError } from '../cache/store.js';
export type { CacheRecord, PruneOptions, PruneResult, DuResult } from '../cache/store.js';
export { cacheKey, explain, describeChanges, KEY_VERSION } from '../cache/keys.js';
export { ContextHasher } from '../cache/context-hash.js';
