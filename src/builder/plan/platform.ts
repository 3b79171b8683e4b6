import { arch as hostArch } from 'node:os';

/** A parsed platform, `os/arch[/variant]` (containerd's `platforms` package, the parts we need). */
export interface PlatformSpec {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string;
}

const KNOWN_OS = new Set(['linux', 'windows', 'darwin', 'freebsd', 'netbsd', 'openbsd', 'solaris', 'illumos', 'aix', 'android', 'ios', 'js', 'wasip1', 'plan9', 'dragonfly']);

function normalizeArch(arch: string, variant: string | undefined): { architecture: string; variant?: string } {
  switch (arch) {
    case 'i386':
      return { architecture: '386' };
    case 'x86_64':
    case 'x86-64':
    case 'amd64':
      return variant === 'v1' || variant === undefined ? { architecture: 'amd64' } : { architecture: 'amd64', variant };
    case 'aarch64':
    case 'arm64':
      return variant === '8' || variant === 'v8' || variant === undefined ? { architecture: 'arm64' } : { architecture: 'arm64', variant };
    case 'armhf':
      return { architecture: 'arm', variant: 'v7' };
    case 'armel':
      return { architecture: 'arm', variant: 'v6' };
    case 'arm': {
      const v = variant === undefined || variant === '' ? 'v7' : /^\d+$/.test(variant) ? `v${variant}` : variant;
      return { architecture: 'arm', variant: v };
    }
    default:
      return variant === undefined ? { architecture: arch } : { architecture: arch, variant };
  }
}

/**
 * Parses `os`, `arch`, `os/arch` or `os/arch/variant`, normalized like containerd's
 * `platforms.Parse` (`x86_64` → `amd64`, `aarch64` → `arm64`, `arm` → `arm/v7`). Throws on an
 * empty or malformed specifier.
 */
export function parsePlatform(text: string, host: PlatformSpec = defaultBuildPlatform()): PlatformSpec {
  const parts = text.trim().toLowerCase().split('/');
  if (parts.some((p) => p === '') || parts.length > 3) {
    throw new Error(`"${text}": invalid platform specifier, expected os/arch[/variant]`);
  }
  if (parts.length === 1) {
    const [one] = parts as [string];
    if (KNOWN_OS.has(one)) return one === host.os ? host : { os: one, ...normalizeArch(host.architecture, undefined) };
    return { os: host.os, ...normalizeArch(one, undefined) };
  }
  const [os, arch, variant] = parts as [string, string, string | undefined];
  return { os, ...normalizeArch(arch, variant) };
}

export function formatPlatform(p: PlatformSpec): string {
  return p.variant ? `${p.os}/${p.architecture}/${p.variant}` : `${p.os}/${p.architecture}`;
}

/** The host's platform: linux plus Node's `os.arch()` mapped to OCI names (`x64` → `amd64`). */
export function defaultBuildPlatform(): PlatformSpec {
  const a = hostArch();
  const map: Record<string, PlatformSpec> = {
    x64: { os: 'linux', architecture: 'amd64' },
    arm64: { os: 'linux', architecture: 'arm64' },
    arm: { os: 'linux', architecture: 'arm', variant: 'v7' },
    ia32: { os: 'linux', architecture: '386' },
    ppc64: { os: 'linux', architecture: 'ppc64le' },
    s390x: { os: 'linux', architecture: 's390x' },
    riscv64: { os: 'linux', architecture: 'riscv64' },
  };
  return map[a] ?? { os: 'linux', architecture: a };
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
