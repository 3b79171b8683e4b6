/**
 * Child process for store.test.ts (run with vite-node): writes cache records into a shared
 * store. argv: <cacheDir> <writerId> <count|forever> [payloadBytes]
 */
import { createHash } from 'node:crypto';
import { CacheStore } from '../../src/cache/store.js';
import type { Digest } from '../../src/oci/digest.js';

const [dir, writer, countText, payloadText] = process.argv.slice(2);
const count = countText === 'forever' ? Infinity : Number(countText);
const payload = 'x'.repeat(Number(payloadText ?? '0'));
const store = await CacheStore.open(dir!);
for (let i = 0; i < count; i++) {
  const key = `sha256:${createHash('sha256').update(`${writer}:${i}`).digest('hex')}` as Digest;
  await store.put({ key, result: { writer: writer!, i, payload }, size: 100, stepId: `step-${i % 3}`, description: `${writer} ${i}` });
  if (i === 0) process.stdout.write('started\n');
}
process.stdout.write('done\n');
