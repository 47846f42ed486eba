/**
 * The driver's rules, with a hand-driven store, network and clock: contract order, group commit, the early
 * appends, limits with `overloaded`, explicit outcomes, fail-stop.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { KvStore } from "../kv/kv_store.ts";
import { DEFAULT_LIMITS, DEFAULT_TIMINGS } from "../raft/config.ts";
import type { Command, Message, NodeId } from "../raft/types.ts";
import type { SaveRequest } from "../storage/log_store.ts";
import { Driver, type DriverHooks, type DriverLimits, type ProposalOutcome } from "./driver.ts";

/** What a driver did, in order: "save", "done", "send <type>", "answer <kind>". */
class Harness {
  nowMs = 0;
  readonly trace: string[] = [];
  readonly sent: Message[] = [];
  readonly saves: { request: SaveRequest; done: (e?: Error) => void }[] = [];
  readonly answers: ProposalOutcome[] = [];
  driver: Driver;
  #seq = 0;

  constructor(id: NodeId, voters: NodeId[], limits: Partial<DriverLimits> = {}, hooks: DriverHooks = {}) {
    this.driver = new Driver({
      hooks,
      config: { ...DEFAULT_TIMINGS, ...DEFAULT_LIMITS, id, voterIds: voters, preVote: false },
      persisted: { hardState: { term: 0, votedFor: 0 }, entries: [], commitIndex: 0 },
      stateMachine: new KvStore(),
      random: () => 0.5,
      limits,
      clock: { now: () => this.nowMs, wakeAt: () => {} },
      store: {
        save: (request, done) => {
          this.trace.push("save");
          this.saves.push({ request, done });
        },
        noteCommit: () => {},
      },
      sender: {
        send: (m) => {
          this.trace.push(`send ${m.type}`);
          this.sent.push(m);
        },
      },
    });
  }

  /** Completes the oldest save. */
  complete(error?: Error): void {
    const s = this.saves.shift();
    ok(s, "no save under way");
    this.trace.push(error ? "failed" : "done");
    s.done(error);
  }

