import { describe, expect, test } from 'vitest';
import { goDuration, goQuote, goQuoteList, healthcheckHistory, runCommandString } from '../../../src/builder/plan/history.js';

describe('Go formatting used in history', () => {
  test.each([
    [0, '0s'],
    [1, '1ns'],
    [1500, '1.5µs'],
    [1_000_000, '1ms'],
    [1_500_000_000, '1.5s'],
    [30_000_000_000, '30s'],
    [90_000_000_000, '1m30s'],
    [3_600_000_000_000, '1h0m0s'],
    [3_723_500_000_000, '1h2m3.5s'],
  ])('duration %d → %s', (ns, s) => expect(goDuration(ns)).toBe(s));

  test('strconv.Quote', () => {
    expect(goQuote('a "b" \\ c')).toBe('"a \\"b\\" \\\\ c"');
    expect(goQuote('tab\there\n')).toBe('"tab\\there\\n"');
    expect(goQuote('\x00\x7f')).toBe('"\\x00\\x7f"');
    expect(goQuote('héllo ✓')).toBe('"héllo ✓"');
    expect(goQuoteList(['/bin/sh', '-c', 'echo "hi"'])).toBe('["/bin/sh" "-c" "echo \\"hi\\""]');
  });

  test('HEALTHCHECK %+v', () => {
    expect(healthcheckHistory({ Test: ['CMD', 'curl', '-f', 'x'], Interval: 5e9, Retries: 2 })).toBe(
      'HEALTHCHECK {Test:[CMD curl -f x] Interval:5s Timeout:0s StartPeriod:0s StartInterval:0s Retries:2}',
    );
  });

  test('runCommandString: |n with one entry per key, first position, last value, env wins', () => {
    const env = new Map([['foo', 'bar2'], ['bar', '123']]);
    expect(
      runCommandString(['/bin/sh', '-c', 'ls /etc/'], [{ key: 'foo', value: 'bar' }, { key: 'bar', value: '123' }, { key: 'foo', value: 'bar2' }], (k) => env.get(k)),
    ).toBe('|2 foo=bar2 bar=123 /bin/sh -c ls /etc/');
    expect(runCommandString(['/bin/sh', '-c', 'echo hi'], [], () => undefined)).toBe('/bin/sh -c echo hi');
    expect(runCommandString(['x'], [{ key: 'U' }], () => undefined)).toBe('|1 U= x');
  });
});
