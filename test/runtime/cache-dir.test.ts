import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { acquireCache } from '../../src/runtime/cache.js';

const tmp = await mkdtemp(path.join(tmpdir(), 'tsbuild-cache-dir-'));
afterAll(() => rm(tmp, { recursive: true, force: true }));

describe('acquireCache (shared)', () => {
  it('many runs starting at once get one directory that stays in place (none replaced after it was handed out)', async () => {
    for (let round = 0; round < 5; round++) {
      const m = { type: 'cache' as const, target: '/sync', id: `rendezvous-${round}`, sharing: 'shared' as const, mode: 0o755, uid: 0, gid: 0 };
      const seen = await Promise.all(
        Array.from({ length: 16 }, async () => {
          const lease = await acquireCache(tmp, m);
          return { dir: lease.dir, ino: (await stat(lease.dir)).ino };
        }),
      );
      const dirs = new Set(seen.map((s) => s.dir));
      expect(dirs.size).toBe(1);
      const final = await stat([...dirs][0]!);
      expect(new Set(seen.map((s) => s.ino))).toEqual(new Set([final.ino]));
      expect(final.mode & 0o7777).toBe(0o755);
      await writeFile(path.join([...dirs][0]!, 'x'), 'ok'); // usable
    }
  });
});
