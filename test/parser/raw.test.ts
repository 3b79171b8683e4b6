import { describe, expect, it } from 'vitest';
import { formatDiagnostic } from '../../src/parser/diagnostics.js';
import { dumpBuildkit, goQuote } from '../../src/parser/dump.js';
import { DockerfileLineParser } from '../../src/parser/grammar.js';
import { getLexer } from '../../src/parser/lexer.js';
import { parseRaw } from '../../src/parser/raw.js';

const dump = (text: string): string => dumpBuildkit(parseRaw(text).raw);
const errors = (text: string) => parseRaw(text).diagnostics.filter((d) => d.severity === 'error');
const slice = (text: string, r: { start: { offset: number }; end: { offset: number } }): string =>
  text.slice(r.start.offset, r.end.offset);

describe('grammar and lexer definitions', () => {
  it('pass Chevrotain’s grammar validations', () => {
    expect(() => new DockerfileLineParser({ validate: true })).not.toThrow();
  });
  it('pass the lexer validations, with first-char optimizations', () => {
    const lexer = getLexer({ validate: true });
    expect(lexer.lexerDefinitionErrors).toEqual([]);
  });
});

describe('goQuote (Go strconv.Quote)', () => {
  it.each([
    ['abc', '"abc"'],
    ['a"b\\c', '"a\\"b\\\\c"'],
    ['\x00\x07\b\f\n\r\t\v\x1b\x7f', '"\\x00\\a\\b\\f\\n\\r\\t\\v\\x1b\\x7f"'],
    ['♥ 안녕 é', '"♥ 안녕 é"'],
    ['\u00a0\u00ad\u2028\ufeff', '"\\u00a0\\u00ad\\u2028\\ufeff"'],
    ['😀', '"😀"'],
    ['\u{e0001}', '"\\U000e0001"'],
    ['\ud800x', '"\ufffdx"'],
  ])('%j', (input, want) => {
    expect(goQuote(input)).toBe(want);
  });
});

