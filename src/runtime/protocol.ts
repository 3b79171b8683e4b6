/** The spec as the C helper reads it on fd 3 (see native/tsbuild-sandbox.c for the format). */
export type HelperRecord =
  | { readonly kind: 'overlay'; readonly merged: string; readonly upper: string; readonly work: string; readonly lowerDirs: readonly string[] }
  | { readonly kind: 'dir'; readonly path: string }
  | { readonly kind: 'hostname'; readonly value: string }
  | { readonly kind: 'net'; readonly value: 'none' | 'host' }
  | { readonly kind: 'cwd'; readonly value: string }
  | { readonly kind: 'userns'; readonly value: boolean }
  | { readonly kind: 'uid' | 'gid' | 'group'; readonly value: number }
  | { readonly kind: 'env' | 'arg'; readonly value: string }
  | { readonly kind: 'bind'; readonly source: string; readonly target: string; readonly readonly: boolean }
  | { readonly kind: 'ovbind'; readonly source: string; readonly upper: string; readonly work: string; readonly target: string }
  | { readonly kind: 'tmpfs'; readonly target: string; readonly size: number; readonly mode: number }
  | { readonly kind: 'file'; readonly target: string; readonly mode: number; readonly uid: number; readonly gid: number; readonly readonly: boolean; readonly data: Uint8Array };

const NUL = Buffer.from([0]);

function noNul(s: string): string {
  if (s.includes('\0')) throw new TypeError(`NUL byte in sandbox spec value ${JSON.stringify(s)}`);
  return s;
}

/** Encodes records into the length-prefixed, NUL-separated wire format. */
export function encodeSpec(records: readonly HelperRecord[]): Buffer {
  const parts: Buffer[] = [];
  const str = (...ss: (string | number)[]) => {
    for (const s of ss) parts.push(Buffer.from(noNul(String(s))), NUL);
  };
  for (const r of records) {
    switch (r.kind) {
      case 'overlay': str('overlay', r.merged, r.upper, r.work, r.lowerDirs.length, ...r.lowerDirs); break;
      case 'dir': str('dir', r.path); break;
      case 'hostname': case 'net': case 'cwd': case 'env': case 'arg': str(r.kind, r.value); break;
      case 'userns': str('userns', r.value ? 1 : 0); break;
      case 'uid': case 'gid': case 'group': str(r.kind, r.value); break;
      case 'bind': str('bind', r.source, r.target, r.readonly ? 1 : 0); break;
      case 'ovbind': str('ovbind', r.source, r.upper, r.work, r.target); break;
      case 'tmpfs': str('tmpfs', r.target, r.size, r.mode.toString(8)); break;
      case 'file':
        str('file', r.target, r.mode.toString(8), r.uid, r.gid, r.readonly ? 1 : 0, r.data.byteLength);
        parts.push(Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength));
        break;
    }
  }
  str('end');
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from(`${body.length}\0`), body]);
}

/** A status line from the helper. */
export type HelperStatus =
  | { readonly kind: 'error'; readonly message: string }
  | { readonly kind: 'exit'; readonly code: number }
  | { readonly kind: 'signal'; readonly signal: number }
  | { readonly kind: 'killed'; readonly signal: number };

export function parseStatusLine(line: string): HelperStatus | undefined {
  const tag = line[0];
  const rest = line.slice(2);
  if (tag === 'E') return { kind: 'error', message: rest };
  if (tag === 'X') return { kind: 'exit', code: Number(rest) };
  if (tag === 'S') return { kind: 'signal', signal: Number(rest) };
  if (tag === 'K') return { kind: 'killed', signal: Number(rest) };
  return undefined;
}
