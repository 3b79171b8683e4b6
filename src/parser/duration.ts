/**
 * Go's `time.ParseDuration`, for HEALTHCHECK flags: `1h30m`, `1.5s`, `300ms`, `-2us`.
 * Returns nanoseconds, or Go's error message. Values past 2^53 ns (about 104 days) lose precision.
 */
export function parseGoDuration(orig: string): { ns: number } | { error: string } {
  const quoted = JSON.stringify(orig);
  const invalid = { error: `time: invalid duration ${quoted}` };
  let s = orig;
  let neg = false;
  if (s !== '' && (s[0] === '-' || s[0] === '+')) {
    neg = s[0] === '-';
    s = s.slice(1);
  }
  if (s === '0') return { ns: 0 };
  if (s === '') return invalid;
  let total = 0;
  while (s !== '') {
    if (!(s[0] === '.' || (s[0]! >= '0' && s[0]! <= '9'))) return invalid;
    const intPart = /^[0-9]*/.exec(s)![0];
    s = s.slice(intPart.length);
    let frac = '';
    if (s[0] === '.') {
      s = s.slice(1);
      frac = /^[0-9]*/.exec(s)![0];
      s = s.slice(frac.length);
    }
    if (intPart === '' && frac === '') return invalid;
    const unit = /^[^0-9.]*/.exec(s)![0];
    s = s.slice(unit.length);
    if (unit === '') return { error: `time: missing unit in duration ${quoted}` };
    const scale = UNITS[unit];
    if (scale === undefined) return { error: `time: unknown unit ${JSON.stringify(unit)} in duration ${quoted}` };
    const value = Number(intPart || '0') * scale + (frac ? Number(`0.${frac}`) * scale : 0);
    total += value;
    if (total > 9223372036854775807) return invalid;
  }
  return { ns: neg ? -Math.trunc(total) : Math.trunc(total) };
}

const UNITS: Readonly<Record<string, number>> = {
  ns: 1,
  us: 1e3,
  'µs': 1e3,
  'μs': 1e3,
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};

/** Go's `time.Duration.String()` for the few values messages need (`1ms`). */
export function formatGoDuration(ns: number): string {
  if (ns === 0) return '0s';
  if (ns < 1e3) return `${ns}ns`;
  if (ns < 1e6) return `${ns / 1e3}µs`;
  if (ns < 1e9) return `${ns / 1e6}ms`;
  return `${ns / 1e9}s`;
}