  propose(value = "v"): void {
    const command: Command = { op: "set", key: "k", value, clientId: "c", seq: ++this.#seq };
    this.driver.propose(command, (o) => {
      this.trace.push(`answer ${o.kind}`);
      this.answers.push(o);
    });
  }

  /** Elects node 1 of a three-node cluster: campaign, two votes. */
  electLeader(): void {
    this.nowMs = 10_000;
    this.driver.wake();
    while (this.saves.length > 0) this.complete();
    const rv = this.sent.find((m) => m.type === "RequestVote")!;
    for (const from of [2, 3]) {
      this.driver.deliver({
        type: "RequestVoteResponse",
        from,
        to: 1,
        term: rv.term,
        preVote: false,
        voteGranted: true,
        leaseRemainingMs: 0,
        leaseTerm: 0,
      });
    }
    while (this.saves.length > 0) this.complete();
    strictEqual(this.driver.core.role, "leader");
  }

  /** Acks what the leader sent so far (its NO-OP): it is then ready, holds a lease, and replicates freely. */
  ackAll(): void {
    const out = this.sent.filter((m) => m.type === "AppendEntries");
    this.sent.length = 0;
    for (const m of out) this.ack(1, m.to, m);
    while (this.saves.length > 0) this.complete();
  }

  ack(to: NodeId, from: NodeId, m: Message): void {
    if (m.type !== "AppendEntries") throw new Error(m.type);
    this.driver.deliver({
      type: "AppendEntriesResponse",
      from,
      to,
      term: m.term,
      success: true,
      matchIndex: m.prevLogIndex + m.entries.length,
      conflictIndex: 0,
      conflictTerm: 0,
      seq: m.seq,
    });
  }
}

Deno.test("a vote leaves only after the term and vote it promises are saved", () => {
  const h = new Harness(1, [1, 2, 3]);
  h.nowMs = 10_000;
  h.driver.wake(); // election timeout: campaign
  deepStrictEqual(h.trace, ["save"], "nothing is sent before the save completes");
  h.complete();
  ok(h.trace.indexOf("send RequestVote") > h.trace.indexOf("done"), h.trace.join(", "));
});

Deno.test("inputs that arrive during a save wait and are stepped in together after it (group commit)", () => {
  const h = new Harness(1, [1, 2, 3]);
  h.electLeader();
  const savesBefore = h.trace.filter((t) => t === "save").length;
  h.propose("a"); // starts a save
  h.propose("b");
  h.propose("c"); // both wait for the first save
  strictEqual(h.driver.inboxLength, 2);
  strictEqual(h.saves.length, 1);
  h.complete();
  strictEqual(h.saves.length, 1, "the two waiting SETs form one batch: one save");
  strictEqual(h.saves[0].request.entries.length, 2);
  strictEqual(h.trace.filter((t) => t === "save").length, savesBefore + 2);
});

Deno.test("a leader's AppendEntries leave during its own save, and their acks are stepped in only after it", () => {
  const h = new Harness(1, [1, 2, 3]);
  h.electLeader();
  h.ackAll();
  h.propose("x");
  const early = h.sent.filter((m) => m.type === "AppendEntries" && m.entries.length > 0);
  strictEqual(early.length, 2, "sent to both followers while the write is under way");
  strictEqual(h.saves.length, 1);
  for (const m of early) h.ack(1, m.to, m);
  strictEqual(h.answers.length, 0, "no commit: the acks wait for the leader's own write");
  strictEqual(h.driver.inboxLength, 2);
  h.complete();
  deepStrictEqual(h.answers.map((a) => a.kind), ["ok"]);
});

Deno.test("a failed save stops the driver: nothing more is sent, and waiting SETs get outcomeUnknown, never ok", () => {
  const h = new Harness(1, [1, 2, 3]);
  h.electLeader();
  h.propose("x");
  const sentBefore = h.sent.length;
  h.complete(new Error("fsync: EIO"));
  ok(h.driver.stopped);
  h.driver.deliver({
    type: "AppendEntriesResponse",
    from: 2,
    to: 1,
    term: h.driver.core.term,
    success: true,
    matchIndex: 2,
    conflictIndex: 0,
    conflictTerm: 0,
    seq: 1,
  });
  h.propose("y");
  strictEqual(h.sent.length, sentBefore);
  deepStrictEqual(h.answers.map((a) => a.kind), ["outcomeUnknown", "refused"]);
});

Deno.test("stopping answers accepted SETs outcomeUnknown and refuses the ones not yet taken", () => {
  const h = new Harness(1, [1, 2, 3]);
  h.electLeader();
  h.propose("a"); // accepted, its save under way
  h.propose("b"); // waits in the inbox
  h.driver.stop();
  deepStrictEqual(h.answers.map((a) => a.kind), ["outcomeUnknown", "refused"]);
});

Deno.test("a full inbox refuses a SET as overloaded and drops peer messages, counting them", () => {
  const h = new Harness(1, [1, 2, 3], { inboxMax: 2 });
  h.electLeader();
  h.propose("a"); // save under way: later inputs queue
  h.propose("b");
  h.propose("c");
  h.propose("d");
  deepStrictEqual(h.answers.map((a) => a.kind), ["overloaded"]);
  h.driver.deliver({ type: "TimeoutNow", from: 2, to: 1, term: 1 });
  strictEqual(h.driver.droppedMessages, 1);
});

Deno.test("too many SETs waiting for their commit refuses the next as overloaded", () => {
  const h = new Harness(1, [1, 2, 3], { pendingProposalsMax: 2 });
  h.electLeader();
  h.propose("a");
  h.complete();
  h.propose("b");
  h.complete();
  h.propose("c");
  deepStrictEqual(h.answers.map((a) => a.kind), ["overloaded"]);
});

Deno.test("a SET whose deadline passes before it commits is answered outcomeUnknown", () => {
  const h = new Harness(1, [1, 2, 3]);
  h.electLeader();
  h.driver.propose(
    { op: "set", key: "k", value: "v", clientId: "c", seq: 1 },
    (o) => h.answers.push(o),
    50,
  );
  h.complete();
  h.nowMs += 60;
  h.driver.wake();
  deepStrictEqual(h.answers.map((a) => a.kind), ["outcomeUnknown"]);
});

Deno.test("a leader's lease read is answered while a save is under way; a single voter's waits for it", () => {
  const h = new Harness(1, [1, 2, 3]);
  h.electLeader();
  h.ackAll(); // the NO-OP commits: the leader is ready and holds a lease
  h.propose("x"); // a save under way
  ok(h.driver.saving);
  let read: unknown;
  h.driver.read("k", (r) => (read = r));
  deepStrictEqual(read, { ok: true, value: "", found: false }, "answered without waiting for the save");

  const single = new Harness(1, [1]);
  single.nowMs = 10_000;
  single.driver.wake();
  while (single.saves.length > 0) single.complete();
  single.propose("y");
  ok(single.driver.saving);
  let singleRead: unknown;
  single.driver.read("k", (r) => (singleRead = r));
  strictEqual(singleRead, undefined, "a single voter's read waits: its entries commit before their fsync");
  single.complete();
  ok(singleRead !== undefined);
});

Deno.test("a membership change is an input: refused by a follower, queued behind a save, seen by onReady before its save", () => {
  const seenBeforeSave: boolean[] = [];
  let h: Harness | undefined = undefined;
  h = new Harness(1, [1, 2, 3], {}, {
    onReady: (rd) => {
      if (rd.entries.some((e) => e.command.op === "config")) {
        seenBeforeSave.push(h!.driver.core.membership.members.some((m) => m.id === 4) && !h!.driver.saving);
      }
    },
  });
  const answers: string[] = [];
  const add = () =>
    h!.driver.changeMembership(
      { kind: "add", id: 4, address: "n4:7000", promote: false },
      (r) => answers.push(r.ok ? `ok ${r.index}` : `refused: ${r.reason}`),
    );
  add();
  strictEqual(answers.length, 1);
  ok(answers[0].startsWith("refused"), answers[0]);
  h.electLeader();
  h.ackAll(); // the leader's NO-OP commits: it may now change the configuration (thesis 4.1 fix)
  h.propose("x"); // a save under way
  ok(h.driver.saving);
  add();
  strictEqual(answers.length, 1, "the change waits behind the save like any input");
  h.complete();
  strictEqual(answers.length, 2);
  ok(answers[1].startsWith("ok "), answers[1]);
  deepStrictEqual(seenBeforeSave, [true], "onReady saw the new member before the entry's save started");
});
