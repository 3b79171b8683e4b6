import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { TsbuildError } from '../../src/errors.js';
import { emptyEnv, envFromList, envFromMap, goQuote, processWord, processWords, ShellExpansionError } from '../../src/parser/shell.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const dir = path.resolve(repoRoot, '../shared/conformance/buildkit-shell');
const readJson = <T>(name: string): T => JSON.parse(readFileSync(path.join(dir, name), 'utf8')) as T;

interface EnvVarCase {
  line: number;
  platform: 'A' | 'U' | 'W';
  input: string;
  expected?: string;
  expectError?: boolean;
}
interface WordsCase {
  line: number;
  input: string;
  env: Record<string, string>;
  expectedWords?: string[];
  expectError?: boolean;
}
interface MatchCase {
  source: string;
  input: string;
  env: Record<string, string>;
  expected?: string;
  matched?: string[];
  unmatched?: string[];
  expectError?: boolean;
  errorContains?: string;
}

const envVar = readJson<{ escapeToken: string; env: Record<string, string>; cases: EnvVarCase[] }>('envVarTest.json');
const words = readJson<{ escapeToken: string; cases: WordsCase[] }>('wordsTest.json');
const matches = readJson<{ escapeToken: string; cases: MatchCase[] }>('processWordWithMatches.json');

describe('conformance files', () => {
  it('JSON envVarTest holds every vector of the raw file', () => {
    const raw = readFileSync(path.join(dir, 'envVarTest'), 'utf8').split('\n');
    const parsed: EnvVarCase[] = [];
    raw.forEach((text, i) => {
      const line = text.trim();
      if (line === '' || line.startsWith('#')) return;
      const parts = line.split('|').map((p) => p.trim());
      expect(parts).toHaveLength(3);
      const [platform, input, expected] = parts as [EnvVarCase['platform'], string, string];
      parsed.push(expected === 'error' ? { line: i + 1, platform, input, expectError: true } : { line: i + 1, platform, input, expected });
    });
    expect(envVar.cases).toEqual(parsed);
    expect(envVar.escapeToken).toBe('\\');
  });

  it('has the expected numbers of vectors', () => {
    expect(envVar.cases.length).toBeGreaterThan(200);
    expect(words.cases.length).toBeGreaterThan(20);
    expect(matches.cases.length).toBeGreaterThan(50);
  });
});

describe('envVarTest (ProcessWord)', () => {
  const linux = envFromList(Object.entries(envVar.env).map(([k, v]) => `${k}=${v}`));
  const windows = envFromList(Object.entries(envVar.env).map(([k, v]) => `${k}=${v}`), { caseInsensitive: true });
  for (const c of envVar.cases) {
    const env = c.platform === 'W' ? windows : linux;
    it(`line ${c.line} [${c.platform}] ${c.input}`, () => {
      if (c.expectError) {
        expect(() => processWord(c.input, env)).toThrow(ShellExpansionError);
      } else {
        expect(processWord(c.input, env).result).toBe(c.expected);
      }
    });
  }
});

describe('wordsTest (ProcessWords)', () => {
  for (const c of words.cases) {
    it(`line ${c.line} ${c.input}`, () => {
      const env = envFromMap(c.env);
      if (c.expectError) {
        expect(() => processWords(c.input, env)).toThrow(ShellExpansionError);
      } else {
        expect(processWords(c.input, env)).toEqual(c.expectedWords);
      }
    });
  }
});

describe('processWordWithMatches', () => {
  matches.cases.forEach((c, i) => {
    it(`#${i} ${c.source} ${c.input} ${JSON.stringify(c.env)}`, () => {
      const env = envFromMap(c.env);
      if (c.expectError) {
        let caught: unknown;
        try {
          processWord(c.input, env);
        } catch (err) {
          caught = err;
        }
        expect(caught).toBeInstanceOf(ShellExpansionError);
        if (c.errorContains !== undefined) expect((caught as Error).message).toContain(c.errorContains);
        return;
      }
      const r = processWord(c.input, env);
      expect(r.result).toBe(c.expected);
      if (c.matched) expect([...r.matched].sort()).toEqual([...c.matched].sort());
      if (c.unmatched) expect([...r.unmatched].sort()).toEqual([...c.unmatched].sort());
    });
  });
});

