/**
 * The CPU an idle raftkv cluster burns (issue 16), per node and in total, from /proc/<pid>/stat (utime + stime):
 *
 *   deno task idle-cpu [--nodes 5] [--seconds 20] [--settle 3] [--heartbeat-ms 100] [--cpu-prof DIR] [--repo DIR]
 *                      [--peer-transport grpc|raw]
 *
 * Starts a local cluster (`mod.ts node … --insecure --quiet`, default timings, `--heartbeat-ms` sets
 * heartbeatIntervalMs) in a temp dir, waits for a leader serving reads, lets it settle `--settle` s, then
 * samples every node's CPU time over `--seconds` s with no client traffic. Prints ms of CPU per s of wall
 * time for each node (the leader marked) and the sum, with the load average at start and end (the machine
 * may be shared: an indicative figure). `deno task bench --only cpu` measures the same next to etcd.
 *
 * `--cpu-prof DIR` runs the nodes under V8's CPU profiler (profiles written to DIR at a SIGTERM stop).
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
    nodes: { type: "string", default: "5" },
    seconds: { type: "string", default: "20" },
    settle: { type: "string", default: "3" },
    "heartbeat-ms": { type: "string", default: "100" },
    "cpu-prof": { type: "string" },
    repo: { type: "string" },
    "peer-transport": { type: "string", default: "raw" }, // the product's default
  },
  strict: true,
});
/** The checkout whose mod.ts runs the nodes (`--repo`: e.g. another branch's, for an A/B run). */
const REPO = argv.repo ?? HERE;
const NODES = Math.max(1, Number(argv.nodes));
const SECONDS = Math.max(1, Number(argv.seconds));
const SETTLE_MS = Math.max(0, Number(argv.settle) * 1000);
const HEARTBEAT_MS = Number(argv["heartbeat-ms"]);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const loadavg = () => Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");

/** utime + stime of `pid` in ms (clock ticks of 10 ms on Linux: USER_HZ 100). */
export function cpuMs(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) * 10; // fields 14 and 15 of stat(5), after pid and comm
}

function freePorts(n: number): number[] {
  const ls = Array.from({ length: n }, () => Deno.listen({ hostname: "127.0.0.1", port: 0 }));
  const ports = ls.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of ls) l.close();
  return ports;
}

async function main(): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "raftkv-idle-cpu-" });
  const ports = freePorts(NODES);
  const endpoints = ports.map((p) => `127.0.0.1:${p}`);
  const config = `${root}/cluster.json`;
  Deno.writeTextFileSync(
    config,
    JSON.stringify({
      clusterId: "idle",
      heartbeatIntervalMs: HEARTBEAT_MS,
      nodes: endpoints.map((address, i) => ({ id: i + 1, address })),
      ...peerTransportFields(argv["peer-transport"], ports), // --peer-transport raw: src/transport/raw/
    }),
  );
  const load0 = loadavg();
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
      ],
      stdout: "null",
      stderr: "null",
    }).spawn()
  );
  const stubs = endpoints.map((a) => new ClusterStub(a));
  try {
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
    for (const s of stubs) s.close(); // no client connection during the measurement
    await sleep(SETTLE_MS);
    const pids = procs.map((p) => p.pid);
    console.error(`[idle-cpu] leader node ${leader + 1}; pids ${pids.join(" ")}; measuring ${SECONDS} s`);
    const c0 = pids.map(cpuMs);
    const t0 = performance.now();
    await sleep(SECONDS * 1000);
    const c1 = pids.map(cpuMs);
    const secs = (performance.now() - t0) / 1000;
    const per = c1.map((c, i) => (c - c0[i]) / secs);
    const total = per.reduce((a, b) => a + b, 0);
    console.log(
      `idle CPU, ${NODES} nodes, heartbeat ${HEARTBEAT_MS} ms, ${secs.toFixed(1)} s: total ${
        total.toFixed(1)
      } ms/s; per node ${
        per.map((v, i) => `${i + 1}${i === leader ? "(L)" : ""} ${v.toFixed(1)}`).join(", ")
      }`,
    );
    console.log(
      `peer transport ${argv["peer-transport"]}; load average at start ${load0}, at end ${loadavg()}`,
    );
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
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) await main();
