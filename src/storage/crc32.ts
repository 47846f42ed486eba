/**
 * CRC-32 (IEEE 802.3, the zlib/PNG polynomial), table driven (slicing-by-8).
 *
 * @module
 */

/** Slicing-by-8 tables: `T[k * 256 + n]` is the CRC of byte `n` followed by `k` zero bytes. */
const T: Int32Array = (() => {
  const t = new Int32Array(256 * 8);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    for (let k = 1; k < 8; k++) {
      const prev = t[(k - 1) * 256 + n];
      t[k * 256 + n] = (prev >>> 8) ^ t[prev & 0xff];
    }
  }
  return t;
})();

/** CRC-32 of `bytes[start, end)`, as an unsigned 32-bit integer. */
export function crc32(bytes: Uint8Array, start = 0, end: number = bytes.length): number {
  let c = -1;
  let i = start;
  for (; i + 8 <= end; i += 8) {
    const a = c ^ (bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24));
    c = T[1792 + (a & 0xff)] ^ T[1536 + ((a >>> 8) & 0xff)] ^ T[1280 + ((a >>> 16) & 0xff)] ^
      T[1024 + (a >>> 24)] ^ T[768 + bytes[i + 4]] ^ T[512 + bytes[i + 5]] ^ T[256 + bytes[i + 6]] ^
      T[bytes[i + 7]];
  }
  for (; i < end; i++) c = T[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

const HEX = "0123456789abcdef";

/** Eight lowercase hex digits. */
export function hex8(n: number): string {
  let s = "";
  for (let shift = 28; shift >= 0; shift -= 4) s += HEX[(n >>> shift) & 0xf];
  return s;
}

/** The value of each byte as a lowercase hex digit, -1 for any other byte (one lookup per digit on a restore). */
const HEX_DIGIT: Int8Array = (() => {
  const t = new Int8Array(256).fill(-1);
  for (let i = 0; i < 16; i++) t[HEX.charCodeAt(i)] = i;
  return t;
})();

/**
 * Parses eight lowercase hex digits at `bytes[at, at+8)` (as `hex8` writes them); -1 otherwise. Upper case is
 * refused: a bit flip (0x20) turning a digit `a`-`f` into `A`-`F` would otherwise leave the value, and the
 * damage, unseen (found by the simulator's disk faults).
 */
export function parseHex8(bytes: Uint8Array, at: number): number {
  if (at < 0 || at + 8 > bytes.length) return -1;
  const d0 = HEX_DIGIT[bytes[at]], d1 = HEX_DIGIT[bytes[at + 1]], d2 = HEX_DIGIT[bytes[at + 2]];
  const d3 = HEX_DIGIT[bytes[at + 3]], d4 = HEX_DIGIT[bytes[at + 4]], d5 = HEX_DIGIT[bytes[at + 5]];
  const d6 = HEX_DIGIT[bytes[at + 6]], d7 = HEX_DIGIT[bytes[at + 7]];
  // A byte that is no digit maps to -1: the OR of the eight is negative exactly when one of them is.
  if ((d0 | d1 | d2 | d3 | d4 | d5 | d6 | d7) < 0) return -1;
  return ((d0 << 28) | (d1 << 24) | (d2 << 20) | (d3 << 16) | (d4 << 12) | (d5 << 8) | (d6 << 4) | d7) >>> 0;
}
