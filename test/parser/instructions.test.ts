import { describe, expect, it } from 'vitest';
import type { Range } from '../../src/parser/diagnostics.js';
import { parseGoDuration } from '../../src/parser/duration.js';
import { INSTRUCTION_FLAGS, parseFlags, suggestWord } from '../../src/parser/flags.js';
import { parseMount, ramInBytes, splitCsv } from '../../src/parser/mounts.js';
import { heredocWordName } from '../../src/parser/to-ast.js';

const R: Range = { start: { line: 1, column: 1, offset: 0 }, end: { line: 1, column: 2, offset: 1 } };
const flags = (...texts: string[]) => texts.map((text) => ({ text, range: R }));

describe('parseFlags (BuildKit bflag)', () => {
  it('reads string, bool and repeated flags', () => {
    const p = parseFlags(flags('--from=build', '--link', '--exclude=*.md', '--exclude=.git', '--parents=false'), INSTRUCTION_FLAGS.COPY!);
    expect(p.diagnostics).toEqual([]);
    expect(p.values.get('from')?.value).toBe('build');
    expect(p.values.get('link')?.value).toBe('true');
    expect(p.values.get('parents')?.value).toBe('false');
    expect(p.lists.get('exclude')?.map((v) => v.value)).toEqual(['*.md', '.git']);
    expect(p.used).toEqual(['from', 'link', 'exclude', 'parents']);
  });

  it('reports unknown flags with a suggestion, duplicates, missing and bad values — all of them', () => {
    const p = parseFlags(flags('--form=x', '--from=a', '--from=b', '--chown', '--link=maybe', '--link=', '--frobnicate'), INSTRUCTION_FLAGS.COPY!);
    expect(p.diagnostics.map((d) => [d.code, d.message, d.suggestion])).toEqual([
      ['unknown-flag', 'unknown flag: --form (did you mean from?)', '--from'],
      ['duplicate-flag', 'duplicate flag specified: --from', undefined],
      ['missing-flag-value', 'missing a value on flag: --chown', undefined],
      ['invalid-flag-value', 'expecting boolean value for flag --link, not: maybe', undefined],
      ['duplicate-flag', 'duplicate flag specified: --link', undefined],
      ['unknown-flag', 'unknown flag: --frobnicate', undefined],
    ]);
  });

  it('an empty bool value is an error only with "="', () => {
    expect(parseFlags(flags('--link='), INSTRUCTION_FLAGS.COPY!).diagnostics[0]?.message).toBe('missing a value on flag: --link');
  });

  it('stops at "--"', () => {
    expect(parseFlags(flags('--', '--bogus'), {}).diagnostics).toEqual([]);
  });

  it('suggests like BuildKit: distance below 3, case style of the input', () => {
    expect(suggestWord('RNU', ['RUN', 'ARG'], false)).toBe('RUN');
    expect(suggestWord('rnu', ['RUN'], false)).toBe('run');
    expect(suggestWord('RUN', ['RUN'], false)).toBeUndefined();
    expect(suggestWord('xyzzy', ['RUN'], false)).toBeUndefined();
  });
});

