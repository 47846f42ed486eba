/**
 * Follower reads end to end (issue 16): three nodes in one process (real gRPC on loopback, real files),
 * driven through the client library with `readMode: "follower"` and `"stale"`.
 */
import { RaftNode } from "../node/raft_node.ts";
import { freeRawPortOffset } from "../transport/raw/mod.ts";
import { parseClusterConfig } from "../config/cluster_config.ts";
import { ClusterStub } from "../transport/mod.ts";
import { InvalidArgumentError, RaftkvClient } from "./mod.ts";

function assert(cond: unknown, msg = "assertion failed"): asserts cond {
  if (!cond) throw new Error(msg);
}

function freePorts(n: number): number[] {
  const listeners = [...Array(n)].map(() => Deno.listen({ hostname: "127.0.0.1", port: 0 }));
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  return ports;
}

async function waitFor<T>(what: string, f: () => T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const end = performance.now() + timeoutMs;
  while (performance.now() < end) {
    const v = f();
    if (v !== undefined && v !== false) return v as T;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const IT = { sanitizeOps: false, sanitizeResources: false };

Deno.test({
  name:
    "a follower serves linearizable and bounded-stale reads, and a killed leader's followers elect at once",
  ...IT,
  fn: async () => {
    const ports = freePorts(3);
    const config = parseClusterConfig({
      clusterId: "followerreads",
      nodes: ports.map((p, i) => ({ id: i + 1, address: `127.0.0.1:${p}` })),
      rawPeerPortOffset: freeRawPortOffset(ports), // raw peer ports (the default) clear of other listeners
      heartbeatIntervalMs: 50,
      // Long election timeouts: a quick failover below can only come from the connection reset.
      electionTimeoutMsMin: 4000,
      electionTimeoutMsMax: 6000,
      leaseDurationMs: 300,
    });
    const dir = await Deno.makeTempDir({ prefix: "raftkv-follower-read-test-" });
    const nodes: (RaftNode | undefined)[] = [];
    const client = new RaftkvClient({ nodes: config.nodes, timeoutMs: 8000 });
    try {
      for (const n of config.nodes) nodes.push(await RaftNode.start({ config, id: n.id, dataDir: dir }));
      const leader = await waitFor(
        "a serving leader",
        () => nodes.find((n) => n?.status().servingReads),
        15_000,
      );
      const follower = nodes.find((n) => n !== leader)!;
      // A follower that has not heard from the leader yet refuses (no leader to ask): the client would move on.
      await waitFor("the follower knows the leader", () => follower.status().leaderId === leader.id);
      for (let i = 1; i <= 20; i++) {
        await client.set("k", `v${i}`);
        // Right after the SET is acknowledged, the follower may not know it committed: a ReadIndex read
        // there must still see it (it waits until it has applied the leader's commit index).
        const r = await client.get("k", { readMode: "follower", nodeId: follower.id });
        assert(r.value === `v${i}`, `follower read after SET v${i} returned ${JSON.stringify(r.value)}`);
        assert(r.nodeId === follower.id, `answered by node ${r.nodeId}, not the follower ${follower.id}`);
      }
      // A stale read within a generous bound is served by the follower itself.
      const stale = await client.get("k", { readMode: "stale", maxStalenessMs: 2000, nodeId: follower.id });
      assert(stale.nodeId === follower.id && stale.value === "v20", JSON.stringify(stale));
      // A bound shorter than any heartbeat round trip can show is refused with tooStale, naming the bound.
      const stub = new ClusterStub(config.nodes[follower.id - 1].address);
      try {
        const refused = await stub.get("k", 3000, { readMode: "stale", maxStalenessMs: 0.001 });
        assert(!refused.ok && refused.error === "tooStale", JSON.stringify(refused));
        assert(/max-staleness/.test(refused.errorMessage), refused.errorMessage);
      } finally {
        stub.close();
      }
      let invalid: unknown;
      await client.get("k", { readMode: "stale" }).catch((e) => (invalid = e));
      assert(invalid instanceof InvalidArgumentError, `stale without a bound: ${invalid}`);

      // The leader goes away (its connections close): the followers start PreVote at once instead of
      // waiting 4-6 s for their election timers, and the new leader serves within well under that.
      const oldTerm = leader.status().term;
      const t0 = performance.now();
      const idx = nodes.indexOf(leader);
      await leader.stop();
      nodes[idx] = undefined;
      const next = await waitFor(
        "a new serving leader",
        () => nodes.find((n) => n !== undefined && n.status().servingReads && n.status().term > oldTerm),
        15_000,
      );
      const failoverMs = performance.now() - t0;
      assert(failoverMs < 3000, `failover took ${failoverMs.toFixed(0)} ms (election timeout is 4-6 s)`);
      const after = await client.get("k", { readMode: "follower" });
      assert(after.value === "v20", JSON.stringify(after));
      console.log(`failover after the leader stopped: ${failoverMs.toFixed(0)} ms (new leader ${next.id})`);
    } finally {
      client.close();
      await Promise.all(nodes.map((n) => n?.stop()));
      await Deno.remove(dir, { recursive: true });
    }
  },
});
