// Child process for store tests: puts a pseudo-random blob of SIZE bytes (seeded) into the store at DIR.
// argv: dir seed size [slowMs]
import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { Store } from '../../../src/oci/store.js';

const [dir, seed, sizeText, slowText] = process.argv.slice(2) as [string, string, string, string?];
const size = Number(sizeText);
const slow = Number(slowText ?? 0);
async function* bytes() {
  let counter = 0;
  let sent = 0;
  while (sent < size) {
    const block = createHash('sha512').update(`${seed}:${counter++}`).digest();
    const chunk = Buffer.concat(Array.from({ length: 1024 }, () => block)).subarray(0, Math.min(64 * 1024, size - sent));
    sent += chunk.length;
    if (slow) await new Promise((r) => setTimeout(r, slow));
    if (sent > size / 2 && slow) process.stdout.write('half\n');
    yield chunk;
  }
}
const store = await Store.openDir(dir);
const r = await store.putBlob(Readable.from(bytes()));
process.stdout.write(JSON.stringify(r) + '\n');
