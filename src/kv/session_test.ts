/**
 * Client sessions end to end: the core proposes, the KvStore applies and decides, and the answer that reaches
 * the waiting caller says what the state machine did (SPEC §3, issue 14 parts 6 and 7). A single-node cluster
 * keeps the schedule trivial: every proposal commits at the next `ready()`.
 */
import { RaftCore } from "../raft/core.ts";
import { DEFAULT_LIMITS } from "../raft/config.ts";
import type { Command, ProposeResult, WriteResult } from "../raft/types.ts";
import { type KvLimits, KvStore } from "./kv_store.ts";

function assertEquals<T>(actual: T, expected: T, msg = ""): void {
  const a = JSON.stringify(actual), e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${msg}\nexpected: ${e}\nactual:   ${a}`);
}

class OneNode {
  nowMs = 0;
  readonly kv: KvStore;
  readonly core: RaftCore;
  readonly results = new Map<number, WriteResult>();
  #tag = 0;

  constructor(limits?: KvLimits) {
    this.kv = new KvStore(limits);
    this.core = new RaftCore(
      {
        heartbeatIntervalMs: 100,
        electionTimeoutMsMin: 1000,
        electionTimeoutMsMax: 2000,
        leaseDurationMs: 800,
        maxClockDrift: 0.01,
        ...DEFAULT_LIMITS,
        id: 1,
        voterIds: [1],
        preVote: true,
      },
      { hardState: { term: 0, votedFor: 0 }, entries: [], commitIndex: 0 },
      this.kv,
      () => 0.5,
      0,
      { checkInvariants: true },
    );
    while (this.core.role !== "leader") this.advance(100);
    this.drain();
  }

  advance(ms: number): void {
    this.nowMs += ms;
    this.core.tick(this.nowMs);
    this.drain();
  }

  drain(): void {
    while (this.core.hasReady()) {
      for (const r of this.core.ready().results) this.results.set(r.tag, r);
    }
  }

  /** Proposes without draining: the entry stays in the uncommitted tail until `drain`. */
  propose(key: string, value: string, clientId: string, seq: number): { tag: number; r: ProposeResult } {
    const tag = ++this.#tag;
    const command: Command = { op: "set", key, value, clientId, seq };
    return { tag, r: this.core.propose(this.nowMs, command, tag) };
  }

  /** Proposes, commits, and returns what the caller is told (the immediate refusal or the later result). */
  set(key: string, value: string, clientId: string, seq: number): string {
    const { tag, r } = this.propose(key, value, clientId, seq);
    if (!r.ok) return r.refusal.kind;
    this.drain();
    return this.answer(tag);
  }

  answer(tag: number): string {
    const res = this.results.get(tag);
    if (res === undefined) return "no answer";
    return res.ok ? "ok" : res.refusal!.kind;
  }
}

Deno.test("a SET with a lower sequence number than its session's last is refused as stale, not acknowledged", () => {
  const n = new OneNode();
  assertEquals(n.set("k", "first", "c1", 1), "ok");
  assertEquals(n.set("k", "new", "c1", 3), "ok");
  assertEquals(n.set("k", "old", "c1", 2), "staleSequence");
  assertEquals(n.kv.get("k"), "new");
});

Deno.test("a client restarted with the same id and a fresh counter gets stale sequence, not a false ok", () => {
  const n = new OneNode();
  assertEquals(n.set("a", "1", "c1", 1), "ok");
  assertEquals(n.set("a", "2", "c1", 2), "ok");
  // The restarted process starts again at 1, then reaches 2 with a different write.
  assertEquals(n.set("b", "x", "c1", 1), "staleSequence");
  assertEquals(n.set("b", "y", "c1", 2), "staleSequence");
  assertEquals(n.kv.get("b"), undefined);
  // A genuine retry of the last SET is still answered ok without applying anything new.
  assertEquals(n.set("a", "2", "c1", 2), "ok");
});

Deno.test("two concurrent SETs of one session that reach the log reordered: the lower one is refused at apply", () => {
  const n = new OneNode();
  assertEquals(n.set("k", "opens the session", "c1", 1), "ok");
  const second = n.propose("k", "second", "c1", 3);
  const first = n.propose("k", "first", "c1", 2);
  assertEquals([second.r.ok, first.r.ok], [true, true], "both are appended (neither is applied yet)");
  n.drain();
  assertEquals(n.answer(second.tag), "ok");
  assertEquals(n.answer(first.tag), "staleSequence");
  assertEquals(n.kv.get("k"), "second");
});

Deno.test("a retry that arrives after its session was evicted is refused as expired, not applied again", () => {
  const n = new OneNode({ sessionsMax: 2, sessionIdleEntriesMax: 1_000_000 });
  assertEquals(n.set("k", "v1", "old", 1), "ok");
  assertEquals(n.set("k", "v2", "old", 2), "ok");
  assertEquals(n.set("x", "1", "a", 1), "ok");
  assertEquals(n.set("x", "2", "b", 1), "ok"); // a third session: "old" is the least recently used
  assertEquals(n.set("k", "newer", "a", 2), "ok");
  // The late retry of old's seq 2 would overwrite "newer" with "v2" if it were applied again.
  assertEquals(n.set("k", "v2", "old", 2), "sessionExpired");
  assertEquals(n.kv.get("k"), "newer");
});

Deno.test("a session idle for more than sessionIdleEntriesMax log entries expires on every replica alike", () => {
  const n = new OneNode({ sessionsMax: 100, sessionIdleEntriesMax: 5 });
  assertEquals(n.set("k", "v1", "idle", 1), "ok");
  for (let i = 1; i <= 5; i++) assertEquals(n.set("other", `${i}`, "busy", i), "ok");
  assertEquals(n.set("k", "v2", "idle", 2), "sessionExpired");
  assertEquals(n.set("other", "6", "busy", 6), "ok");
  assertEquals(n.kv.get("k"), "v1");
});

Deno.test("a new session starts at seq 1; an unknown session at a higher seq is refused as expired", () => {
  const n = new OneNode();
  assertEquals(n.set("k", "v", "fresh", 1), "ok");
  assertEquals(n.set("k", "w", "unknown", 7), "sessionExpired");
  assertEquals(n.kv.get("k"), "v");
});
