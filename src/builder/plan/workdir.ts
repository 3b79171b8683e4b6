import { posix } from 'node:path';

/**
 * BuildKit's `system.NormalizePath(parent, newPath, "linux", keepSlash)`: an empty `parent` is `/`,
 * a relative parent is made absolute; an empty `newPath` is the parent; a relative `newPath` is
 * joined to the parent (`path.Join`, which cleans); an absolute one is returned as given. With
 * `keepSlash`, a trailing `/` or `/.` of `newPath` survives the join (it means "a directory").
 */
export function normalizePath(parent: string, newPath: string, keepSlash: boolean): string {
  const orig = newPath;
  if (parent === '') parent = '/';
  if (!parent.startsWith('/')) parent = posix.join('/', parent);
  if (newPath === '') newPath = parent;
  if (!newPath.startsWith('/')) newPath = posix.join(parent, newPath);
  if (keepSlash) {
    if (orig.endsWith('/') && !newPath.endsWith('/')) newPath += '/';
    else if (orig.endsWith('/.')) {
      if (newPath !== '/') newPath += '/';
      newPath += '.';
    }
  }
  return newPath;
}

/**
 * BuildKit's `system.NormalizeWorkdir(current, new, "linux")`: how WORKDIR combines with the
 * previous WorkingDir. An empty `current` means `/`; a relative `next` is joined (and cleaned);
 * an absolute `next` is returned as given (not cleaned); an empty `next` keeps `current`.
 */
export function normalizeWorkdir(current: string, next: string): string {
  return normalizePath(current, next, false);
}

/**
 * BuildKit's `pathRelativeToWorkingDir` for COPY/ADD destinations: absolute paths are taken as
 * given, relative ones joined to the working directory; `""` and `.` mean the working directory
 * itself, as a directory (`/wd/`). A trailing `/` or `/.` is kept.
 */
export function resolveDest(workdir: string, dest: string): string {
  if (dest.startsWith('/')) return normalizePath('/', dest, true);
  if (dest === '.' || dest === '') dest = './';
  return normalizePath(workdir, dest, true);
}