describe('parseMount (RUN --mount)', () => {
  const ok = (spec: string) => {
    const r = parseMount(spec);
    if (r.error) throw new Error(r.error.message);
    const { range: _r, ...m } = r.mount;
    return m;
  };
  const err = (spec: string) => parseMount(spec).error;

  it('defaults to a read-only bind mount', () => {
    expect(ok('target=/src')).toEqual({ type: 'bind', target: '/src', readonly: true, spec: 'target=/src' });
  });

  it('reads every option with its aliases', () => {
    expect(ok('type=cache,dst=/root/.cache,id=pip,sharing=locked,mode=0755,uid=1000,gid=1000,from=base,src=/c')).toEqual({
      type: 'cache',
      target: '/root/.cache',
      id: 'pip',
      sharing: 'locked',
      mode: 0o755,
      uid: 1000,
      gid: 1000,
      from: 'base',
      source: '/c',
      readonly: false,
      spec: 'type=cache,dst=/root/.cache,id=pip,sharing=locked,mode=0755,uid=1000,gid=1000,from=base,src=/c',
    });
    expect(ok('type=tmpfs,destination=/t,size=64m')).toMatchObject({ type: 'tmpfs', target: '/t', size: 64 * 1024 * 1024, readonly: false });
    expect(ok('type=secret,id=npmrc,target=/root/.npmrc,required,env=TOKEN')).toMatchObject({ type: 'secret', id: 'npmrc', required: true, env: 'TOKEN', readonly: true });
    expect(ok('type=ssh,required=false')).toMatchObject({ type: 'ssh', required: false });
    expect(ok('type=bind,source=/x,target=/y,rw')).toMatchObject({ readonly: false });
    expect(ok('type=bind,target=/y,readwrite=true')).toMatchObject({ readonly: false });
    expect(ok('type=cache,target=/y,ro=true')).toMatchObject({ readonly: true });
    expect(ok('TYPE=CACHE,Target=/y')).toMatchObject({ type: 'cache', target: '/y' });
  });

  it('parses CSV quoting like Go', () => {
    expect(splitCsv('a,"b,c",d')).toEqual(['a', 'b,c', 'd']);
    expect(splitCsv('"x""y"')).toEqual(['x"y']);
    expect(ok('type=bind,"target=/a,b"')).toMatchObject({ target: '/a,b' });
    expect(err('target=/a"b')?.message).toBe('failed to parse csv mounts: parse error on line 1, column 10: bare " in non-quoted-field');
  });

  it('leaves fields with variables for the planner, except from', () => {
    expect(ok('type=cache,target=$HOME/.cache,uid=$UID')).toMatchObject({ type: 'cache', target: '$HOME/.cache' });
    expect(ok('type=cache,target=$HOME/.cache,uid=$UID').uid).toBeUndefined();
    expect(err('from=$BASE_IMAGE,target=/x')?.message).toBe("'from' doesn't support variable expansion, define alias stage instead");
    const expanded = parseMount('type=cache,target=$HOME/.cache,uid=$UID', {
      expand: (w) => w.replace('$HOME', '/root').replace('$UID', '42'),
    });
    expect(expanded.mount).toMatchObject({ target: '/root/.cache', uid: 42 });
  });

  it('words errors as BuildKit does, with did-you-mean', () => {
    expect(err('type=cahce,target=/x')).toMatchObject({
      code: 'unknown-mount-type',
      message: 'unsupported mount type "cahce" (did you mean cache?)',
      suggestion: 'cache',
      field: 'type=cahce',
    });
    expect(err('type=cache,taget=/x')).toMatchObject({ code: 'unknown-mount-option', message: "unexpected key 'taget' in 'taget=/x' (did you mean target?)", suggestion: 'target' });
    expect(err('type=cache,sharing=lockd')?.message).toBe('unsupported sharing value "lockd" (did you mean locked?)');
    expect(err('type=bind,required')?.message).toBe("unexpected key 'required' for mount type 'bind'");
    expect(err('type=cache,size=1m')?.message).toBe("unexpected key 'size' for mount type 'cache'");
    expect(err('type=tmpfs,size=lots')?.message).toBe('invalid value for size: lots');
    expect(err('type=cache,mode=0999')?.message).toBe('invalid value 0999 for mode');
    expect(err('type=cache,uid=-1')?.message).toBe('invalid value -1 for uid');
    expect(err('type=bind,mode=0755')?.message).toBe('mode not allowed for "bind" type mounts');
    expect(err('type=tmpfs,gid=1')?.message).toBe('gid not allowed for "tmpfs" type mounts');
    expect(err('type=cache,ro=maybe')?.message).toBe('invalid value for ro: maybe');
    expect(err('type=bind,foo')?.message).toBe("invalid field 'foo' must be a key=value pair");
    expect(err('type=secret,from=x,id=a')?.message).toBe('secret mount should not have a from');
    expect(err('type=secret,sharing=shared,id=a')?.message).toBe('secret mount should not define sharing');
    expect(err('type=secret')?.message).toBe('invalid secret mount. one of source, target required');
    expect(err('type=secret,id=a,source=b')?.message).toBe("both source and id can't be set");
    expect(err('type=bind,target=/x,sharing=shared')?.message).toBe('invalid cache sharing set for bind mount');
  });

  it('reads sizes like go-units RAMInBytes', () => {
    expect(ramInBytes('100')).toBe(100);
    expect(ramInBytes('1k')).toBe(1024);
    expect(ramInBytes('1.5g')).toBe(1.5 * 1024 ** 3);
    expect(ramInBytes('10MiB')).toBe(10 * 1024 ** 2);
    expect(ramInBytes('10 mb')).toBe(10 * 1024 ** 2);
    expect(ramInBytes('-1')).toBeUndefined();
  });
});

describe('parseGoDuration', () => {
  it('parses Go durations to nanoseconds', () => {
    expect(parseGoDuration('30s')).toEqual({ ns: 30e9 });
    expect(parseGoDuration('1h30m')).toEqual({ ns: 5400e9 });
    expect(parseGoDuration('1.5s')).toEqual({ ns: 1.5e9 });
    expect(parseGoDuration('.5ms')).toEqual({ ns: 5e5 });
    expect(parseGoDuration('-2us')).toEqual({ ns: -2000 });
    expect(parseGoDuration('2µs')).toEqual({ ns: 2000 });
    expect(parseGoDuration('0')).toEqual({ ns: 0 });
  });
  it('returns Go error messages', () => {
    expect(parseGoDuration('10')).toEqual({ error: 'time: missing unit in duration "10"' });
    expect(parseGoDuration('10x')).toEqual({ error: 'time: unknown unit "x" in duration "10x"' });
    expect(parseGoDuration('abc')).toEqual({ error: 'time: invalid duration "abc"' });
    expect(parseGoDuration('')).toEqual({ error: 'time: invalid duration ""' });
    expect(parseGoDuration('.s')).toEqual({ error: 'time: invalid duration ".s"' });
  });
});

describe('heredocWordName', () => {
  it('recognises heredoc words as BuildKit does', () => {
    expect(heredocWordName('<<EOF')).toBe('EOF');
    expect(heredocWordName('<<-EOT')).toBe('EOT');
    expect(heredocWordName('<<"EOF"')).toBe('EOF');
    expect(heredocWordName("3<<'X Y'")).toBe('X Y');
    expect(heredocWordName('/dst')).toBeUndefined();
    expect(heredocWordName('<<')).toBeUndefined();
  });
});
