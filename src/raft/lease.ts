/**
 * The leader's side of the lease (SPEC rules 2 and 3).
 *
 * Every AppendEntries the leader sends in its term gets a sequence number and the leader's local send time.
 * A reply echoes the number. Follower `p` has promised the leader a lease from the send time of the newest
 * message it acknowledged; with the leader itself counted, the lease runs from the send time that a majority
 * has acknowledged: the (quorum-1)-th newest of the followers' acknowledged send times. Arrival times of
 * replies never matter, and a stale or duplicate reply cannot move anything backwards or forwards wrongly
 * because only `max(seq)` per follower is kept. A new term starts a new tracker.
 *
 * @module
 */
import type { Configuration } from "./membership.ts";
import type { NodeId } from "./types.ts";

export class LeaseTracker {
  /** seq → local send time, for sends not yet known to be too old to matter. */
  readonly #sentAtMs = new Map<number, number>();
  /** Per follower: local send time of the newest message it acknowledged. */
  readonly #ackedSendMs = new Map<NodeId, number>();
  /** Per follower: round trip of the newest acknowledged send (ack arrival - send time), for metrics only. */
  readonly #roundTripMs = new Map<NodeId, number>();
  /** Per follower: the highest seq it acknowledged in this term (bounded-staleness reads echo it). */
  readonly #ackedSeq = new Map<NodeId, number>();
  #nextSeq = 1;
  #oldestSeq = 1;
  #leaseEndMs = -Infinity;
  /** The leader's own "acknowledgement": its newest send (it promises itself at once). */
  #selfMs = -Infinity;
  #conf: Configuration;

  constructor(
    private readonly leaseDurationMs: number,
    /** The configuration in force: the lease needs a majority of each of its voter sets (issue 11). */
    conf: Configuration,
    /** The leader's id: it counts itself only where it is a voter. */
    private readonly self: NodeId,
    /** Negative control: time the lease from the ack's arrival (unsafe). */
    private readonly anchorAtArrival = false,
  ) {
    this.#conf = conf;
  }

  /** Registers a send at local time `nowMs` and returns its sequence number. */
  recordSend(nowMs: number): number {
    const seq = this.#nextSeq++;
    this.#sentAtMs.set(seq, nowMs);
    this.#selfMs = nowMs;
    return seq;
  }

  /** Registers an acknowledgement (any same-term reply) of `seq` from `peer`; returns the new lease end. */
  recordAck(peer: NodeId, seq: number, nowMs: number): number {
    if (seq > (this.#ackedSeq.get(peer) ?? 0)) this.#ackedSeq.set(peer, seq);
    const sentAt = this.anchorAtArrival ? nowMs : this.#sentAtMs.get(seq);
    if (sentAt === undefined) return this.#leaseEndMs; // too old to extend anything, or not ours
    const prev = this.#ackedSendMs.get(peer);
    if (prev !== undefined && prev >= sentAt) return this.#leaseEndMs;
    this.#ackedSendMs.set(peer, sentAt);
    this.#roundTripMs.set(peer, nowMs - sentAt);
    this.#recompute();
    return this.#leaseEndMs;
  }

  /**
   * The configuration changed (a new configuration entry in the leader's log, committed or not): from now on
   * the lease rests on majorities of its voter sets only, so it may end earlier than before (issue 11 part 4).
   */
  setConfiguration(conf: Configuration): void {
    this.#conf = conf;
    this.#recompute();
  }

  #recompute(): void {
    const start = this.#conf.quorumValue((id) =>
      id === this.self ? this.#selfMs : this.#ackedSendMs.get(id) ?? -Infinity
    );
    this.#leaseEndMs = start + this.leaseDurationMs;
  }

  /**
   * Clock sanity (src/clock/): the local clock may have stopped or jumped, so no send made so far may anchor
   * a lease any more. The lease ends now; acks of earlier sends are ignored; later sends renew it as usual.
   */
  drop(): void {
    this.#sentAtMs.clear();
    this.#oldestSeq = this.#nextSeq;
    this.#ackedSendMs.clear();
    this.#selfMs = -Infinity;
    this.#leaseEndMs = -Infinity;
  }

  /** After a round of sends at `nowMs`: where the leader alone is a majority (one voter), that renews. */
  renewAlone(nowMs: number): void {
    this.#selfMs = Math.max(this.#selfMs, nowMs);
    this.#recompute();
  }

  /** Local time at which the lease ends (-Infinity before the first majority ack). */
  get leaseEndMs(): number {
    return this.#leaseEndMs;
  }

  /** The highest seq `peer` acknowledged in this term (0 before one). */
  ackedSeq(peer: NodeId): number {
    return this.#ackedSeq.get(peer) ?? 0;
  }

  /** Local send time of the newest message `peer` acknowledged in this term (-Infinity before one). */
  ackedSendMs(peer: NodeId): number {
    return this.#ackedSendMs.get(peer) ?? -Infinity;
  }

  /** The round trip of `peer`'s newest acknowledged send in this term (read-only; undefined before one). */
  roundTripMs(peer: NodeId): number | undefined {
    return this.#roundTripMs.get(peer);
  }

  /** Forgets sends too old to ever extend the lease (their lease would already have ended). */
  prune(nowMs: number): void {
    while (this.#oldestSeq < this.#nextSeq) {
      const t = this.#sentAtMs.get(this.#oldestSeq);
      if (t !== undefined && t + this.leaseDurationMs > nowMs) break;
      this.#sentAtMs.delete(this.#oldestSeq);
      this.#oldestSeq++;
    }
  }
}
