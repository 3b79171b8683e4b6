/**
 * The order of a store's writes against a crash of the machine, watched with strace: a blob is
 * fsynced before its rename; the blobs' directory is synced before a tag naming them is
 * renamed into place (putBlobFile leaves the directory's sync to whoever writes a reference).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/base-images.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'tsbuild-durability-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Call {
  readonly call: string;
  readonly args: string;
  readonly fd?: string;
}

/** Runs `script` (an ES module, with `oci` the built OCI core) under strace; returns its fsync, open and rename calls in order. */
function traced(script: string): Call[] {
  const log = path.join(tmp, `strace-${Date.now()}.log`);
  const code = `const oci = await import(${JSON.stringify(pathToFileURL(path.join(repoRoot, 'dist/oci/index.js')).href)});\n${script}`;
  const r = spawnSync('strace', ['-f', '-qq', '-e', 'trace=openat,fsync,fdatasync,rename,renameat,renameat2', '-o', log, process.execPath, '--input-type=module', '-e', code], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  const lines = readFileSync(log, 'utf8').split('\n');
  const calls: Call[] = [];
  for (const l of lines) {
    const m = /^\d+\s+(\w+)\((.*)\)\s+=\s+(-?\d+)/.exec(l);
    if (m && m[3] !== '-1') calls.push({ call: m[1]!, args: m[2]!, ...(m[1] === 'openat' ? { fd: m[3]! } : {}) });
  }
  return calls;
}

/** Index of the first fsync/fdatasync, after `from`, of a descriptor opened on `file`. */
function syncOf(calls: Call[], file: string, from = 0): number {
  const fds = new Set<string>();
  for (let i = from; i < calls.length; i++) {
    const c = calls[i]!;
    if (c.call === 'openat' && c.args.includes(`"${file}"`)) fds.add(c.fd!);
    if ((c.call === 'fsync' || c.call === 'fdatasync') && fds.has(c.args.trim())) return i;
  }
  return -1;
}

const renameTo = (calls: Call[], re: RegExp): number => calls.findIndex((c) => c.call.startsWith('rename') && re.test(c.args));

describe('store durability order', () => {
  it('a blob is synced before its rename, and the blob directory before the tag naming it', () => {
    const root = path.join(tmp, 'root');
    const calls = traced(`const store = await oci.Store.openDir(${JSON.stringify(root)});
const { digest, size } = await store.putBlob(Buffer.from('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}'));
await store.tag('example.com/durable:latest', { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size });`);
    const blobRename = renameTo(calls, /blobs\/sha256\/[0-9a-f]{64}"/);
    const tagRename = renameTo(calls, /tags\/[0-9a-f]{64}\.json"/);
    expect(blobRename).toBeGreaterThan(-1);
    expect(tagRename).toBeGreaterThan(blobRename);
    // the blob's temp file: opened, synced, then renamed
    const tempName = /"([^"]+)"/.exec(calls[blobRename]!.args)![1]!;
    const blobSync = syncOf(calls, tempName);
    expect(blobSync).toBeGreaterThan(-1);
    expect(blobSync).toBeLessThan(blobRename);
    // the blobs' directory synced after the blob's rename and before the tag's
    const dirSync = syncOf(calls, path.join(root, 'blobs', 'sha256'), blobRename);
    expect(dirSync).toBeGreaterThan(blobRename);
    expect(dirSync).toBeLessThan(tagRename);
    // and the tag's own rename made durable
    expect(syncOf(calls, path.join(root, 'tags'), tagRename)).toBeGreaterThan(tagRename);
  });

  it('a build: its layer blobs are renamed into place before the blob directory is synced, then the tag', () => {
    const root = path.join(tmp, 'build-root');
    const context = path.join(tmp, 'ctx');
    const calls = traced(`const { mkdirSync, writeFileSync } = await import('node:fs');
mkdirSync(${JSON.stringify(context)}, { recursive: true });
writeFileSync(${JSON.stringify(path.join(context, 'a.txt'))}, 'durable\\n');
const { build } = await import(${JSON.stringify(pathToFileURL(path.join(repoRoot, 'dist/builder/index.js')).href)});
await build({ context: ${JSON.stringify(context)}, root: ${JSON.stringify(root)}, env: {}, dockerfileText: 'FROM scratch\\nCOPY a.txt /a.txt\\n', tags: ['example.com/durable-build:1'] });`);
    const layerRename = renameTo(calls, /blobs\/tmp\/layer-[0-9a-f]+", "[^"]+blobs\/sha256\/[0-9a-f]{64}"/);
    const tagRename = renameTo(calls, /tags\/[0-9a-f]{64}\.json"/);
    expect(layerRename).toBeGreaterThan(-1);
    expect(tagRename).toBeGreaterThan(layerRename);
    const dirSync = syncOf(calls, path.join(root, 'store', 'blobs', 'sha256'), layerRename);
    expect(dirSync).toBeGreaterThan(layerRename);
    expect(dirSync).toBeLessThan(tagRename);
  });
});
