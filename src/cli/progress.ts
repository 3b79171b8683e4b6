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
export function createProgressRenderer(mode: 'auto' | 'plain' | 'tty' | 'json' | 'quiet' | 'rawjson', out: Writable & { isTTY?: boolean; columns?: number }): ProgressRenderer {
  if (mode === 'quiet') return { onEvent: () => {}, done: () => {} };
  if (mode === 'tty' || (mode === 'auto' && out.isTTY === true)) return createTtyRenderer(out);
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
            // as BuildKit prints a step stopped by another's failure
            out.write(e.error === 'CANCELED' ? `#${n} CANCELED\n` : `#${n} ERROR: ${e.error ?? 'failed'}\n`);
          }
        }
      }
    },
    done() {
      for (const id of partial.keys()) flush(id);
    },
  };
}

interface TtyStep {
  readonly name: string;
  readonly started: number;
  ended?: number;
  status: 'running' | 'cached' | 'done' | 'error' | 'canceled';
  reason?: string;
  /** The last lines of output, while running. */
  tail: string[];
  partial: string;
}

/**
 * BuildKit-style live view for a terminal: a `[+] Building 3.2s (4/7)` header, one line per step
 * with its time and CACHED/ERROR marks, the reason a step missed the cache, and the last lines of
 * output under each running step. Redrawn in place ten times a second; finished steps scroll up
 * and stay.
 */
function createTtyRenderer(out: Writable & { columns?: number }): ProgressRenderer {
  const start = Date.now();
  const steps = new Map<string, TtyStep>();
  const order: string[] = [];
  const logs: string[] = [];
  let drawn = 0;
  let printed = 0;
  const TAIL = 6;
  const width = () => Math.max(40, (out.columns ?? 100) - 1);
  const clip = (line: string) => (line.length > width() ? `${line.slice(0, width() - 1)}…` : line);
  const secs = (ms: number) => `${(ms / 1000).toFixed(1)}s`;
  const line = (st: TtyStep) => {
    const mark = st.status === 'cached' ? ' CACHED' : st.status === 'error' ? ' ERROR' : st.status === 'canceled' ? ' CANCELED' : '';
    const time = st.status === 'cached' ? '' : ` ${secs((st.ended ?? Date.now()) - st.started)}`;
    const body = `${st.status === 'running' ? ' =>' : ' =>'} ${st.name}${mark}`;
    const pad = Math.max(1, width() - body.length - time.length);
    return clip(body + ' '.repeat(pad) + time);
  };
  const redraw = (final = false) => {
    let text = drawn > 0 ? `\x1b[${drawn}F\x1b[J` : '';
    // Steps that finished in order scroll into the permanent part once everything before them has.
    while (printed < order.length && steps.get(order[printed]!)!.status !== 'running') {
      text += `${line(steps.get(order[printed]!)!)}\n`;
      printed++;
    }
    for (const l of logs.splice(0)) text += `${clip(l)}\n`;
    const live: string[] = [];
    if (!final) {
      const done = order.filter((id) => steps.get(id)!.status !== 'running').length;
      live.push(`[+] Building ${secs(Date.now() - start)} (${done}/${order.length})`);
      for (const id of order.slice(printed)) {
        const st = steps.get(id)!;
        live.push(line(st));
        if (st.status === 'running') {
          if (st.reason) live.push(clip(` => => cache miss: ${st.reason}`));
          for (const t of st.tail) live.push(clip(` => => # ${t}`));
        }
      }
    }
    text += live.map((l) => `${l}\n`).join('');
    drawn = live.length;
    out.write(text);
  };
  const timer = setInterval(() => redraw(), 100);
  timer.unref?.();
  return {
    onEvent(e) {
      switch (e.type) {
        case 'log':
          logs.push(`${e.level === 'warning' ? 'WARNING: ' : ''}${e.message}`);
          break;
        case 'output': {
          const st = steps.get(e.id);
          if (!st) break;
          const lines = (st.partial + e.data).split('\n');
          st.partial = lines.pop() ?? '';
          st.tail.push(...lines);
          if (st.tail.length > TAIL) st.tail.splice(0, st.tail.length - TAIL);
          return; // output shows at the next tick
        }
        case 'step': {
          let st = steps.get(e.id);
          if (!st) {
            st = { name: e.name, started: Date.now(), status: 'running', tail: [], partial: '' };
            steps.set(e.id, st);
            order.push(e.id);
          }
          if (e.reason) st.reason = e.reason;
          if (e.status === 'cached') st.status = 'cached';
          else if (e.status === 'done' || e.status === 'error') {
            st.status = e.status === 'error' && e.error === 'CANCELED' ? 'canceled' : e.status;
            st.ended = Date.now();
            if (st.status === 'error') logs.push(`ERROR ${st.name}: ${e.error ?? 'failed'}`, ...st.tail.map((t) => `  > ${t}`));
          }
        }
      }
      redraw();
    },
    done() {
      clearInterval(timer);
      for (const st of steps.values()) if (st.status === 'running') st.status = 'error';
      redraw(true);
      out.write(`[+] Built in ${secs(Date.now() - start)} (${order.length} steps)\n`);
    },
  };
}
