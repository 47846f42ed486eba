/**
 * Invariants of one node's core, checked after every call in test builds (`CoreOptions.checkInvariants`: the
 * simulator and the unit tests turn it on; production does not pay for it). Each is a property that holds
 * between any two calls, whatever the messages and the clock did; a violation is a bug in the core, reported
 * as an exception naming the call after which it appeared.
 *
 * @module
 */
import type { NodeId, Role } from "./types.ts";

/** What the checks look at: a plain snapshot the core builds from its private state. */
export interface InvariantView {
  readonly id: NodeId;
  readonly role: Role;
  readonly preCandidate: boolean;
  readonly term: number;
  readonly votedFor: NodeId;
  readonly leaderId: NodeId;
  readonly commitIndex: number;
  readonly lastIndex: number;
  readonly lastTerm: number;
  readonly nowMs: number;
  readonly leaseDurationMs: number;
  /** Leader: its lease end (-Infinity before the first majority ack). */
  readonly leaseEndMs: number;
  readonly leaseRevoked: boolean;
  readonly transferring: boolean;
  /** Leader: the index of its NO-OP and that entry's term. */
  readonly termStartIndex: number;
  readonly termStartTerm: number | undefined;
  /** Leader: each follower's progress. */
  readonly progress: readonly {
    readonly peer: NodeId;
    readonly match: number;
    readonly next: number;
    readonly inflight: readonly number[];
  }[];
  /** Indexes that callers wait for, and indexes of results held until ready. */
  readonly pendingIndexes: readonly number[];
  readonly heldIndexes: readonly number[];
}

/** The problems found in `v`, given the previous snapshot of the same node (empty: all is well). */
export function findViolations(v: InvariantView, prev: InvariantView | undefined): string[] {
  const out: string[] = [];
  const fail = (what: string) => out.push(what);
  if (prev !== undefined) {
    if (v.term < prev.term) fail(`term went back from ${prev.term} to ${v.term}`);
    if (v.commitIndex < prev.commitIndex) {
      fail(`commit index went back from ${prev.commitIndex} to ${v.commitIndex}`);
    }
    if (v.term === prev.term && prev.votedFor !== 0 && v.votedFor !== prev.votedFor) {
      fail(`vote of term ${v.term} changed from ${prev.votedFor} to ${v.votedFor}`);
    }
  }
  if (v.commitIndex > v.lastIndex) fail(`commit index ${v.commitIndex} beyond the last index ${v.lastIndex}`);
  if (v.lastTerm > v.term) fail(`last entry's term ${v.lastTerm} is above the current term ${v.term}`);
  if (v.preCandidate && v.role !== "candidate") fail(`a pre-candidate in role ${v.role}`);
  if (v.role === "candidate" && !v.preCandidate && v.votedFor !== v.id) {
    fail(`a candidate of term ${v.term} voted for ${v.votedFor}`);
  }
  if (v.role === "leader") {
    if (v.votedFor !== v.id) fail(`a leader of term ${v.term} voted for ${v.votedFor}`);
    if (v.leaderId !== v.id) fail(`a leader names ${v.leaderId} as leader`);
    if (v.termStartTerm !== v.term) {
      fail(`the leader's NO-OP at ${v.termStartIndex} has term ${v.termStartTerm}, not ${v.term}`);
    }
    // The lease starts at a send time, which is never in the future.
    if (v.leaseEndMs > v.nowMs + v.leaseDurationMs) {
      fail(`lease ends at ${v.leaseEndMs}, more than ${v.leaseDurationMs} ms after now (${v.nowMs})`);
    }
    for (const p of v.progress) {
      if (!(p.match < p.next && p.next <= v.lastIndex + 1)) {
        fail(`progress of ${p.peer}: match ${p.match}, next ${p.next}, last index ${v.lastIndex}`);
      }
      for (const f of p.inflight) {
        if (!(f > p.match && f < p.next)) {
          fail(`progress of ${p.peer}: batch up to ${f} in flight outside (${p.match}, ${p.next})`);
        }
      }
    }
    if (v.transferring && !v.leaseRevoked) fail("a transfer is under way with the lease not revoked");
  } else {
    if (v.transferring || v.leaseRevoked) fail(`a ${v.role} has a transfer or a revoked lease`);
    if (v.pendingIndexes.length > 0 || v.heldIndexes.length > 0) {
      fail(`a ${v.role} has ${v.pendingIndexes.length} proposals waiting and ${v.heldIndexes.length} held`);
    }
  }
  for (const i of v.pendingIndexes) {
    if (i <= v.commitIndex || i > v.lastIndex) {
      fail(`a proposal waits for index ${i} (commit ${v.commitIndex}, last ${v.lastIndex})`);
    }
  }
  for (const i of v.heldIndexes) {
    if (i > v.commitIndex) fail(`a result for index ${i} is held but only ${v.commitIndex} is committed`);
  }
  return out;
}
