import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { planBuild, type BuildGraph, type EdgeKind } from '../../builder/plan/index.js';
import { formatDiagnostic, parseDockerfile } from '../../parser/index.js';
import type { Diagnostic } from '../../parser/diagnostics.js';
import type { CliContext, Command } from '../context.js';
import { UsageError } from '../context.js';

const USAGE = `Usage: tsbuild graph [OPTIONS] [PATH]

Print the stage graph of a Dockerfile: stages (index, name, base), and the edges between them
labelled by kind (from = FROM <stage>, copy = COPY --from, mount = RUN --mount from=), pruned
to the stages the target needs.

Options:
  -f, --file string          Name of the Dockerfile (default "PATH/Dockerfile"; "-" reads stdin)
      --target string        Stage to build (default: the last stage)
      --build-arg list       Set a build-time variable (KEY=VALUE, or KEY to take it from the environment)
      --platform string      Target platform (os/arch[/variant])
      --format string        dot | mermaid | json (default "dot")
      --all                  dot/mermaid: also show stages the target does not need, greyed/dashed
  -h, --help                 Print usage
`;

export const run: Command = async (argv, ctx) => {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      file: { type: 'string', short: 'f' },
      target: { type: 'string' },
      'build-arg': { type: 'string', multiple: true },
      platform: { type: 'string' },
      format: { type: 'string', default: 'dot' },
      all: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    ctx.stdout.write(USAGE);
    return 0;
  }
  const format = values.format;
  if (format !== 'dot' && format !== 'mermaid' && format !== 'json') throw new UsageError(`invalid --format ${JSON.stringify(format)}: expected dot, mermaid or json`);
  if (positionals.length > 1) throw new UsageError(`expected at most one PATH, got ${positionals.length}\n\n${USAGE}`);
  const contextDir = resolve(ctx.cwd, positionals[0] ?? '.');
  const fileArg = values.file;
  const displayName = fileArg === undefined ? 'Dockerfile' : fileArg === '-' ? '<stdin>' : fileArg;
  const path = fileArg === undefined ? resolve(contextDir, 'Dockerfile') : fileArg === '-' ? undefined : resolve(ctx.cwd, fileArg);

  const buildArgs: Record<string, string> = {};
  for (const a of values['build-arg'] ?? []) {
    const eq = a.indexOf('=');
    if (eq === 0) throw new UsageError(`invalid --build-arg ${JSON.stringify(a)}: expected KEY=VALUE`);
    if (eq < 0) {
      const v = ctx.env[a];
      if (v !== undefined) buildArgs[a] = v;
    } else buildArgs[a.slice(0, eq)] = a.slice(eq + 1);
  }

  let text: string;
  try {
    text = path === undefined ? await readStream(ctx) : await readFile(path, 'utf8');
  } catch (err) {
    ctx.stderr.write(`tsbuild graph: cannot read Dockerfile ${path ?? '<stdin>'}: ${(err as Error).message}\n`);
    return 1;
  }

  const parsed = parseDockerfile(text, { file: displayName });
  const report = (ds: readonly Diagnostic[]) => {
    for (const d of ds) ctx.stderr.write(`${formatDiagnostic(d, text, { file: displayName, color: ctx.stderr.isTTY === true })}\n`);
  };
  report(parsed.diagnostics);
  if (parsed.diagnostics.some((d) => d.severity === 'error')) return 1;

  const { graph, diagnostics } = planBuild(parsed.ast, {
    ...(values.target !== undefined ? { target: values.target } : {}),
    buildArgs,
    ...(values.platform !== undefined ? { platform: values.platform } : {}),
    source: text,
  });
  report(diagnostics);
  if (diagnostics.some((d) => d.severity === 'error')) return 1;

  const out = format === 'json' ? `${JSON.stringify(graph, null, 2)}\n` : format === 'dot' ? toDot(graph, values.all === true) : toMermaid(graph, values.all === true);
  ctx.stdout.write(out);
  return 0;
};

async function readStream(ctx: CliContext): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of ctx.stdin) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

interface Node {
  readonly id: string;
  readonly label: string[];
  readonly kind: 'stage' | 'target' | 'pruned' | 'image';
}
interface Edge {
  readonly from: string;
  readonly to: string;
  readonly kind: EdgeKind;
  readonly pruned: boolean;
}

