/**
 * .dockerignore semantics. The pattern vectors are moby/patternmatcher's own test table
 * (patternmatcher_test.go, TestMatches and TestMatch), checked against MatchesOrParentMatches
 * semantics (the one `.dockerignore` uses): "exact" and "inexact" both mean excluded.
 */
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanPath, compilePatterns, openContext, parseDockerignore, PatternMatcher, resolveInRoot } from '../../src/builder/context.js';
import { goMatchRegExp } from '../../src/builder/copy.js';

const tmpRoot = await mkdtemp(path.join(os.tmpdir(), 'tsbuild-context-test-'));
afterAll(() => rm(tmpRoot, { recursive: true, force: true }));

// [pattern, text, matches]
const SINGLE: [string, string, boolean][] = [
  ['**', 'file', true],
  ['**', 'file/', true],
  ['**/', 'file', true],
  ['**/', 'file/', true],
  ['**', '/', true],
  ['**/', '/', true],
  ['**', 'dir/file', true],
  ['**/', 'dir/file', true],
  ['**', 'dir/file/', true],
  ['**/', 'dir/file/', true],
  ['**/**', 'dir/file', true],
  ['**/**', 'dir/file/', true],
  ['dir/**', 'dir/file', true],
  ['dir/**', 'dir/file/', true],
  ['dir/**', 'dir/dir2/file', true],
  ['dir/**', 'dir/dir2/file/', true],
  ['**/dir', 'dir', true],
  ['**/dir', 'dir/file', true],
  ['**/dir2/*', 'dir/dir2/file', true],
  ['**/dir2/*', 'dir/dir2/file/', true],
  ['**/dir2/**', 'dir/dir2/dir3/file', true],
  ['**/dir2/**', 'dir/dir2/dir3/file/', true],
  ['**file', 'file', true],
  ['**file', 'dir/file', true],
  ['**/file', 'dir/file', true],
  ['**file', 'dir/dir/file', true],
  ['**/file', 'dir/dir/file', true],
  ['**/file*', 'dir/dir/file', true],
  ['**/file*', 'dir/dir/file.txt', true],
  ['**/file*txt', 'dir/dir/file.txt', true],
  ['**/file*.txt', 'dir/dir/file.txt', true],
  ['**/file*.txt*', 'dir/dir/file.txt', true],
  ['**/**/*.txt', 'dir/dir/file.txt', true],
  ['**/**/*.txt2', 'dir/dir/file.txt', false],
  ['**/*.txt', 'file.txt', true],
  ['**/**/*.txt', 'file.txt', true],
  ['a**/*.txt', 'a/file.txt', true],
  ['a**/*.txt', 'a/dir/file.txt', true],
  ['a**/*.txt', 'a/dir/dir/file.txt', true],
  ['a/*.txt', 'a/dir/file.txt', false],
  ['a/*.txt', 'a/file.txt', true],
  ['a/*.txt**', 'a/file.txt', true],
  ['a[b-d]e', 'ae', false],
  ['a[b-d]e', 'ace', true],
  ['a[b-d]e', 'aae', false],
  ['a[^b-d]e', 'aze', true],
  ['.*', '.foo', true],
  ['.*', 'foo', false],
  ['abc.def', 'abcdef', false],
  ['abc.def', 'abc.def', true],
  ['abc.def', 'abcZdef', false],
  ['abc?def', 'abcZdef', true],
  ['abc?def', 'abcdef', false],
  ['**/foo/bar', 'foo/bar', true],
  ['**/foo/bar', 'dir/foo/bar', true],
  ['**/foo/bar', 'dir/dir2/foo/bar', true],
  ['abc/**', 'abc', false],
  ['abc/**', 'abc/def', true],
  ['abc/**', 'abc/def/ghi', true],
  ['**/.foo', '.foo', true],
  ['**/.foo', 'bar.foo', false],
  ['a(b)c/def', 'a(b)c/def', true],
  ['a(b)c/def', 'a(b)c/xyz', false],
  ['a.|)$(}+{bc', 'a.|)$(}+{bc', true],
  ['dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl', 'dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl', true],
  ['dist/*.whl', 'dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl', true],
  ['a\\\\', 'a\\', true],
  ['a\\*b', 'a*b', true],
  // Go filepath.Match table, as moby runs it
  ['abc', 'abc', true],
  ['*', 'abc', true],
  ['*c', 'abc', true],
  ['a*', 'a', true],
  ['a*', 'abc', true],
  ['a*', 'ab/c', true],
  ['a*/b', 'abc/b', true],
  ['a*/b', 'a/c/b', false],
  ['a*b*c*d*e*/f', 'axbxcxdxe/f', true],
  ['a*b*c*d*e*/f', 'axbxcxdxexxx/f', true],
  ['a*b*c*d*e*/f', 'axbxcxdxe/xxx/f', false],
  ['a*b*c*d*e*/f', 'axbxcxdxexxx/fff', false],
  ['a*b?c*x', 'abxbbxdbxebxczzx', true],
  ['a*b?c*x', 'abxbbxdbxebxczzy', false],
  ['ab[c]', 'abc', true],
  ['ab[b-d]', 'abc', true],
  ['ab[e-g]', 'abc', false],
  ['ab[^c]', 'abc', false],
  ['ab[^b-d]', 'abc', false],
  ['ab[^e-g]', 'abc', true],
  ['a\\*b', 'ab', false],
  ['a?b', 'a☺b', true],
  ['a[^a]b', 'a☺b', true],
  ['a???b', 'a☺b', false],
  ['a[^a][^a][^a]b', 'a☺b', false],
  ['[a-ζ]*', 'α', true],
  ['*[a-ζ]', 'A', false],
  ['a?b', 'a/b', false],
  ['a*b', 'a/b', false],
  ['[\\]a]', ']', true],
  ['[\\-]', '-', true],
  ['[x\\-]', 'x', true],
  ['[x\\-]', '-', true],
  ['[x\\-]', 'z', false],
  ['[\\-x]', 'x', true],
  ['[\\-x]', '-', true],
  ['[\\-x]', 'a', false],
  ['*x', 'xxx', true],
];

