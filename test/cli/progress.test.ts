import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { ProgressEvent } from '../../src/builder/options.js';
import { createProgressRenderer } from '../../src/cli/progress.js';

function sink(isTTY: boolean) {
  let text = '';
  const out = Object.assign(new Writable({ write(c, _e, cb) { text += String(c); cb(); } }), { isTTY, columns: 60 });
  return { out, text: () => text };
}

const events: ProgressEvent[] = [
  { type: 'step', id: 'a', name: '[build 1/2] COPY . .', status: 'cached' },
  { type: 'step', id: 'b', name: '[build 2/2] RUN make', status: 'started', reason: 'file src/main.c changed' },
  { type: 'output', id: 'b', name: '[build 2/2] RUN make', stream: 'stdout', data: 'cc -o app main.c\nlinking' },
  { type: 'output', id: 'b', name: '[build 2/2] RUN make', stream: 'stdout', data: ' done\n' },
  { type: 'step', id: 'b', name: '[build 2/2] RUN make', status: 'done', durationMs: 1234 },
];

describe('progress renderers', () => {
  it('plain: docker build --progress=plain lines, the miss reason, output prefixed by step number', () => {
    const s = sink(false);
    const r = createProgressRenderer('auto', s.out);
    for (const e of events) r.onEvent(e);
    r.done();
    expect(s.text()).toMatch(/^\n#1 \[build 1\/2\] COPY \. \.\n#1 CACHED\n\n#2 \[build 2\/2\] RUN make\n#2 cache miss: file src\/main.c changed\n#2 [\d.]+ cc -o app main.c\n#2 [\d.]+ linking done\n#2 DONE 1\.2s\n$/);
  });

  it('tty: a live view redrawn in place, finished steps kept with CACHED and times', () => {
    const s = sink(true);
    const r = createProgressRenderer('auto', s.out);
    for (const e of events) r.onEvent(e);
    r.done();
    const text = s.text();
    expect(text).toContain('[+] Building');
    expect(text).toContain(' => => cache miss: file src/main.c changed');
    expect(text).toMatch(/ => \[build 1\/2\] COPY \. \. CACHED/);
    expect(text).toMatch(/ => \[build 2\/2\] RUN make +\d+\.\ds\n/);
    expect(text).toContain('\x1b[J');
    expect(text.trimEnd().split('\n').at(-1)).toMatch(/^(\x1b\[\d+F\x1b\[J)?\[\+\] Built in [\d.]+s \(2 steps\)$/);
  });

  it('a step stopped by another one\'s failure is CANCELED (plain and tty), not an error of its own', () => {
    const failing: ProgressEvent[] = [
      { type: 'step', id: 'a', name: '[a 2/2] RUN sleep 60', status: 'started' },
      { type: 'step', id: 'b', name: '[b 2/2] RUN exit 4', status: 'started' },
      { type: 'step', id: 'b', name: '[b 2/2] RUN exit 4', status: 'error', error: 'exit code: 4' },
      { type: 'step', id: 'a', name: '[a 2/2] RUN sleep 60', status: 'error', error: 'CANCELED' },
    ];
    const plain = sink(false);
    const p = createProgressRenderer('plain', plain.out);
    for (const e of failing) p.onEvent(e);
    p.done();
    expect(plain.text()).toContain('#2 ERROR: exit code: 4\n#1 CANCELED\n');
    const tty = sink(true);
    const t = createProgressRenderer('tty', tty.out);
    for (const e of failing) t.onEvent(e);
    t.done();
    expect(tty.text()).toMatch(/ => \[a 2\/2\] RUN sleep 60 CANCELED +\d+\.\ds\n/);
    expect(tty.text()).toMatch(/ => \[b 2\/2\] RUN exit 4 ERROR +\d+\.\ds\n/);
    expect(tty.text()).toContain('ERROR [b 2/2] RUN exit 4: exit code: 4');
    expect(tty.text()).not.toContain('ERROR [a 2/2]');
  });

  it('json: one event per line', () => {
    const s = sink(false);
    const r = createProgressRenderer('json', s.out);
    for (const e of events) r.onEvent(e);
    expect(s.text().trimEnd().split('\n').map((l) => JSON.parse(l) as ProgressEvent)).toEqual(events);
  });
});
