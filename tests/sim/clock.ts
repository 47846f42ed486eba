/**
 * A node's local monotonic clock as a function of the simulator's real (oracle) time: piecewise linear,
 * `local(t) = offsetMs + ∫ rate`, with the rate changing now and then. Within the drift budget every rate
 * lies in [1, 1+ε], so over any interval any two clocks advance by amounts within a factor 1+ε of each
 * other (the assumption SPEC §2 makes). The `drift` negative control draws rates far outside it: segments
 * of slow time (rate in [0.5, 0.8]: a leader in one overstays its lease in real time) alternate with fast
 * ones (rate in [1, 1.3]: promises and election timers run out early).
 *
 * @module
 */
import type { Prng } from "./prng.ts";

export class SimClock {
  /** Segment i starts at real time startsRealMs[i], local time startsLocalMs[i], and runs at rates[i]. */
  readonly #startsRealMs: number[];
  readonly #startsLocalMs: number[];
  readonly #rates: number[];

  constructor(
    readonly offsetMs: number,
    segments: readonly { readonly fromRealMs: number; readonly rate: number }[],
  ) {
    if (segments.length === 0 || segments[0].fromRealMs !== 0) {
      throw new Error("SimClock: the first segment starts at 0");
    }
    this.#startsRealMs = [];
    this.#startsLocalMs = [];
    this.#rates = [];
    let local = offsetMs;
    segments.forEach((s, i) => {
      if (!(s.rate > 0)) throw new Error(`SimClock: rate ${s.rate} must be positive`);
      if (i > 0) {
        const prev = segments[i - 1];
        if (!(s.fromRealMs > prev.fromRealMs)) {
          throw new Error("SimClock: segments must start in increasing order");
        }
        local += (s.fromRealMs - prev.fromRealMs) * prev.rate;
      }
      this.#startsRealMs.push(s.fromRealMs);
      this.#startsLocalMs.push(local);
      this.#rates.push(s.rate);
    });
  }

  /**
   * From real time `fromRealMs` on, the clock runs at `rate` (later segments are dropped). The scenarios use it
   * to put clocks at the ends of the drift budget on purpose.
   */
  setRate(fromRealMs: number, rate: number): void {
    if (!(rate > 0)) throw new Error(`SimClock: rate ${rate} must be positive`);
    const i = SimClock.#segment(this.#startsRealMs, fromRealMs);
    const local = this.local(fromRealMs);
    this.#startsRealMs.length = this.#startsLocalMs.length = this.#rates.length = i + 1;
    this.#startsRealMs.push(fromRealMs);
    this.#startsLocalMs.push(local);
    this.#rates.push(rate);
  }

  /**
   * A stopped clock: from `fromRealMs` for `durationMs` of real time the local clock does not advance, then it
   * goes on as it would have, `durationMs` late (a frozen VM's monotonic clock). Outside any drift budget.
   */
  freeze(fromRealMs: number, durationMs: number): void {
    const i = SimClock.#segment(this.#startsRealMs, fromRealMs);
    const local = this.local(fromRealMs);
    const later = this.#startsRealMs.slice(i + 1).map((r, k) => ({
      real: r + durationMs,
      local: this.#startsLocalMs[i + 1 + k],
      rate: this.#rates[i + 1 + k],
    }));
    const rate = this.#rates[i];
    this.#startsRealMs.length = this.#startsLocalMs.length = this.#rates.length = i + 1;
    this.#startsRealMs.push(fromRealMs, fromRealMs + durationMs);
    this.#startsLocalMs.push(local, local);
    this.#rates.push(0, rate);
    for (const l of later) {
      this.#startsRealMs.push(l.real);
      this.#startsLocalMs.push(l.local);
      this.#rates.push(l.rate);
    }
    this.frozenMs += durationMs;
  }

  /** Real time this clock spent stopped (`freeze`). */
  frozenMs = 0;

  /** A clock with one constant rate. */
  static constant(offsetMs: number, rate: number): SimClock {
    return new SimClock(offsetMs, [{ fromRealMs: 0, rate }]);
  }

  /** Index of the last segment whose start (in `starts`) is ≤ x. */
  static #segment(starts: readonly number[], x: number): number {
    let lo = 0, hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid] <= x) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** The local reading at real time `realMs` (≥ 0). */
  local(realMs: number): number {
    const i = SimClock.#segment(this.#startsRealMs, realMs);
    return this.#startsLocalMs[i] + (realMs - this.#startsRealMs[i]) * this.#rates[i];
  }

  /** The real time at which the local clock reads `localMs` (±Infinity map to themselves). */
  real(localMs: number): number {
    if (!Number.isFinite(localMs)) return localMs;
    const i = SimClock.#segment(this.#startsLocalMs, localMs);
    // A stopped segment is never the last one whose start is ≤ a reading (the next one starts at the same
    // local time), unless it is the very last segment: then the reading is never reached.
    if (this.#rates[i] === 0) return localMs === this.#startsLocalMs[i] ? this.#startsRealMs[i] : Infinity;
    return this.#startsRealMs[i] + (localMs - this.#startsLocalMs[i]) / this.#rates[i];
  }

  get minRate(): number {
    return Math.min(...this.#rates.filter((r) => r > 0));
  }

  get maxRate(): number {
    return Math.max(...this.#rates);
  }

  describe(): string {
    const rates = this.#rates.length === 1
      ? `rate ${this.#rates[0].toFixed(5)}`
      : `rates ${this.minRate.toFixed(3)}..${this.maxRate.toFixed(3)} in ${this.#rates.length} segments`;
    return `${rates}, offset ${this.offsetMs.toFixed(0)}ms`;
  }
}

/**
 * Draws `n` clocks for a run of about `horizonMs`: each changes rate every 0.5–4 s (some never). In budget:
 * rates in [1, 1+ε], sometimes exactly at an end. With `drift`: alternating slow and fast segments.
 */
export function drawClocks(
  rng: Prng,
  n: number,
  maxClockDrift: number,
  drift: boolean,
  horizonMs = 120_000,
): SimClock[] {
  const clocks: SimClock[] = [];
  for (let i = 0; i < n; i++) {
    const offsetMs = rng.range(0, 1e6);
    const varying = drift || rng.chance(0.7);
    let slow = rng.chance(0.5);
    const rate = (): number => {
      if (drift) {
        slow = !slow;
        return slow ? rng.range(0.5, 0.8) : rng.range(1, 1.3);
      }
      return rng.weighted([[1, 1], [1 + maxClockDrift, 1], [1 + rng.float() * maxClockDrift, 4]] as const);
    };
    const segments = [{ fromRealMs: 0, rate: rate() }];
    if (varying) {
      for (let t = rng.range(500, 4000); t < horizonMs; t += rng.range(500, 4000)) {
        segments.push({ fromRealMs: t, rate: rate() });
      }
    }
    clocks.push(new SimClock(offsetMs, segments));
  }
  return clocks;
}
