/**
 * The voters' side of the lease (SPEC rules 4–6) and the candidate's wait built from it (rule 5).
 *
 * A follower that acknowledges an AppendEntries promises its leader not to help elect anyone else for the
 * lease the leader claims, stretched by the drift budget (`LeasePromise`). A vote carries what is left of that
 * promise as a duration; the candidate turns each granted vote's duration into a deadline on its own clock,
 * stretched again, and may not serve until the latest of them (`LeaseWait`).
 *
 * @module
 */

/** Rules 4 and 6: until when (local time) this node may have promised some leader a lease. */
export class LeasePromise {
  #untilMs = -Infinity;
  #term = 0;
  readonly #stretch: number;

  /** `noMargin`: the `promise-margin` negative control (the promise is not stretched for drift). */
  constructor(maxClockDrift: number, noMargin = false) {
    this.#stretch = noMargin ? 1 : 1 + maxClockDrift;
  }

  /**
   * Rule 6: a restarted node may have promised a lease just before it stopped and has forgotten it; it
   * assumes a full promise (`leaseDurationMs`·(1+ε)) for `term` from now.
   */
  assumeAfterRestart(nowMs: number, leaseDurationMs: number, term: number): void {
    this.#untilMs = nowMs + leaseDurationMs * this.#stretch;
    this.#term = term;
  }

  /**
   * Rule 4: on an AppendEntries of term `term` claiming `leaseDurationMs`, promise it stretched for drift,
   * before replying; a promise never shrinks.
   */
  promise(nowMs: number, leaseDurationMs: number, term: number): void {
    this.#untilMs = Math.max(this.#untilMs, nowMs + leaseDurationMs * this.#stretch);
    this.#term = Math.max(this.#term, term);
  }

  /** Local time until which the promise runs (-Infinity: none). */
  get untilMs(): number {
    return this.#untilMs;
  }

  /** The highest term a promise was made for (0: none). */
  get term(): number {
    return this.#term;
  }

  remainingMs(nowMs: number): number {
    return Math.max(0, this.#untilMs - nowMs);
  }

  /** Rule 5, the voter's half: what a granted vote reports (a duration on this node's clock, and its term). */
  report(nowMs: number, granted: boolean): { leaseRemainingMs: number; leaseTerm: number } {
    const remaining = this.remainingMs(nowMs);
    const held = granted && remaining > 0;
    return { leaseRemainingMs: held ? remaining : 0, leaseTerm: held ? this.#term : 0 };
  }
}

/** Rule 5, the candidate's half: the local time before which, if it wins, it must not serve. */
export class LeaseWait {
  #untilMs = -Infinity;
  #revokedTerm = 0;
  readonly #stretch: number;

  /** `noMargin`: the `wait-margin` negative control (a voter's remaining promise is not stretched). */
  constructor(maxClockDrift: number, noMargin = false) {
    this.#stretch = noMargin ? 1 : 1 + maxClockDrift;
  }

  /**
   * A new campaign: the candidate's own promise counts too, unless it was made for a term whose leases were
   * revoked by a transfer (rule 8: `revokedTerm`, 0 when the campaign is not a transfer's).
   */
  start(own: LeasePromise, revokedTerm: number): void {
    this.#revokedTerm = revokedTerm;
    this.#untilMs = own.term > revokedTerm ? own.untilMs : -Infinity;
  }

  /** A granted vote reporting `leaseRemainingMs` of a promise for `leaseTerm`, received at `nowMs`. */
  onGrant(nowMs: number, leaseRemainingMs: number, leaseTerm: number): void {
    if (leaseRemainingMs > 0 && leaseTerm > this.#revokedTerm) {
      const until = nowMs + leaseRemainingMs * this.#stretch;
      this.#untilMs = Math.max(this.#untilMs, until);
    }
  }

  /** Negative control and end of leadership: no wait. */
  clear(): void {
    this.#untilMs = -Infinity;
  }

  get untilMs(): number {
    return this.#untilMs;
  }
}
