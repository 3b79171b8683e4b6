import type { Writable } from 'node:stream';
import type { ProgressEvent } from '../builder/options.js';

export interface ProgressRenderer {
  readonly onEvent: (event: ProgressEvent) => void;
  readonly done: () => void;
}

/**
 * Renders build progress the way `docker build --progress=plain` does (`#N [stage 1/2] RUN …`,
 * `#N CACHED`, `#N DONE 0.3s`, output lines prefixed by `#N`), or as JSON lines, or not at all.
 */
export function createProgressRenderer(mode: 'auto' | 'plain' | 'tty' | 'json' | 'quiet' | 'rawjson', out: Writable): ProgressRenderer {
  if (mode === 'quiet') return { onEvent: () => {}, done: () => {} };
  if (mode === 'json' || mode === 'rawjson') {
    return { onEvent: (e) => out.write(`${JSON.stringify(e)}\n`), done: () => {} };
  }
  const numbers = new Map<string, number>();
  const started = new Map<string, number>();
  const partial = new Map<string, string>();
  let next = 1;
  const num = (id: string) => {
    let n = numbers.get(id);
    if (n === undefined) numbers.set(id, (n = next++));
    return n;
  };
  const flush = (id: string) => {
    const rest = partial.get(id);
    if (rest) out.write(`#${num(id)} ${rest}\n`);
    partial.delete(id);
  };
  return {
    onEvent(e) {
      switch (e.type) {
        case 'log':
          out.write(`${e.level === 'warning' ? 'WARNING: ' : ''}${e.message}\n`);
          return;
        case 'output': {
          const n = num(e.id);
          const text = (partial.get(e.id) ?? '') + e.data;
          const lines = text.split('\n');
          partial.set(e.id, lines.pop() ?? '');
          const secs = ((Date.now() - (started.get(e.id) ?? Date.now())) / 1000).toFixed(3);
          for (const line of lines) out.write(`#${n} ${secs} ${line}\n`);
          return;
        }
        case 'step': {
          const n = num(e.id);
          if (e.status === 'started') {
            started.set(e.id, Date.now());
            out.write(`\n#${n} ${e.name}\n${e.reason ? `#${n} cache miss: ${e.reason}\n` : ''}`);
          } else if (e.status === 'cached') {
            out.write(`\n#${n} ${e.name}\n#${n} CACHED${e.reason ? ` (${e.reason})` : ''}\n`);
          } else if (e.status === 'done') {
            flush(e.id);
            out.write(`#${n} DONE ${((e.durationMs ?? 0) / 1000).toFixed(1)}s\n`);
          } else {
            flush(e.id);
            out.write(`#${n} ERROR: ${e.error ?? 'failed'}\n`);
          }
        }
      }
    },
    done() {
      for (const id of partial.keys()) flush(id);
    },
  };
}
