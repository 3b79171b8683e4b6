import { hostPlatform, KNOWN_OS, normalizePlatform, parsePlatform as ociParsePlatform } from '../../oci/platform.js';
import type { Platform } from '../../oci/types.js';

/** A parsed platform, `os/arch[/variant]` (containerd's `platforms` package, the parts we need). */
export interface PlatformSpec {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string;
}

/**
 * Parses `os`, `arch`, `os/arch` or `os/arch/variant`, normalized like containerd's
 * `platforms.Parse` (`x86_64` → `amd64`, `aarch64` → `arm64`, `arm` → `arm/v7`); a bare OS takes
 * the build platform's architecture. Throws on an empty or malformed specifier.
 */
export function parsePlatform(text: string, host: PlatformSpec = defaultBuildPlatform()): PlatformSpec {
  const parts = text.trim().toLowerCase().split('/');
  if (parts.length === 1 && KNOWN_OS.has(parts[0]!)) {
    return parts[0] === host.os ? host : strip(normalizePlatform({ os: parts[0]!, architecture: host.architecture }));
  }
  try {
    return strip(ociParsePlatform(parts.join('/')));
  } catch {
    throw new Error(`"${text}": invalid platform specifier, expected os/arch[/variant]`);
  }
}

function strip(p: Platform): PlatformSpec {
  return p.variant ? { os: p.os, architecture: p.architecture, variant: p.variant } : { os: p.os, architecture: p.architecture };
}

export function formatPlatform(p: PlatformSpec): string {
  return p.variant ? `${p.os}/${p.architecture}/${p.variant}` : `${p.os}/${p.architecture}`;
}

/** The host's platform, always linux (the only OS tsbuild builds on). */
export function defaultBuildPlatform(): PlatformSpec {
  return strip({ ...hostPlatform(), os: 'linux' });
}

/** The predefined platform ARGs (BuildKit's `defaultArgs`), in BuildKit's order. */
export function platformArgs(build: PlatformSpec, target: PlatformSpec, targetStage: string): [string, string][] {
  return [
    ['BUILDPLATFORM', formatPlatform(build)],
    ['BUILDOS', build.os],
    ['BUILDOSVERSION', ''],
    ['BUILDARCH', build.architecture],
    ['BUILDVARIANT', build.variant ?? ''],
    ['TARGETPLATFORM', formatPlatform(target)],
    ['TARGETOS', target.os],
    ['TARGETOSVERSION', ''],
    ['TARGETARCH', target.architecture],
    ['TARGETVARIANT', target.variant ?? ''],
    ['TARGETSTAGE', targetStage],
  ];
}
