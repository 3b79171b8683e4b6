import { TsbuildError } from '../errors.js';
import { isDigest, type Digest } from './digest.js';

export class InvalidReferenceError extends TsbuildError {
  readonly reference: string;
  constructor(value: string, reason: string) {
    super('TSBUILD_INVALID_REFERENCE', `invalid reference ${JSON.stringify(value)}: ${reason}`);
    this.reference = value;
  }
}

/** A normalized docker reference: `domain/path[:tag][@digest]`. */
export interface Reference {
  /** Registry host with optional port, `docker.io` for Docker Hub. */
  readonly domain: string;
  /** Repository path inside the registry, `library/busybox` for Hub official images. */
  readonly path: string;
  readonly tag?: string;
  readonly digest?: Digest;
}

export const DOCKER_HUB_DOMAIN = 'docker.io';
const LEGACY_HUB_DOMAINS = new Set(['index.docker.io', 'registry-1.docker.io']);

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const MAX_NAME = 255;

function validDomain(domain: string): boolean {
  let host = domain;
  let port: string | undefined;
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    if (end < 0) return false;
    const ip6 = host.slice(1, end);
    if (!/^[0-9a-fA-F:.]+$/.test(ip6) || !ip6.includes(':')) return false;
    const rest = host.slice(end + 1);
    if (rest === '') return true;
    if (!rest.startsWith(':')) return false;
    return /^:\d+$/.test(rest);
  }
  const colon = host.lastIndexOf(':');
  if (colon >= 0) {
    port = host.slice(colon + 1);
    host = host.slice(0, colon);
    if (!/^\d+$/.test(port)) return false;
  }
  return host.split('.').every((c) => DOMAIN_COMPONENT.test(c));
}

/**
 * Parses and normalizes a docker reference the way `docker pull` reads it: `busybox` →
 * `docker.io/library/busybox:latest`, `user/app` → `docker.io/user/app:latest`,
 * `localhost:5000/app@sha256:…` keeps its digest and gets no tag. A first component with a
 * `.` or `:`, or `localhost`, is a registry host. Upper case in the repository is an error.
 */
export function parseReference(value: string, options: { defaultTag?: string | false } = {}): Reference {
  const defaultTag = options.defaultTag === undefined ? 'latest' : options.defaultTag;
  if (value === '') throw new InvalidReferenceError(value, 'empty reference');
  let rest = value;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    const d = rest.slice(at + 1);
    if (!isDigest(d)) throw new InvalidReferenceError(value, `invalid digest ${JSON.stringify(d)}`);
    digest = d;
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw new InvalidReferenceError(value, `invalid tag ${JSON.stringify(tag)}: want [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`);
  }
  if (rest === '') throw new InvalidReferenceError(value, 'missing repository name');
  let domain: string;
  let path: string;
  const slash = rest.indexOf('/');
  const first = slash < 0 ? rest : rest.slice(0, slash);
  if (slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase())) {
    domain = first;
    path = rest.slice(slash + 1);
    if (!validDomain(domain)) throw new InvalidReferenceError(value, `invalid registry host ${JSON.stringify(domain)}`);
  } else {
    domain = DOCKER_HUB_DOMAIN;
    path = rest;
  }
  if (LEGACY_HUB_DOMAINS.has(domain)) domain = DOCKER_HUB_DOMAIN;
  if (domain === DOCKER_HUB_DOMAIN && !path.includes('/')) path = `library/${path}`;
  for (const c of path.split('/')) {
    if (!COMPONENT.test(c)) {
      const reason = c !== c.toLowerCase() ? 'repository name must be lowercase' : `invalid path component ${JSON.stringify(c)}`;
      throw new InvalidReferenceError(value, reason);
    }
  }
  const name = `${domain}/${path}`;
  if (name.length > MAX_NAME) throw new InvalidReferenceError(value, `repository name longer than ${MAX_NAME} characters`);
  if (tag === undefined && digest === undefined && defaultTag) tag = defaultTag;
  const out: { -readonly [K in keyof Reference]: Reference[K] } = { domain, path };
  if (tag !== undefined) out.tag = tag;
  if (digest !== undefined) out.digest = digest;
  return out;
}

/** `domain/path`: the repository name, without tag or digest. */
export function repositoryName(ref: Reference): string {
  return `${ref.domain}/${ref.path}`;
}

/** The full normalized form: `docker.io/library/busybox:latest`, `host:5000/a@sha256:…`. */
export function formatReference(ref: Reference): string {
  let s = repositoryName(ref);
  if (ref.tag !== undefined) s += `:${ref.tag}`;
  if (ref.digest !== undefined) s += `@${ref.digest}`;
  return s;
}

/** The short form docker prints: `busybox`, `user/app`, `localhost:5000/app`. */
export function familiarName(ref: Reference): string {
  if (ref.domain !== DOCKER_HUB_DOMAIN) return repositoryName(ref);
  return ref.path.startsWith('library/') && ref.path.split('/').length === 2 ? ref.path.slice('library/'.length) : ref.path;
}

/** The short form with tag/digest: `busybox:latest`. */
export function familiarString(ref: Reference): string {
  let s = familiarName(ref);
  if (ref.tag !== undefined) s += `:${ref.tag}`;
  if (ref.digest !== undefined) s += `@${ref.digest}`;
  return s;
}

/** Returns the reference with another tag (and no digest). */
export function withTag(ref: Reference, tag: string): Reference {
  if (!TAG.test(tag)) throw new InvalidReferenceError(`${repositoryName(ref)}:${tag}`, `invalid tag ${JSON.stringify(tag)}`);
  return { domain: ref.domain, path: ref.path, tag };
}
