// Sandbox start-up: runs `true` N times (BENCH_RUNS, default 200) in tsbuild's sandbox over a
// busybox rootfs, and N times with runc (and crun, when installed) over the same rootfs, and
// prints milliseconds per start and the ratios. Goal: under 10 ms per start, 5x faster than runc.
//
// - tsbuild overlay: what a RUN step pays: overlayfs over the rootfs with a fresh upper dir,
//   user namespace, /proc, /dev, /sys, /etc/hosts and resolv.conf, then RunResult.dispose().
// - tsbuild dir: the rootfs directory as the root (no overlay).
// - runc/crun: `runc spec` config, root = the rootfs (read-only, no overlay), terminal off,
//   network namespace dropped to match tsbuild's default (the host's network); started from a
//   shell loop (`runc run --bundle B ID`: create, start, wait, delete), so no Node spawn cost.
// The contenders run in interleaved rounds so that a busy machine slows them alike; medians are
// the headline figures, and "best" (the quickest round's mean) shows the cost with the least
// interference. Needs root (runc) and the built package (`npm run build`).
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRuntime } from '../dist/runtime/index.js';

const N = Number(process.env.BENCH_RUNS ?? 200);
const ROUND = 20;
const rounds = Math.max(1, Math.ceil(N / ROUND));

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { median: q(0.5), p90: q(0.9), mean: s.reduce((a, b) => a + b, 0) / s.length, n: s.length };
};
const fmt = (x) => x.toFixed(2).padStart(7);

const dir = mkdtempSync(join(tmpdir(), 'tsbuild-bench-rt-'));
try {
  const rootfs = join(dir, 'rootfs');
  mkdirSync(join(rootfs, 'bin'), { recursive: true });
  mkdirSync(join(rootfs, 'etc'));
  copyFileSync('/bin/busybox', join(rootfs, 'bin', 'busybox'));
  chmodSync(join(rootfs, 'bin', 'busybox'), 0o755);
  for (const a of execFileSync('/bin/busybox', ['--list'], { encoding: 'utf8' }).split('\n').filter((x) => x && x !== 'busybox')) {
    symlinkSync('busybox', join(rootfs, 'bin', a));
  }
  writeFileSync(join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(rootfs, 'etc', 'group'), 'root:x:0:\n');
  for (const d of ['proc', 'dev', 'sys', 'tmp']) mkdirSync(join(rootfs, d));

  /** name → { round(): Promise<number[]> } giving ROUND per-start times in ms. */
  const contenders = [];

  const rt = createRuntime({ stateDir: join(dir, 'state') });
  const ours = (spec) => async () => {
    const times = [];
    for (let i = 0; i < ROUND; i++) {
      const t0 = performance.now();
      const r = await rt.run({ ...spec, args: ['/bin/true'] });
      await r.dispose();
      times.push(performance.now() - t0);
      if (r.exitCode !== 0) throw new Error(`true exited ${r.exitCode}: ${r.lastOutput}`);
    }
    return times;
  };
  contenders.push({ name: 'tsbuild overlay', round: ours({ rootfs: { lowerDirs: [rootfs] } }) });
  contenders.push({ name: 'tsbuild dir', round: ours({ rootfs: { dir: rootfs } }) });

  for (const bin of ['runc', 'crun']) {
    if (spawnSync('which', [bin]).status !== 0) {
      console.log(`${bin}: not installed`);
      continue;
    }
    const bundle = join(dir, `bundle-${bin}`);
    mkdirSync(bundle);
    try {
      execFileSync(bin, ['spec'], { cwd: bundle, stdio: 'pipe' });
      const config = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
      config.root = { path: rootfs, readonly: true };
      config.process.terminal = false;
      config.process.args = ['/bin/true'];
      config.linux.namespaces = config.linux.namespaces.filter((n) => n.type !== 'network');
      writeFileSync(join(bundle, 'config.json'), JSON.stringify(config));
      const id = `tsbuild-bench-${bin}-${process.pid}`;
      // One shell loop per round; each start timed inside it with the shell's monotonic clock is
      // not portable, so a round's time is divided evenly (no per-start spread for runc/crun).
      const script = `i=0; while [ $i -lt ${ROUND} ]; do ${bin} run --bundle '${bundle}' ${id}-$i >/dev/null || exit 1; i=$((i+1)); done`;
      const round = async () => {
        const t0 = performance.now();
        const r = spawnSync('/bin/sh', ['-c', script], { stdio: ['ignore', 'ignore', 'pipe'] });
        const ms = performance.now() - t0;
        if (r.status !== 0) throw new Error(`${bin} run failed: ${String(r.stderr).trim().split('\n').pop()}`);
        return Array.from({ length: ROUND }, () => ms / ROUND);
      };
      await round(); // warm up, and check that it starts at all
      contenders.push({ name: bin, round, perRoundOnly: true });
    } catch (err) {
      console.log(`${bin}: could not run: ${err.message.split('\n')[0]}`);
    }
  }

  for (const c of contenders) if (!c.perRoundOnly) await c.round(); // warm up
  const times = new Map(contenders.map((c) => [c.name, []]));
  const best = new Map(contenders.map((c) => [c.name, Infinity]));
  for (let r = 0; r < rounds; r++) {
    for (const c of contenders) {
      const t = await c.round();
      times.get(c.name).push(...t);
      best.set(c.name, Math.min(best.get(c.name), t.reduce((a, b) => a + b, 0) / t.length));
    }
  }

  console.log(`starts of /bin/true, ${rounds * ROUND} per contender, in ${rounds} interleaved rounds of ${ROUND}`);
  console.log(`${'contender'.padEnd(18)} ${'median'.padStart(7)} ${'mean'.padStart(7)} ${'p90'.padStart(7)} ${'best'.padStart(7)}  (ms per start; best = the quickest round's mean)`);
  const result = new Map();
  for (const c of contenders) {
    const s = { ...stats(times.get(c.name)), best: best.get(c.name) };
    result.set(c.name, s);
    console.log(`${c.name.padEnd(18)} ${fmt(s.median)} ${fmt(s.mean)} ${c.perRoundOnly ? '      -' : fmt(s.p90)} ${fmt(s.best)}`);
  }
  const overlay = result.get('tsbuild overlay');
  for (const bin of ['runc', 'crun']) {
    const s = result.get(bin);
    if (!s) continue;
    console.log(`ratio ${bin} / tsbuild overlay: ${(s.mean / overlay.mean).toFixed(2)}x (means), ${(s.best / overlay.best).toFixed(2)}x (best rounds)`);
  }
  const runc = result.get('runc');
  console.log(`goal < 10 ms per start: ${overlay.median < 10 ? 'met' : 'not met'} (median ${overlay.median.toFixed(2)} ms)`);
  if (runc) console.log(`goal 5x faster than runc: ${runc.mean / overlay.mean >= 5 ? 'met' : 'not met'} (${(runc.mean / overlay.mean).toFixed(2)}x)`);
  console.log(`load average at the end: ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')} on ${spawnSync('nproc').stdout.toString().trim()} cores`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
