import { describe, expect, test } from 'vitest';
import { familiarString, formatReference, parseReference } from '../../src/oci/reference.js';
import { formatPlatform, normalizePlatform, parsePlatform, platformMatches, selectManifest } from '../../src/oci/platform.js';
import type { Descriptor } from '../../src/oci/types.js';
import { sha256 } from '../../src/oci/digest.js';

describe('parseReference', () => {
  const D = sha256('x');
  test.each([
    ['busybox', 'docker.io/library/busybox:latest'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36'],
    ['user/app', 'docker.io/user/app:latest'],
    ['index.docker.io/library/alpine:3', 'docker.io/library/alpine:3'],
    ['localhost/app', 'localhost/app:latest'],
    ['localhost:5000/a/b:v1', 'localhost:5000/a/b:v1'],
    ['127.0.0.1:5000/app', '127.0.0.1:5000/app:latest'],
    ['[::1]:5000/app:t', '[::1]:5000/app:t'],
    ['ghcr.io/o/r', 'ghcr.io/o/r:latest'],
    [`busybox@${D}`, `docker.io/library/busybox@${D}`],
    [`host:5000/app:tag@${D}`, `host:5000/app:tag@${D}`],
    ['a__b/c-d.e', 'docker.io/a__b/c-d.e:latest'],
  ])('%s → %s', (input, want) => {
    expect(formatReference(parseReference(input))).toBe(want);
  });

  test.each([
    ['', 'empty'],
    ['Busybox', 'lowercase'],
    ['busybox:', 'invalid tag'],
    ['busybox:-x', 'invalid tag'],
    ['busybox@sha256:abc', 'invalid digest'],
    ['a//b', 'invalid path component'],
    ['host:port/x', 'invalid registry host'],
    ['-x', 'invalid path component'],
    [`a/${'x'.repeat(260)}`, 'longer than 255'],
  ])('rejects %j (%s)', (input, reason) => {
    expect(() => parseReference(input)).toThrow(reason);
    try {
      parseReference(input);
    } catch (err) {
      expect((err as { code: string }).code).toBe('TSBUILD_INVALID_REFERENCE');
    }
  });

  test('familiar form', () => {
    expect(familiarString(parseReference('docker.io/library/busybox'))).toBe('busybox:latest');
    expect(familiarString(parseReference('docker.io/user/x:1'))).toBe('user/x:1');
    expect(familiarString(parseReference('localhost:5000/x:1'))).toBe('localhost:5000/x:1');
    expect(parseReference('busybox', { defaultTag: false }).tag).toBeUndefined();
  });
});

describe('platforms', () => {
  test('parse and normalize', () => {
    expect(parsePlatform('linux/arm64/v8')).toEqual({ os: 'linux', architecture: 'arm64' });
    expect(formatPlatform(parsePlatform('linux/aarch64'))).toBe('linux/arm64');
    expect(formatPlatform(parsePlatform('linux/x86_64'))).toBe('linux/amd64');
    expect(formatPlatform(parsePlatform('linux/arm'))).toBe('linux/arm/v7');
    expect(formatPlatform(parsePlatform('linux/armhf'))).toBe('linux/arm/v7');
    expect(formatPlatform(parsePlatform('linux/armel'))).toBe('linux/arm/v6');
    expect(formatPlatform(parsePlatform('linux/arm/7'))).toBe('linux/arm/v7');
    expect(formatPlatform(parsePlatform('arm64'))).toBe('linux/arm64');
    expect(normalizePlatform({ os: 'Linux', architecture: 'AMD64' })).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(() => parsePlatform('linux//x')).toThrow(/invalid platform/);
    expect(() => parsePlatform('a/b/c/d')).toThrow(/too many/);
  });

  test('matching', () => {
    expect(platformMatches(parsePlatform('linux/arm64'), { os: 'linux', architecture: 'arm64', variant: 'v8' })).toBe(true);
    expect(platformMatches(parsePlatform('linux/arm/v7'), { os: 'linux', architecture: 'arm', variant: 'v6' })).toBe(true);
    expect(platformMatches(parsePlatform('linux/arm/v6'), { os: 'linux', architecture: 'arm', variant: 'v7' })).toBe(false);
    expect(platformMatches(parsePlatform('linux/amd64'), { os: 'linux', architecture: 'arm64' })).toBe(false);
    expect(platformMatches(parsePlatform('linux/amd64'), { os: 'windows', architecture: 'amd64' })).toBe(false);
  });

  test('selectManifest picks the best entry and skips attestations', () => {
    const d = (p: string, extra: Partial<Descriptor> = {}): Descriptor => {
      const [os, architecture, variant] = p.split('/') as [string, string, string?];
      return { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(p + JSON.stringify(extra)), size: 1, platform: { os, architecture, ...(variant ? { variant } : {}) }, ...extra };
    };
    const list = [d('linux/arm/v5'), d('linux/arm/v6'), d('linux/arm/v7'), d('linux/amd64'), d('unknown/unknown', { annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } }), d('linux/arm64/v8')];
    expect(selectManifest(list, parsePlatform('linux/arm/v7'))).toBe(list[2]);
    expect(selectManifest(list.filter((x) => x !== list[2]), parsePlatform('linux/arm/v7'))).toBe(list[1]);
    expect(selectManifest(list, parsePlatform('linux/arm64'))).toBe(list[5]);
    expect(selectManifest(list, parsePlatform('linux/amd64'))).toBe(list[3]);
    expect(selectManifest(list, parsePlatform('linux/s390x'))).toBeUndefined();
    expect(selectManifest(list, parsePlatform('unknown/unknown'))).toBeUndefined();
  });
});