describe('parseRaw', () => {
  it('splits keyword, flags and rest and gives their ranges', () => {
    const text = 'FROM alpine AS b\nRUN --mount=type=cache,target=/x \\\n  --network=none echo hi\n';
    const { raw, diagnostics } = parseRaw(text);
    expect(diagnostics).toEqual([]);
    const run = raw.instructions[1]!;
    expect(run.keyword).toBe('RUN');
    expect(run.flags.map((f) => f.text)).toEqual(['--mount=type=cache,target=/x', '--network=none']);
    expect(run.flags.map((f) => slice(text, f.range))).toEqual(['--mount=type=cache,target=/x', '--network=none']);
    expect(run.flags[1]!.range.start).toEqual({ line: 3, column: 3, offset: text.indexOf('--network') });
    expect(run.args).toEqual(['echo hi']);
    expect(run.rest).toBe('echo hi');
    expect(slice(text, run.restRange)).toBe('echo hi');
    expect(run.original).toBe('RUN --mount=type=cache,target=/x   --network=none echo hi');
    expect(slice(text, run.keywordRange)).toBe('RUN');
    expect(slice(text, run.range)).toBe('RUN --mount=type=cache,target=/x \\\n  --network=none echo hi');
    expect([run.startLine, run.endLine]).toEqual([2, 3]);
    expect([raw.startLine, raw.endLine]).toEqual([1, 3]);
  });

  it('takes flags on every instruction, removes quotes and escapes in them, and stops at --', () => {
    expect(dump('CMD --x="a b" --y=c\\ d ls\nCOPY -- --a b\nHEALTHCHECK --interval=5s CMD ["a"]\n')).toBe(
      '(cmd ["--x=a b" "--y=c d"] "ls")\n(copy "--a" "b")\n(healthcheck ["--interval=5s"] "CMD" "a")\n',
    );
  });

  it('keeps non-ASCII flags intact in the AST and dumps them as BuildKit’s byte-wise parser does', () => {
    const { raw } = parseRaw('COPY --chown=jürgen a b\n');
    expect(raw.instructions[0]!.flags[0]!.text).toBe('--chown=jürgen');
    expect(dumpBuildkit(raw)).toBe('(copy ["--chown=jÃ¼rgen"] "a" "b")\n');
  });

  it('applies the per-instruction argument rules', () => {
    expect(
      dump(
        [
          'FROM  a  AS   b',
          'ENV A=1 B="x y"',
          'ENV LEGACY some value',
          'LABEL "k"=v',
          'ARG x="1 2" y',
          'EXPOSE 80  443',
          'VOLUME ["/a", "/b"]',
          'VOLUME /c /d',
          'CMD ["a", "b c"]',
          "CMD ['not', 'json']",
          'ENTRYPOINT []',
          'USER  me  ',
          'ONBUILD COPY --from=x a b',
          'ONBUILD',
          'FOO bar',
          'RUN',
          '',
        ].join('\n'),
      ),
    ).toBe(
      [
        '(from "a" "AS" "b")',
        '(env "A" "1" "=" "B" "\\"x y\\"" "=")',
        '(env "LEGACY" "some value" "")',
        '(label "\\"k\\"" "v" "=")',
        '(arg "x=\\"1 2\\"" "y")',
        '(expose "80" "443")',
        '(volume "/a" "/b")',
        '(volume "/c" "/d")',
        '(cmd "a" "b c")',
        "(cmd \"['not', 'json']\")",
        '(entrypoint)',
        '(user "me")',
        '(onbuild (copy ["--from=x"] "a" "b"))',
        '(onbuild)',
        '(foo "")',
        '(run)',
        '',
      ].join('\n'),
    );
  });

  it('marks JSON form and gives ONBUILD a nested instruction', () => {
    const { raw } = parseRaw('CMD ["a"]\nCMD a\nONBUILD RUN ["x"]\n');
    expect(raw.instructions.map((i) => i.json)).toEqual([true, false, false]);
    const child = raw.instructions[2]!.child!;
    expect([child.keyword, child.json, child.args]).toEqual(['RUN', true, ['x']]);
    expect(child.keywordRange.start.column).toBe(9);
  });

  it('joins continuation lines without a separator, drops comments inside them and warns on empty lines', () => {
    const text = 'RUN echo hello\\\n  world \\\n# a comment\n\n   && done\nFROM x\n';
    const { raw, diagnostics } = parseRaw(text);
    expect(raw.instructions[0]!.args).toEqual(['echo hello  world    && done']);
    expect([raw.instructions[0]!.startLine, raw.instructions[0]!.endLine]).toEqual([1, 5]);
    expect(diagnostics).toHaveLength(1);
    expect(diagnostics[0]).toMatchObject({ code: 'empty-continuation', severity: 'warning' });
    expect(diagnostics[0]!.message).toBe('Empty continuation line found in: RUN echo hello  world    && done');
    expect(diagnostics[0]!.range.start.line).toBe(4);
  });

  it('does not continue a line ending in an escaped escape, and ends a continuation at EOF', () => {
    expect(dump('RUN a \\\\\nRUN b\\')).toBe('(run "a \\\\\\\\")\n(run "b")\n');
  });

  it('handles CRLF line endings and a byte-order mark', () => {
    const text = '\ufeff# escape=`\r\nFROM x\r\nRUN a `\r\n  b\r\n';
    const { raw, diagnostics } = parseRaw(text);
    expect(diagnostics).toEqual([]);
    expect(raw.escapeChar).toBe('`');
    expect(raw.directives).toEqual([{ name: 'escape', value: '`', range: expect.anything() }]);
    expect(dumpBuildkit(raw)).toBe('(from "x")\n(run "a   b")\n');
    expect(raw.instructions[0]!.range.end.column).toBe(7); // before the \r
  });

  it('reads the parser directives at the top only, case-insensitively', () => {
    const { raw } = parseRaw('#  Syntax = docker/dockerfile:1\n# CHECK=skip=all\n# escape=`\n\n# escape=\\\nFROM x\n');
    expect(raw.directives.map((d) => [d.name, d.value])).toEqual([
      ['syntax', 'docker/dockerfile:1'],
      ['check', 'skip=all'],
      ['escape', '`'],
    ]);
    expect(raw.escapeChar).toBe('`');
    const late = parseRaw('# hello\n# escape=`\nRUN a `\nb\n');
    expect(late.raw.directives).toEqual([]);
    expect(dumpBuildkit(late.raw)).toBe('(run "a `")\n(b "")\n');
  });

  it('reports duplicate directives and invalid escape tokens', () => {
    expect(errors('# escape=`\n# escape=`\nFROM x\n').map((d) => [d.code, d.message, d.range.start.line])).toEqual([
      ['duplicate-directive', 'only one escape parser directive can be used', 2],
    ]);
    expect(errors('# escape=``\nFROM x\n').map((d) => d.message)).toEqual([
      "invalid escape token '``' does not match ` or \\",
    ]);
  });

  it('reads heredoc bodies, several on one line, quoted and chomped, also under ONBUILD', () => {
    const text = [
      'COPY <<A <<-"B" /dest',
      'a $x',
      'A',
      '\tb',
      '\tB',
      'ONBUILD RUN 3<<EOF',
      '# not a comment',
      'EOF',
      'RUN <<EOF',
      'EOF',
      '',
    ].join('\n');
    const { raw, diagnostics } = parseRaw(text);
    expect(diagnostics).toEqual([]);
    expect(dumpBuildkit(raw)).toBe('(copy "<<A" "<<-\\"B\\"" "/dest")\n(onbuild (run "3<<EOF"))\n(run "<<EOF")\n');
    const [copy, onbuild] = raw.instructions;
    expect(copy!.heredocs.map((h) => [h.name, h.content, h.expand, h.chomp])).toEqual([
      ['A', 'a $x\n', true, false],
      ['B', '\tb\n', false, true],
    ]);
    expect(slice(text, copy!.heredocs[1]!.range)).toBe('\tb\n\tB');
    expect([copy!.startLine, copy!.endLine]).toEqual([1, 5]);
    expect(onbuild!.child!.heredocs).toEqual(onbuild!.heredocs);
    expect(onbuild!.heredocs[0]).toMatchObject({ name: 'EOF', fileDescriptor: 3, content: '# not a comment\n' });
  });

  it('reports an unterminated heredoc', () => {
    const errs = errors('FROM x\nRUN <<EOF\necho\n');
    expect(errs.map((d) => [d.code, d.message, d.range.start.line])).toEqual([['unterminated-heredoc', 'unterminated heredoc', 2]]);
    expect(errors('RUN <<EOF').map((d) => d.message)).toEqual(['unterminated heredoc']);
  });

  it('reports ENV/LABEL errors and JSON arrays of non-strings', () => {
    expect(errors('ENV PATH\n').map((d) => d.message)).toEqual(['ENV must have two arguments']);
    expect(errors('LABEL a=b c\n').map((d) => d.message)).toEqual([
      'Syntax error - can\'t find = in "c". Must be of the form: name=value',
    ]);
    expect(errors('CMD ["a", 1]\n').map((d) => [d.code, d.message])).toEqual([
      ['json-not-strings', 'when using JSON array syntax, arrays must be comprised of strings only'],
    ]);
    // a number Go cannot decode makes the JSON invalid: shell form, no error
    expect(dump('CMD ["a", 1e999]\n')).toBe('(cmd "[\\"a\\", 1e999]")\n');
  });

  it('reports every error in the file and keeps the valid instructions', () => {
    const text = 'FROM x\nENV A\nRUN ["a", {}]\nLABEL x=y z\nRUN ok\n';
    const { raw, diagnostics } = parseRaw(text, { file: 'Dockerfile.test' });
    expect(diagnostics.map((d) => [d.range.start.line, d.code, d.file])).toEqual([
      [2, 'missing-value', 'Dockerfile.test'],
      [3, 'json-not-strings', 'Dockerfile.test'],
      [4, 'missing-equals', 'Dockerfile.test'],
    ]);
    expect(raw.instructions.map((i) => i.keyword)).toEqual(['FROM', 'RUN']);
    expect(formatDiagnostic(diagnostics[1]!, text)).toContain('Dockerfile.test:3:5: error: when using JSON array syntax');
  });

  it('rejects empty and comment-only files', () => {
    for (const text of ['', '\n\n', '# just a comment\n  \n']) {
      expect(errors(text).map((d) => [d.code, d.message])).toEqual([['no-instructions', 'file with no instructions']]);
    }
  });

  it('rejects lines of 64 KiB and more (in UTF-8 bytes), and accepts 65535 bytes', () => {
    const ok = `RUN ${'x'.repeat(65535 - 4)}\nRUN b\n`;
    expect(errors(ok)).toEqual([]);
    const long = `FROM x\nRUN ${'x'.repeat(65536 - 4)}\nRUN b\n`;
    expect(errors(long).map((d) => [d.code, d.message, d.range.start.line])).toEqual([
      ['line-too-long', 'dockerfile line greater than max allowed size of 65535', 2],
    ]);
    const wide = `FROM x\nRUN ${'é'.repeat(32766)}\n`; // 4 + 65532 bytes
    expect(errors(wide).map((d) => d.code)).toEqual(['line-too-long']);
  });

  it('never throws, whatever the input', () => {
    let seed = 7;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const alphabet = ['RUN ', 'COPY ', 'ONBUILD ', 'ENV ', '<<', '-', 'EOF', '\\', '`', '\n', '\r', ' ', '\t', '"', "'", '[', ']', '#', '$', '{', '}', '=', '--', 'x', '\u00a0', '\ud800', '\ufeff'];
    for (let i = 0; i < 2000; i++) {
      let text = '';
      const len = rnd(40);
      for (let j = 0; j < len; j++) text += alphabet[rnd(alphabet.length)];
      const result = parseRaw(text);
      expect(result.diagnostics.filter((d) => d.code === 'internal-error'), JSON.stringify(text)).toEqual([]);
      expect(() => dumpBuildkit(result.raw)).not.toThrow();
    }
  });
});
