import type { Entry } from "../../src/raft/types.ts";
import { Checker, logMismatch } from "./checkers.ts";
import { assert, assertEquals } from "./assert.ts";

const noop = (index: number, term: number): Entry => ({ index, term, command: { op: "noop" } });
const set = (index: number, term: number, value: string): Entry => ({
  index,
  term,
  command: { op: "set", key: "k", value, clientId: "c1", seq: index },
});
const names = (c: Checker) => [...c.counts.keys()];

Deno.test("two leaders in one term break election safety, one leader per term does not", () => {
  const c = new Checker();
  c.onLeader(0, 1, 1, [noop(1, 1)]);
  c.onLeader(1, 1, 1, [noop(1, 1)]);
  c.onLeader(2, 2, 2, [noop(1, 1), noop(2, 2)]);
  assert(c.ok);
  c.onLeader(3, 3, 2, [noop(1, 1), noop(2, 2)]);
  assertEquals(names(c), ["election safety"]);
});

Deno.test("logs that agree on an entry's term but differ before it break log matching", () => {
  const a = [noop(1, 1), set(2, 1, "a"), noop(3, 2)];
  assertEquals(logMismatch(a, [noop(1, 1), set(2, 1, "a")]), undefined);
  assertEquals(logMismatch(a, [noop(1, 1), set(2, 1, "a"), noop(3, 3)]), undefined); // diverging tails are fine
  assert(logMismatch(a, [noop(1, 1), set(2, 1, "b"), noop(3, 2)])?.includes("index 2"));
  const c = new Checker();
  c.checkLogMatching(0, [{ node: 1, log: a }, { node: 2, log: [noop(1, 1), set(2, 1, "b"), noop(3, 2)] }]);
  assertEquals(names(c), ["log matching"]);
});

Deno.test("a node committing a different entry at a committed index is caught", () => {
  const c = new Checker();
  c.onCommit(0, 1, 1, [noop(1, 1), set(2, 1, "a")], 0, 2);
  c.onCommit(1, 2, 1, [noop(1, 1), set(2, 1, "a")], 0, 2);
  assert(c.ok);
  c.onCommit(2, 3, 2, [noop(1, 1), set(2, 2, "b")], 0, 2);
  assertEquals(names(c), ["committed entry lost or changed"]);
});

Deno.test("a leader of a later term missing a committed entry breaks leader completeness", () => {
  const c = new Checker();
  c.onCommit(0, 1, 3, [noop(1, 1), set(2, 3, "a")], 0, 2);
  // A leader of an earlier term elected later in real time (from votes granted earlier) is allowed.
  c.onLeader(1, 2, 2, [noop(1, 1), noop(2, 2)]);
  assert(c.ok);
  c.onLeader(2, 3, 4, [noop(1, 1), noop(2, 4)]);
  assertEquals(names(c), ["leader completeness"]);
});

Deno.test("nodes applying different commands at one index break state machine safety", () => {
  const c = new Checker();
  c.onApply(0, 1, set(1, 1, "a"));
  c.onApply(1, 2, set(1, 1, "a"));
  assert(c.ok);
  c.onApply(2, 3, set(1, 1, "b"));
  assertEquals(names(c), ["state machine safety"]);
});

Deno.test("two overlapping lease intervals are caught, touching ones are not", () => {
  const c = new Checker();
  c.checkLeaseHolders(100, [{ node: 1, untilMs: 200 }, { node: 2, untilMs: -Infinity }]);
  c.checkLeaseHolders(200, [{ node: 1, untilMs: 200 }, { node: 2, untilMs: 500 }]);
  assert(c.ok);
  c.checkLeaseHolders(150, [{ node: 1, untilMs: 200 }, { node: 2, untilMs: 500 }]);
  assertEquals(names(c), ["two lease holders"]);
});

Deno.test("a client-visible action while another node's lease is open is caught", () => {
  const c = new Checker();
  c.checkVisibleAction(100, 2, "answers GET k", [{ node: 2, untilMs: 300 }]); // its own lease
  c.checkVisibleAction(100, 2, "answers GET k", [{ node: 1, untilMs: 100 }]); // expired at that instant
  assert(c.ok);
  c.checkVisibleAction(100, 2, "acknowledges SET k=v", [{ node: 1, untilMs: 120 }]);
  assertEquals(names(c), ["visible during another lease"]);
});

Deno.test("a vote or an ack sent before its promise is on disk is caught", () => {
  const c = new Checker();
  const vote = {
    type: "RequestVoteResponse",
    from: 2,
    to: 1,
    term: 3,
    preVote: false,
    voteGranted: true,
    leaseRemainingMs: 0,
    leaseTerm: 0,
  } as const;
  c.checkPersistedBeforeSent(0, vote, { term: 3, votedFor: 1, lastIndex: 0 });
  const ack = {
    type: "AppendEntriesResponse",
    from: 2,
    to: 1,
    term: 3,
    success: true,
    matchIndex: 2,
    conflictIndex: 0,
    conflictTerm: 0,
    seq: 1,
  } as const;
  c.checkPersistedBeforeSent(0, ack, { term: 3, votedFor: 1, lastIndex: 2 });
  assert(c.ok);
  c.checkPersistedBeforeSent(0, vote, { term: 2, votedFor: 0, lastIndex: 0 });
  c.checkPersistedBeforeSent(0, ack, { term: 3, votedFor: 1, lastIndex: 1 });
  assertEquals(c.counts.get("persisted before sent"), 2);
});
