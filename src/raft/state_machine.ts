/**
 * What the core needs from the replicated state machine (implemented by `src/kv/`). The core applies every
 * committed entry in index order, exactly once per process lifetime, and reads applied state for GETs.
 *
 * @module
 */
import type { Entry, Refusal, SessionCommand, WriteOutcome } from "./types.ts";

/** A write a client session applies to: SET, DELETE or CAS (the name predates DELETE and CAS). */
export type SetCommand = SessionCommand;

/** What a client session, as applied so far, says about a write (see src/kv/README.md). */
export type SessionVerdict =
  /** Not seen yet: append and apply it. */
  | { readonly kind: "new" }
  /** The session's last applied write, retried: answer ok (with its first outcome), append nothing. */
  | { readonly kind: "retry" }
  /** Below the session's last applied seq (or reusing it for another write): never applied. */
  | { readonly kind: "stale"; readonly lastSeq: number }
  /**
   * The session is unknown and the seq is not a session's first: it expired. Only final when applied (the
   * session may still be created by an entry not applied yet), so the core decides this at apply time.
   */
  | { readonly kind: "expired" };

export interface StateMachine {
  /**
   * Applies one committed entry (NO-OPs included). Called in index order, each index once. Returns the refusal
   * when the session table refuses a SET (`staleSequence`, `sessionExpired`: nothing applied), else undefined;
   * the core hands it to the caller waiting for that entry.
   */
  apply(entry: Entry): Refusal | undefined;
  /** The applied value of `key`, or undefined when absent. */
  get(key: string): string | undefined;
  /** The session verdict on `command` from the state applied so far (the core answers retries with it). */
  checkSession(command: SetCommand): SessionVerdict;
  /**
   * What the entry just applied did (DELETE: whether the key existed; CAS: whether the comparison held, and
   * the state it found), handed to the caller in its WriteResult; undefined for a NO-OP or a refusal.
   */
  lastOutcome?(): WriteOutcome | undefined;
  /** The outcome of session `clientId`'s last applied write if it is `seq` (answers a retry of it). */
  outcomeOf?(clientId: string, seq: number): WriteOutcome | undefined;
}

/** A source of uniform numbers in [0, 1), seeded by the caller (the core draws no randomness of its own). */
export type Random = () => number;

/**
 * Safety rules that the simulator's negative controls can switch off one at a time, to show that the checkers
 * catch the violation. Production code never sets one.
 */
export type BrokenRule =
  /** The new leader does not wait out the old leaders' leases. */
  | "lease-wait"
  /** The lease is timed from the arrival of the majority's acks instead of the heartbeat's send time. */
  | "lease-anchor"
  /** A restarted voter forgets that it may have promised a lease before it crashed. */
  | "restart-promise"
  /** The leader commits entries of earlier terms by counting replicas (the Raft Figure 8 bug). */
  | "commit-term"
  /** A follower promises the lease as claimed, not stretched by the drift budget (rules 4 and 6). */
  | "promise-margin"
  /** A candidate waits out a voter's remaining promise as reported, not stretched by the drift budget (rule 5). */
  | "wait-margin"
  /** A leader handing over leadership keeps its lease (and serves) instead of revoking it (rule 8). */
  | "transfer-revoke"
  /**
   * A follower installs a snapshot older than its commit index (rolling its applied state back); the leader
   * sends its snapshot to every follower it probes, so that this happens.
   */
  | "snapshot-index"
  /**
   * A restarted voter assumes only its own configured lease (not the largest it ever promised, rule 6), and
   * peers do not refuse each other's messages when their timings differ (the fingerprint check).
   */
  | "timing-mismatch"
  /** During a joint configuration the leader counts only the incoming voters (elections, commits, lease). */
  | "config-quorum"
  /**
   * A follower answers a ReadIndex read as soon as the leader's read index arrives, without waiting until it
   * has applied that index (nor until its applied entries are visible).
   */
  | "read-index"
  /**
   * Liveness, not safety (so not in BROKEN_RULES, which the simulator must catch): a node ignores thesis
   * §4.2.3 and lets a vote request from a node outside its configuration raise its term while it hears from
   * a live leader. Only the negative control of membership_test's removed-node test uses it.
   */
  | "removed-disrupt";

export const BROKEN_RULES: readonly BrokenRule[] = [
  "lease-wait",
  "lease-anchor",
  "restart-promise",
  "commit-term",
  "promise-margin",
  "wait-margin",
  "transfer-revoke",
  "snapshot-index",
  "timing-mismatch",
  "config-quorum",
  "read-index",
];
