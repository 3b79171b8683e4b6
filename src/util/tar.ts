/**
 * The `mode` to hand to tar-stream for a header. tar-stream replaces a falsy mode with 0644/0755,
 * which would turn a real mode 0 (`COPY --chmod=0`, `chmod 000`) into 0644. It writes only the low
 * 12 bits (`mode & 07777`), so a bit above them keeps the value truthy and still encodes 0.
 */
export function tarMode(mode: number): number {
  return (mode & 0o7777) === 0 ? 0o10000 : mode & 0o7777;
}
