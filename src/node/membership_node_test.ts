/**
 * Issue 11 end to end in one process (real gRPC on loopback, real files): a dead node is replaced by a fresh
 * one on a new port with two admin calls while a client keeps writing and reading.
 */
import { RaftNode } from "./raft_node.ts";
import { freeRawPortOffset } from "../transport/raw/mod.ts";
import { parseClusterConfig } from "../config/cluster_config.ts";
import { ClusterStub } from "../transport/mod.ts";

function assert(cond: unknown, msg = "assertion failed"): asserts cond {
  if (!cond) throw new Error(msg);
}

function freePorts(n: number): number[] {
  const listeners = [...Array(n)].map(() => Deno.listen({ hostname: "127.0.0.1", port: 0 }));
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  return ports;
}

async function waitFor<T>(what: string, f: () => T | undefined | Promise<T | undefined>, timeoutMs = 15_000) {
  const end = performance.now() + timeoutMs;
  while (performance.now() < end) {
    const v = await f();
    if (v !== undefined && v !== false) return v as T;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

Deno.test({
  name:
    "a killed node is replaced by a fresh node on a new port with add-node and remove-node while writes go on",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const ports = freePorts(4);
    const config = parseClusterConfig({
      clusterId: "member-test",
      nodes: ports.slice(0, 3).map((p, i) => ({ id: i + 1, address: `127.0.0.1:${p}` })),
      rawPeerPortOffset: freeRawPortOffset(ports), // raw peer ports (the default) clear of other listeners
      heartbeatIntervalMs: 50,
      electionTimeoutMsMin: 300,
      electionTimeoutMsMax: 600,
      leaseDurationMs: 240,
    });
    const dir = await Deno.makeTempDir({ prefix: "raftkv-member-test-" });
    const nodes = await Promise.all(
      config.nodes.map((n) => RaftNode.start({ config, id: n.id, dataDir: dir })),
    );
    const stubs = new Map<string, ClusterStub>();
    const stub = (address: string) => {
      if (!stubs.has(address)) stubs.set(address, new ClusterStub(address));
      return stubs.get(address)!;
    };
    const running = new Set(nodes);
    const leader = () => [...running].find((n) => n.status().servingReads);
    const serving = () => waitFor("a serving leader", leader);
    let writing = true;
    let written = 0;
    const failures: string[] = [];
    try {
      await waitFor("a serving leader", leader);
      // A client writes and reads throughout; an operation may be refused during an election (retried).
      const client = (async () => {
        for (let seq = 1; writing; seq++) {
          const l = leader();
          if (!l) {
            await new Promise((r) => setTimeout(r, 20));
            continue;
          }
          try {
            const set = await stub(l.address).set("k", `v${seq}`, "client", seq, 2000);
            if (set.ok) written = seq;
            const get = await stub(l.address).get("k", 2000);
            if (get.ok && get.value !== `v${written}`) failures.push(`read ${get.value} after v${written}`);
          } catch { /* the node went away: retry elsewhere */ }
        }
      })();
      await waitFor("some writes", () => written > 20);

      // A follower's VM dies for good.
      const l0 = await serving();
      const dead = [...running].find((n) => n !== l0)!;
      running.delete(dead);
      await dead.stop();

      // Refusals first: an address in use, a second voter removal that would leave no majority alive.
      const l1 = await serving();
      const clash = await stub(l1.address).addNode(9, l1.address, false, 5000);
      assert(!clash.ok && clash.error.includes("already in use"), JSON.stringify(clash));

      // The replacement: a fresh node on a new port, started with --join, then added.
      const fresh = await RaftNode.start({
        config,
        id: 4,
        dataDir: dir,
        address: `127.0.0.1:${ports[3]}`,
        join: true,
      });
      running.add(fresh);
      const added = await stub((await serving()).address).addNode(4, fresh.address, false, 10_000);
      assert(added.ok, JSON.stringify(added));
      await waitFor("node 4 promoted to voter (committed)", () => {
        const st = leader()?.status();
        const m = st?.membership;
        return m?.members.find((x) => x.id === 4)?.voter && m.outgoingVoters === undefined &&
          st!.commitIndex >= st!.membershipIndex!;
      });
      const removed = await stub((await serving()).address).removeNode(dead.id, 10_000);
      assert(removed.ok, JSON.stringify(removed));
      const st = (await serving()).status();
      const voters = st.membership!.members.filter((m) => m.voter).map((m) => m.id).sort();
      assert(JSON.stringify(voters) === JSON.stringify([...running].map((n) => n.id).sort()), `${voters}`);
      const before = written;
      await waitFor("writes after the replacement", () => written > before + 10);
      // The new node holds the data.
      const target = (await serving()).status().commitIndex;
      await waitFor("node 4 caught up", () => fresh.status().commitIndex >= target);
      // Losing one more original node still leaves a majority, with the new one in it.
      const l2 = await serving();
      const other = [...running].find((n) => n !== l2 && n !== fresh)!;
      running.delete(other);
      await other.stop();
      const after = written;
      await waitFor("writes with the new node in the majority", () => written > after + 10);
      await new Promise((r) => setTimeout(r, 400)); // longer than electionTimeoutMsMin since `other` acked
      const refusal = await stub((await serving()).address).removeNode(fresh.id, 5000);
      assert(!refusal.ok && refusal.error.includes("would leave 1 of 2"), JSON.stringify(refusal));
      writing = false;
      await client;
      assert(failures.length === 0, failures.join("; "));
    } finally {
      writing = false;
      for (const s of stubs.values()) s.close();
      for (const n of running) await n.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "an add-node whose address is not host:port, or whose raw port leaves 1..65535, is refused and the leader runs on",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    // `raftkv admin add-node --id 7 --address nohost` (the port forgotten) killed the leader: its new peer
    // list threw "address "nohost" is not host:port" in the node loop (uncaught), and so would every node
    // that applied the entry.
    const ports = freePorts(3);
    const rawPeerPortOffset = freeRawPortOffset(ports);
    const config = parseClusterConfig({
      clusterId: "member-address-test",
      nodes: ports.map((p, i) => ({ id: i + 1, address: `127.0.0.1:${p}` })),
      rawPeerPortOffset,
      heartbeatIntervalMs: 50,
      electionTimeoutMsMin: 300,
      electionTimeoutMsMax: 600,
      leaseDurationMs: 240,
    });
    const dir = await Deno.makeTempDir({ prefix: "raftkv-member-address-test-" });
    const nodes = await Promise.all(
      config.nodes.map((n) => RaftNode.start({ config, id: n.id, dataDir: dir })),
    );
    try {
      const leader = await waitFor("a serving leader", () => nodes.find((n) => n.status().servingReads));
      const offRange = `127.0.0.1:${rawPeerPortOffset < 0 ? 1 : 65535}`;
      for (
        const [address, why] of [
          ["nohost", /host:port/],
          ["127.0.0.1:", /host:port/],
          [offRange, /raw peer port .* outside 1\.\.65535/],
        ] as const
      ) {
        const r = await leader.changeMembership({ kind: "add", id: 7, address, promote: true });
        assert(!r.ok && why.test(r.error), `add-node --address ${address}: ${JSON.stringify(r)}`);
      }
      await new Promise((r) => setTimeout(r, 300)); // a crash in the node loop would show by now
      const st = leader.status();
      assert(st.role === "leader", `the leader still leads: ${st.role}`);
      assert(!st.membership!.members.some((m) => m.id === 7), "no member 7 was added");
      const set = await new ClusterStub(leader.address).set("k", "v", "c", 1, 5000);
      assert(set.ok, `a SET after the refusals: ${JSON.stringify(set)}`);
    } finally {
      for (const n of nodes) await n.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
