/**
 * Tar headers written straight into a caller's buffer, byte for byte as tar-stream 3 writes them
 * (`pack().entry()`): ustar fields, a name over 100 bytes split into prefix and name at a slash,
 * and a PAX record (`path`, `linkpath`) in front of the entry when the name is not ASCII or does
 * not fit, or the link name is over 100 bytes. Layers written this way keep the digests they had
 * when tar-stream wrote them, while a writer makes no stream, promise, Buffer or closure per
 * entry (tar-stream makes a Writable, a 512-byte Buffer and a callback for each).
 *
 * Kept as tar-stream has them, for the same bytes: ids or a mode that do not fit their octal
 * field are written as all sevens (no PAX `uid`/`gid`), mtimes are whole seconds truncated to
 * 32 bits, a size over 8 GiB uses the base-256 form, and `uname`/`gname` are written as given.
 */

/** The entry types a layer holds, as tar-stream names them. */
export type TarEntryType = 'file' | 'link' | 'symlink' | 'character-device' | 'block-device' | 'directory' | 'fifo';

export interface TarHeaderFields {
  /** Path in the archive (a directory's with its trailing slash). */
  readonly name: string;
  readonly type: TarEntryType;
  /** Permission bits; only the low 12 are written (0 is written as 0). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** Bytes of content that follow; 0 for anything but a regular file. */
  readonly size: number;
  /** Modification time in milliseconds since the epoch (written as seconds, truncated as tar-stream does). */
  readonly mtimeMs: number;
  readonly linkname?: string | undefined;
  readonly uname?: string | undefined;
  readonly gname?: string | undefined;
  readonly devmajor?: number | undefined;
  readonly devminor?: number | undefined;
}

/** A tar ends with two zero blocks. */
export const TAR_END_BYTES = 1024;

const BLOCK = 512;
const ZEROS = '0000000000000000000';
const SEVENS = '7777777777777777777';
const TYPEFLAG: Readonly<Record<TarEntryType | 'pax-header', number>> = {
  file: 0,
  link: 1,
  symlink: 2,
  'character-device': 3,
  'block-device': 4,
  directory: 5,
  fifo: 6,
  'pax-header': 72,
};

/** Zero bytes that end a content of `size` bytes on a block boundary. */
export function tarPadding(size: number): number {
  const r = size & 511;
  return r === 0 ? 0 : BLOCK - r;
}

/** `n` octal digits, zero-padded, then a space; all sevens when the value does not fit (tar-stream `encodeOct`). */
function putOctal(buf: Buffer, at: number, value: number, n: number): void {
  if (Number.isInteger(value) && value >= 0 && value < 8 ** n) {
    let v = value;
    for (let i = n - 1; i >= 0; i--) {
      buf[at + i] = 48 + (v % 8);
      v = Math.floor(v / 8);
    }
    buf[at + n] = 32;
    return;
  }
  // Negative (an mtime before 1970) or too big: the same text tar-stream makes.
  const s = value.toString(8);
  buf.write(s.length > n ? SEVENS.slice(0, n) + ' ' : ZEROS.slice(0, n - s.length) + s + ' ', at, 'latin1');
}

/** The size field: 11 octal digits, or base-256 when the size needs more (tar-stream `encodeSize`). */
function putSize(buf: Buffer, at: number, size: number): void {
  if (size.toString(8).length <= 11) {
    putOctal(buf, at, size, 11);
    return;
  }
  buf[at] = 0x80;
  let num = size;
  for (let i = 11; i > 0; i--) {
    buf[at + i] = num & 0xff;
    num = Math.floor(num / 0x100);
  }
}

