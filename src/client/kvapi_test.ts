/**
 * DELETE, compare-and-set, LIST and WATCH end to end: three nodes in one process (real gRPC on loopback, real
 * files), driven through the client library.
 */
import { RaftNode } from "../node/raft_node.ts";
import { freeRawPortOffset } from "../transport/raw/mod.ts";
import { type ClusterConfig, parseClusterConfig } from "../config/cluster_config.ts";
import { ClusterStub } from "../transport/mod.ts";
import type { WatchEvent } from "../transport/mod.ts";
import { RaftkvClient, WatchError } from "./mod.ts";

function assert(cond: unknown, msg = "assertion failed"): asserts cond {
  if (!cond) throw new Error(msg);
}
function assertEquals<T>(actual: T, expected: T, msg = ""): void {
  const a = JSON.stringify(actual), e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${msg}\nexpected ${e}\nactual   ${a}`);
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

interface Cluster {
  config: ClusterConfig;
  nodes: (RaftNode | undefined)[];
  dir: string;
  client: RaftkvClient;
  close(): Promise<void>;
}

async function startCluster(opts: { watchHistoryMax?: number } = {}): Promise<Cluster> {
  const ports = freePorts(3);
  const config = parseClusterConfig({
    clusterId: "kvapi",
    nodes: ports.map((p, i) => ({ id: i + 1, address: `127.0.0.1:${p}` })),
    rawPeerPortOffset: freeRawPortOffset(ports), // raw peer ports (the default) clear of other listeners
    heartbeatIntervalMs: 50,
    electionTimeoutMsMin: 300,
    electionTimeoutMsMax: 600,
    leaseDurationMs: 240,
  });
  const dir = await Deno.makeTempDir({ prefix: "raftkv-kvapi-test-" });
  const nodes: (RaftNode | undefined)[] = await Promise.all(
    config.nodes.map((n) => RaftNode.start({ config, id: n.id, dataDir: dir, ...opts })),
  );
  const client = new RaftkvClient({ nodes: config.nodes, timeoutMs: 8000 });
  await waitFor("a serving leader", () => nodes.find((n) => n?.status().servingReads));
  return {
    config,
    nodes,
    dir,
    client,
    async close() {
      client.close();
      await Promise.all(nodes.map((n) => n?.stop()));
      await Deno.remove(dir, { recursive: true });
    },
  };
}

const IT = { sanitizeOps: false, sanitizeResources: false };

Deno.test({
  name:
    "delete, compare-and-set (value, absent, version), get with version and a paged listing work on a cluster",
  ...IT,
  fn: async () => {
    const c = await startCluster();
    try {
      const k = c.client;
      const set = await k.set("cfg/a", "1");
      assertEquals((await k.get("cfg/a")).version, set.index);
      assertEquals((await k.get("missing")).value, "");
      assertEquals((await k.get("missing")).version, 0);
      const held = await k.cas("cfg/a", { value: "1" }, "2");
      assert(held.succeeded && held.version > set.index, JSON.stringify(held));
      const missed = await k.cas("cfg/a", { value: "1" }, "3");
      assertEquals([missed.succeeded, missed.value, missed.found, missed.version], [
        false,
        "2",
        true,
        held.version,
      ]);
      assert((await k.cas("lock", { version: 0 }, "me")).succeeded);
      const taken = await k.cas("lock", { version: 0 }, "you");
      assertEquals([taken.succeeded, taken.value], [false, "me"]);
      assert((await k.cas("cfg/a", { version: held.version }, "4")).succeeded);
      assert(
        !(await k.cas("cfg/a", { version: held.version }, "5")).succeeded,
        "a stale version must not hold",
      );
      assertEquals((await k.delete("lock")).deleted, true);
      assertEquals((await k.delete("lock")).deleted, false);
      assertEquals((await k.get("lock")).found, false);
      for (const key of ["cfg/c", "cfg/b", "other"]) await k.set(key, key);
      const page1 = await k.list("cfg/", { limit: 2, withValues: true });
      assertEquals(page1.items.map((i) => [i.key, i.value]), [["cfg/a", "4"], ["cfg/b", "cfg/b"]]);
      assertEquals(page1.next, "cfg/b");
      const page2 = await k.list("cfg/", { limit: 2, after: page1.next });
      assertEquals(page2.items.map((i) => i.key), ["cfg/c"]);
      assertEquals(page2.next, undefined);
    } finally {
      await c.close();
    }
  },
});

Deno.test({
  name: "a retried CAS with the same session is answered with its first outcome and applied once",
  ...IT,
  fn: async () => {
    const c = await startCluster();
    const stubs: ClusterStub[] = [];
    try {
      await c.client.set("n", "0");
      const leader = await waitFor("a leader", () => c.nodes.find((n) => n?.status().servingReads));
      const stub = new ClusterStub(leader.address);
      stubs.push(stub);
      const req = { key: "n", expect: { value: "0" }, value: "1", clientId: "retrier", seq: 1 };
      const first = await stub.cas(req, 2000);
      assert(first.ok && first.succeeded, JSON.stringify(first));
      const again = await stub.cas(req, 2000);
      assert(again.ok && again.succeeded && again.version === first.version, JSON.stringify(again));
      assertEquals((await c.client.get("n")).version, first.version);
    } finally {
      for (const s of stubs) s.close();
      await c.close();
    }
  },
});

Deno.test({
  name: "a watch survives a leader change and its node stopping without a gap or a duplicate",
  ...IT,
  fn: async () => {
    const c = await startCluster();
    const abort = new AbortController();
    try {
      const k = c.client;
      await k.set("w/0", "before");
      const seen: WatchEvent[] = [];
      const connects: number[] = [];
      const watching = (async () => {
        for await (
          const e of k.watch("w/", {
            prefix: true,
            fromIndex: 1,
            signal: abort.signal,
            reconnectTimeoutMs: 10_000,
            onConnect: (i) => connects.push(i.nodeId),
          })
        ) seen.push(e);
      })();
      const written: string[] = [];
      for (let i = 1; i <= 30; i++) {
        if (i === 10) {
          // Hand leadership over.
          const leader = c.nodes.find((n) => n?.status().role === "leader")!;
          await leader.transferLeadership(0);
        }
        if (i === 20) {
          // Stop the node the watch is connected to: it must resume at another one.
          const at = connects.at(-1)!;
          await c.nodes[at - 1]!.stop();
          c.nodes[at - 1] = undefined;
        }
        if (i % 7 === 0) await k.delete(`w/${i - 1}`);
        else if (i % 3 === 0) await k.cas(`w/${i}`, { version: 0 }, `v${i}`);
        else await k.set(`w/${i}`, `v${i}`);
        written.push(`w/${i}`);
      }
      const lastIndex = (await k.set("w/end", "x")).index;
      await waitFor("the watch to see the last write", () => seen.at(-1)?.index === lastIndex);
      const indexes = seen.map((e) => e.index);
      assertEquals(indexes, [...indexes].sort((a, b) => a - b), "in commit order");
      assertEquals(new Set(indexes).size, indexes.length, "no duplicates");
      // Exactly the changes made: 1 (before) + 30 writes, minus none (every delete removed an existing key)
      // … + the final SET.
      assertEquals(seen.length, 1 + 30 + 1);
      assertEquals(seen[0].value, "before");
      assert(seen.filter((e) => e.op === "del").length === 4, JSON.stringify(seen));
      assert(new Set(connects).size >= 2, `the watch should have moved to another node: ${connects}`);
      abort.abort();
      await watching; // ends quietly when stopped
    } finally {
      abort.abort();
      await c.close();
    }
  },
});

Deno.test({
  name: "a watch from an index the node no longer retains is refused as compacted with the oldest index",
  ...IT,
  fn: async () => {
    const c = await startCluster({ watchHistoryMax: 5 });
    try {
      for (let i = 0; i < 12; i++) await c.client.set(`k${i}`, "v");
      // Every node has applied the writes (the watch may go to any of them).
      const last = (await c.client.set("k-last", "v")).index;
      await waitFor("every node applied", () => c.nodes.every((n) => n!.status().commitIndex >= last));
      let err: unknown;
      try {
        for await (const _ of c.client.watch("", { prefix: true, fromIndex: 1 })) break;
      } catch (e) {
        err = e;
      }
      assert(err instanceof WatchError && err.kind === "compacted", String(err));
      assert(
        err.oldestIndex > 1 && err.message.includes(`oldest index available is ${err.oldestIndex}`),
        err.message,
      );
    } finally {
      await c.close();
    }
  },
});
