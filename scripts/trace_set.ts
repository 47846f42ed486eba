/**
 * Where one SET's time goes (issue 16), using only what a node already exposes:
 *
 *   deno task trace-set [--sets N] [--warmup N] [--keep-data]
 *
 * Starts a local 3-node cluster (`mod.ts node … --insecure --quiet --metrics-address …`, default timings) in
 * a temp dir, waits for a leader, warms the connections with `--warmup` SETs (default 50), then sends
 * `--sets` SETs (default 20) one at a time to the leader over the Client stream (as `raftkv bench` does), and
 * reports:
 *
 * - client side: each SET's round trip (performance.now(), µs);
 * - server side, from each node's /metrics scraped before and after the traced SETs (deltas):
 *   `raftkv_client_request_duration_seconds{op="SET"}` on the leader (frame decoded → answer queued),
 *   `raftkv_fsync_duration_seconds` per node (count and mean), `raftkv_append_entries_batch_entries`
 *   on the leader (AppendEntries sent, entries per message), `raftkv_entries_committed_total`;
 * - the dump.txt lines every node wrote during the first traced SET, with their offset from the client's send
 *   (dump.txt timestamps are wall-clock milliseconds, so this is a coarse ordering, not a µs trace).
 *
 * What it cannot see (no hooks inside the node's loop): the split of the leader's time between the frame's
 * decode, the raft loop turn, its own log write and fsync, the peer send, the follower's turn and fsync, the
 * ack, commit, apply and answer. docs/benchmarks.md ("Tracing one SET") lists the hooks that would.
 *
 * Every process it starts is killed by pid at the end; everything listens on 127.0.0.1.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { ClusterStub, type NodeStatus } from "../src/transport/mod.ts";

const REPO = decodeURIComponent(new URL("../", import.meta.url).pathname).replace(/\/$/, "");
const DENO = Deno.execPath();

const { values: argv } = parseArgs({
  args: Deno.args,
  options: {
    sets: { type: "string", default: "20" },
    warmup: { type: "string", default: "50" },
    "keep-data": { type: "boolean", default: false },
  },
  strict: true,
});
const SETS = Math.max(1, Number(argv.sets));
const WARMUP = Math.max(0, Number(argv.warmup));
const NODES = 3;
const log = (s: string) => console.error(`[trace] ${s}`);

function freePorts(n: number): number[] {
  const ls = Array.from({ length: n }, () => Deno.listen({ hostname: "127.0.0.1", port: 0 }));
  const ports = ls.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of ls) l.close();
  return ports;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Prometheus text → sample name{labels} → value (histogram _sum/_count and counters only are used). */
export function parseMetrics(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const sp = line.lastIndexOf(" ");
    const v = Number(line.slice(sp + 1));
    if (Number.isFinite(v)) m.set(line.slice(0, sp), v);
  }
  return m;
}

/** Sum of every sample whose name is `name` and whose labels contain every `labels` pair. */
export function metricSum(m: Map<string, number>, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const [k, v] of m) {
    const brace = k.indexOf("{");
    const n = brace < 0 ? k : k.slice(0, brace);
    if (n !== name) continue;
    if (Object.entries(labels).every(([l, lv]) => k.includes(`${l}="${lv}"`))) sum += v;
  }
  return sum;
}

