/**
 * Membership changes (issue 11), rule by rule, on a hand-driven cluster: one shared clock, instant disks,
 * messages delivered when the test says so.
 */
import { RaftCore } from "./core.ts";
import { DEFAULT_LIMITS, type RaftConfig } from "./config.ts";
import { Configuration, type MembershipChange } from "./membership.ts";
import { LeaseTracker } from "./lease.ts";
import type { BrokenRule, SessionVerdict, StateMachine } from "./state_machine.ts";
import type { Entry, HardState, Message, NodeId } from "./types.ts";

function assert(cond: unknown, msg = "assertion failed"): asserts cond {
  if (!cond) throw new Error(msg);
}

class Machine implements StateMachine {
  data = new Map<string, string>();
  apply(e: Entry): undefined {
    if (e.command.op === "set") this.data.set(e.command.key, e.command.value);
  }
  get(k: string) {
    return this.data.get(k);
  }
  checkSession(): SessionVerdict {
    return { kind: "new" };
  }
}

const TIMINGS = {
  heartbeatIntervalMs: 100,
  electionTimeoutMsMin: 1000,
  electionTimeoutMsMax: 2000,
  leaseDurationMs: 800,
  maxClockDrift: 0.01,
};

class Cluster {
  nowMs = 0;
  nodes = new Map<NodeId, RaftCore>();
  disks = new Map<NodeId, { hardState: HardState; entries: Entry[] }>();
  inbox: Message[] = [];
  down = new Set<NodeId>();
  /** Links `from-to` that drop everything. */
  cuts = new Set<string>();
  /** Drops the messages it returns true for. */
  blocked: (m: Message) => boolean = () => false;

  constructor(
    readonly bootstrap: NodeId[],
    readonly broken?: BrokenRule,
    readonly promoteLag = 100,
    readonly preVote = true,
  ) {
    for (const id of bootstrap) this.start(id, false);
  }

  start(id: NodeId, join: boolean): void {
    if (!this.disks.has(id)) this.disks.set(id, { hardState: { term: 0, votedFor: 0 }, entries: [] });
    const d = this.disks.get(id)!;
    let s = id * 7919;
    const cfg: RaftConfig = {
      ...TIMINGS,
      ...DEFAULT_LIMITS,
      id,
      voterIds: this.bootstrap,
      join,
      preVote: this.preVote,
      promoteLagEntriesMax: this.promoteLag,
    };
    this.nodes.set(
      id,
      new RaftCore(
        cfg,
        { hardState: d.hardState, entries: d.entries, commitIndex: 0 },
        new Machine(),
        () => ((s = (s * 48271) % 2147483647) / 2147483647),
        this.nowMs,
        { brokenRule: this.broken, checkInvariants: true },
      ),
    );
    this.down.delete(id);
  }

  node(id: NodeId): RaftCore {
    return this.nodes.get(id)!;
  }

  cut(a: NodeId, b: NodeId): void {
    this.cuts.add(`${a}-${b}`).add(`${b}-${a}`);
  }

  drain(): void {
    for (const [id, n] of this.nodes) {
      if (this.down.has(id) || !n.hasReady()) continue;
      const r = n.ready();
      const d = this.disks.get(id)!;
      if (r.hardState) d.hardState = r.hardState;
      if (r.appendFrom !== undefined) d.entries = [...d.entries.slice(0, r.appendFrom - 1), ...r.entries];
      this.inbox.push(...r.messages);
    }
  }

  deliverAll(): void {
    for (let rounds = 0; rounds < 1000; rounds++) {
      this.drain();
      if (this.inbox.length === 0) return;
      const batch = this.inbox;
      this.inbox = [];
      for (const m of batch) {
        if (this.down.has(m.to) || !this.nodes.has(m.to) || this.cuts.has(`${m.from}-${m.to}`)) continue;
        if (this.blocked(m)) continue;
        this.node(m.to).step(this.nowMs, m);
      }
    }
    throw new Error("network never went quiet");
  }

  run(ms: number): void {
    const end = this.nowMs + ms;
    while (this.nowMs < end) {
      this.nowMs += 10;
      for (const [id, n] of this.nodes) {
        if (!this.down.has(id) && n.nextWakeMs() <= this.nowMs) n.tick(this.nowMs);
      }
      this.deliverAll();
    }
  }

