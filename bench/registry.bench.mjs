// Registry push and pull: a ~200 MB image of several layers (AES-CTR keystream, i.e.
// incompressible bytes, plus one compressible text layer, all gzip) pushed to and pulled from a
// local docker-registry on 127.0.0.1, by tsbuild (../dist, one process per operation) and by
// `skopeo copy` (oci: layout -> docker://, and back), in interleaved rounds in the same run.
// Prints the median wall time of each, the ratio, and tsbuild's peak RSS for the same layers at
// 1/4 size and full size (goal: not slower than skopeo; memory flat in layer size).
//
// Env: BENCH_RUNS (rounds, default 3), BENCH_MB (image size, default 200), BENCH_KEEP=1.
// Needs `npm run build`, /usr/bin/docker-registry, skopeo and /usr/bin/time.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { linkSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';

const self = fileURLToPath(import.meta.url);

// ---------------------------------------------------------------- child: one tsbuild operation
if (process.argv[2] === '--child') {
  const [, , , op, root, a, b] = process.argv;
  const t0 = performance.now();
  let digest;
  if (op === 'push') {
    const { push } = await import('../dist/oci/index.js');
    digest = (await push(b, { root, source: a, env: {} })).digest;
  } else if (op === 'pull') {
    const { pull } = await import('../dist/oci/index.js');
    digest = (await pull(a, { root, env: {} })).descriptor.digest;
  } else if (op === 'idle') {
    await import('../dist/oci/index.js');
  }
  const ms = performance.now() - t0;
  process.stdout.write(JSON.stringify({ ms, maxRssMB: process.resourceUsage().maxRSS / 1024, digest }) + '\n');
  process.exit(0);
}

// ---------------------------------------------------------------- image generation
const { OciLayout, TarWriter, appendLayers, emptyImage, importTarLayer, Store } = await import('../dist/oci/index.js');

const MB = 1024 * 1024;
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const TOTAL_MB = Number(process.env.BENCH_MB ?? 200);

/** Deterministic bytes (a re-opened layer must give the same tar): AES-128-CTR keystream, or text. */
function dataStream(seed, size, kind) {
  return Readable.from(
    (async function* () {
      const key = createHash('sha256').update(`bench-${seed}`).digest().subarray(0, 16);
      const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
      const zero = Buffer.alloc(MB);
      let line = 0;
      for (let left = size; left > 0; ) {
        const n = Math.min(MB, left);
        if (kind === 'random') yield cipher.update(zero.subarray(0, n));
        else {
          let s = '';
          while (s.length < n) s += `${String(line++).padStart(8, '0')} INFO worker-${line % 17} handled request /api/v1/items/${line % 1009} in ${line % 97} ms\n`;
          yield Buffer.from(s.slice(0, n));
        }
        left -= n;
      }
    })(),
    { objectMode: false },
  );
}

function layerTar(seed, files) {
  return () => {
    const w = new TarWriter();
    (async () => {
      for (const [i, f] of files.entries()) await w.stream(`data/${seed}-${i}.${f.kind === 'random' ? 'bin' : 'log'}`, f.size, dataStream(`${seed}-${i}`, f.size, f.kind));
      w.pack.finalize();
    })().catch((e) => w.pack.destroy(e));
    return w.pack;
  };
}

/** Layers of `scale` x (60 + 50 + 40 + 30 MB random, 60 MB text -> ~13 MB gzip, 1 MB random in 64 files). */
async function makeImage(dir, scale, tag) {
  const mb = (x) => Math.max(1, Math.round(x * scale * MB));
  const layers = [
    [{ kind: 'random', size: mb(60) }],
    [{ kind: 'random', size: mb(50) }],
    [{ kind: 'random', size: mb(40) }],
    [{ kind: 'text', size: mb(60) }],
    [{ kind: 'random', size: mb(30) }],
    Array.from({ length: 64 }, () => ({ kind: 'random', size: Math.max(1024, Math.round((scale * MB) / 64)) })),
  ];
  const layout = await OciLayout.create(join(dir, 'layout'));
  // One gzip pass per layer, straight into the layout (two layers at a time: two cores).
  const made = [];
  for (let i = 0; i < layers.length; i += 2) {
    made.push(...(await Promise.all(layers.slice(i, i + 2).map((files, j) => importTarLayer(layout, layerTar(`${tag}-${i + j}`, files)(), { compression: 'gzip', level: 1 })))));
  }
  const img = await appendLayers(emptyImage({ platform: { os: 'linux', architecture: 'amd64' } }), ...made);
  const desc = await layout.write(img, 'bench');
  // The same blobs, hard-linked, in a tsbuild store tagged bench/<tag>:1.
  const store = await Store.open({ root: join(dir, 'root') });
  let bytes = 0;
  for (const hex of readdirSync(join(layout.dir, 'blobs', 'sha256'))) {
    const digest = `sha256:${hex}`;
    linkSync(layout.blobPath(digest), store.blobPath(digest));
    bytes += (await store.statBlob(digest)) ?? 0;
  }
  await store.tag(`bench/${tag}:1`, desc);
  const largest = Math.max(...(await Promise.all(made.map((l) => l.size()))));
  return { layoutDir: layout.dir, root: join(dir, 'root'), name: `bench/${tag}:1`, digest: desc.digest, bytes, largest, layers: layers.length };
}