const BAD = ['[]a]', '[-]', '[x-]', '[-x]', '\\', '[a-b-c]', '[', '[^', '[^bc', 'a[', '!'];

const MULTI: [string[], string, boolean][] = [
  [['**', '!util/docker/web'], 'util/docker/web/foo', false],
  [['**', '!util/docker/web', 'util/docker/web/foo'], 'util/docker/web/foo', true],
  [['**', '!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl'], 'dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl', false],
  [['**', '!dist/*.whl'], 'dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl', false],
  [['!fileutils.go', '*.go'], 'fileutils.go', true],
  [['docs', '!docs/README.md'], 'docs/README.md', false],
  [['docs/', '!docs/README.md'], 'docs/README.md', false],
  [['docs/*', '!docs/README.md'], 'docs/README.md', false],
  [['*.go', '!fileutils.go'], 'fileutils.go', false],
  [['*.go'], '.', false],
  [[], 'any/path/there', false],
];

describe('patternmatcher (moby vectors)', () => {
  it.each(SINGLE)('%s vs %s → %s', (pattern, text, want) => {
    expect(PatternMatcher.from([pattern]).matches(text)).toBe(want);
  });
  it.each(MULTI)('%j vs %s → %s', (patterns, text, want) => {
    expect(PatternMatcher.from(patterns).matches(text)).toBe(want);
  });
  it.each(BAD)('rejects bad pattern %s', (pattern) => {
    expect(() => PatternMatcher.from([pattern])).toThrow();
  });
  it('Go filepath.Match for COPY wildcards agrees on the same table (single components)', () => {
    for (const [pattern, text, want] of SINGLE) {
      if (pattern.includes('**') || text.includes('/') || pattern.includes('/')) continue;
      expect(goMatchRegExp(pattern).test(text), `${pattern} vs ${text}`).toBe(want);
    }
  });
});

