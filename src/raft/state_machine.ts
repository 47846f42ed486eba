/**
 * What the core needs from the replicated state machine (implemented by `src/kv/`). The core applies every
 * committed entry in index order, exactly once per process lifetime, and reads applied state for GETs.
 *
 * @module
 */
import type { Entry, WriteOutcome } from "./types.ts";

export interface StateMachine {
  /**
   * Applies one committed entry (NO-OPs included). Called in index order, each index once. Returns what a
   * write did (handed to the client in its WriteResult), or undefined (NO-OP, or the machine does not say).
   */
  apply(entry: Entry): WriteOutcome | undefined | void;
  /** The applied value of `key`, or undefined when absent. */
  get(key: string): string | undefined;
  /**
   * True when the SET of session `clientId` with sequence `seq` is already applied (exactly-once: a retry of
   * it must not be appended again). Always false for an empty `clientId`.
   */
  isApplied(clientId: string, seq: number): boolean;
  /** The outcome of an applied write of session `clientId` with `seq`, if remembered (answers a retry). */
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
  | "commit-term";

export const BROKEN_RULES: readonly BrokenRule[] = [
  "lease-wait",
  "lease-anchor",
  "restart-promise",
  "commit-term",
];
