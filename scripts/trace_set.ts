/**
 * Where one SET's time goes (issue 16):
 *
 *   deno task trace-set [--sets N] [--warmup N] [--nodes 3|5] [--untraced] [--cpu-prof DIR] [--repo DIR]
 *                       [--tput-seconds S] [--inflight N] [--keep-data] [--peer-transport grpc|raw]
 *
 * Starts a local 3-node (or `--nodes 5`) cluster (`mod.ts node … --insecure --quiet --metrics-address …`,
 * default timings, each node with `RAFTKV_TRACE_FILE` set unless `--untraced`: src/metrics/set_trace.ts) in a
 * temp dir, waits for a leader, warms the connections with `--warmup` SETs (default 50), then sends
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
 * - the per-stage breakdown (medians over the traced SETs) from the nodes' trace records: client round
 *   trip; leader: frame handler → driver turn → own fsync, peer send → quorum ack (split into the
 *   follower's receive → fsync → ack sent and the rest, the two stream hops) → commit → answer → reply
 *   written. Each process's stages are timed on its own monotonic clock; a stage that crosses processes is a
 *   round trip on one side minus a span on the other (durations only, no clock is compared).
 *
 * `--tput-seconds S` then loads the leader with `--inflight N` (default 256) SETs in flight on its Client stream
 * for S seconds and prints SET/s and the nodes' CPU (utime + stime) per SET: a quick A/B (`--repo`), not the
 * bench's figure (its clients run in their own processes).
 *
 * `--cpu-prof DIR` runs the nodes under V8's CPU profiler (`deno run --cpu-prof-dir DIR --cpu-prof-md`) and
 * stops them with SIGTERM so they write their profiles (CPU.<time>.<pid>.cpuprofile and .md) there.
 *
 * Every process it starts is killed by pid at the end; everything listens on 127.0.0.1.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { v8FlagsArg } from "../src/ops/permissions.ts";
import { ClusterStub, type NodeStatus } from "../src/transport/mod.ts";
import { peerTransportFields } from "../src/transport/raw/mod.ts";

const HERE = decodeURIComponent(new URL("../", import.meta.url).pathname).replace(/\/$/, "");
const DENO = Deno.execPath();

const { values: argv } = parseArgs({
  args: Deno.args,
  options: {
    sets: { type: "string", default: "20" },
    warmup: { type: "string", default: "50" },
    "keep-data": { type: "boolean", default: false },
    nodes: { type: "string", default: "3" },
    "cpu-prof": { type: "string" },
    repo: { type: "string" },
    "tput-seconds": { type: "string", default: "0" },
    inflight: { type: "string", default: "256" },
    untraced: { type: "boolean", default: false },
    "peer-transport": { type: "string", default: "raw" }, // the product's default
  },
  strict: true,
});
/** The checkout whose mod.ts runs the nodes (`--repo`: e.g. another branch's, for an A/B run). */
const REPO = argv.repo ?? HERE;
const SETS = Math.max(1, Number(argv.sets));
const WARMUP = Math.max(0, Number(argv.warmup));
const NODES = Number(argv.nodes) === 5 ? 5 : 3;
const log = (s: string) => console.error(`[trace] ${s}`);

/** utime + stime of `pid` in ms (USER_HZ 100). */
function cpuMs(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) * 10;
}

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

/** A node's trace record (src/metrics/set_trace.ts). */
interface TraceRecord {
  node: number;
  role: "leader" | "follower";
  index: number;
  t: Record<string, number>;
}

function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * The per-stage table: for each traced SET, the durations between its stages (µs), then their medians. The
 * quorum ack is the one that completes a majority with the leader (the 1st of 2 peers, the 2nd of 4); the
 * follower split is that follower's.
 */
