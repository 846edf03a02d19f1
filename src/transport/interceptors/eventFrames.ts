/**
 * Where server-sent events end in a byte stream: the blank line after an event (`\n\n`, `\r\r`, `\r\n\r\n`),
 * found with `Buffer.indexOf`, never by walking bytes in JavaScript. A boundary split between two chunks is
 * found through the last bytes of the previous chunk (the "seam").
 * @module
 */

const LF = 0x0a;
const CR = 0x0d;
const PATTERNS: readonly Buffer[] = [Buffer.from('\n\n'), Buffer.from('\r\r'), Buffer.from('\n\r\n'), Buffer.from('\r\n\r\n')];

/**
 * The offset in `chunk` just after the first event boundary at or after `from`, or -1. `seam` holds the last
 * bytes (up to 3) before `chunk`; a boundary that starts in them and ends in `chunk` counts (only for `from` 0).
 *
 * @example
 * ```ts
 * nextBoundary(Buffer.from('data: 1\n\ndata: 2'), 0, Buffer.alloc(0)); // 9
 * ```
 */
export function nextBoundary(chunk: Buffer, from: number, seam: Buffer): number {
  if (from === 0 && seam.length > 0 && (chunk[0] === LF || chunk[0] === CR)) {
    const joined = Buffer.concat([seam, chunk.subarray(0, 3)]);
    const end = firstEnd(joined, 0);
    if (end > seam.length && end - seam.length <= 3) return end - seam.length;
  }
  return firstEnd(chunk, from);
}

/**
 * The last up to 3 bytes of what has been seen, given the previous seam and the new chunk.
 *
 * @example
 * ```ts
 * seamAfter(Buffer.from('\r'), Buffer.from('\n')); // <Buffer 0d 0a>
 * ```
 */
export function seamAfter(seam: Buffer, chunk: Buffer): Buffer {
  if (chunk.length >= 3) return Buffer.from(chunk.subarray(chunk.length - 3));
  return Buffer.from(Buffer.concat([seam, chunk]).subarray(-3));
}

function firstEnd(buf: Buffer, from: number): number {
  let best = -1;
  for (const p of PATTERNS) {
    const at = buf.indexOf(p, from);
    if (at >= 0 && (best < 0 || at + p.length < best)) best = at + p.length;
  }
  return best;
}
