/**
 * The node runtime end to end in one process: real gRPC on loopback, real files, fast timings.
 */
import { RaftNode } from "./raft_node.ts";
import { freeRawPortOffset } from "../transport/raw/mod.ts";
import { parseClusterConfig } from "../config/cluster_config.ts";
import type { ClusterConfig } from "../config/cluster_config.ts";
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

async function waitFor<T>(what: string, f: () => T | undefined | Promise<T | undefined>, timeoutMs = 10_000) {
  const end = performance.now() + timeoutMs;
  while (performance.now() < end) {
    const v = await f();
    if (v !== undefined && v !== false) return v as T;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function startCluster(
  n: number,
  clockOf: (id: number) => { clock?: () => number; clockSanity?: boolean } = () => ({}),
): Promise<{ config: ClusterConfig; nodes: RaftNode[]; dir: string }> {
  const ports = freePorts(n);
  const config = parseClusterConfig({
    clusterId: "test",
    nodes: ports.map((p, i) => ({ id: i + 1, address: `127.0.0.1:${p}` })),
    rawPeerPortOffset: freeRawPortOffset(ports), // raw peer ports (the default) clear of other listeners
    heartbeatIntervalMs: 50,
    electionTimeoutMsMin: 300,
    electionTimeoutMsMax: 600,
    leaseDurationMs: 240,
  });
  const dir = await Deno.makeTempDir({ prefix: "raftkv-node-test-" });
  const nodes = await Promise.all(
    config.nodes.map((n) => RaftNode.start({ config, id: n.id, dataDir: dir, ...clockOf(n.id) })),
  );
  return { config, nodes, dir };
}

Deno.test({
  name: "three nodes in one process elect a leader, commit a SET on a majority and answer a lease GET",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { nodes, dir } = await startCluster(3);
    const stubs: ClusterStub[] = [];
    try {
      const leader = await waitFor("a serving leader", () => nodes.find((n) => n.status().servingReads));
      const stub = new ClusterStub(leader.address);
      stubs.push(stub);
      const set = await stub.set("name 1", "Jon\nSnow", "client-a", 1, 2000);
      assert(set.ok, JSON.stringify(set));
      const get = await stub.get("name 1", 2000);
      assert(get.ok && get.value === "Jon\nSnow" && get.found, JSON.stringify(get));
      const missing = await stub.get("nope", 2000);
      assert(missing.ok && missing.value === "" && !missing.found, JSON.stringify(missing));
      // A follower refuses and names the leader.
      const follower = nodes.find((n) => n !== leader)!;
      const fstub = new ClusterStub(follower.address);
      stubs.push(fstub);
      const refused = await fstub.get("name 1", 2000);
      assert(
        !refused.ok && refused.error === "notLeader" && refused.leaderId === leader.id,
        JSON.stringify(refused),
      );
      // Every node's logs.txt gets the SET.
      await waitFor("the SET in every logs.txt", async () => {
        for (const n of nodes) {
          const text = await Deno.readTextFile(`${dir}/logs_node_${n.id}/logs.txt`);
          if (!text.includes('SET "name 1" "Jon\\nSnow"')) return false;
        }
        return true;
      });
    } finally {
      for (const s of stubs) s.close();
      await Promise.all(nodes.map((n) => n.stop()));
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** Runs `fn` with a 3-node cluster whose leader serves reads; stops the nodes and removes the folder after. */
async function withLeader(fn: (leader: RaftNode, nodes: RaftNode[]) => Promise<void>): Promise<void> {
  const { nodes, dir } = await startCluster(3);
  try {
    const leader = await waitFor("a serving leader", () => nodes.find((n) => n.status().servingReads));
    await fn(leader, nodes);
  } finally {
    await Promise.all(nodes.map((n) => n.stop()));
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "stopping the leader with hand-off moves leadership without an election timeout",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    withLeader(async (leader, nodes) => {
      const t0 = performance.now();
      await leader.stop({ handOff: true });
      const rest = nodes.filter((n) => n !== leader);
      const next = await waitFor("a new serving leader", () => rest.find((n) => n.status().servingReads));
      const gapMs = performance.now() - t0;
      assert(next.id !== leader.id);
      assert(gapMs < 300, `hand-off took ${gapMs.toFixed(0)} ms`);
    }),
});

Deno.test({
  name: "SETs that share one abort signal (a Client stream's) leave no listener behind once answered",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    withLeader(async (leader) => {
      const abort = new AbortController();
      let listeners = 0;
      const signal = abort.signal;
      const add = signal.addEventListener.bind(signal);
      const remove = signal.removeEventListener.bind(signal);
      signal.addEventListener = ((...a: Parameters<typeof add>) => (listeners++, add(...a))) as typeof add;
      signal.removeEventListener =
        ((...a: Parameters<typeof remove>) => (listeners--, remove(...a))) as typeof remove;
      const answers = await Promise.all(
        Array.from({ length: 20 }, (_, i) => leader.set(`k${i}`, "v", "client-s", i + 1, signal)),
      );
      assert(answers.every((a) => a.ok), JSON.stringify(answers.filter((a) => !a.ok)));
      assert(listeners === 0, `${listeners} abort listeners left on the shared signal`);
    }),
});

Deno.test({
  name:
    "a node whose clock runs 5 % fast is warned about once, from its AppendEntries traffic, by the nodes it talks to",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    // Node 3's monotonic clock runs 5 % fast: beyond (1 + 0.01)² of the others'. leaseDurationMs 240 makes the
    // windows 2.4 s long; the third window's end is the first judgement, the fifth's the first finding.
    const t0 = performance.now();
    const { nodes, dir } = await startCluster(
      3,
      (id) => id === 3 ? { clock: () => t0 + (performance.now() - t0) * 1.05, clockSanity: true } : {},
    );
    const dump = (id: number) => Deno.readTextFile(`${dir}/logs_node_${id}/dump.txt`).catch(() => "");
    const warnings = (text: string, about: number) =>
      text.split("\n").filter((l) => l.includes(`the clock of node ${about} runs at a rate outside`));
    try {
      await waitFor("a serving leader", () => nodes.find((n) => n.status().servingReads));
      // A leader judges its followers (their acks), a follower its leader (its AppendEntries): whoever leads,
      // some other node talks to node 3.
      const watcher = await waitFor("a warning about node 3", async () => {
        for (const id of [1, 2]) if (warnings(await dump(id), 3).length > 0) return id;
      }, 60_000);
      // Another judged window (2.4 s later): the warning is not repeated.
      await new Promise((r) => setTimeout(r, 3_000));
      const text = await dump(watcher);
      assert(warnings(text, 3).length === 1, warnings(text, 3).join("\n"));
      assert(
        /node 3 measured \d+ ms where this node measured \d+ ms \(ratio 1\.0[45]/.test(text),
        text.slice(-3000),
      );
      // Nodes 1 and 2 run at the same rate: neither warns about the other.
      for (const [id, other] of [[1, 2], [2, 1]]) {
        const t = await dump(id);
        assert(warnings(t, other).length === 0, warnings(t, other).join("\n"));
      }
    } finally {
      await Promise.all(nodes.map((n) => n.stop()));
      await Deno.remove(dir, { recursive: true });
    }
  },
});