describe('.dockerignore files', () => {
  it('reads comments, trims, cleans, drops a leading slash, keeps exceptions', () => {
    const ps = parseDockerignore('# comment\n  /foo/../bar/  \n!/bar/keep\n\n./baz//x\n');
    expect(ps.map((p) => (p.exclusion ? '!' : '') + p.text)).toEqual(['bar', '!bar/keep', 'baz/x']);
    const m = new PatternMatcher(ps);
    expect(m.matches('bar/x')).toBe(true);
    expect(m.matches('bar/keep')).toBe(false);
    expect(m.matches('baz/x/y')).toBe(true);
    expect(() => parseDockerignore('!\n')).toThrow(/illegal exclusion pattern/);
    expect(compilePatterns(['#notacomment']).length).toBe(1);
  });

  it('prefers <Dockerfile>.dockerignore over the context .dockerignore', async () => {
    const dir = await mkdtemp(path.join(tmpRoot, 'ign-'));
    await mkdir(path.join(dir, 'ctx'));
    await writeFile(path.join(dir, 'ctx/.dockerignore'), 'foo\n');
    await writeFile(path.join(dir, 'app.Dockerfile.dockerignore'), 'bar\n');
    const a = await openContext({ dir: path.join(dir, 'ctx'), dockerfile: path.join(dir, 'app.Dockerfile') });
    expect(a.ignoreFile).toBe(path.join(dir, 'app.Dockerfile.dockerignore'));
    expect(a.isIgnored('bar')).toBe(true);
    expect(a.isIgnored('foo')).toBe(false);
    const b = await openContext({ dir: path.join(dir, 'ctx'), dockerfile: path.join(dir, 'other.Dockerfile') });
    expect(b.isIgnored('foo')).toBe(true);
    expect(b.isIgnored('.')).toBe(false);
    await expect(openContext({ dir: path.join(dir, 'nope') })).rejects.toThrow(/not found/);
  });

  it('hides an ignored directory unless an exception can re-include something below it', async () => {
    const dir = await mkdtemp(path.join(tmpRoot, 'hide-'));
    await writeFile(path.join(dir, '.dockerignore'), 'node_modules\nbuild\n!build/keep.txt\n');
    const c = await openContext({ dir });
    expect(c.isHidden('node_modules', true)).toBe(true);
    expect(c.isHidden('build', true)).toBe(false);
    expect(c.isHidden('build/other', false)).toBe(true);
    expect(c.isHidden('build/keep.txt', false)).toBe(false);
  });
});

describe('resolveInRoot', () => {
  it('clamps .. and absolute symlinks at the root', async () => {
    const root = await mkdtemp(path.join(tmpRoot, 'root-'));
    await mkdir(path.join(root, 'a/b'), { recursive: true });
    await symlink('/etc', path.join(root, 'a/abs'));
    await symlink('../../../../..', path.join(root, 'a/b/up'));
    await symlink('loop2', path.join(root, 'loop1'));
    await symlink('loop1', path.join(root, 'loop2'));
    expect((await resolveInRoot(root, '../../a/b')).rel).toBe('a/b');
    expect(await resolveInRoot(root, 'a/abs/passwd')).toEqual({ rel: 'etc/passwd', abs: path.join(root, 'etc/passwd'), exists: false });
    expect((await resolveInRoot(root, 'a/b/up/a')).rel).toBe('a');
    expect((await resolveInRoot(root, 'a/abs', { followFinal: false })).rel).toBe('a/abs');
    await expect(resolveInRoot(root, 'loop1/x')).rejects.toThrow(/too many levels/);
    expect(cleanPath('/a/../../b/./c/')).toBe('/b/c');
    expect(cleanPath('a/../..')).toBe('..');
  });
});