// ---------------------------------------------------------------- registry
async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function startRegistry(dir) {
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  writeFileSync(
    join(dir, 'config.yml'),
    `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, 'storage')}\nhttp:\n  addr: 127.0.0.1:${port}\n`,
  );
  const child = spawn('/usr/bin/docker-registry', ['serve', join(dir, 'config.yml')], { stdio: 'ignore' });
  for (let i = 0; i < 400; i++) {
    const ok = await new Promise((r) => http.get({ host: '127.0.0.1', port, path: '/v2/', agent: false }, (res) => (res.resume(), r(res.statusCode === 200))).on('error', () => r(false)));
    if (ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    host: `127.0.0.1:${port}`,
    stop: () => new Promise((r) => (child.once('exit', r), child.kill('SIGTERM'))),
  };
}

// ---------------------------------------------------------------- runners
/** tsbuild in its own process: wall time (process start to exit), in-process time, peak RSS. */
// Both run under /usr/bin/time: a child forked from this (large) process would inherit its
// maxRSS across exec on Linux, so process.resourceUsage() in the child would report ours.
// Dirty pages of earlier steps are flushed first (`sync`) so that no run pays for another's writeback.
function tsbuild(op, ...args) {
  spawnSync('sync');
  const t0 = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', 'maxrss_kb=%M', process.execPath, self, '--child', op, ...args], { encoding: 'utf8' });
  const wall = performance.now() - t0;
  if (r.status !== 0) throw new Error(`tsbuild ${op} failed:\n${r.stderr}`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop());
  const kb = Number(/maxrss_kb=(\d+)/.exec(r.stderr)?.[1] ?? NaN);
  return { wall, ms: out.ms, digest: out.digest, maxRssMB: kb / 1024 };
}

/** skopeo copy under /usr/bin/time: wall time and peak RSS. */
function skopeo(src, dst) {
  spawnSync('sync');
  const t0 = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', 'maxrss_kb=%M', 'skopeo', 'copy', '-q', '--src-tls-verify=false', '--dest-tls-verify=false', src, dst], { encoding: 'utf8' });
  const wall = performance.now() - t0;
  if (r.status !== 0) throw new Error(`skopeo copy ${src} ${dst} failed:\n${r.stderr}`);
  const kb = Number(/maxrss_kb=(\d+)/.exec(r.stderr)?.[1] ?? NaN);
  return { wall, maxRssMB: kb / 1024 };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const s = (ms) => `${(ms / 1000).toFixed(2)} s`;
const mbps = (bytes, ms) => `${(bytes / MB / (ms / 1000)).toFixed(0)} MB/s`;

const dir = mkdtempSync(join(tmpdir(), 'tsbuild-bench-reg-'));
try {
  let t = performance.now();
  const big = await makeImage(join(dir, 'big'), TOTAL_MB / 200, 'big');
  const small = await makeImage(join(dir, 'small'), TOTAL_MB / 800, 'small');
  const half = await makeImage(join(dir, 'half'), TOTAL_MB / 400, 'half');
  console.log(`image: ${big.layers} layers, ${(big.bytes / MB).toFixed(1)} MB of blobs, largest layer ${(big.largest / MB).toFixed(1)} MB (same layers at 1/4 and 1/2 size for the memory figures), built in ${s(performance.now() - t)}`);
  console.log(`tsbuild ${JSON.parse(execFileSync('node', ['-p', 'JSON.stringify(require("./package.json").version)'], { cwd: join(self, '../..'), encoding: 'utf8' }))}, ${execFileSync('skopeo', ['--version'], { encoding: 'utf8' }).trim()}, ${RUNS} rounds\n`);

  const idle = tsbuild('idle');
  const res = { tsPush: [], skPush: [], tsPull: [], skPull: [], skPullSync: [], tsPushIn: [], tsPullIn: [], tsPushRss: [], tsPullRss: [], skPushRss: [], skPullRss: [] };
  for (let round = 0; round < RUNS; round++) {
    // A fresh registry per round; the order of the contenders alternates.
    const reg = await startRegistry(join(dir, `registry-${round}`));
    const order = round % 2 === 0 ? ['ts', 'sk'] : ['sk', 'ts'];
    const line = [];
    for (const who of order) {
      if (who === 'ts') {
        const p = tsbuild('push', big.root, big.name, `${reg.host}/ts/img:1`);
        if (p.digest !== big.digest) throw new Error(`tsbuild pushed ${p.digest}, want ${big.digest}`);
        res.tsPush.push(p.wall);
        res.tsPushIn.push(p.ms);
        res.tsPushRss.push(p.maxRssMB);
        line.push(`tsbuild push ${s(p.wall)}`);
      } else {
        const p = skopeo(`oci:${big.layoutDir}:bench`, `docker://${reg.host}/sk/img:1`);
        res.skPush.push(p.wall);
        res.skPushRss.push(p.maxRssMB);
        line.push(`skopeo push ${s(p.wall)}`);
      }
    }
    for (const who of order) {
      if (who === 'ts') {
        const p = tsbuild('pull', join(dir, `pull-root-${round}`), `${reg.host}/ts/img:1`);
        if (p.digest !== big.digest) throw new Error(`tsbuild pulled ${p.digest}, want ${big.digest}`);
        res.tsPull.push(p.wall);
        res.tsPullIn.push(p.ms);
        res.tsPullRss.push(p.maxRssMB);
        line.push(`tsbuild pull ${s(p.wall)}`);
      } else {
        const into = join(dir, `pull-layout-${round}`);
        const p = skopeo(`docker://${reg.host}/sk/img:1`, `oci:${into}:bench`);
        res.skPull.push(p.wall);
        res.skPullRss.push(p.maxRssMB);
        // skopeo does not fsync what it writes; tsbuild's store does (temp file, fsync, rename).
        // What making skopeo's blobs durable costs (coreutils sync FILE... = fsync of each):
        const t1 = performance.now();
        const blobs = readdirSync(join(into, 'blobs', 'sha256')).map((h) => join(into, 'blobs', 'sha256', h));
        execFileSync('sync', blobs);
        res.skPullSync.push(p.wall + performance.now() - t1);
        line.push(`skopeo pull ${s(p.wall)} (+fsync ${s(performance.now() - t1)})`);
      }
    }
    console.log(`round ${round + 1}: ${line.join(', ')}`);
    await reg.stop();
    rmSync(join(dir, `registry-${round}`), { recursive: true, force: true });
    rmSync(join(dir, `pull-root-${round}`), { recursive: true, force: true });
    rmSync(join(dir, `pull-layout-${round}`), { recursive: true, force: true });
  }

  // Peak RSS against layer size: the same layers at a quarter and at half the size.
  const reg = await startRegistry(join(dir, 'registry-small'));
  const sp = tsbuild('push', small.root, small.name, `${reg.host}/ts/small:1`);
  const sl = tsbuild('pull', join(dir, 'pull-root-small'), `${reg.host}/ts/small:1`);
  const hp = tsbuild('push', half.root, half.name, `${reg.host}/ts/half:1`);
  const hl = tsbuild('pull', join(dir, 'pull-root-half'), `${reg.host}/ts/half:1`);
  await reg.stop();

  const rows = [
    ['push', median(res.tsPush), median(res.skPush)],
    ['pull', median(res.tsPull), median(res.skPull)],
  ];
  console.log('\nmedian wall time (process start to exit), 127.0.0.1 registry:');
  for (const [what, ts, sk] of rows) {
    console.log(`  ${what}: tsbuild ${s(ts)} (${mbps(big.bytes, ts)}), skopeo ${s(sk)} (${mbps(big.bytes, sk)}), tsbuild/skopeo = ${(ts / sk).toFixed(2)}  ${ts <= sk * 1.05 ? 'ok' : 'SLOWER than skopeo'}`);
  }
  console.log(`  pull, skopeo made durable (its blobs fsynced after the copy): ${s(median(res.skPullSync))}, tsbuild/skopeo+fsync = ${(median(res.tsPull) / median(res.skPullSync)).toFixed(2)}`);
  console.log(`  tsbuild in-process (without node start-up and imports): push ${s(median(res.tsPushIn))}, pull ${s(median(res.tsPullIn))}`);
  const rss = (xs) => `${median(xs).toFixed(0)} MB`;
  console.log('\npeak RSS (maxRSS):');
  console.log(`  tsbuild idle (node + modules loaded): ${idle.maxRssMB.toFixed(0)} MB`);
  const sizes = `largest layer ${(small.largest / MB).toFixed(0)} / ${(half.largest / MB).toFixed(0)} / ${(big.largest / MB).toFixed(0)} MB`;
  console.log(`  tsbuild push, ${sizes}: ${sp.maxRssMB.toFixed(0)} / ${hp.maxRssMB.toFixed(0)} / ${rss(res.tsPushRss)}`);
  console.log(`  tsbuild pull, ${sizes}: ${sl.maxRssMB.toFixed(0)} / ${hl.maxRssMB.toFixed(0)} / ${rss(res.tsPullRss)}`);
  console.log(`  skopeo push ${rss(res.skPushRss)}, pull ${rss(res.skPullRss)} (full size)`);
  const grow = Math.max(median(res.tsPushRss) - sp.maxRssMB, median(res.tsPullRss) - sl.maxRssMB);
  const added = (big.largest - small.largest) / MB;
  console.log(`  growth from 1/4 to full size: ${grow.toFixed(0)} MB for +${added.toFixed(0)} MB in the largest layer  ${grow < added / 3 ? 'ok (flat: bounded by in-flight pieces and garbage between collections)' : 'GROWS with layer size'}`);
} finally {
  if (process.env.BENCH_KEEP) console.log(`kept ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
}