async function scrape(address: string): Promise<Map<string, number>> {
  const r = await fetch(`http://${address}/metrics`);
  return parseMetrics(await r.text());
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function main(): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "raftkv-trace-set-" });
  const ports = freePorts(NODES * 2);
  const endpoints = ports.slice(0, NODES).map((p) => `127.0.0.1:${p}`);
  const metricsAt = ports.slice(NODES).map((p) => `127.0.0.1:${p}`);
  const config = `${root}/cluster.json`;
  Deno.writeTextFileSync(
    config,
    JSON.stringify({ clusterId: "trace", nodes: endpoints.map((address, i) => ({ id: i + 1, address })) }),
  );
  log(`data in ${root}; nodes ${endpoints.join(" ")}; metrics ${metricsAt.join(" ")}`);
  const procs = endpoints.map((_, i) =>
    new Deno.Command(DENO, {
      args: [
        "run",
        "-A",
        `${REPO}/mod.ts`,
        "node",
        "--id",
        String(i + 1),
        "--config",
        config,
        "--data-dir",
        root,
        "--insecure",
        "--quiet",
        "--metrics-address",
        metricsAt[i],
      ],
      stdout: "null",
      stderr: "null",
    }).spawn()
  );
  const stubs = endpoints.map((a) => new ClusterStub(a));
  try {
    // The leader: the node that says so and serves reads (bounded wait on observed state).
    let leader = -1;
    const until = performance.now() + 60_000;
    while (leader < 0 && performance.now() < until) {
      const st: (NodeStatus | undefined)[] = await Promise.all(
        stubs.map((s) => s.status(500).catch(() => undefined)),
      );
      leader = st.findIndex((s) => s?.role === "leader" && s.servingReads);
      if (leader < 0) await sleep(100);
    }
    if (leader < 0) throw new Error("no leader serving reads within 60 s");
    const stub = stubs[leader];
    const clientId = `trace-${crypto.randomUUID().slice(0, 8)}`;
    let seq = 0;
    const set = async (key: string) => {
      const r = await stub.set(key, "v".repeat(100), clientId, ++seq, 5000);
      if (!r.ok) throw new Error(`SET ${key} failed: ${JSON.stringify(r)}`);
    };
    log(`leader is node ${leader + 1}; warming up with ${WARMUP} SETs`);
    for (let i = 0; i < WARMUP; i++) await set(`warm-${i}`);
    // Let the followers' acks of the warm-up and a heartbeat or two go by, so the deltas are the traced SETs'.
    await sleep(300);

    const before = await Promise.all(metricsAt.map(scrape));
    const rttsUs: number[] = [];
    let firstSentWallMs = 0, firstDoneWallMs = 0;
    const firstKey = `traced-${clientId}-0`;
    for (let i = 0; i < SETS; i++) {
      const wall0 = Date.now();
      const t0 = performance.now();
      await set(`traced-${clientId}-${i}`);
      const t1 = performance.now();
      if (i === 0) {
        firstSentWallMs = wall0;
        firstDoneWallMs = Date.now();
      }
      rttsUs.push((t1 - t0) * 1000);
      await sleep(20); // one in flight, and no batching with the previous SET's acks
    }
    const after = await Promise.all(metricsAt.map(scrape));
    const delta = (i: number, name: string, labels: Record<string, string> = {}) =>
      metricSum(after[i], name, labels) - metricSum(before[i], name, labels);

    // ---- client side
    const sorted = [...rttsUs].sort((a, b) => a - b);
    const lines: string[] = [];
    lines.push(
      `${SETS} SETs, 1 in flight, to the leader (node ${
        leader + 1
      }) over its Client stream; 3 nodes, default timings`,
    );
    lines.push(
      `client round trip µs: p50 ${percentile(sorted, 50).toFixed(0)}, min ${sorted[0].toFixed(0)}, max ${
        sorted[sorted.length - 1].toFixed(0)
      }`,
    );
    // ---- server side (leader)
    const reqCount = delta(leader, "raftkv_client_request_duration_seconds_count", { op: "set" });
    const reqSum = delta(leader, "raftkv_client_request_duration_seconds_sum", { op: "set" });
    const serverMeanUs = reqCount > 0 ? (reqSum / reqCount) * 1e6 : NaN;
    const clientMeanUs = rttsUs.reduce((a, b) => a + b, 0) / rttsUs.length;
    lines.push(
      `leader, frame in → answer (raftkv_client_request_duration_seconds, SET): ${reqCount} requests, mean ${
        serverMeanUs.toFixed(0)
      } µs`,
    );
    lines.push(
      `client mean ${clientMeanUs.toFixed(0)} µs − leader mean ${serverMeanUs.toFixed(0)} µs = ${
        (clientMeanUs - serverMeanUs).toFixed(0)
      } µs outside the node's handler (client library, grpc-js, HTTP/2, loopback, event-loop hops)`,
    );
    const aeCount = delta(leader, "raftkv_append_entries_batch_entries_count");
    const aeEntries = delta(leader, "raftkv_append_entries_batch_entries_sum");
    lines.push(
      `leader sent ${aeCount} AppendEntries (${aeEntries} entries; heartbeats included) for ${SETS} SETs`,
    );
    for (let i = 0; i < NODES; i++) {
      const n = delta(i, "raftkv_fsync_duration_seconds_count");
      const s = delta(i, "raftkv_fsync_duration_seconds_sum");
      const c = delta(i, "raftkv_entries_committed_total");
      lines.push(
        `node ${i + 1}${i === leader ? " (leader)" : ""}: ${n} fsyncs, mean ${
          n > 0 ? ((s / n) * 1e6).toFixed(0) : "–"
        } µs (${(n / SETS).toFixed(2)} per SET); ${c} entries committed`,
      );
    }
    console.log(lines.join("\n"));

    // ---- dump.txt around the first traced SET (flushed by the nodes within ~1 s; wait until it shows)
    const dumps = endpoints.map((_, i) => `${root}/logs_node_${i + 1}/dump.txt`);
    const readDump = (p: string) => {
      try {
        return Deno.readTextFileSync(p).split("\n");
      } catch {
        return [];
      }
    };
    const flushedBy = performance.now() + 5000;
    while (performance.now() < flushedBy && !readDump(dumps[leader]).some((l) => l.includes(firstKey))) {
      await sleep(100);
    }
    console.log(
      `\ndump.txt lines from ${new Date(firstSentWallMs).toISOString()} (client sends ${firstKey}) to ${
        new Date(firstDoneWallMs + 1).toISOString()
      } (+1 ms), offset from the send in ms (ms resolution):`,
    );
    const events: { ms: number; node: number; text: string }[] = [];
    dumps.forEach((p, i) => {
      for (const l of readDump(p)) {
        const sp = l.indexOf(" ");
        const at = Date.parse(l.slice(0, sp));
        if (!Number.isFinite(at) || at < firstSentWallMs || at > firstDoneWallMs + 1) continue;
        events.push({ ms: at - firstSentWallMs, node: i + 1, text: l.slice(sp + 1) });
      }
    });
    events.sort((a, b) => a.ms - b.ms || a.node - b.node);
    if (events.length === 0) {
      console.log("  (none: dump.txt not flushed yet, or timestamps outside the window)");
    }
    for (const e of events) console.log(`  +${e.ms} ms  node ${e.node}: ${e.text.slice(0, 160)}`);
  } finally {
    for (const s of stubs) s.close();
    for (const p of procs) {
      try {
        p.kill("SIGKILL");
      } catch {
        // already gone
      }
      await p.status;
    }
    if (!argv["keep-data"]) await Deno.remove(root, { recursive: true }).catch(() => {});
    else log(`data kept in ${root}`);
  }
}

if (import.meta.main) await main();
