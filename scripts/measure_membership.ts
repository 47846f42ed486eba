/**
 * Issue 11 measurements, in one process (real gRPC on loopback, real files, default timings):
 *  1. time from add-node to voter for a fresh node N entries behind (default 100,000);
 *  2. the write gap during the change: the longest time between two successful writes of a client writing
 *     sequentially while the node is added, promoted, and an old voter removed.
 *
 *   deno run -A scripts/measure_membership.ts [--entries 100000] [--concurrency 64] [--snapshot-threshold N]
 *
 * With the default snapshot threshold (10,000 entries) the leader has compacted its log by then and catches
 * the new node up with InstallSnapshot; `--snapshot-threshold 1000000000` measures catch-up from the log.
 */
import { RaftNode } from "../src/node/raft_node.ts";
import { parseClusterConfig } from "../src/config/cluster_config.ts";
import { ClusterStub } from "../src/transport/mod.ts";
import { freeRawPortOffset } from "../src/transport/raw/mod.ts";

const arg = (name: string, dflt: number) => {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Number(Deno.args[i + 1]) : dflt;
};
const ENTRIES = arg("--entries", 100_000);
const CONCURRENCY = arg("--concurrency", 64);
const SNAPSHOT_THRESHOLD = arg("--snapshot-threshold", 0);

function freePorts(n: number): number[] {
  const ls = [...Array(n)].map(() => Deno.listen({ hostname: "127.0.0.1", port: 0 }));
  const ports = ls.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of ls) l.close();
  return ports;
}

async function waitFor<T>(f: () => T | undefined | false, timeoutMs = 600_000): Promise<T> {
  const end = performance.now() + timeoutMs;
  while (performance.now() < end) {
    const v = f();
    if (v !== undefined && v !== false) return v as T;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error("timed out");
}

const ports = freePorts(4);
const config = parseClusterConfig({
  clusterId: "measure-membership",
  nodes: ports.slice(0, 3).map((p, i) => ({ id: i + 1, address: `127.0.0.1:${p}` })),
  rawPeerPortOffset: freeRawPortOffset(ports), // raw peer ports (the default transport) clear of other listeners
  ...(SNAPSHOT_THRESHOLD > 0 ? { snapshotThresholdEntries: SNAPSHOT_THRESHOLD } : {}),
});
const dir = await Deno.makeTempDir({ prefix: "raftkv-measure-membership-" });
const nodes = await Promise.all(config.nodes.map((n) => RaftNode.start({ config, id: n.id, dataDir: dir })));
const leader = () => nodes.find((n) => n.status().servingReads);
const l = await waitFor(leader);
const stub = new ClusterStub(l.address);

const t0 = performance.now();
let next = 0;
await Promise.all([...Array(CONCURRENCY)].map(async () => {
  while (next < ENTRIES) {
    const i = next++;
    const r = await stub.set(`k${i % 1000}`, `value-${i}`, "", 0, 10_000);
    if (!r.ok) throw new Error(`fill: ${JSON.stringify(r)}`);
  }
}));
console.log(`filled ${ENTRIES} entries in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

// A client writing sequentially throughout the change: the longest gap between two successful writes.
let writing = true, maxGapMs = 0, writes = 0;
const writer = (async () => {
  let last = performance.now();
  for (let seq = 1; writing; seq++) {
    const r = await stub.set("gap", `g${seq}`, "gap-client", seq, 5000).catch(() => undefined);
    if (r?.ok) {
      const now = performance.now();
      maxGapMs = Math.max(maxGapMs, now - last);
      last = now;
      writes++;
    }
  }
})();
await new Promise((r) => setTimeout(r, 500));
const baselineGap = maxGapMs;

const fresh = await RaftNode.start({
  config,
  id: 4,
  dataDir: dir,
  address: `127.0.0.1:${ports[3]}`,
  join: true,
});
const behind = l.status().lastLogIndex;
const tAdd = performance.now();
const added = await stub.addNode(4, fresh.address, false, 10_000);
if (!added.ok) throw new Error(JSON.stringify(added));
const tLearner = performance.now();
await waitFor(() => {
  const st = l.status();
  return st.membership?.members.find((m) => m.id === 4)?.voter && !st.membership.outgoingVoters &&
    st.commitIndex >= (st.membershipIndex ?? 0);
});
const tVoter = performance.now();
const victim = nodes.find((n) => n !== l)!;
const removed = await stub.removeNode(victim.id, 10_000);
const tRemoved = performance.now();
writing = false;
await writer;
console.log(
  `add-node → learner committed: ${(tLearner - tAdd).toFixed(0)} ms; → voter (${behind} entries behind): ` +
    `${((tVoter - tAdd) / 1000).toFixed(2)} s; remove-node ${victim.id}: ${
      (tRemoved - tVoter).toFixed(0)
    } ms (${removed.ok ? "ok" : removed.error})`,
);
const via = fresh.status().snapshotIndex ?? 0;
console.log(
  via > 0
    ? `the new node was caught up by InstallSnapshot (snapshot at index ${via}), then the log after it`
    : "the new node was caught up from the log alone (no snapshot)",
);
console.log(
  `write gap: longest ${maxGapMs.toFixed(1)} ms between two successful sequential writes during the change ` +
    `(${baselineGap.toFixed(1)} ms before it; ${writes} writes)`,
);
stub.close();
for (const n of [...nodes, fresh]) await n.stop();
await Deno.remove(dir, { recursive: true });
Deno.exit(0);
