import type { Dockerfile } from '../../parser/ast.js';
import { parseDockerfile } from '../../parser/index.js';
import { planWith, type PlanResult } from './plan.js';
import type { PlanOptions } from './types.js';

export type * from './types.js';
export { semanticOp } from './types.js';
export { normalizeWorkdir, normalizePath, resolveDest } from './workdir.js';
export { parsePlatform, formatPlatform, defaultBuildPlatform } from './platform.js';
export type { PlatformSpec } from './platform.js';
export { goDuration, goQuote, runCommandString } from './history.js';

export { planWith, type PlanResult, type TriggerParser } from './plan.js';

/**
 * Plans a build: stages, ARG/ENV expansion, dependency edges, cycle and target checks, pruning
 * to the target, and one op per step (BuildKit's dockerfile2llb, split by concern). Never throws:
 * errors come back as diagnostics (`severity: 'error'`) with the graph as far as it got.
 */
export function planBuild(ast: Dockerfile, options: PlanOptions = {}): PlanResult {
  return planWith(parseDockerfile, ast, options);
}