  leaders(): NodeId[] {
    return [...this.nodes].filter(([id, n]) => !this.down.has(id) && n.role === "leader").map(([id]) => id);
  }

  electServing(maxMs = 10_000): NodeId {
    for (let t = 0; t < maxMs; t += 10) {
      const l = this.leaders().find((id) => this.node(id).status(this.nowMs).servingReads);
      if (l !== undefined) return l;
      this.run(10);
    }
    throw new Error("no serving leader");
  }

  change(leader: NodeId, change: MembershipChange) {
    const r = this.node(leader).changeMembership(this.nowMs, change);
    this.deliverAll();
    return r;
  }

  set(leader: NodeId, key: string, value: string): boolean {
    const ok = this.node(leader).propose(this.nowMs, { op: "set", key, value, clientId: "", seq: 0 }, 1).ok;
    this.deliverAll();
    return ok;
  }

  voters(id: NodeId): NodeId[] {
    return this.node(id).membership.members.filter((m) => m.voter).map((m) => m.id);
  }
}

Deno.test("a joining node waits as a learner, catches up, and is promoted once close to the leader's log", () => {
  const c = new Cluster([1, 2, 3]);
  const l = c.electServing();
  for (let i = 0; i < 20; i++) c.set(l, `k${i}`, `v${i}`);
  c.start(4, true);
  c.run(3000);
  assert(c.node(4).role === "follower" && c.node(4).log().length === 0, "an unadded joiner gets nothing");
  const r = c.change(l, { kind: "add", id: 4, address: "h4:1", promote: true });
  assert(r.ok, JSON.stringify(r));
  c.run(1000); // heartbeats: caught up, then promoted through a joint configuration and out of it
  assert(c.node(4).log().length === c.node(l).log().length, "the learner caught up");
  assert(JSON.stringify(c.voters(l)) === "[1,2,3,4]", `voters ${c.voters(l)}`);
  assert(!c.node(l).membership.outgoingVoters, "the joint phase was left");
  assert(JSON.stringify(c.voters(4)) === "[1,2,3,4]", "the new voter uses the latest configuration");
  assert(c.set(l, "after", "x"), "writes go on");
});

Deno.test("a learner far behind is not promoted until it is within the threshold, and writes never stall", () => {
  const c = new Cluster([1, 2, 3], undefined, 5);
  const l = c.electServing();
  c.start(4, true);
  c.cut(l, 4); // the learner hears nothing yet
  assert(c.change(l, { kind: "add", id: 4, address: "h4:1", promote: true }).ok);
  for (let i = 0; i < 30; i++) assert(c.set(l, `k${i}`, "v"), "a write during the learner's catch-up");
  c.run(500);
  assert(JSON.stringify(c.voters(l)) === "[1,2,3]", "not promoted while 30 entries behind");
  const early = c.change(l, { kind: "promote", id: 4 });
  assert(!early.ok && early.reason.includes("entries behind the leader"), JSON.stringify(early));
  c.cuts.clear();
  c.run(1000);
  assert(JSON.stringify(c.voters(l)) === "[1,2,3,4]", `promoted once caught up: ${c.voters(l)}`);
});

Deno.test("a removal is refused when too few of the remaining voters are reachable", () => {
  const c = new Cluster([1, 2, 3, 4, 5]);
  const l = c.electServing();
  const [a, b, d, e] = [1, 2, 3, 4, 5].filter((i) => i !== l);
  c.cut(l, b);
  c.cut(l, d);
  c.run(1200); // b and d have not acked for longer than the minimum election timeout
  assert(c.node(l).role === "leader", "l keeps its lease through a and e");
  const r = c.change(l, { kind: "remove", id: e });
  assert(!r.ok && r.reason.includes("would leave 2 of 4"), JSON.stringify(r));
  assert(c.change(l, { kind: "remove", id: b }).ok, "removing an unreachable voter is fine");
  void a;
});

Deno.test("a follower uses the latest configuration in its log at once, before it is committed (thesis §4.1)", () => {
  const c = new Cluster([1, 2, 3]);
  const l = c.electServing();
  const [a, b] = [1, 2, 3].filter((i) => i !== l);
  c.cut(l, b);
  c.cuts.add(`${a}-${l}`); // a receives, its acks are lost: nothing commits
  assert(c.change(l, { kind: "add", id: 7, address: "h7:1", promote: false }).ok);
  const st = c.node(a).status(c.nowMs);
  assert(st.membershipIndex! > c.node(a).commitIndex, "the entry is not committed at a");
  assert(c.node(a).membership.members.some((m) => m.id === 7), "yet a uses it");
  assert(c.node(b).membership.members.length === 3, "b never got it");
});