/** The ustar name and prefix of `name`, or undefined when it needs a PAX record (tar-stream `encode`). */
function splitName(name: string): { name: string; prefix: string } | undefined {
  if (Buffer.byteLength(name) !== name.length) return undefined; // not ASCII
  if (name.length <= 100) return { name, prefix: '' };
  let rest = name;
  let prefix = '';
  while (rest.length > 100) {
    const i = rest.indexOf('/');
    if (i === -1) return undefined;
    prefix += prefix ? '/' + rest.slice(0, i) : rest.slice(0, i);
    rest = rest.slice(i + 1);
  }
  if (prefix.length > 155) return undefined;
  return { name: rest, prefix };
}

/** Writes one ustar header block at `at` (zero-filled first). */
function putUstar(buf: Buffer, at: number, h: TarHeaderFields, name: string, prefix: string, type: TarEntryType | 'pax-header', size: number, linkname: string | undefined): void {
  buf.fill(0, at, at + BLOCK);
  buf.write(name, at, 100, 'utf8');
  putOctal(buf, at + 100, h.mode & 0o7777, 6);
  putOctal(buf, at + 108, h.uid, 6);
  putOctal(buf, at + 116, h.gid, 6);
  putSize(buf, at + 124, size);
  putOctal(buf, at + 136, (h.mtimeMs / 1000) | 0, 11);
  buf[at + 156] = 48 + TYPEFLAG[type];
  if (linkname) buf.write(linkname, at + 157, 100, 'utf8');
  buf.write('ustar\x0000', at + 257, 8, 'latin1');
  if (h.uname) buf.write(h.uname, at + 265, BLOCK - 265, 'utf8');
  if (h.gname) buf.write(h.gname, at + 297, BLOCK - 297, 'utf8');
  putOctal(buf, at + 329, h.devmajor || 0, 6);
  putOctal(buf, at + 337, h.devminor || 0, 6);
  if (prefix) buf.write(prefix, at + 345, 155, 'latin1');
  let sum = 8 * 32;
  for (let i = at; i < at + 148; i++) sum += buf[i]!;
  for (let i = at + 156; i < at + BLOCK; i++) sum += buf[i]!;
  putOctal(buf, at + 148, sum, 6);
}

/** `<length> <text>`, the length counting itself (tar-stream `addLength`). */
function paxRecord(text: string): string {
  const len = Buffer.byteLength(text);
  let digits = Math.floor(Math.log(len) / Math.log(10)) + 1;
  if (len + digits >= Math.pow(10, digits)) digits++;
  return `${len + digits}${text}`;
}

/**
 * Writes the header of an entry at `at` in `buf`, not past `end`: one ustar block, or a PAX
 * header, its record (padded) and the ustar block. Returns the offset after it, or -1 when it
 * does not fit before `end` (nothing useful is written then). The content, its padding
 * ({@link tarPadding}) and the end of the archive are the caller's.
 */
export function writeTarHeader(buf: Buffer, at: number, end: number, h: TarHeaderFields): number {
  const size = h.size > 0 && h.type !== 'symlink' ? h.size : 0;
  const split = splitName(h.name);
  if (split !== undefined && !(h.linkname && Buffer.byteLength(h.linkname) > 100)) {
    if (end - at < BLOCK) return -1;
    putUstar(buf, at, h, split.name, split.prefix, h.type, size, h.linkname);
    return at + BLOCK;
  }
  let pax = '';
  if (h.name) pax += paxRecord(` path=${h.name}\n`);
  if (h.linkname) pax += paxRecord(` linkpath=${h.linkname}\n`);
  const paxSize = Buffer.byteLength(pax);
  const total = BLOCK + paxSize + tarPadding(paxSize) + BLOCK;
  if (end - at < total) return -1;
  const linkname = h.linkname ? 'PaxHeader' : undefined;
  putUstar(buf, at, h, 'PaxHeader', '', 'pax-header', paxSize, linkname);
  let p = at + BLOCK;
  p += buf.write(pax, p, paxSize, 'utf8');
  buf.fill(0, p, p + tarPadding(paxSize));
  p += tarPadding(paxSize);
  putUstar(buf, p, h, 'PaxHeader', '', h.type, size, linkname);
  return p + BLOCK;
}

