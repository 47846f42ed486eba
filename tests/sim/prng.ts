/**
 * A seeded pseudo-random generator for the simulator (sfc32, a 128-bit-state generator from PractRand), with
 * the helpers the simulator draws from: uniform floats and integers, coin flips, picks, shuffles, and
 * `fork(label)` for independent streams.
 *
 * Streams are forked by *name*, not by drawing from the parent, so adding a draw to one stream (say the
 * network's) never changes what another stream (say the clients') produces: a seed's schedule stays
 * recognisable while the simulator evolves.
 *
 * @module
 */

/** FNV-1a over UTF-16 code units, then a splitmix-style finaliser: a well-mixed 32-bit hash of `s`. */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export class Prng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;
  /** The name of this stream: the root seed and the fork labels that led to it. */
  readonly path: string;

  constructor(seed: number | string) {
    this.path = String(seed);
    this.#a = hash32(`${this.path}#a`);
    this.#b = hash32(`${this.path}#b`);
    this.#c = hash32(`${this.path}#c`);
    this.#d = 1;
    for (let i = 0; i < 12; i++) this.u32(); // warm up: sfc32's first outputs are weakly mixed
  }

  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return t >>> 0;
  }

  /** A uniform float in [0, 1). */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** A uniform float in [min, max). */
  range(min: number, max: number): number {
    return min + (max - min) * this.float();
  }

  /** A uniform integer in [min, max] (both inclusive). */
  int(min: number, max: number): number {
    if (!Number.isInteger(min) || !Number.isInteger(max) || max < min) {
      throw new Error(`Prng.int: bad range [${min}, ${max}]`);
    }
    return min + Math.floor(this.float() * (max - min + 1));
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return p > 0 && this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error("Prng.pick: empty list");
    return items[Math.floor(this.float() * items.length)];
  }

  /** Picks by weight (weights ≥ 0, not all 0). */
  weighted<T>(items: readonly (readonly [T, number])[]): T {
    const total = items.reduce((s, [, w]) => s + w, 0);
    if (!(total > 0)) throw new Error("Prng.weighted: no positive weight");
    let x = this.float() * total;
    for (const [item, w] of items) {
      if (x < w) return item;
      x -= w;
    }
    return items[items.length - 1][0];
  }

  /** A new array with the items in random order (Fisher–Yates). */
  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.float() * (i + 1));
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }

  /** An exponentially distributed float with the given mean. */
  exponential(mean: number): number {
    return -mean * Math.log(1 - this.float());
  }

  /** An independent stream named `label` under this one (drawing nothing from this stream). */
  fork(label: string): Prng {
    return new Prng(`${this.path}/${label}`);
  }

  /** A plain `() => number` in [0, 1), as the core's `Random`. */
  asRandom(): () => number {
    return () => this.float();
  }
}
