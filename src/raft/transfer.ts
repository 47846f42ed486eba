/**
 * Leadership transfer (Raft thesis §3.10, SPEC rule 8): the state of a transfer under way.
 *
 * @module
 */
import type { NodeId } from "./types.ts";

export interface Transfer {
  readonly to: NodeId;
  /** Local time at which the leader gives up and steps down (its lease is revoked and may not come back). */
  readonly deadlineMs: number;
  /** TimeoutNow went out (the target was up to date). */
  timeoutNowSent: boolean;
}

export type TransferResult = { ok: true; to: NodeId } | { ok: false; reason: string };