export function breakdown(
  traces: TraceRecord[],
  indices: number[],
  rttsUs: number[],
  leaderId: number,
  nodes: number,
): string[] {
  const rows = new Map<string, number[]>();
  const add = (name: string, ms: number) => {
    if (!Number.isFinite(ms)) return;
    let r = rows.get(name);
    if (r === undefined) rows.set(name, r = []);
    r.push(ms * 1000);
  };
  const quorumPeers = Math.floor(nodes / 2); // acks needed besides the leader's own copy
  let complete = 0;
  indices.forEach((index, k) => {
    const l = traces.find((r) => r.index === index && r.role === "leader" && r.node === leaderId)?.t;
    if (l === undefined) return;
    const acks = Object.keys(l).filter((s) => s.startsWith("ack.")).map((s) => ({
      peer: Number(s.slice(4)),
      at: l[s],
    })).sort((a, b) => a.at - b.at);
    const q = acks[quorumPeers - 1];
    if (q === undefined) return;
    const f = traces.find((r) => r.index === index && r.role === "follower" && r.node === q.peer)?.t;
    const sendQ = l[`send.${q.peer}`];
    complete++;
    const rttMs = rttsUs[k] / 1000;
    add("client round trip (client clock)", rttMs);
    add(
      "  client → leader handler + reply → client (grpc-js, HTTP/2, loopback, both ways)",
      rttMs - (l.answered - l.recv),
    );
    add("  leader: handler → driver turn (inbox, microtask)", l.turn - l.recv);
    add("  leader: turn → own save starts", l.fsyncStart - l.turn);
    add("  leader: own append + fdatasync", l.fsyncEnd - l.fsyncStart);
    add("  leader: save starts → AppendEntries handed to the quorum peer's stream", sendQ - l.fsyncStart);
    add("  peer round trip: AppendEntries handed over → quorum ack delivered (leader clock)", q.at - sendQ);
    if (f !== undefined) {
      add("    follower: frame delivered → save starts (microtask, turn)", f.fsyncStart - f.recv);
      add("    follower: append + fdatasync", f.fsyncEnd - f.fsyncStart);
      add("    follower: durable → ack handed to the stream", f.ackSent - f.fsyncEnd);
      add(
        "    the rest: two stream hops (encode, HTTP/2, loopback, decode)",
        (q.at - sendQ) - (f.ackSent - f.recv),
      );
    }
    add("  leader: own fsync done − quorum ack (> 0: the leader's fsync was last)", l.fsyncEnd - q.at);
    add("  leader: later of (own fsync, quorum ack) → commit", l.commit - Math.max(l.fsyncEnd, q.at));
    add("  leader: commit → answer (apply, results)", l.answer - l.commit);
    add("  leader: answer → reply handed to the stream (promise hops)", l.answered - l.answer);
    add("  leader: handler → reply (total inside the leader)", l.answered - l.recv);
  });
  const out = [
    `per-stage breakdown, median µs over ${complete} of ${indices.length} traced SETs (leader node ${leaderId}, ${nodes} nodes):`,
  ];
  for (const [name, us] of rows) out.push(`${median(us).toFixed(0).padStart(7)}  ${name}`);
  return out;
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
    JSON.stringify({
      clusterId: "trace",
      nodes: endpoints.map((address, i) => ({ id: i + 1, address })),
      ...peerTransportFields(argv["peer-transport"], ports), // --peer-transport raw: src/transport/raw/
    }),
  );
  log(`data in ${root}; nodes ${endpoints.join(" ")}; metrics ${metricsAt.join(" ")}`);
  const procs = endpoints.map((_, i) =>
    new Deno.Command(DENO, {
      args: [
        "run",
        "-A",
        v8FlagsArg(),
        ...(argv["cpu-prof"] ? ["--cpu-prof-dir", argv["cpu-prof"], "--cpu-prof-md"] : []),
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
      env: argv.untraced ? {} : { RAFTKV_TRACE_FILE: `${root}/trace_node_${i + 1}.jsonl` },
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
    const set = async (key: string): Promise<number> => {
      const r = await stub.set(key, "v".repeat(100), clientId, ++seq, 5000);
      if (!r.ok) throw new Error(`SET ${key} failed: ${JSON.stringify(r)}`);
      return r.index;
    };
    log(`leader is node ${leader + 1}; warming up with ${WARMUP} SETs`);
    for (let i = 0; i < WARMUP; i++) await set(`warm-${i}`);
    // Let the followers' acks of the warm-up and a heartbeat or two go by, so the deltas are the traced SETs'.
    await sleep(300);

    const before = await Promise.all(metricsAt.map(scrape));
    const rttsUs: number[] = [];
    const tracedIndex: number[] = [];
    let firstSentWallMs = 0, firstDoneWallMs = 0;
    const firstKey = `traced-${clientId}-0`;
    for (let i = 0; i < SETS; i++) {
      const wall0 = Date.now();
      const t0 = performance.now();
      tracedIndex.push(await set(`traced-${clientId}-${i}`));
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
      }) over its Client stream; ${NODES} nodes, default timings`,
    );
    lines.push(
      `client round trip µs: p50 ${percentile(sorted, 50).toFixed(0)}, min ${sorted[0].toFixed(0)}, max ${
        sorted[sorted.length - 1].toFixed(0)
      }`,
    );
    lines.push(`client round trip µs p99: ${percentile(sorted, 99).toFixed(0)}`);
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
    console.log([`peer transport ${argv["peer-transport"]}`, ...lines].join("\n"));

    // ---- per-stage breakdown from the trace records (written every 200 ms by the nodes)
    const traceFiles = endpoints.map((_, i) => `${root}/trace_node_${i + 1}.jsonl`);
    const wanted = new Set(tracedIndex);
    const readTraces = (): TraceRecord[] =>
      traceFiles.flatMap((p) => {
        try {
          return Deno.readTextFileSync(p).split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
        } catch {
          return [];
        }
      }).filter((r: TraceRecord) => wanted.has(r.index));
    let traces = readTraces();
    const tracesBy = performance.now() + 3000;
    while (performance.now() < tracesBy && traces.filter((r) => r.role === "leader").length < SETS) {
      await sleep(100);
      traces = readTraces();
    }
    console.log("\n" + breakdown(traces, tracedIndex, rttsUs, leader + 1, NODES).join("\n"));

    // ---- throughput and server CPU per SET at --inflight SETs in flight (one Client stream, this process)
    const tputMs = Number(argv["tput-seconds"]) * 1000;
    if (tputMs > 0) {
      const inflight = Math.max(1, Number(argv.inflight));
      const pids = procs.map((p) => p.pid);
      let ops = 0, failed = 0, stop = false;
      const loop = async (w: number) => {
        const id = `${clientId}-w${w}`;
        let s = 0;
        while (!stop) {
          const r = await stub.set(`k-${w}-${s % 100}`, "v".repeat(100), id, ++s, 5000).catch(() =>
            undefined
          );
          if (r?.ok) ops++;
          else failed++;
        }
      };
      const c0 = pids.map(cpuMs), lc0 = cpuMs(Deno.pid);
      const t0 = performance.now();
      const workers = Array.from({ length: inflight }, (_, w) => loop(w));
      await sleep(tputMs);
      stop = true;
      const secs = (performance.now() - t0) / 1000;
      const okOps = ops;
      const c1 = pids.map(cpuMs), lc1 = cpuMs(Deno.pid);
      await Promise.all(workers);
      const serverMs = c1.reduce((a, c, i) => a + c - c0[i], 0);
      console.log(
        `\n${inflight} in flight for ${secs.toFixed(1)} s: ${
          (okOps / secs).toFixed(0)
        } SET/s (${failed} failed); ` +
          `server CPU ${(serverMs * 1000 / okOps).toFixed(0)} µs per SET (all nodes; leader ${
            ((c1[leader] - c0[leader]) * 1000 / okOps).toFixed(0)
          } µs), this client ${((lc1 - lc0) * 1000 / okOps).toFixed(0)} µs per SET; load ${
            Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ")
          }`,
      );
    }

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
        p.kill(argv["cpu-prof"] ? "SIGTERM" : "SIGKILL"); // SIGTERM: a graceful stop writes the profile
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
