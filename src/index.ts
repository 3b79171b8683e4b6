/**
 * tsbuild: a daemonless OCI image builder and Dockerfile compiler.
 *
 * The everyday entry points are here; each part has its own entry with everything it offers:
 * `tsbuild/parser`, `tsbuild/builder`, `tsbuild/oci`, `tsbuild/runtime`.
 */
export { build, BuildError, listTargets, planBuild } from './builder/index.js';
export type { BuildOptions, BuildResult, LayerCompression, OutputSpec, ProgressEvent, StepResult, BuildTarget } from './builder/index.js';
export { parseDockerfile, formatDiagnostic } from './parser/index.js';
export type { Diagnostic, ParseResult, Dockerfile } from './parser/index.js';
export { lint } from './parser/lint.js';
export { Store, OciLayout, parseReference } from './oci/index.js';
export type { Digest, Descriptor, ImageConfig, ImageManifest, ImageIndex, Platform } from './oci/index.js';
export { createRuntime } from './runtime/index.js';
export type { RunSpec, RunResult, ExtraHost } from './runtime/index.js';
export { TsbuildError } from './errors.js';