Deno.test("a removed leader steps down once its removal commits and stops serving reads (rule: removed leader)", () => {
  const c = new Cluster([1, 2, 3, 4, 5]);
  const l = c.electServing();
  assert(c.node(l).status(c.nowMs).servingReads);
  assert(c.change(l, { kind: "remove", id: l }).ok);
  c.run(50);
  assert(c.node(l).role !== "leader", "the removed leader stepped down");
  assert(!c.node(l).status(c.nowMs).servingReads);
  assert(c.node(l).read(c.nowMs, "k").ok === false, "a removed leader refuses reads");
  c.run(3000);
  const next = c.electServing();
  assert(next !== l && !c.voters(next).includes(l), `new leader ${next}, voters ${c.voters(next)}`);
  c.run(3000);
  assert(c.node(l).role !== "leader" && c.leaders().length === 1, "the removed node never leads again");
});

Deno.test("a change is refused while another is in progress, for an address in use, and for a reused id", () => {
  const c = new Cluster([1, 2, 3]);
  const l = c.electServing();
  const [a] = [1, 2, 3].filter((i) => i !== l);
  c.cut(l, a);
  c.cut(l, [1, 2, 3].find((i) => i !== l && i !== a)!); // nothing commits
  const first = c.node(l).changeMembership(c.nowMs, { kind: "add", id: 4, address: "h4:1", promote: false });
  assert(first.ok);
  const second = c.node(l).changeMembership(c.nowMs, { kind: "add", id: 5, address: "h5:1", promote: false });
  assert(!second.ok && second.reason.includes("in progress"), JSON.stringify(second));
  c.cuts.clear();
  c.run(300);
  const clash = c.change(l, { kind: "add", id: 5, address: "h4:1", promote: false });
  assert(!clash.ok && clash.reason.includes("already in use by node 4"), JSON.stringify(clash));
  assert(c.change(l, { kind: "remove", id: 4 }).ok);
  c.run(300);
  const reuse = c.change(l, { kind: "add", id: 4, address: "h9:1", promote: false });
  assert(!reuse.ok && reuse.reason.includes("fresh id"), JSON.stringify(reuse));
  const follower = c.node(a).changeMembership(c.nowMs, { kind: "remove", id: l });
  assert(!follower.ok && follower.reason.includes("not the leader"), JSON.stringify(follower));
});

Deno.test("a new leader starts no change before it has committed an entry of its term (thesis §4.1 fix)", () => {
  const c = new Cluster([1, 2, 3]);
  const first = c.electServing();
  // Depose it; its successor's NO-OP acks are lost, so the successor has committed nothing of its term.
  c.cut(first, 1 === first ? 2 : 1);
  c.cut(first, 3 === first ? 2 : 3);
  c.blocked = (m) => m.type === "AppendEntriesResponse" && m.to !== first;
  let next: NodeId | undefined;
  for (let t = 0; t < 5000 && next === undefined; t += 10) {
    c.run(10);
    next = c.leaders().find((id) => id !== first && c.node(id).term > c.node(first).term);
  }
  assert(next !== undefined, "a second leader");
  const early = c.change(next, { kind: "add", id: 9, address: "h9:1", promote: false });
  assert(!early.ok && early.reason.includes("entry of its term"), JSON.stringify(early));
  c.blocked = () => false;
  c.run(300);
  assert(c.change(next, { kind: "add", id: 9, address: "h9:1", promote: false }).ok, "once it has");
});

Deno.test("in a joint phase the lease needs a majority of the old voters and of the new (config-quorum break: not)", () => {
  const joint = {
    members: [1, 4, 5].map((id) => ({ id, address: "", voter: true })),
    outgoingVoters: [1, 2, 3],
  };
  for (const onlyIncoming of [false, true]) {
    const lease = new LeaseTracker(800, new Configuration(joint, onlyIncoming), 1);
    const seq = lease.recordSend(100);
    lease.recordAck(4, seq, 101); // {1, 4}: a majority of the new voters only
    if (onlyIncoming) assert(lease.leaseEndMs === 900, `broken: lease ${lease.leaseEndMs}`);
    else assert(lease.leaseEndMs === -Infinity, `no lease without the old majority: ${lease.leaseEndMs}`);
    lease.recordAck(2, seq, 102); // {1, 2}: now both
    assert(lease.leaseEndMs === 900, `both majorities: lease ${lease.leaseEndMs}`);
  }
});