describe('error messages match BuildKit', () => {
  const cases: [string, Record<string, string>, string][] = [
    ['${x:?}', {}, 'failed to process "${x:?}": x: is not allowed to be unset'],
    ['${x:?}', { x: '' }, 'failed to process "${x:?}": x: is not allowed to be empty'],
    ['${x?need x}', {}, 'failed to process "${x?need x}": x: need x'],
    ['${}', {}, 'failed to process "${}": syntax error: bad substitution'],
    ['${x', {}, 'failed to process "${x": unsupported modifier (\ufffd) in substitution'],
    ['${x:-y', {}, `failed to process "\${x:-y": syntax error: missing '}'`],
    ['${x:=y}', {}, 'failed to process "${x:=y}": unsupported modifier (:=) in substitution'],
    ['${x:#y}', {}, 'failed to process "${x:#y}": unsupported modifier (:#) in substitution'],
    ['${x//y}', {}, `failed to process "\${x//y}": syntax error: missing '/' in \${}`],
    ['"abc', {}, 'failed to process "\\"abc": unexpected end of statement while looking for matching double-quote'],
    ["'abc", {}, 'failed to process "\'abc": unexpected end of statement while looking for matching single-quote'],
    ['${x#\\a}', { x: 'a' }, "failed to process \"${x#\\\\a}\": invalid pattern (\\a) in substitution: invalid escape '\\a'"],
  ];
  for (const [word, env, message] of cases) {
    it(word, () => {
      let caught: unknown;
      try {
        processWord(word, envFromMap(env));
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(ShellExpansionError);
      expect(caught).toBeInstanceOf(TsbuildError);
      const e = caught as ShellExpansionError;
      expect(e.code).toBe('TSBUILD_SHELL_EXPANSION');
      expect(e.message).toBe(message);
      expect(e.word).toBe(word);
    });
  }
});

describe('options and helpers', () => {
  it('uses the backtick as escape character', () => {
    const env = envFromMap({ A: 'x' });
    expect(processWord('a`$A b\\c', env, { escapeChar: '`' }).result).toBe('a$A b\\c');
    expect(processWord('"`"q`$A"', env, { escapeChar: '`' }).result).toBe('"q$A');
    expect(processWords('a` b c', env, { escapeChar: '`' })).toEqual(['a b', 'c']);
  });

  it('skipUnsetEnv leaves unset references as written', () => {
    const env = envFromMap({ SET: 'v' });
    const r = processWord('$SET $UNSET ${UNSET} ${UNSET:-d} ${UNSET/a/b} ${SET:-d}', env, { skipUnsetEnv: true });
    expect(r.result).toBe('v $UNSET ${UNSET} ${UNSET:-d} ${UNSET/a/b} v');
    expect([...r.unmatched]).toEqual(['UNSET']);
  });

  it('rawQuotes and rawEscapes keep quotes and escapes', () => {
    expect(processWord(`'a b' "c\\"d" e\\ f`, emptyEnv, { rawQuotes: true, rawEscapes: true }).result).toBe(`'a b' "c\\"d" e\\ f`);
    expect(processWords(`'a b' "c d"`, emptyEnv, { rawQuotes: true })).toEqual([`'a b'`, `"c d"`]);
  });

  it('skipProcessQuotes treats quotes as ordinary characters', () => {
    expect(processWords(`'a b' "c"`, emptyEnv, { skipProcessQuotes: true })).toEqual([`'a`, `b'`, `"c"`]);
  });

  it('keeps heredoc markers with their spaces as one word', () => {
    expect(processWords('cat << EOF > x', emptyEnv)).toEqual(['cat', '<< EOF', '>', 'x']);
    expect(processWords('a<b', emptyEnv)).toEqual(['a<b']);
  });

  it('splits unquoted expansions inside modifiers without losing the word prefix (documented deviation)', () => {
    const env = envFromMap({ V: 'p q' });
    expect(processWords('a${X:-b}c', env)).toEqual(['abc']);
    expect(processWords('a${X:-$V}c', env)).toEqual(['ap', 'qc']);
  });

  it('envFromList: later entries win, no "=" means empty, case-sensitive by default', () => {
    const env = envFromList(['A=1', 'B', 'A=2', 'C=x=y']);
    expect(env.get('A')).toBe('2');
    expect(env.get('B')).toBe('');
    expect(env.get('C')).toBe('x=y');
    expect(env.get('a')).toBeUndefined();
    expect(env.keys()).toEqual(['A', 'B', 'A', 'C']);
    expect(envFromList(['Path=/bin'], { caseInsensitive: true }).get('PATH')).toBe('/bin');
  });

  it('envFromMap accepts Maps and records', () => {
    expect(envFromMap(new Map([['K', 'v']])).get('K')).toBe('v');
    expect(envFromMap({ K: 'v', U: undefined }).get('U')).toBeUndefined();
    expect(envFromMap({ K: 'v' }).keys()).toEqual(['K']);
  });

  it('patterns: [ is literal, ? and * match characters, longest and shortest suffixes', () => {
    const env = envFromMap({ F: 'a[b]c.tar.gz', P: 'path/to/file.txt' });
    expect(processWord('${F#a[b]}', env).result).toBe('c.tar.gz');
    expect(processWord('${F%.*}', env).result).toBe('a[b]c.tar');
    expect(processWord('${F%%.*}', env).result).toBe('a[b]c');
    expect(processWord('${P##*/}', env).result).toBe('file.txt');
    expect(processWord('${P#*/}', env).result).toBe('to/file.txt');
    expect(processWord('${P//\\//-}', env).result).toBe('path-to-file.txt');
    expect(processWord('${P/?/X}', env).result).toBe('Xath/to/file.txt');
  });

  it('replace-all follows Go: no empty match right after a match, $0 is the match', () => {
    const env = envFromMap({ V: 'abc', E: '' });
    expect(processWord('${V//b*/-}', env).result).toBe('a-');
    expect(processWord('${V//*/-}', env).result).toBe('-');
    expect(processWord('${V//$E/-}', env).result).toBe('-a-b-c-');
    // the replacement keeps its escapes (rawEscapes), then Go's template expands $0
    expect(processWord('${V//b/<\\$0>}', env).result).toBe('a<\\b>c');
  });

  it('records matched and unmatched names from nested expansions', () => {
    const r = processWord('${A:-${B:+$C}}', envFromMap({ B: 'x' }));
    expect(r.result).toBe('');
    expect([...r.matched]).toEqual(['B']);
    expect([...r.unmatched].sort()).toEqual(['A', 'C']);
  });

  it('goQuote matches strconv.Quote', () => {
    expect(goQuote('a"b\\c\n\t\x01é한')).toBe('"a\\"b\\\\c\\n\\t\\x01é한"');
  });
});
