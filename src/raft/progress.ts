/**
 * Replication progress: what the leader knows of each follower's log and what it has in flight to it
 * (etcd's Progress, simplified). Pure bookkeeping; the core decides what to send.
 *
 * @module
 */
import type { NodeId } from "./types.ts";

/** Replication state of one follower, kept by the leader. */
export interface Progress {
  /** Highest index known to be replicated on the follower. */
  match: number;
  /** Next index to send. */
  next: number;
  /**
   * "probe": one AppendEntries at a time until the logs match; "replicate": pipelined; "snapshot": the entries
   * it needs were compacted, the snapshot is being sent (§7).
   */
  mode: "probe" | "replicate" | "snapshot";
  /** Probe mode: an AppendEntries is out and unanswered (resent on the next heartbeat). */
  probeSent: boolean;
  /** Replicate mode: last index and local send time of each AppendEntries with entries in flight. */
  inflight: { lastIndex: number; sentAtMs: number }[];
  /**
   * Snapshot mode: the snapshot being sent, the bytes the follower confirmed (`offset`), the offset of the next
   * chunk to send (`sent`: chunks from `offset` to `sent` are in flight, at most a window of them), and the
   * time of the last send or progress (-Infinity before the first chunk).
   */
  snapshot?: {
    index: number;
    term: number;
    sizeBytes: number;
    offset: number;
    sent: number;
    sentAtMs: number;
  };
  /** The newest AppendEntries `seq` whose success set `match` (tells a fresh rejection from a reordered one). */
  matchSeq?: number;
}

/** The progress of every follower of one leader's term. */
export class ProgressTracker {
  readonly #byPeer = new Map<NodeId, Progress>();

  /** A new leader knows nothing of its followers: it probes from the end of its own log. */
  constructor(peers: readonly NodeId[], lastIndex: number) {
    for (const peer of peers) {
      this.#byPeer.set(peer, {
        match: 0,
        next: lastIndex + 1,
        mode: "probe",
        probeSent: false,
        inflight: [],
      });
    }
  }

  /** A new member (configuration change): probed from the end of the leader's log. */
  add(peer: NodeId, lastIndex: number): void {
    this.#byPeer.set(peer, { match: 0, next: lastIndex + 1, mode: "probe", probeSent: false, inflight: [] });
  }

  /** Forgets every follower not in `peers` (it left the configuration). */
  retain(peers: readonly NodeId[]): void {
    for (const p of [...this.#byPeer.keys()]) if (!peers.includes(p)) this.#byPeer.delete(p);
  }

  get(peer: NodeId): Progress | undefined {
    return this.#byPeer.get(peer);
  }

  values(): IterableIterator<Progress> {
    return this.#byPeer.values();
  }

  /** The follower acknowledged the prefix up to `matchIndex`. */
  onSuccess(pr: Progress, matchIndex: number): void {
    if (matchIndex > pr.match) pr.match = matchIndex;
    pr.next = Math.max(pr.next, pr.match + 1);
    pr.inflight = pr.inflight.filter((f) => f.lastIndex > pr.match);
    if (pr.mode !== "replicate") {
      pr.mode = "replicate";
      pr.probeSent = false;
      pr.snapshot = undefined;
      pr.next = pr.match + 1;
    }
  }

  /**
   * The follower rejected an AppendEntries; `next` is where the leader should look next (already clamped to
   * the leader's log). Returns false for a stale rejection of a message sent before a success.
   */
  onRejection(pr: Progress, conflictIndex: number, next: number): boolean {
    if (conflictIndex <= pr.match) return false;
    pr.next = Math.max(pr.match + 1, next);
    pr.mode = "probe";
    pr.probeSent = false;
    pr.inflight = [];
    return true;
  }

  /** Retransmit what seems lost: an unanswered batch older than `timeoutMs` restarts from the match index. */
  expireInflight(nowMs: number, timeoutMs: number): void {
    for (const pr of this.#byPeer.values()) {
      if (pr.inflight.length > 0 && nowMs - pr.inflight[0].sentAtMs >= timeoutMs) {
        pr.inflight = [];
        pr.next = pr.match + 1;
      }
    }
  }

  /** Match indexes of `peers`, in that order. */
  matches(peers: readonly NodeId[]): number[] {
    return peers.map((p) => this.#byPeer.get(p)!.match);
  }

  /**
   * The most up-to-date follower: the default target of a transfer. Ties go to the one heard from most recently
   * (`heardAtMs`, when given: a follower that is down keeps its old match index, and a transfer to it can only
   * time out), then to the lowest id.
   */
  mostUpToDate(peers: readonly NodeId[], heardAtMs: (peer: NodeId) => number = () => 0): NodeId {
    return [...peers].sort((a, b) =>
      this.#byPeer.get(b)!.match - this.#byPeer.get(a)!.match || heardAtMs(b) - heardAtMs(a) || a - b
    )[0];
  }
}