Deno.test("a leader's lease is recomputed under a new configuration: acks of removed voters stop counting", () => {
  const all = (ids: number[]) => ({ members: ids.map((id) => ({ id, address: "", voter: true })) });
  const lease = new LeaseTracker(800, new Configuration(all([1, 2, 3])), 1);
  const seq = lease.recordSend(100);
  lease.recordAck(2, seq, 101);
  assert(lease.leaseEndMs === 900);
  lease.setConfiguration(new Configuration(all([1, 3, 4])));
  assert(lease.leaseEndMs === -Infinity, "node 2's promise is worth nothing once it is no voter");
});

Deno.test("elections and commits need a majority of both voter sets in a joint phase", () => {
  const conf = new Configuration({
    members: [1, 4, 5].map((id) => ({ id, address: "", voter: true })),
    outgoingVoters: [1, 2, 3],
  });
  assert(!conf.hasQuorum(new Set([1, 4])), "a new majority alone does not win");
  assert(!conf.hasQuorum(new Set([1, 2])), "an old majority alone does not win");
  assert(conf.hasQuorum(new Set([1, 2, 4])));
  const match: Record<number, number> = { 1: 10, 2: 3, 3: 3, 4: 9, 5: 9 };
  assert(conf.quorumValue((id) => match[id]) === 3, "commit needs the old majority too");
  const broken = new Configuration(conf.membership, true);
  assert(broken.quorumValue((id) => match[id]) === 9, "the config-quorum break counts only the new");
});

/**
 * The risk of thesis §4.2.3: a voter cut off while it was removed never learns of its removal; it times out
 * and campaigns in higher and higher terms. With PreVote off (PreVote alone would already hold its term
 * back), only the rule "ignore a vote request from a node outside the configuration while a leader was heard
 * from within Emin" keeps it from raising its old peers' terms and deposing their leader.
 */
function removedNodeRejoins(broken?: BrokenRule) {
  const c = new Cluster([1, 2, 3, 4, 5], broken, 100, false);
  const l = c.electServing();
  const r = [1, 2, 3, 4, 5].find((i) => i !== l)!;
  for (const i of [1, 2, 3, 4, 5]) if (i !== r) c.cut(r, i);
  assert(c.change(l, { kind: "remove", id: r }).ok, "removal accepted");
  c.run(300); // C_old,new and C_new commit without r
  assert(!c.node(l).membership.outgoingVoters && !c.voters(l).includes(r), `voters ${c.voters(l)}`);
  assert(c.voters(r).includes(r), "r never learnt of its removal");
  const termBefore = c.node(l).term;
  const rTermBefore = c.node(r).term;
  c.cuts.clear(); // r reaches everyone again; the leader no longer sends to it
  c.run(6000);
  return { c, l, r, termBefore, rTermBefore };
}

Deno.test("a removed node that never learnt of its removal cannot raise its old peers' terms (thesis §4.2.3)", () => {
  const { c, l, r, termBefore, rTermBefore } = removedNodeRejoins();
  assert(c.node(r).term >= rTermBefore + 2, `r campaigned (term ${rTermBefore} -> ${c.node(r).term})`);
  for (const i of [1, 2, 3, 4, 5].filter((i) => i !== r)) {
    assert(c.node(i).term === termBefore, `node ${i} stayed in term ${termBefore}, is in ${c.node(i).term}`);
  }
  assert(c.node(l).role === "leader" && c.node(l).status(c.nowMs).servingReads, "the leader was not deposed");
  assert(c.set(l, "after", "x"), "writes go on");
});

Deno.test("negative control: without the §4.2.3 rule the removed node deposes the leader by raising terms", () => {
  const { c, l, r, termBefore } = removedNodeRejoins("removed-disrupt");
  const raised = [1, 2, 3, 4, 5].filter((i) => i !== r && c.node(i).term > termBefore);
  assert(raised.length > 0, `no member's term moved past ${termBefore}`);
  assert(c.node(l).term > termBefore, `the leader ${l} was pushed out of term ${termBefore}`);
});
