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

/**
 * Parses eight lowercase hex digits at `bytes[at, at+8)` (as `hex8` writes them); -1 otherwise. Upper case is
 * refused: a bit flip (0x20) turning a digit `a`-`f` into `A`-`F` would otherwise leave the value, and the
 * damage, unseen (found by the simulator's disk faults).
 */
export function parseHex8(bytes: Uint8Array, at: number): number {
  let v = 0;
  for (let i = at; i < at + 8; i++) {
    const b = bytes[i];
    let d: number;
    if (b >= 0x30 && b <= 0x39) d = b - 0x30;
    else if (b >= 0x61 && b <= 0x66) d = b - 0x57;
    else return -1;
    v = v * 16 + d;
  }
  return v;
}