/** The drawable graph: stage nodes (and external images read by COPY --from / mounts), edges from the stage read to the stage reading. */
export function graphView(graph: BuildGraph, all: boolean): { nodes: Node[]; edges: Edge[] } {
  const nodes: Node[] = [];
  const edges: Edge[] = [];
  const shown = new Set<number>();
  for (const s of graph.stages) {
    if (!s.reachable && !all) continue;
    shown.add(s.index);
    const base = s.base.kind === 'stage' ? `FROM ${graph.stages[s.base.stage]?.displayName ?? s.baseName}` : `FROM ${s.baseName}`;
    const title = s.name !== undefined ? `${s.index}: ${s.name}` : `${s.index}`;
    const tags = [s.index === graph.target ? ' (target)' : '', !s.reachable ? ' (not needed)' : ''].join('');
    nodes.push({ id: `s${s.index}`, label: [title + tags, base, s.platform], kind: s.index === graph.target ? 'target' : s.reachable ? 'stage' : 'pruned' });
  }
  const images = new Map<string, string>();
  for (const s of graph.stages) {
    if (!shown.has(s.index)) continue;
    for (const e of s.dependsOn) {
      if (!shown.has(e.stage)) continue;
      edges.push({ from: `s${e.stage}`, to: `s${s.index}`, kind: e.kind, pruned: !s.reachable });
    }
    for (const op of s.ops) {
      const froms =
        op.type === 'tsbuild.file.copy.v1'
          ? [{ src: op.from, kind: 'copy' as const }]
          : op.type === 'tsbuild.exec.v1'
            ? op.mounts.flatMap((m) => ('from' in m && m.from ? [{ src: m.from, kind: 'mount' as const }] : []))
            : [];
      for (const { src, kind } of froms) {
        if (src.kind !== 'image' && src.kind !== 'named-context') continue;
        const name = src.kind === 'image' ? src.ref : `context:${src.name}`;
        let id = images.get(name);
        if (id === undefined) {
          id = `x${images.size}`;
          images.set(name, id);
          nodes.push({ id, label: [name], kind: 'image' });
        }
        edges.push({ from: id, to: `s${s.index}`, kind, pruned: false });
      }
    }
  }
  return { nodes, edges: dedupe(edges) };
}

function dedupe(edges: Edge[]): Edge[] {
  const seen = new Set<string>();
  return edges.filter((e) => {
    const k = `${e.from} ${e.to} ${e.kind}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

const dotString = (s: string) => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

/** Graphviz DOT: boxes for stages (the target bold), ellipses for external images; pruned stages dashed grey with --all. */
export function toDot(graph: BuildGraph, all = false): string {
  const { nodes, edges } = graphView(graph, all);
  const lines = ['digraph build {', '  rankdir=LR;', '  node [shape=box, fontname="monospace"];'];
  for (const n of nodes) {
    const label = dotString(n.label.join('\n')).replace(/\n/g, '\\n');
    const attrs =
      n.kind === 'target' ? ', style=bold' : n.kind === 'pruned' ? ', style=dashed, color=grey, fontcolor=grey' : n.kind === 'image' ? ', shape=ellipse' : '';
    lines.push(`  ${n.id} [label=${label}${attrs}];`);
  }
  for (const e of edges) lines.push(`  ${e.from} -> ${e.to} [label=${dotString(e.kind)}${e.pruned ? ', style=dashed, color=grey' : ''}];`);
  lines.push('}');
  return `${lines.join('\n')}\n`;
}

const mermaidText = (s: string) => s.replace(/"/g, '#quot;').replace(/</g, '#lt;').replace(/>/g, '#gt;');

/** Mermaid flowchart: the same nodes and labelled edges; pruned stages get the `pruned` class with --all. */
export function toMermaid(graph: BuildGraph, all = false): string {
  const { nodes, edges } = graphView(graph, all);
  const lines = ['flowchart LR'];
  for (const n of nodes) {
    const label = n.label.map(mermaidText).join('<br/>');
    lines.push(n.kind === 'image' ? `  ${n.id}(["${label}"])` : `  ${n.id}["${label}"]`);
  }
  for (const e of edges) lines.push(`  ${e.from} ${e.pruned ? '-.->' : '-->'}|${e.kind}| ${e.to}`);
  const pruned = nodes.filter((n) => n.kind === 'pruned').map((n) => n.id);
  const target = nodes.filter((n) => n.kind === 'target').map((n) => n.id);
  if (target.length > 0) lines.push('  classDef target stroke-width:3px;', `  class ${target.join(',')} target;`);
  if (pruned.length > 0) lines.push('  classDef pruned stroke-dasharray:4 4,color:#888;', `  class ${pruned.join(',')} pruned;`);
  return `${lines.join('\n')}\n`;
}
