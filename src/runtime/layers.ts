import { lstat, readFile, readlink } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { join } from 'node:path';

/** True for an overlayfs whiteout: a character device 0/0. */
export function isWhiteout(st: Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

/**
 * lstat of `rel` ('a/b/c', no leading slash) in the merged view of `layers` (top first), without
 * following any symlink: each component is looked up layer by layer, so a host path is never
 * reached through a link. Undefined when absent or whited out. Opaque markers are not consulted.
 */
export async function lstatInLayers(layers: readonly string[], rel: string): Promise<{ stats: Stats; path: string } | undefined> {
  const parts = rel.split('/').filter((p) => p !== '' && p !== '.');
  for (const layer of layers) {
    let p = layer;
    let ok = true;
    for (let i = 0; i < parts.length; i++) {
      p = join(p, parts[i]!);
      const st = await lstat(p).catch(() => undefined);
      if (!st) { ok = false; break; }
      if (isWhiteout(st)) return undefined;
      if (i === parts.length - 1) return { stats: st, path: p };
      if (!st.isDirectory()) {
        // A file or link over a directory in a lower layer hides it.
        return undefined;
      }
    }
    if (ok && parts.length === 0) return { stats: await lstat(layer), path: layer };
  }
  return undefined;
}

/**
 * Reads a file of the merged view, following symlinks the way the sandbox would: inside the
 * root (absolute targets restart at the root, `..` stops at it). Undefined when absent.
 */
export async function readFileInLayers(layers: readonly string[], path: string): Promise<Buffer | undefined> {
  let pending = path.split('/').filter((p) => p !== '' && p !== '.');
  const resolved: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const c = pending.shift()!;
    if (c === '..') { resolved.pop(); continue; }
    const hit = await lstatInLayers(layers, [...resolved, c].join('/'));
    if (!hit) return undefined;
    if (hit.stats.isSymbolicLink()) {
      if (++links > 40) return undefined;
      const target = await readlink(hit.path);
      if (target.startsWith('/')) resolved.length = 0;
      pending = [...target.split('/').filter((p) => p !== '' && p !== '.'), ...pending];
      continue;
    }
    resolved.push(c);
    if (pending.length > 0 && !hit.stats.isDirectory()) return undefined;
    if (pending.length === 0) return hit.stats.isFile() ? readFile(hit.path) : undefined;
  }
  return undefined;
}
