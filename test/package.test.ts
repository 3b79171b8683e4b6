/** The published package: every entry in `exports` loads from dist and has its types. */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { repoRoot } from './helpers/base-images.js';

const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { exports: Record<string, { types: string; import: string } | string>; engines: { node: string }; type: string; bin: Record<string, string> };

const expected: Record<string, string[]> = {
  '.': ['build', 'BuildError', 'parseDockerfile', 'formatDiagnostic', 'lint', 'Store', 'createRuntime', 'planBuild', 'listTargets'],
  './parser': ['parseDockerfile', 'formatDiagnostic', 'processWord', 'dumpBuildkit'],
  './builder': ['build', 'planBuild', 'CacheStore', 'applyCopy', 'writeLayer'],
  './oci': ['Store', 'OciLayout', 'parseReference', 'selectManifest'],
  './runtime': ['createRuntime', 'shellCommand', 'parseAddHost', 'checkExtraHost'],
};

describe('package exports', () => {
  it('is ESM for Node >= 20 with a tsbuild bin', () => {
    expect(pkg.type).toBe('module');
    expect(pkg.engines.node).toBe('>=20');
    expect(existsSync(path.join(repoRoot, pkg.bin.tsbuild!))).toBe(true);
  });

  it('the bin runs as npm links it (node_modules/.bin/tsbuild, a symlink), with arguments and exit codes passed through', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tsbuild-bin-'));
    try {
      mkdirSync(path.join(dir, 'node_modules', '.bin'), { recursive: true });
      const link = path.join(dir, 'node_modules', '.bin', 'tsbuild');
      symlinkSync(path.relative(path.dirname(link), path.join(repoRoot, pkg.bin.tsbuild!)), link);
      const version = spawnSync(link, ['--version'], { encoding: 'utf8', cwd: dir });
      expect(version.stdout).toBe(`tsbuild ${(JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version}\n`);
      expect(version.status).toBe(0);
      // an argument with spaces and quotes arrives whole; a failing command's status comes back
      const bad = spawnSync(link, ['parse', path.join(dir, 'no such "file"')], { encoding: 'utf8', cwd: dir });
      expect(bad.status).not.toBe(0);
      expect(bad.stderr).toContain('no such "file"');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  for (const [entry, names] of Object.entries(expected)) {
    it(`${entry} loads from dist with its declarations`, async () => {
      const spec = pkg.exports[entry] as { types: string; import: string };
      expect(Object.keys(spec)[0]).toBe('types');
      expect(existsSync(path.join(repoRoot, spec.types))).toBe(true);
      const mod = (await import(pathToFileURL(path.join(repoRoot, spec.import)).href)) as Record<string, unknown>;
      for (const n of names) expect(mod[n], `${entry} exports ${n}`).toBeDefined();
    });
  }

  it('shares one copy of each class between entry points (instanceof holds across them)', async () => {
    const load = async (entry: string) => (await import(pathToFileURL(path.join(repoRoot, (pkg.exports[entry] as { import: string }).import)).href)) as Record<string, unknown>;
    const [main, oci, builder, parser] = await Promise.all([load('.'), load('./oci'), load('./builder'), load('./parser')]);
    expect(main.Store).toBe(oci.Store);
    expect(main.build).toBe(builder.build);
    expect(main.BuildError).toBe(builder.BuildError);
    expect(main.parseDockerfile).toBe(parser.parseDockerfile);
  });
});
