/**
 * Clock sanity: detects what a node can detect about its own clock going wrong beyond the drift budget, so
 * that a leader drops its lease (`RaftCore.dropLease`) instead of trusting it (issue 14 part 8; the operator's
 * share is in src/raft/README.md, "Clock sanity").
 *
 * The lease is safe when every node's monotonic clock runs at a rate within `1+ε` of every other's. A VM that
 * is frozen (live migration, a paused hypervisor) or a process that is stopped (SIGSTOP) can break that in a
 * way no rate bound covers: its monotonic clock may stop while the world goes on, and on resuming a leader
 * would believe it still holds a lease its followers have long stopped promising. Three symptoms are visible:
 *
 * - **a loop stall**: the event loop did not run for longer than `stallFraction` of the lease (measured on the
 *   monotonic clock), so whatever stopped it may also have stopped or slowed the clock;
 * - **a jump between monotonic and wall time**: between two loop turns the wall clock (kept in step with the
 *   world by chrony) advanced by a different amount than the monotonic clock, beyond what drift explains;
 * - **a peer's durations inconsistent with ours**: over a long interval, a peer measured a duration that, by
 *   our clock, took a length outside the drift budget (the rate ratio is off).
 *
 * Pure: it reads no clock itself; the caller passes its readings. One instance per node (per process run).
 *
 * @module
 */

export interface ClockSanityOptions {
  /** The lease `D`, ms. */
  readonly leaseDurationMs: number;
  /** The drift budget `ε`. */
  readonly maxClockDrift: number;
  /** A loop gap above this fraction of `D` counts as a stall (default 0.75: above a heartbeat, `h ≤ D/2`). */
  readonly stallFraction?: number;
  /**
   * A disagreement between the wall and monotonic advance above this counts as a jump, ms (default `D/4`),
   * on top of what drift explains. Wall-clock slewing by chrony is far below it; a step or a freeze is not.
   */
  readonly jumpToleranceMs?: number;
  /** Peer intervals shorter than this are not judged (network jitter would dominate), ms (default 10·D). */
  readonly peerIntervalMinMs?: number;
}

/** Something the detector saw: the caller drops the lease and logs `reason`. */
export interface ClockFinding {
  readonly kind: "stall" | "jump" | "peerRate";
  readonly reason: string;
}

export class ClockSanity {
  readonly #stallMs: number;
  readonly #jumpMs: number;
  readonly #drift: number;
  readonly #peerMinMs: number;
  #lastMonoMs: number | undefined;
  #lastWallMs: number | undefined;

  constructor(o: ClockSanityOptions) {
    this.#stallMs = (o.stallFraction ?? 0.75) * o.leaseDurationMs;
    this.#jumpMs = o.jumpToleranceMs ?? o.leaseDurationMs / 4;
    this.#drift = o.maxClockDrift;
    this.#peerMinMs = o.peerIntervalMinMs ?? 10 * o.leaseDurationMs;
  }

  /**
   * One loop turn: the monotonic and the wall clock read now (ms). Returns what it found since the previous
   * turn, if anything (a stall is reported before a jump: it is the likelier cause).
   */
  observe(monoMs: number, wallMs: number): ClockFinding | undefined {
    const lastMono = this.#lastMonoMs, lastWall = this.#lastWallMs;
    this.#lastMonoMs = monoMs;
    this.#lastWallMs = wallMs;
    if (lastMono === undefined || lastWall === undefined) return undefined;
    const monoGap = monoMs - lastMono, wallGap = wallMs - lastWall;
    if (monoGap > this.#stallMs) {
      return {
        kind: "stall",
        reason: `the loop did not run for ${monoGap.toFixed(0)} ms (over ${this.#stallMs.toFixed(0)} ms)`,
      };
    }
    const allowed = this.#jumpMs + Math.max(monoGap, wallGap, 0) * 2 * this.#drift;
    if (Math.abs(wallGap - monoGap) > allowed) {
      return {
        kind: "jump",
        reason: `the wall clock advanced ${wallGap.toFixed(0)} ms while the monotonic clock advanced ` +
          `${monoGap.toFixed(0)} ms (more than ${allowed.toFixed(0)} ms apart)`,
      };
    }
    return undefined;
  }

  /**
   * A peer reports that `theirMs` elapsed on its clock over an interval that took `oursMs` on ours (both ends
   * observed the same two events). Judged only for intervals of at least `peerIntervalMinMs`, where jitter is
   * small next to drift: a ratio outside `[1/(1+ε)², (1+ε)²]` means one of the two clocks is outside the
   * budget, and this node cannot tell which, so it does not trust its lease.
   */
  peerInterval(peer: number, theirMs: number, oursMs: number): ClockFinding | undefined {
    if (theirMs < this.#peerMinMs || oursMs <= 0) return undefined;
    const ratio = theirMs / oursMs, bound = (1 + this.#drift) ** 2;
    if (ratio <= bound && ratio >= 1 / bound) return undefined;
    return {
      kind: "peerRate",
      reason: `node ${peer} measured ${theirMs.toFixed(0)} ms where this node measured ${
        oursMs.toFixed(0)
      } ms (ratio ${ratio.toFixed(4)}, budget ${bound.toFixed(4)})`,
    };
  }
}
