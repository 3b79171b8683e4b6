import { arch as osArch, platform as osPlatform } from 'node:os';
import { TsbuildError } from '../errors.js';
import type { Descriptor, Platform } from './types.js';

export class InvalidPlatformError extends TsbuildError {
  constructor(value: string, reason: string) {
    super('TSBUILD_INVALID_PLATFORM', `invalid platform ${JSON.stringify(value)}: ${reason}`);
  }
}

const ARCH_ALIASES: Readonly<Record<string, string>> = {
  x86_64: 'amd64',
  'x86-64': 'amd64',
  x64: 'amd64',
  aarch64: 'arm64',
  armhf: 'arm',
  armel: 'arm',
  i386: '386',
  i486: '386',
  i586: '386',
  i686: '386',
  ia32: '386',
  ppc64el: 'ppc64le',
};

/**
 * Normalizes a platform the way containerd does: architecture aliases (`x86_64` → `amd64`,
 * `aarch64` → `arm64`, `armhf` → `arm/v7`, `armel` → `arm/v6`), variants with a `v` prefix,
 * `arm` defaulting to `v7`, and `arm64/v8` written as plain `arm64` (v8 is its only baseline).
 */
export function normalizePlatform(p: Platform): Platform {
  const os = p.os.toLowerCase() === 'macos' ? 'darwin' : p.os.toLowerCase();
  const rawArch = p.architecture.toLowerCase();
  const architecture = ARCH_ALIASES[rawArch] ?? rawArch;
  let variant = p.variant?.toLowerCase();
  if (variant !== undefined && /^\d+$/.test(variant)) variant = `v${variant}`;
  if (rawArch === 'armel' && variant === undefined) variant = 'v6';
  if (architecture === 'arm' && (variant === undefined || variant === '')) variant = 'v7';
  if (architecture === 'arm64' && (variant === 'v8' || variant === '')) variant = undefined;
  if (architecture === 'amd64' && (variant === 'v1' || variant === '')) variant = undefined;
  const out: { -readonly [K in keyof Platform]: Platform[K] } = { architecture, os };
  if (variant) out.variant = variant;
  if (p['os.version'] !== undefined) out['os.version'] = p['os.version'];
  if (p['os.features'] !== undefined) out['os.features'] = p['os.features'];
  return out;
}

/** Parses `os/arch[/variant]` (also bare `arch`, taken as linux) and normalizes it. */
export function parsePlatform(value: string): Platform {
  const parts = value.trim().split('/');
  if (parts.some((x) => x === '')) throw new InvalidPlatformError(value, 'want os/arch[/variant]');
  if (parts.length > 3) throw new InvalidPlatformError(value, 'too many components; want os/arch[/variant]');
  if (!parts.every((x) => /^[A-Za-z0-9_.-]+$/.test(x))) throw new InvalidPlatformError(value, 'components may hold only letters, digits, "_", "." and "-"');
  if (parts.length === 1) {
    const only = parts[0]!.toLowerCase();
    if (KNOWN_OS.has(only)) return normalizePlatform({ os: only, architecture: hostPlatform().architecture });
    return normalizePlatform({ os: 'linux', architecture: only });
  }
  const [os, architecture, variant] = parts as [string, string, string?];
  return normalizePlatform(variant === undefined ? { os, architecture } : { os, architecture, variant });
}

/** Operating systems Go knows (a bare one in `--platform` takes the host's architecture). */
export const KNOWN_OS: ReadonlySet<string> = new Set(['linux', 'windows', 'darwin', 'freebsd', 'netbsd', 'openbsd', 'solaris', 'illumos', 'aix', 'android', 'ios', 'plan9', 'dragonfly', 'js', 'wasip1']);

/** `os/arch[/variant]`, normalized. */
export function formatPlatform(p: Platform): string {
  const n = normalizePlatform(p);
  return n.variant ? `${n.os}/${n.architecture}/${n.variant}` : `${n.os}/${n.architecture}`;
}

/** The platform this process runs on (linux/amd64, linux/arm64, …). */
export function hostPlatform(): Platform {
  const os = osPlatform() === 'win32' ? 'windows' : osPlatform();
  return normalizePlatform({ os, architecture: osArch() });
}

/** The ordered list of variants a CPU of `variant` can run, best first (arm only). */
function compatibleVariants(architecture: string, variant: string | undefined): (string | undefined)[] {
  if (architecture === 'arm') {
    const n = Number((variant ?? 'v7').slice(1));
    const out: string[] = [];
    for (let v = n; v >= 5; v--) out.push(`v${v}`);
    return out;
  }
  if (architecture === 'amd64') {
    const n = variant ? Number(variant.slice(1)) : 1;
    const out: (string | undefined)[] = [];
    for (let v = n; v >= 2; v--) out.push(`v${v}`);
    out.push(undefined);
    return out;
  }
  return [variant];
}

/**
 * How well `have` serves a request for `want`: a positive score (higher is better) or 0 when it
 * does not run there. Exact matches score highest; an arm/v7 request also takes v6 and v5, an
 * amd64/v3 request also takes v2 and v1.
 */
export function platformScore(want: Platform, have: Platform): number {
  const w = normalizePlatform(want);
  const h = normalizePlatform(have);
  if (w.os !== h.os || w.architecture !== h.architecture) return 0;
  if (w['os.version'] !== undefined && h['os.version'] !== undefined && w['os.version'] !== h['os.version']) return 0;
  const order = compatibleVariants(w.architecture, w.variant);
  const i = order.indexOf(h.variant);
  if (i < 0) return 0;
  return 100 - i;
}

/** True when an image built for `have` runs on `want`. */
export function platformMatches(want: Platform, have: Platform): boolean {
  return platformScore(want, have) > 0;
}

/**
 * The best manifest of an index for `want` (default: the host), or undefined. Entries without a
 * platform and attestation manifests (`vnd.docker.reference.type`) are never chosen.
 */
export function selectManifest(manifests: readonly Descriptor[], want: Platform = hostPlatform()): Descriptor | undefined {
  let best: Descriptor | undefined;
  let bestScore = 0;
  for (const d of manifests) {
    if (!d.platform) continue;
    if (d.annotations?.['vnd.docker.reference.type'] !== undefined) continue;
    const s = platformScore(want, d.platform);
    if (s > bestScore) {
      best = d;
      bestScore = s;
    }
  }
  return best;
}
