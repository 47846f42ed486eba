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

/** One message's stamps: the sender's clock when it left, ours when it arrived (ms). */
interface Stamp {
  readonly theirMs: number;
  readonly oursMs: number;
}

/** Per peer: the least delayed stamp of the current window, and those of the windows before it. */
interface PeerWindows {
  start: number;
  best: Stamp;
  lastTheirMs: number;
  /** The best stamps of the last closed windows, oldest first (at most PEER_WINDOWS_KEPT). */
  readonly closed: Stamp[];
  /** Judgements in a row outside the budget: > 0 the peer's clock fast, < 0 slow, 0 the last one inside. */
  streak: number;
}

const PEER_WINDOWS_KEPT = 3;
/**
 * Judgements in a row, all outside the budget the same way, before a finding. A window whose every message
 * came late (the receiver stalled or starved for all of it) makes one judgement look slow and the one two
 * windows later fast; a clock running at another rate makes them all lean the same way.
 */
export const PEER_RATE_STREAK = 3;

export class ClockSanity {
  readonly #stallMs: number;
  readonly #jumpMs: number;
  readonly #drift: number;
  readonly #peerMinMs: number;
  #lastMonoMs: number | undefined;
  #lastWallMs: number | undefined;
  readonly #peers = new Map<number, PeerWindows>();
  readonly #peerRates = new Map<number, number>();

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

  /**
   * One message from `peer`, stamped `theirMs` by the sender's monotonic clock as it left (a duration since the
   * sender's process started) and received at `oursMs` on ours; feeds {@link peerInterval} from live traffic.
   *
   * Per peer, time is cut into windows of `peerIntervalMinMs` (on our clock), and each window keeps its least
   * delayed message (smallest `oursMs - theirMs`): a slow delivery or a loop stall on either side only adds
   * delay, so the minimum stays near the true one. When a window closes, its message and the one kept two
   * windows before (so at least one window apart) are the interval both clocks measured, judged by
   * `peerInterval`; a finding is returned once {@link PEER_RATE_STREAK} judgements in a row are outside the
   * budget the same way (and for each further one). A peer whose stamp went back (it restarted) starts over;
   * `theirMs <= 0` (a peer too old to stamp) is ignored.
   */
  peerSample(peer: number, theirMs: number, oursMs: number): ClockFinding | undefined {
    if (!(theirMs > 0)) return undefined;
    const w = this.#peers.get(peer);
    const stamp = { theirMs, oursMs };
    if (w === undefined || theirMs < w.lastTheirMs) {
      this.#peers.set(peer, { start: oursMs, best: stamp, lastTheirMs: theirMs, closed: [], streak: 0 });
      return undefined;
    }
    w.lastTheirMs = theirMs;
    if (oursMs - w.start < this.#peerMinMs) {
      if (oursMs - theirMs < w.best.oursMs - w.best.theirMs) w.best = stamp;
      return undefined;
    }
    w.closed.push(w.best);
    if (w.closed.length > PEER_WINDOWS_KEPT) w.closed.shift();
    w.start = oursMs;
    w.best = stamp;
    if (w.closed.length < PEER_WINDOWS_KEPT) return undefined;
    const from = w.closed[0], to = w.closed[PEER_WINDOWS_KEPT - 1];
    const theirs = to.theirMs - from.theirMs, ours = to.oursMs - from.oursMs;
    if (ours <= 0) return undefined;
    this.#peerRates.set(peer, theirs / ours);
    const finding = this.peerInterval(peer, theirs, ours);
    const way = finding === undefined ? 0 : theirs > ours ? 1 : -1;
    w.streak = way === 0 ? 0 : Math.sign(w.streak) === way ? w.streak + way : way;
    return Math.abs(w.streak) >= PEER_RATE_STREAK ? finding : undefined;
  }

  /** Per peer, the ratio of its clock's rate to ours over the last interval judged (1: the same rate). */
  peerRates(): ReadonlyMap<number, number> {
    return this.#peerRates;
  }
}
