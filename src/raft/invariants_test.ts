/**
 * The invariant checks find what they are meant to find (a check that can never fail proves nothing).
 */
import { findViolations, type InvariantView } from "./invariants.ts";

const LEADER: InvariantView = {
  id: 1,
  role: "leader",
  preCandidate: false,
  term: 3,
  votedFor: 1,
  leaderId: 1,
  commitIndex: 5,
  lastIndex: 7,
  lastTerm: 3,
  nowMs: 1000,
  leaseDurationMs: 800,
  leaseEndMs: 1500,
  leaseRevoked: false,
  transferring: false,
  termStartIndex: 5,
  termStartTerm: 3,
  progress: [{ peer: 2, match: 5, next: 8, inflight: [7] }],
  pendingIndexes: [6, 7],
  heldIndexes: [5],
};

function expectOne(view: InvariantView, fragment: string, prev?: InvariantView): void {
  const found = findViolations(view, prev);
  if (!found.some((f) => f.includes(fragment))) {
    throw new Error(`expected a violation mentioning "${fragment}", got ${JSON.stringify(found)}`);
  }
}

Deno.test("a consistent leader has no violation", () => {
  const found = findViolations(LEADER, { ...LEADER, commitIndex: 4 });
  if (found.length > 0) throw new Error(found.join("; "));
});

Deno.test("each invariant is reported when broken", () => {
  expectOne({ ...LEADER, commitIndex: 4 }, "commit index went back", LEADER);
  expectOne({ ...LEADER, term: 2, lastTerm: 2, termStartTerm: 2 }, "term went back", LEADER);
  expectOne({ ...LEADER, commitIndex: 8, pendingIndexes: [] }, "beyond the last index");
  expectOne({ ...LEADER, votedFor: 2 }, "voted for 2");
  expectOne({ ...LEADER, leaseEndMs: 1801 }, "more than 800 ms after now");
  expectOne({ ...LEADER, progress: [{ peer: 2, match: 8, next: 8, inflight: [] }] }, "progress of 2");
  expectOne({ ...LEADER, progress: [{ peer: 2, match: 5, next: 7, inflight: [7] }] }, "in flight outside");
  expectOne({ ...LEADER, termStartTerm: 2 }, "NO-OP");
  expectOne({ ...LEADER, transferring: true }, "lease not revoked");
  expectOne({ ...LEADER, pendingIndexes: [5] }, "waits for index 5");
  expectOne({ ...LEADER, heldIndexes: [6] }, "is held");
  const follower: InvariantView = { ...LEADER, role: "follower", leaderId: 2, progress: [] };
  expectOne(follower, "proposals waiting");
  expectOne({ ...follower, pendingIndexes: [], heldIndexes: [], leaseRevoked: true }, "revoked lease");
  expectOne({ ...follower, votedFor: 3, pendingIndexes: [], heldIndexes: [] }, "vote of term 3 changed", {
    ...follower,
    votedFor: 2,
  });
});
