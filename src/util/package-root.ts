import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

/**
 * A file of the installed tsbuild package (`package.json`, `native/build/…`). The package root
 * is the nearest directory above this module with a package.json, so the answer is the same
 * whether the code runs from `dist/<area>/*.js`, from the bundled CLI (`dist/cli.js`) or from
 * `src/` under the tests.
 */
export function packageFile(rel: string): string {
  if (root === undefined) {
    let d = path.dirname(fileURLToPath(import.meta.url));
    while (!existsSync(path.join(d, 'package.json'))) {
      const up = path.dirname(d);
      if (up === d) throw new Error(`tsbuild: no package.json above ${fileURLToPath(import.meta.url)}`);
      d = up;
    }
    root = d;
  }
  return path.join(root, rel);
}
