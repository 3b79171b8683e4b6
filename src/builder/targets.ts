import type { Dockerfile } from '../parser/ast.js';
import type { Range } from '../parser/diagnostics.js';

/** A buildable stage, as BuildKit's `frontend.targets` subrequest (`buildx build --call targets`) lists it. */
export interface BuildTarget {
  /** The stage name as written; '' for an unnamed stage. */
  readonly name: string;
  /** The stage's doc comment (`# <name> description` right above its FROM). */
  readonly description: string;
  /** The FROM image or stage, unexpanded. */
  readonly base: string;
  /** `--platform` of the FROM, unexpanded. */
  readonly platform?: string;
  /** The default target: the last stage. */
  readonly default: boolean;
  /** The FROM instruction's range. */
  readonly range: Range;
}

/** The stages a Dockerfile can build, in file order (no build, no expansion). */
export function listTargets(ast: Dockerfile): BuildTarget[] {
  return ast.stages.map((st, i) => ({
    name: st.nameAsWritten ?? '',
    description: st.docComment ?? '',
    base: st.from.image,
    ...(st.from.platform !== undefined ? { platform: st.from.platform } : {}),
    default: i === ast.stages.length - 1,
    range: st.from.range,
  }));
}

/** `TARGET  DESCRIPTION` table, as buildx prints `--call targets`. */
export function formatTargets(targets: readonly BuildTarget[]): string {
  const rows = targets.filter((t) => t.name !== '').map((t) => [t.default ? `${t.name} (default)` : t.name, t.description] as const);
  const width = Math.max('TARGET'.length, ...rows.map((r) => r[0].length)) + 3;
  return ['TARGET'.padEnd(width) + 'DESCRIPTION', ...rows.map(([n, d]) => (n.padEnd(width) + d).trimEnd())].join('\n') + '\n';
}
