/**
 * Snapshots in the core (Raft §7): compaction behind a snapshot, InstallSnapshot in chunks with flow control
 * and restart after a lost chunk, the same term checks as AppendEntries, and the state replaced at once. A
 * hand-driven cluster whose "disks" hold a JSON snapshot of a map, sent in small chunks.
 */
import { RaftCore } from "./core.ts";
import type { RaftConfig } from "./config.ts";
import { DEFAULT_LIMITS, SNAPSHOT_WINDOW_CHUNKS } from "./config.ts";
import type { BrokenRule, SessionVerdict, StateMachine } from "./state_machine.ts";
import type { Entry, LogPosition, Message, NodeId, SnapshotInfo } from "./types.ts";

function assert(cond: unknown, msg = "assertion failed"): asserts cond {
  if (!cond) throw new Error(msg);
}
function assertEquals<T>(actual: T, expected: T, msg = ""): void {
  const a = JSON.stringify(actual), e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${msg}\nexpected: ${e}\nactual:   ${a}`);
}

class MapMachine implements StateMachine {
  data = new Map<string, string>();
  appliedIndex = 0;
  /** Every applied index, in order (a restore is recorded as -index). */
  history: number[] = [];
  apply(e: Entry): undefined {
    if (e.index !== this.appliedIndex + 1) throw new Error(`applied ${e.index} after ${this.appliedIndex}`);
    this.appliedIndex = e.index;
    this.history.push(e.index);
    if (e.command.op === "set") this.data.set(e.command.key, e.command.value);
  }
  get(k: string) {
    return this.data.get(k);
  }
  checkSession(): SessionVerdict {
    return { kind: "new" };
  }
  encode(): Uint8Array {
    return new TextEncoder().encode(JSON.stringify({ i: this.appliedIndex, d: [...this.data] }));
  }
  restore(bytes: Uint8Array): void {
    const s = JSON.parse(new TextDecoder().decode(bytes));
    this.data = new Map(s.d);
    this.appliedIndex = s.i;
    this.history.push(-s.i);
  }
}

interface Disk {
  term: number;
  votedFor: number;
  start: LogPosition;
  entries: Entry[];
  commitIndex: number;
  snapshot?: { info: SnapshotInfo; bytes: Uint8Array };
  receiving: Uint8Array;
}

const CHUNK = 1024;

class Cluster {
  nowMs = 0;
  nodes = new Map<NodeId, RaftCore>();
  machines = new Map<NodeId, MapMachine>();
  disks = new Map<NodeId, Disk>();
  inbox: Message[] = [];
  down = new Set<NodeId>();
  chunksSent = 0;

  constructor(readonly size: number, readonly broken?: BrokenRule, readonly trailing = 2) {
    for (let id = 1; id <= size; id++) {
      this.disks.set(id, {
        term: 0,
        votedFor: 0,
        start: { index: 0, term: 0 },
        entries: [],
        commitIndex: 0,
        receiving: new Uint8Array(0),
      });
      this.start(id);
    }
  }

  config(id: NodeId): RaftConfig {
    return {
      heartbeatIntervalMs: 100,
      electionTimeoutMsMin: 1000,
      electionTimeoutMsMax: 2000,
      leaseDurationMs: 800,
      maxClockDrift: 0.01,
      ...DEFAULT_LIMITS,
      id,
      voterIds: [...Array(this.size).keys()].map((i) => i + 1),
      preVote: true,
      snapshotTrailingEntries: this.trailing,
      snapshotChunkBytes: CHUNK,
    };
  }

  start(id: NodeId): void {
    const d = this.disks.get(id)!;
    const sm = new MapMachine();
    if (d.snapshot) sm.restore(d.snapshot.bytes);
    let s = id * 7919;
    const random = () => ((s = (s * 48271) % 2147483647) / 2147483647);
    this.machines.set(id, sm);
    this.nodes.set(
      id,
      new RaftCore(
        this.config(id),
        {
          hardState: { term: d.term, votedFor: d.votedFor },
          entries: d.entries,
          commitIndex: d.commitIndex,
          logStart: d.start,
          snapshot: d.snapshot?.info,
        },
        sm,
        random,
        this.nowMs,
        { brokenRule: this.broken },
      ),
    );
    this.down.delete(id);
  }

  crash(id: NodeId): void {
    this.down.add(id);
    this.inbox = this.inbox.filter((m) => m.to !== id && m.from !== id);
  }

  node(id: NodeId): RaftCore {
    return this.nodes.get(id)!;
  }

  /** Takes a snapshot on `id` at its applied index and compacts its disk like the node would. */
  snapshot(id: NodeId): number {
    const n = this.node(id), sm = this.machines.get(id)!, d = this.disks.get(id)!;
    const index = sm.appliedIndex;
    const term = index === d.start.index ? d.start.term : d.entries[index - d.start.index - 1].term;
    const bytes = sm.encode();
    d.snapshot = { info: { index, term, sizeBytes: bytes.length }, bytes };
    const to = n.snapshotTaken(d.snapshot.info);
    // The file carries the configuration in force at its index (snapshot.txt's CONFIG line).
    d.snapshot.info = { ...d.snapshot.info, config: n.configAt(index) };
    if (to > d.start.index) {
      const t = d.entries[to - d.start.index - 1].term;
      d.entries = d.entries.slice(to - d.start.index);
      d.start = { index: to, term: t };
    }
    return to;
  }

  drain(): void {
    for (const [id, n] of this.nodes) {
      if (this.down.has(id) || !n.hasReady()) continue;
      const r = n.ready();
      const d = this.disks.get(id)!;
      const c = r.snapshotChunk;
      if (c) {
        const base = c.offset === 0 ? new Uint8Array(0) : d.receiving;
        assertEquals(base.length, c.offset, `node ${id} writes a chunk at the end of what it received`);
        const next = new Uint8Array(base.length + c.data.length);
        next.set(base);
        next.set(c.data, base.length);
        d.receiving = next;
      }
      if (r.installSnapshot) {
        const at = r.installSnapshot;
        // The received file is the leader's: its CONFIG line is the configuration the core now holds.
        const config = n.snapshot?.config;
        d.snapshot = {
          info: { ...at, sizeBytes: d.receiving.length, ...(config === undefined ? {} : { config }) },
          bytes: d.receiving,
        };
        this.machines.get(id)!.restore(d.receiving);
        const have = at.index === d.start.index
          ? d.start.term
          : d.entries[at.index - d.start.index - 1]?.term;
        d.entries = have === at.term ? d.entries.slice(at.index - d.start.index) : [];
        d.start = at;
        d.commitIndex = Math.max(d.commitIndex, at.index);
      }
      if (r.hardState) Object.assign(d, r.hardState);
      if (r.appendFrom !== undefined) {
        const keep = r.appendFrom - 1 - d.start.index;
        assert(keep >= 0 && keep <= d.entries.length, `node ${id}: appendFrom ${r.appendFrom} fits the disk`);
        d.entries = [...d.entries.slice(0, keep), ...r.entries];
      }
      if (r.commitIndex !== undefined) d.commitIndex = r.commitIndex;
      for (const m of r.messages) {
        if (m.type === "InstallSnapshot") {
          const snap = d.snapshot!;
          if (snap.info.index !== m.lastIncludedIndex) continue; // replaced meanwhile: dropped
          this.chunksSent++;
          this.inbox.push({ ...m, data: snap.bytes.slice(m.offset, m.offset + m.length) });
        } else {
          this.inbox.push(m);
        }
      }
    }
  }

  deliverAll(filter: (m: Message) => boolean = () => true): void {
    for (let rounds = 0; rounds < 5000; rounds++) {
      this.drain();
      if (this.inbox.length === 0) return;
      const batch = this.inbox;
      this.inbox = [];
      for (const m of batch) {
        if (this.down.has(m.to) || !filter(m)) continue;
        this.node(m.to).step(this.nowMs, m);
      }
    }
    throw new Error("network never went quiet");
  }

  run(ms: number, filter?: (m: Message) => boolean): void {
    const end = this.nowMs + ms;
    while (this.nowMs < end) {
      this.nowMs += 10;
      for (const [id, n] of this.nodes) {
        if (!this.down.has(id) && n.nextWakeMs() <= this.nowMs) n.tick(this.nowMs);
      }
      this.deliverAll(filter);
    }
  }

  electServing(maxMs = 10_000): NodeId {
    for (let t = 0; t < maxMs; t += 10) {
      const ls = [...this.nodes].filter(([id, n]) => !this.down.has(id) && n.role === "leader");
      const l = ls.sort((a, b) => b[1].term - a[1].term)[0]?.[0];
      if (l !== undefined && this.node(l).status(this.nowMs).servingReads) return l;
      this.run(10);
    }
    throw new Error("no serving leader");
  }

  /** Proposes `n` SETs with big values (so the snapshot spans several chunks) and lets them commit. */
  write(l: NodeId, n: number, tag: string): void {
    for (let i = 0; i < n; i++) {
      const r = this.node(l).propose(this.nowMs, {
        op: "set",
        key: `k${i % 50}`,
        value: `${tag}-${i}-${"x".repeat(200)}`,
        clientId: "",
        seq: 0,
      }, i);
      assert(r.ok, `proposal ${i} accepted`);
    }
    this.run(300);
  }
}

Deno.test("a snapshot compacts the log behind it, keeping the trailing entries for lagging followers", () => {
  const c = new Cluster(3, undefined, 2);
  const l = c.electServing();
  c.write(l, 10, "a");
  const n = c.node(l);
  const commit = n.commitIndex;
  assertEquals(commit, 11, "NO-OP and 10 SETs committed");
  const to = c.snapshot(l);
  assertEquals(to, commit - 2);
  assertEquals(n.logStart.index, commit - 2);
  assertEquals(n.log().length, 2);
  assertEquals(n.status(c.nowMs).snapshotIndex, commit);
  // Replication goes on from the log: a follower that is current needs no snapshot.
  c.write(l, 3, "b");
  assertEquals(c.chunksSent, 0, "no snapshot sent to followers that were current");
  for (const id of [1, 2, 3]) assertEquals(c.machines.get(id)!.get("k0"), c.machines.get(l)!.get("k0"));
});

Deno.test("a follower that missed compacted entries is sent the snapshot in chunks, a bounded window in flight", () => {
  const c = new Cluster(3, undefined, 1);
  const l = c.electServing();
  const f = [1, 2, 3].find((id) => id !== l)!;
  c.crash(f);
  c.write(l, 40, "a");
  c.snapshot(l);
  c.write(l, 4, "b"); // entries after the snapshot come through the log
  let inFlight = 0, maxInFlight = 0;
  c.start(f);
  c.run(2000, (m) => {
    if (m.type === "InstallSnapshot") maxInFlight = Math.max(maxInFlight, ++inFlight);
    if (m.type === "InstallSnapshotResponse") inFlight--;
    return true;
  });
  const size = c.disks.get(l)!.snapshot!.info.sizeBytes;
  assert(size > 3 * CHUNK, `the snapshot spans several chunks (${size} bytes)`);
  assert(size > (SNAPSHOT_WINDOW_CHUNKS + 1) * CHUNK, `more chunks than the window (${size} bytes)`);
  assertEquals(maxInFlight, SNAPSHOT_WINDOW_CHUNKS, "flow control: the window is filled, never exceeded");
  assertEquals(c.node(f).snapshot?.index, c.node(l).snapshot?.index);
  assertEquals(c.node(f).commitIndex, c.node(l).commitIndex);
  assertEquals([...c.machines.get(f)!.data], [...c.machines.get(l)!.data]);
  // The follower's log starts at the snapshot; after a restart it rebuilds from snapshot + suffix.
  c.crash(f);
  c.start(f);
  assertEquals([...c.machines.get(f)!.data], [...c.machines.get(l)!.data], "after restart");
});

Deno.test("a lost chunk is resent, and a follower that restarts mid-install makes the leader start over", () => {
  const c = new Cluster(3, undefined, 0);
  const l = c.electServing();
  const f = [1, 2, 3].find((id) => id !== l)!;
  c.crash(f);
  c.write(l, 30, "a");
  c.snapshot(l);
  c.start(f);
  // Drop the first copy of the third chunk.
  let dropped = false;
  c.run(1000, (m) => {
    if (m.type === "InstallSnapshot" && m.offset === 2 * CHUNK && !dropped) return !(dropped = true);
    return true;
  });
  assert(dropped, "a chunk was dropped");
  assertEquals(c.node(f).snapshot?.index, c.node(l).snapshot?.index, "installed despite the loss");

  // Now a fresh follower that crashes after two chunks: its next incarnation is sent the snapshot from 0.
  const g = [1, 2, 3].find((id) => id !== l && id !== f)!;
  c.crash(g);
  c.disks.set(g, {
    term: 0,
    votedFor: 0,
    start: { index: 0, term: 0 },
    entries: [],
    commitIndex: 0,
    receiving: new Uint8Array(0),
  });
  c.start(g);
  let chunks = 0;
  c.run(500, (m) => !(m.type === "InstallSnapshot" && m.to === g && ++chunks > 2));
  assertEquals(c.node(g).snapshot, undefined, "not installed yet");
  c.crash(g);
  c.start(g);
  const offsets: number[] = [];
  c.run(2000, (m) => {
    if (m.type === "InstallSnapshot" && m.to === g) offsets.push(m.offset);
    return true;
  });
  assert(offsets.includes(0), `restarted from offset 0 (${offsets.join(",")})`);
  assertEquals([...c.machines.get(g)!.data], [...c.machines.get(l)!.data]);
});

Deno.test("a repeated first chunk of the snapshot being received does not restart the receive", () => {
  const c = new Cluster(3, undefined, 0);
  const l = c.electServing();
  const f = [1, 2, 3].find((id) => id !== l)!;
  c.crash(f);
  c.write(l, 30, "a");
  c.snapshot(l);
  c.start(f);
  // Let the first three chunks through and keep a copy of the first (the leader's window, resent late).
  let first: Message | undefined;
  let chunks = 0;
  c.run(300, (m) => {
    if (m.type !== "InstallSnapshot" || m.to !== f) return true;
    if (m.offset === 0) first ??= m;
    return ++chunks <= 3;
  });
  assert(first !== undefined && c.node(f).snapshot?.index !== c.node(l).snapshot?.index, "mid-receive");
  c.node(f).step(c.nowMs, first);
  const replies = c.node(f).ready().messages.filter((m) => m.type === "InstallSnapshotResponse");
  assertEquals(replies.map((m) => m.type === "InstallSnapshotResponse" && m.offset), [3 * CHUNK]);
  const offsets: number[] = [];
  c.run(2000, (m) => {
    if (m.type === "InstallSnapshot" && m.to === f) offsets.push(m.offset);
    return true;
  });
  assert(!offsets.includes(0), `continued, not restarted (${offsets.join(",")})`);
  assertEquals(c.node(f).snapshot?.index, c.node(l).snapshot?.index, "installed");
  assertEquals([...c.machines.get(f)!.data], [...c.machines.get(l)!.data]);
});

Deno.test("InstallSnapshot from a stale term is refused like AppendEntries, and one older than the commit is not installed", () => {
  const c = new Cluster(3);
  const l = c.electServing();
  c.write(l, 5, "a");
  const f = [1, 2, 3].find((id) => id !== l)!;
  const n = c.node(f);
  const term = n.term;
  n.step(c.nowMs, {
    type: "InstallSnapshot",
    from: l,
    to: f,
    term: term - 1,
    lastIncludedIndex: 100,
    lastIncludedTerm: term - 1,
    offset: 0,
    length: 1,
    sizeBytes: 1,
    data: new Uint8Array(1),
  });
  const r1 = n.ready();
  assertEquals(r1.snapshotChunk, undefined, "nothing written for a stale term");
  const resp = r1.messages.find((m) => m.type === "InstallSnapshotResponse");
  assertEquals(resp?.term, term, "the reply tells the stale leader the current term");
  // Same term, but the snapshot is older than what the follower has applied: nothing is installed.
  const commit = n.commitIndex;
  n.step(c.nowMs, {
    type: "InstallSnapshot",
    from: l,
    to: f,
    term,
    lastIncludedIndex: commit - 2,
    lastIncludedTerm: term,
    offset: 0,
    length: 1,
    sizeBytes: 1,
    data: new Uint8Array(1),
  });
  const r2 = n.ready();
  assertEquals(r2.installSnapshot, undefined);
  assertEquals(n.commitIndex, commit);
  const ack = r2.messages.find((m) => m.type === "InstallSnapshotResponse");
  assert(
    ack?.type === "InstallSnapshotResponse" && ack.matchIndex === commit,
    "match reported at the commit",
  );
});

Deno.test("with the snapshot-index rule broken, an old snapshot rolls a follower's applied state back", () => {
  const c = new Cluster(3, "snapshot-index");
  const l = c.electServing();
  c.write(l, 5, "a");
  const f = [1, 2, 3].find((id) => id !== l)!;
  const n = c.node(f);
  const commit = n.commitIndex;
  n.step(c.nowMs, {
    type: "InstallSnapshot",
    from: l,
    to: f,
    term: n.term,
    lastIncludedIndex: commit - 2,
    lastIncludedTerm: n.term,
    offset: 0,
    length: 1,
    sizeBytes: 1,
    data: new Uint8Array(1),
  });
  assertEquals(n.ready().installSnapshot?.index, commit - 2);
  assert(n.commitIndex < commit, "the commit index went back");
});

Deno.test("entries committed in the same batch as an installed snapshot are applied only after the caller restored it", () => {
  const c = new Cluster(3, undefined, 0);
  const l = c.electServing();
  const f = [1, 2, 3].find((id) => id !== l)!;
  c.crash(f);
  c.write(l, 30, "a");
  c.snapshot(l);
  c.write(l, 3, "b");
  c.start(f);
  let last: Message | undefined;
  c.run(1000, (m) => {
    if (m.type === "InstallSnapshot" && m.to === f && m.offset + m.length === m.sizeBytes) {
      last = m;
      return false;
    }
    return true;
  });
  assert(last?.type === "InstallSnapshot", "the last chunk was held back");
  const s = last.lastIncludedIndex;
  const next = c.node(l).log().find((e) => e.index === s + 1)!;
  const n = c.node(f), sm = c.machines.get(f)!;
  n.step(c.nowMs, last);
  n.step(c.nowMs, {
    type: "AppendEntries",
    from: l,
    to: f,
    term: last.term,
    prevLogIndex: s,
    prevLogTerm: last.lastIncludedTerm,
    entries: [next],
    leaderCommit: s + 1,
    leaseDurationMs: 800,
    seq: 1_000_000,
  });
  assertEquals(n.commitIndex, s + 1);
  assert(sm.appliedIndex < s, "nothing applied before the restore");
  c.drain(); // persists the chunk, installs, restores the machine at s
  assertEquals(sm.appliedIndex, s);
  n.tick(c.nowMs); // the next input applies what was committed meanwhile
  assertEquals(sm.appliedIndex, s + 1);
});

/** The ids of a node's current configuration's voters, sorted. */
function voters(n: RaftCore): NodeId[] {
  return n.membership.members.filter((m) => m.voter).map((m) => m.id).sort((a, b) => a - b);
}

/** Removes `id` through joint consensus at leader `l` and runs until both entries are committed. */
function removeMember(c: Cluster, l: NodeId, id: NodeId): void {
  const r = c.node(l).changeMembership(c.nowMs, { kind: "remove", id });
  assert(r.ok, `remove ${id}: ${r.ok ? "" : r.reason}`);
  c.run(500);
  assert(!c.node(l).membership.outgoingVoters, "the joint phase ended");
  assertEquals(voters(c.node(l)).includes(id), false, `node ${id} is no voter any more`);
}

Deno.test("a node restarted after compacting past a configuration change keeps that configuration, not the bootstrap one", () => {
  const c = new Cluster(3, undefined, 0);
  const l = c.electServing();
  const gone = [1, 2, 3].find((id) => id !== l)!;
  removeMember(c, l, gone);
  const expected = voters(c.node(l));
  assertEquals(expected.length, 2);
  c.write(l, 5, "a");
  c.snapshot(l);
  const d = c.disks.get(l)!;
  assert(
    d.entries.every((e) => e.command.op !== "config"),
    "every configuration entry is compacted away",
  );
  assertEquals(c.node(l).snapshot?.config?.membership.members.map((m) => m.id).includes(gone), false);
  c.crash(l);
  c.start(l);
  assertEquals(voters(c.node(l)), expected, "the restarted node's voters are the snapshot's");
  // Fresh ids only survives compaction: the removed id is refused again once this node leads.
  const l2 = c.electServing();
  const again = c.node(l2).changeMembership(c.nowMs, {
    kind: "add",
    id: gone,
    address: "n9:1",
    promote: false,
  });
  assert(!again.ok && again.reason.includes("was a member before"), "a removed id is never reused");
});

Deno.test("a follower caught up by InstallSnapshot takes the snapshot's configuration, also after a restart", () => {
  const c = new Cluster(5, undefined, 0);
  const l = c.electServing();
  const [f, gone] = [1, 2, 3, 4, 5].filter((id) => id !== l);
  c.crash(f);
  removeMember(c, l, gone);
  c.write(l, 20, "a");
  c.snapshot(l);
  c.start(f);
  c.run(2000);
  assertEquals(c.node(f).snapshot?.index, c.node(l).snapshot?.index, "the follower installed the snapshot");
  assertEquals(voters(c.node(f)), voters(c.node(l)), "the follower's configuration is the leader's");
  assertEquals(voters(c.node(f)).includes(gone), false);
  c.crash(f);
  c.start(f);
  assertEquals(voters(c.node(f)), voters(c.node(l)), "and stays so after a restart");
});
