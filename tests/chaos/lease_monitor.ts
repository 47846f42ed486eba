/**
 * The "at most one lease holder at any real instant" check of a chaos run, by polling every node's Admin
 * `Status` (every ~15 ms) on the harness's one clock (`performance.now()`).
 *
 * A poll of node A sent at `s` and answered at `r` saying `servingReads` in term T proves that A served lease
 * reads in term T at some real instant in `[s, r]`. A lease can end early (a planned transfer revokes it, a
 * higher term clears it), so `leaseRemainingMs` does not prove that A kept serving; the order of terms does:
 *
 * - **stale lease**: node B serving in term T′ at an instant *after* some node served in a newer term T > T′
 *   (B's poll was sent after A's poll had been answered). With correct leases this cannot happen: A's
 *   election needed a majority of votes, one voter also acknowledged the heartbeat behind B's lease before
 *   voting, and its promise made A wait until that lease had ended. This is exactly the overlap of an old
 *   leader that keeps serving after its successor started (a stale read's precondition).
 * - **two leaders in one term**: two nodes report role leader in the same term (at any times).
 *
 * Poll skew (the time a status spends in flight or waiting for the harness's event loop) only widens
 * `[s, r]`, so neither check accuses a correct run; they miss overlaps shorter than the poll skew.
 *
 * @module
 */
import type { NodeStatus } from "../../src/transport/api.ts";

export interface StatusSample {
  readonly node: number;
  /** Harness clock when the poll was sent / answered. */
  readonly sentMs: number;
  readonly recvMs: number;
  readonly role: string;
  readonly term: number;
  readonly servingReads: boolean;
  readonly leaseRemainingMs: number;
}

export interface LeaseAnomaly {
  readonly kind: "stale-lease" | "two-leaders-one-term";
  readonly atMs: number;
  readonly description: string;
}

/** Feeds on status samples (in any order) and reports each anomaly once. */
export class LeaseOverlapDetector {
  /** Per term: the serving sample answered earliest, and the serving sample sent latest. */
  readonly #firstAnswered = new Map<number, StatusSample>();
  readonly #lastSent = new Map<number, StatusSample>();
  readonly #leaderOfTerm = new Map<number, StatusSample>();
  readonly #reported = new Set<string>();
  readonly anomalies: LeaseAnomaly[] = [];
  samples = 0;
  servingSamples = 0;
  /** Largest in-flight time of a status poll seen, ms (the poll skew). */
  maxSkewMs = 0;

  add(s: StatusSample): void {
    this.samples++;
    this.maxSkewMs = Math.max(this.maxSkewMs, s.recvMs - s.sentMs);
    if (s.role === "leader") {
      const prev = this.#leaderOfTerm.get(s.term);
      if (!prev) this.#leaderOfTerm.set(s.term, s);
      else if (prev.node !== s.node) {
        this.#report(`term:${s.term}`, {
          kind: "two-leaders-one-term",
          atMs: s.recvMs,
          description: `nodes ${prev.node} and ${s.node} both reported role leader in term ${s.term}: ` +
            `${describeSample(prev)}; ${describeSample(s)}`,
        });
      }
    }
    if (!s.servingReads) return;
    this.servingSamples++;
    // s is the older-term server: did a newer term serve before s's poll was sent?
    for (const [term, first] of this.#firstAnswered) {
      if (term > s.term && first.recvMs < s.sentMs) this.#stale(s, first);
    }
    // s is the newer-term server: did an older term serve after s's poll was answered?
    for (const [term, last] of this.#lastSent) {
      if (term < s.term && last.sentMs > s.recvMs) this.#stale(last, s);
    }
    const f = this.#firstAnswered.get(s.term);
    if (!f || s.recvMs < f.recvMs) this.#firstAnswered.set(s.term, s);
    const l = this.#lastSent.get(s.term);
    if (!l || s.sentMs > l.sentMs) this.#lastSent.set(s.term, s);
  }

  #stale(old: StatusSample, newer: StatusSample): void {
    this.#report(`stale:${old.term}:${newer.term}`, {
      kind: "stale-lease",
      atMs: old.sentMs,
      description:
        `node ${old.node} served lease reads in term ${old.term} after node ${newer.node} had served ` +
        `in term ${newer.term} (${(old.sentMs - newer.recvMs).toFixed(1)} ms later at least): ` +
        `${describeSample(newer)}; then ${describeSample(old)}`,
    });
  }

  #report(key: string, a: LeaseAnomaly): void {
    if (this.#reported.has(key)) return;
    this.#reported.add(key);
    this.anomalies.push(a);
  }
}

export function describeSample(s: StatusSample): string {
  return `node ${s.node} ${s.role} t${s.term} serving=${s.servingReads} lease=${
    s.leaseRemainingMs.toFixed(1)
  }ms ` +
    `polled [${s.sentMs.toFixed(1)}, ${s.recvMs.toFixed(1)}]`;
}

export function sampleOf(node: number, sentMs: number, recvMs: number, st: NodeStatus): StatusSample {
  return {
    node,
    sentMs,
    recvMs,
    role: st.role,
    term: st.term,
    servingReads: st.servingReads,
    leaseRemainingMs: st.leaseRemainingMs,
  };
}

/** What the poller needs from the cluster. */
export interface StatusSource {
  readonly ids: readonly number[];
  status(id: number, deadlineMs: number): Promise<NodeStatus | undefined>;
}

/**
 * Polls every node's status every `intervalMs` (at most one poll in flight per node), feeds the detector and
 * keeps the latest status per node (the nemesis asks it who leads).
 */
export class StatusPoller {
  readonly detector: LeaseOverlapDetector;
  readonly latest = new Map<number, { status: NodeStatus; atMs: number }>();
  readonly #source: StatusSource;
  readonly #intervalMs: number;
  readonly #inFlight = new Set<number>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #pending = new Set<Promise<void>>();
  polls = 0;

  constructor(source: StatusSource, detector: LeaseOverlapDetector, intervalMs: number) {
    this.#source = source;
    this.detector = detector;
    this.#intervalMs = intervalMs;
  }

  start(): void {
    this.#timer = setInterval(() => this.#tick(), this.#intervalMs);
  }

  async stop(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    await Promise.all([...this.#pending]);
  }

  /** The node that most recently reported itself leader in the highest term seen within `freshMs`. */
  leader(freshMs = 1000): number | undefined {
    const now = performance.now();
    let best: { id: number; term: number } | undefined;
    for (const [id, { status, atMs }] of this.latest) {
      if (now - atMs > freshMs || status.role !== "leader") continue;
      if (!best || status.term > best.term) best = { id, term: status.term };
    }
    return best?.id;
  }

  #tick(): void {
    for (const id of this.#source.ids) {
      if (this.#inFlight.has(id)) continue;
      this.#inFlight.add(id);
      const sentMs = performance.now();
      this.polls++;
      const p = this.#source.status(id, 100).then((st) => {
        const recvMs = performance.now();
        if (st) {
          this.latest.set(id, { status: st, atMs: recvMs });
          this.detector.add(sampleOf(id, sentMs, recvMs, st));
        }
      }).catch(() => {}).finally(() => {
        this.#inFlight.delete(id);
        this.#pending.delete(p);
      });
      this.#pending.add(p);
    }
  }
}
