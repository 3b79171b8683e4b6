/**
 * `NODE_EXTRA_CA_CERTS`, read when a TLS connection needs it rather than when node starts.
 *
 * Node loads the file named by `NODE_EXTRA_CA_CERTS` while it starts, before any script runs,
 * and OpenSSL 3 parses certificates slowly: with the system bundle (~140 certificates, which CI
 * images and company machines often name there) that is 60-90 ms added to every command, more
 * than a no-op rebuild costs. Most commands never open a TLS connection (a build from local
 * images, a loopback registry). So the `tsbuild` command (dist/cli.cjs, see scripts/bundle.mjs)
 * starts node without the variable, passing it on as `TSBUILD_NODE_EXTRA_CA_CERTS`, and the
 * command line hands the file to `deferExtraCaCertificates`: every TLS connection tsbuild makes
 * (registries, ADD's URLs) then trusts node's roots plus that file, as node would have.
 *
 * A library user's process loaded the variable itself; nothing is deferred there.
 */
import { readFileSync } from 'node:fs';
import type { SecureContext } from 'node:tls';

type TlsModule = Pick<typeof import('node:tls'), 'createSecureContext' | 'rootCertificates'>;

let deferredFile: string | undefined;
let loaded: { readonly pem: string | undefined } | undefined;

/** Makes TLS connections trust the certificates in `file` on top of node's roots (read once, on first use). */
export function deferExtraCaCertificates(file: string): void {
  deferredFile = file;
  loaded = undefined;
  contexts.clear();
}

/**
 * The deferred certificates (PEM, possibly several), or undefined when nothing was deferred or
 * the file cannot be read; as node does at start, an unreadable file is reported and ignored.
 */
function deferredCaCertificates(): string | undefined {
  if (deferredFile === undefined) return undefined;
  if (!loaded) {
    try {
      loaded = { pem: readFileSync(deferredFile, 'utf8') };
    } catch (err) {
      process.emitWarning(`Ignoring extra certs from \`${deferredFile}\`, load failed: ${(err as Error).message}`);
      loaded = { pem: undefined };
    }
  }
  return loaded.pem;
}

/** What a TLS connection trusts and shows beyond node's defaults (a registry's certs.d: see oci/registry/certs.ts). */
export interface TlsTrust {
  /** Names the settings (contexts are made once per id), e.g. `/etc/docker/certs.d/host:5000`. */
  readonly id: string;
  /** CA certificates (PEM) trusted in addition to node's roots. */
  readonly ca?: readonly string[];
  /** A client certificate and its key (PEM). */
  readonly cert?: string;
  readonly key?: string;
}

const contexts = new Map<string, SecureContext>();

/**
 * The secure context for TLS connections with `trust` (undefined: node's roots only), made once
 * per id: node's roots, the deferred certificates and the extra CAs, with the client
 * certificate. Undefined when that is node's default context (nothing deferred, nothing extra).
 * A context is made once because parsing ~140 root certificates costs tens of milliseconds.
 */
export function secureContextFor(tls: TlsModule, trust?: TlsTrust): SecureContext | undefined {
  const deferred = deferredCaCertificates();
  const extra = trust?.ca ?? [];
  const client = trust?.cert !== undefined && trust.key !== undefined;
  if (deferred === undefined && extra.length === 0 && !client) return undefined;
  const id = trust?.id ?? '';
  let ctx = contexts.get(id);
  if (!ctx) {
    ctx = tls.createSecureContext({
      // docker adds a certs.d CA to the system's roots, it does not replace them
      ...(deferred !== undefined || extra.length > 0 ? { ca: [...tls.rootCertificates, ...(deferred !== undefined ? [deferred] : []), ...extra] } : {}),
      ...(client ? { cert: trust!.cert!, key: trust!.key! } : {}),
    });
    contexts.set(id, ctx);
  }
  return ctx;
}

/** Whether a connection failed on a certificate nothing here trusts (node's and OpenSSL's error codes). */
export function isCertificateError(err: unknown): boolean {
  return /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test((err as { code?: string } | undefined)?.code ?? '');
}
