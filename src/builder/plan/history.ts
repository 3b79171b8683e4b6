import type { HealthConfig } from '../../oci/types.js';
import { goQuote } from '../../parser/dump.js';

/**
 * `created_by` strings exactly as BuildKit's dockerfile2llb writes them (Go `fmt` verbs on Go
 * values), and the ` # buildkit` suffix of layer-creating steps.
 */

export { goQuote };

/** Go's `%q` of a `[]string`: `["a" "b"]`. */
export function goQuoteList(list: readonly string[]): string {
  return `[${list.map(goQuote).join(' ')}]`;
}

/** Go's `%v` of a `[]string`: `[a b]`. */
export function goList(list: readonly string[]): string {
  return `[${list.join(' ')}]`;
}

/** Go's `time.Duration.String()` for a count of nanoseconds: `1m30s`, `1.5s`, `500ms`, `0s`. */
export function goDuration(ns: number): string {
  if (ns === 0) return '0s';
  const neg = ns < 0;
  let u = BigInt(Math.abs(Math.trunc(ns)));
  let out: string;
  if (u < 1_000_000_000n) {
    // sub-second: ns, µs or ms with a fraction
    let unit: string;
    let prec: number;
    if (u < 1000n) return `${neg ? '-' : ''}${u}ns`;
    if (u < 1_000_000n) { unit = 'µs'; prec = 3; } else { unit = 'ms'; prec = 6; }
    out = fmtFrac(u, prec) + unit;
  } else {
    const secPart = fmtFrac(u % 60_000_000_000n, 9) + 's';
    u /= 60_000_000_000n; // minutes
    if (u > 0n) {
      const m = u % 60n;
      u /= 60n;
      out = (u > 0n ? `${u}h${m}m` : `${m}m`) + secPart;
    } else out = secPart;
  }
  return (neg ? '-' : '') + out;
}

/** `v / 10^prec` with the fraction's trailing zeros dropped. */
function fmtFrac(v: bigint, prec: number): string {
  const d = 10n ** BigInt(prec);
  const whole = v / d;
  let frac = (v % d).toString().padStart(prec, '0').replace(/0+$/, '');
  return frac ? `${whole}.${frac}` : `${whole}`;
}

/** `HEALTHCHECK %+v` of BuildKit's HealthcheckConfig struct. */
export function healthcheckHistory(h: HealthConfig): string {
  return `HEALTHCHECK {Test:${goList(h.Test ?? [])} Interval:${goDuration(h.Interval ?? 0)} Timeout:${goDuration(h.Timeout ?? 0)} StartPeriod:${goDuration(h.StartPeriod ?? 0)} StartInterval:${goDuration(h.StartInterval ?? 0)} Retries:${h.Retries ?? 0}}`;
}

/**
 * BuildKit's `commitToHistory`: steps that commit an LLB state (RUN, COPY, ADD) get ` # buildkit`;
 * WORKDIR makes a layer without the suffix.
 */
export function historyEntry(createdBy: string, withLayer: boolean, suffix = withLayer): { created_by: string; empty_layer: boolean; comment: string } {
  return { created_by: suffix ? `${createdBy} # buildkit` : createdBy, empty_layer: !withLayer, comment: 'buildkit.dockerfile.v0' };
}

/**
 * BuildKit's `runCommandString`: `|<n> k=v… args…` when the stage declared ARGs (one entry per
 * key, first position, last value; the value seen in the environment wins), else just the args.
 */
export function runCommandString(args: readonly string[], buildArgs: readonly { key: string; value?: string }[], env: (key: string) => string | undefined): string {
  const entries: string[] = [];
  const index = new Map<string, number>();
  for (const a of buildArgs) {
    const v = env(a.key) ?? a.value ?? '';
    const i = index.get(a.key);
    if (i !== undefined) entries[i] = `${a.key}=${v}`;
    else {
      index.set(a.key, entries.length);
      entries.push(`${a.key}=${v}`);
    }
  }
  const prefix = entries.length > 0 ? [`|${entries.length}`, ...entries] : [];
  return [...prefix, ...args].join(' ');
}
