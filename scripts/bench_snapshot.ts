/**
 * Measurements of issue 10 (snapshots, compaction, bounded memory), printed as Markdown rows for
 * docs/benchmarks.md:
 *
 *     deno run -A scripts/bench_snapshot.ts [--only pause,pause-node,restart,rebuild,rss] [--peer-transport grpc|raw]
 *       [--rebuild-runs N]
 *         [--peer-window-bytes N] [--chunk-bytes N] [--sets N] [--keys K]
 *         [--threshold N] [--load-through-raft] [--trace-gc]
 *
 * - pause: the longest stall of the event loop while a snapshot of 1,000,000 keys (100-byte values) is taken
 *   and written (the freeze, then the chunked write), measured in-process with a 1 ms probe timer;
 * - pause-node: the same as clients of a 1-node cluster see it (`raftkv bench` latencies with and without a
 *   snapshot); with `--trace-gc` the node runs with V8's `--trace-gc` and the longest garbage-collection
 *   pauses of each 10 s window are printed next to the latencies (what the longest client wait was);
 * - restart: time until a 1-node `raftkv node` answers `admin status`, on folders whose history is 100,000
 *   and 1,000,000 SETs over 10,000 keys, compacted (snapshot + 5,000-entry tail), and the 1,000,000-entry
 *   uncompacted log for comparison;
 * - rebuild: a 3-node cluster holding `--keys` keys (written offline into every folder, or with
 *   `--load-through-raft` by `raftkv bench`), the leader snapshots, a follower is wiped and restarted: time
 *   from its start to "installed the snapshot" in its dump.txt (keys/s, MB/s), and the phases;
 * - rss: a 3-node cluster, `raftkv bench -n <sets> --keys 10000 --value-size 100 --read-ratio 0`, then each
 *   node's RSS (VmRSS, idle and 8 s after the load, split by kind: RssFile, V8 pages, glibc's arenas, small
 *   regions) and logs folder size, with the default snapshot policy or `--threshold N` entries; the nodes
 *   inherit RAFTKV_FILE_PAGES (`keep` runs them without releasing the executable's cold pages,
 *   src/ops/file_pages.ts), and the minor page faults per second each node took during the load are printed.
 *
 * Next to each Markdown row it prints one machine-readable line, `BENCH_SNAPSHOT_JSON {…}`
 * (src/bench/snapshot_goals.ts): `deno task bench` runs this script as its `snapshot` section (and the opt-in
 * `snapshot-rss`), reads those lines and judges them against issue 10's goals. SIGINT or SIGTERM stops every
 * process it started and removes its temp folders; with RAFTKV_BENCH_PARENT_PID set (by the bench) it also does
 * so, and kills its own process group, when that parent is gone.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { KvStore } from "../src/kv/kv_store.ts";
import { DEFAULT_SNAPSHOT_POLICY as POLICY } from "../src/raft/config.ts";
import { V8_FLAGS, v8FlagsArg } from "../src/ops/permissions.ts";
import { FileLogStore } from "../src/storage/file_store.ts";
import { writeSnapshotFile } from "../src/storage/snapshot_file.ts";
import type { Entry } from "../src/raft/types.ts";
import { ClusterStub } from "../src/transport/mod.ts";
import {
  folderBoundBytes,
  formatSnapshotLine,
  rebuildRates,
  rssBoundBytes,
  type SnapshotMeasurement,
} from "../src/bench/snapshot_goals.ts";
import { freePorts, LocalCluster, sleep } from "../tests/integration/harness.ts";

const { values: argv } = parseArgs({
  args: Deno.args,
  options: {
    only: { type: "string", default: "pause,restart,rebuild,rss" },
    sets: { type: "string", default: "300000" },
    keys: { type: "string" },
    threshold: { type: "string" },
    "load-through-raft": { type: "boolean", default: false },
    "trace-gc": { type: "boolean", default: false },
    // rebuild only: node-to-node traffic on the raw peer transport (the product's default) or gRPC.
    "peer-transport": { type: "string", default: "raw" },
    // rebuild only: transportLimits.peerWindowBytes of the nodes (65535: HTTP/2's default, as before it was
    // raised; see src/transport/peer_window.ts; it matters with --peer-transport grpc). Absent: the default.
    "peer-window-bytes": { type: "string" },
    // rebuild only: snapshotChunkBytes of the nodes (cluster.json; default 1 MiB), for an A/B of chunk sizes.
    "chunk-bytes": { type: "string" },
    // rebuild only: plain-text nodes (the product's default is TLS), to see what TLS costs a rebuild.
    insecure: { type: "boolean", default: false },
    // rebuild only: how many rebuilds to run one after the other (each on a fresh cluster); a goal is judged on
    // their median (one run on a shared machine swings by a third either way).
    "rebuild-runs": { type: "string", default: "1" },
  },
});
/** `--peer-transport`, checked. */
function peerTransport(): "grpc" | "raw" {
  const v = argv["peer-transport"];
  if (v !== "grpc" && v !== "raw") throw new Error(`--peer-transport must be grpc or raw, got ${v}`);
  return v;
}
const ONLY = new Set(argv.only!.split(","));
const REPO = new URL("..", import.meta.url).pathname;
const log = (s: string) => console.error(`[bench_snapshot] ${s}`);
/** The 1, 5 and 15 minute load averages, recorded next to every figure (the machine is shared). */
const loadAverage = () => Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
const rows: string[] = [];
/**
 * `RAFTKV_CPU_PROF=<dir>`: the nodes of `rebuild` and `pause-node` run under V8's CPU profiler, one
 * `.cpuprofile` file each in `<dir>` (written when the node exits: they are stopped with SIGTERM).
 */
const PROFILE_DIR = Deno.env.get("RAFTKV_CPU_PROF");

/** Prints `m`'s machine-readable line at once (a later section's failure does not lose it). */
function emit(m: SnapshotMeasurement): void {
  console.log(formatSnapshotLine(m));
}

/**
 * What to undo if the run is interrupted: clusters to stop, processes to kill, temp folders to remove. Each
 * section registers what it starts and unregisters it once it has cleaned up itself.
 */
const cleanups = new Set<() => Promise<unknown> | unknown>();
function onInterrupt(f: () => Promise<unknown> | unknown): () => void {
  cleanups.add(f);
  return () => cleanups.delete(f);
}
let interrupted = false;
async function interrupt(why: string, code: number): Promise<never> {
  if (!interrupted) {
    interrupted = true;
    log(`${why}: stopping every process this run started`);
    const all = Promise.allSettled([...cleanups].map(async (f) => await f()));
    await Promise.race([all, sleep(10_000)]);
  }
  Deno.exit(code);
}
const onSigint = () => interrupt("interrupted (SIGINT)", 130);
const onSigterm = () => interrupt("terminated (SIGTERM)", 143);
Deno.addSignalListener("SIGINT", onSigint);
Deno.addSignalListener("SIGTERM", onSigterm);
/** Kills `child` (ignoring one that is gone). */
function killQuietly(child: Deno.ChildProcess): void {
  try {
    child.kill("SIGKILL");
  } catch {
    // already gone
  }
}
// Run by `deno task bench` in a process group of its own: if the bench dies without stopping it (SIGKILL),
// this process is reparented; then it stops what it started and kills its group (nodes, `raftkv bench`).
const PARENT_PID = Number(Deno.env.get("RAFTKV_BENCH_PARENT_PID") ?? NaN);
if (Number.isInteger(PARENT_PID) && PARENT_PID > 0) {
  const statFields = () => {
    const stat = Deno.readTextFileSync("/proc/self/stat");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" "); // state, ppid, pgrp, …
  };
  const watchdog = setInterval(async () => {
    const [, ppid, pgrp] = statFields().map(Number);
    if (ppid === PARENT_PID || interrupted) return;
    clearInterval(watchdog);
    interrupted = true;
    try {
      log(`the bench (pid ${PARENT_PID}) is gone: stopping every process this run started`);
    } catch {
      // its stderr went with it
    }
    await Promise.race([Promise.allSettled([...cleanups].map(async (f) => await f())), sleep(10_000)]);
    if (pgrp === Deno.pid) Deno.kill(-Deno.pid, "SIGKILL"); // the group is this run's alone
    Deno.exit(137);
  }, 1000);
  Deno.unrefTimer(watchdog);
}

function set(index: number, key: string, value: string): Entry {
  return { index, term: 1, command: { op: "set", key, value, clientId: "c-7f3a", seq: index } };
}

// ------------------------------------------------------------------------------------------------------------

async function pause(): Promise<void> {
  const KEYS = 1_000_000;
  const kv = new KvStore();
  for (let i = 1; i <= KEYS; i++) kv.apply(set(i, `key${i}`, "v".repeat(100)));
  const dir = await Deno.makeTempDir({ prefix: "raftkv-pause-" });
  const forget = onInterrupt(() => Deno.remove(dir, { recursive: true }));
  let maxLagMs = 0, last = performance.now(), running = true;
  const lags: number[] = [];
  const probe = () => {
    const now = performance.now();
    const lag = now - last - 1;
    lags.push(lag);
    if (lag > maxLagMs) maxLagMs = lag;
    last = now;
    if (running) setTimeout(probe, 1);
  };
  setTimeout(probe, 1);
  // Keep applying writes (10 SETs per ms) before and while the snapshot is written (the copy-on-write path
  // runs too); the same load without a snapshot first, as the baseline.
  let applied = KEYS;
  const writer = setInterval(() => {
    for (let k = 0; k < 10; k++) applied++, kv.apply(set(applied, `key${applied % KEYS}`, "w".repeat(100)));
  }, 1);
  await sleep(200);
  maxLagMs = 0;
  lags.length = 0;
  await sleep(10_000);
  const base = [...lags].sort((a, b) => a - b);
  const baseP99 = base[Math.floor(base.length * 0.99)] ?? 0, baseMax = maxLagMs;
  maxLagMs = 0;
  lags.length = 0;
  const appliedBefore = applied;
  const t0 = performance.now();
  const view = kv.snapshot();
  const freezeMs = performance.now() - t0;
  const size = await writeSnapshotFile(dir, {
    header: { index: view.index, term: 1, keys: view.keys, sessions: view.sessions },
    sessions: () => view.sessionEntries(),
    nextPairs: (max) => view.nextPairs(max),
  });
  const totalMs = performance.now() - t0;
  view.close();
  clearInterval(writer);
  running = false;
  lags.sort((a, b) => a - b);
  const p99 = lags[Math.floor(lags.length * 0.99)] ?? 0;
  log(
    `pause: freeze ${freezeMs.toFixed(1)} ms, write ${
      totalMs.toFixed(0)
    } ms, ${size} bytes, max lag ${maxLagMs}`,
  );
  rows.push(
    `| snapshot of 1,000,000 keys (100 B values), in-process | freeze (key copy) ${
      freezeMs.toFixed(1)
    } ms; ` +
      `written in ${(totalMs / 1000).toFixed(1)} s (${(size / 1e6).toFixed(0)} MB) while ${
        applied - appliedBefore
      } ` +
      `SETs were applied; event-loop stall p99 ${p99.toFixed(1)} ms, max ${maxLagMs.toFixed(1)} ms ` +
      `(same load, no snapshot, 10 s: p99 ${baseP99.toFixed(1)} ms, max ${baseMax.toFixed(1)} ms) |`,
  );
  emit({
    kind: "pause-in-process",
    keys: KEYS,
    freezeMs,
    writeMs: totalMs,
    snapshotBytes: size,
    stallP99Ms: p99,
    stallMaxMs: maxLagMs,
    withoutP99Ms: baseP99,
    withoutMaxMs: baseMax,
    loadAverage: loadAverage(),
  });
  await Deno.remove(dir, { recursive: true });
  forget();
}

/**
 * A node's folder holding `keys` SETs of distinct keys (100-byte values, term 1, index = key number),
 * snapshotted at the last one and compacted behind it with a 5,000-entry tail.
 */
async function buildSnapshotFolder(
  dataDir: string,
  id: number,
  clusterId: string,
  keys: number,
): Promise<void> {
  const store = await FileLogStore.open(dataDir, id, clusterId);
  await store.save({ hardState: { term: 1, votedFor: 1 }, entries: [] });
  const kv = new KvStore();
  for (let from = 1; from <= keys; from += 20_000) {
    const es: Entry[] = [];
    for (let i = from; i < from + 20_000 && i <= keys; i++) es.push(set(i, `key${i - 1}`, "v".repeat(100)));
    for (const e of es) kv.apply(e);
    await store.save({ appendFrom: from, entries: es, commitIndex: from + es.length - 1 });
  }
  const view = kv.snapshot();
  await writeSnapshotFile(store.folder, {
    header: { index: view.index, term: 1, keys: view.keys, sessions: view.sessions },
    sessions: () => view.sessionEntries(),
    nextPairs: (max) => view.nextPairs(max),
  }, { rename: false });
  view.close();
  const to = Math.max(0, keys - 5000);
  await store.save({
    entries: [],
    compactLog: { snapshot: { index: keys, term: 1 }, compactTo: { index: to, term: to > 0 ? 1 : 0 } },
  });
  await store.close();
}

/**
 * The pause as clients see it: a 1-node cluster whose folder holds a 1,000,000-key snapshot (built offline,
 * loaded at start), driven by `raftkv bench` (GETs and SETs over the 1,000,000 keys) for 10 s without a
 * snapshot, then for 10 s during which `admin snapshot` takes and writes one of all 1,000,000 keys.
 */
async function pauseThroughNode(): Promise<void> {
  const KEYS = 1_000_000;
  const root = await Deno.makeTempDir({ prefix: "raftkv-pause-node-" });
  const forgetRoot = onInterrupt(() => Deno.remove(root, { recursive: true }));
  try {
    await buildSnapshotFolder(root, 1, "bench-pause", KEYS);
    const [port] = freePorts(1);
    const config = `${root}/cluster.json`;
    // A threshold no run reaches: the only snapshot is the one asked for.
    Deno.writeTextFileSync(
      config,
      JSON.stringify({
        clusterId: "bench-pause",
        nodes: [{ id: 1, address: `127.0.0.1:${port}` }],
        snapshotThresholdEntries: 100_000_000,
      }),
    );
    const traceGc = argv["trace-gc"]!;
    const spawnedMs = performance.now();
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        traceGc ? `--v8-flags=${[...V8_FLAGS, "--trace-gc"].join(",")}` : v8FlagsArg(),
        ...(PROFILE_DIR !== undefined ? [`--cpu-prof-dir=${PROFILE_DIR}`, "--cpu-prof-interval=500"] : []),
        `${REPO}/mod.ts`,
        "node",
        "--id",
        "1",
        "--config",
        config,
        "--data-dir",
        root,
        "--quiet",
        "--insecure",
      ],
      stdout: traceGc ? "piped" : "null",
      stderr: "null",
    }).spawn();
    const forgetChild = onInterrupt(() => killQuietly(child));
    // V8's trace goes to the node's stdout: kept in memory, read once both windows are over.
    const trace = traceGc ? new Response(child.stdout).text() : Promise.resolve("");
    const windows: [string, number, number][] = [];
    try {
      const cli = (args: string[]) =>
        new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", `${REPO}/mod.ts`, ...args],
          stdout: "piped",
          stderr: "piped",
          env: { NO_COLOR: "1", RAFTKV_INSECURE: "1" },
        }).output();
      const up0 = performance.now();
      while (performance.now() - up0 < 120_000) {
        const r = await cli(["admin", "status", "--config", config, "--json"]);
        if (r.code === 0 && /"role":\s*"leader"/.test(new TextDecoder().decode(r.stdout))) break;
        await sleep(200);
      }
      const load = () =>
        cli([
          "bench",
          "--config",
          config,
          "-c",
          "16",
          "--duration",
          "10s",
          "--read-ratio",
          "0.5",
          "--keys",
          String(KEYS),
          "--value-size",
          "100",
          "--json",
        ]).then((r) => JSON.parse(new TextDecoder().decode(r.stdout)));
      const cell = (o: { p99Ms: number; maxMs: number; opsPerSec: number }) =>
        `p99 ${o.p99Ms.toFixed(1)} ms, max ${o.maxMs.toFixed(1)} ms (${o.opsPerSec.toFixed(0)}/s)`;
      log(`pause (node): baseline, load average ${loadAverage()}`);
      const b0 = performance.now() - spawnedMs;
      const base = await load();
      windows.push(["without a snapshot", b0, performance.now() - spawnedMs]);
      log(`pause (node): with a snapshot, load average ${loadAverage()}`);
      const s0 = performance.now() - spawnedMs;
      const during = load();
      await sleep(1000);
      const t0 = performance.now();
      const snap = await cli(["admin", "snapshot", "--config", config, "--json"]);
      const snapMs = performance.now() - t0;
      const with_ = await during;
      windows.push(["with a snapshot", s0, performance.now() - spawnedMs]);
      if (snap.code !== 0) throw new Error(`admin snapshot failed: ${new TextDecoder().decode(snap.stderr)}`);
      const size = Deno.statSync(`${root}/logs_node_1/snapshot.txt`).size;
      rows.push(
        `| 1,000,000-key snapshot (${(size / 1e6).toFixed(0)} MB) taken by a node under 16 clients ` +
          `(50 % GET, 50 % SET, 10 s; \`admin snapshot\` answered in ${(snapMs / 1000).toFixed(1)} s) | ` +
          `SET ${cell(with_.SET)}, GET ${cell(with_.GET)}; without a snapshot: SET ${cell(base.SET)}, ` +
          `GET ${cell(base.GET)}; load average ${loadAverage()} |`,
      );
      const latency = (o: { p99Ms: number; maxMs: number; opsPerSec: number }) => ({
        p99Ms: o.p99Ms,
        maxMs: o.maxMs,
        opsPerSec: o.opsPerSec,
      });
      emit({
        kind: "pause",
        keys: KEYS,
        snapshotBytes: size,
        snapshotMs: snapMs,
        during: { SET: latency(with_.SET), GET: latency(with_.GET) },
        without: { SET: latency(base.SET), GET: latency(base.GET) },
        loadAverage: loadAverage(),
      });
    } finally {
      child.kill("SIGTERM");
      await child.status;
      forgetChild();
    }
    if (traceGc) rows.push(gcPauseRow(await trace, windows));
    if (PROFILE_DIR !== undefined) {
      log(
        `pause (node): CPU profile in ${PROFILE_DIR}; windows (ms since spawn): ${JSON.stringify(windows)}`,
      );
    }
  } finally {
    await Deno.remove(root, { recursive: true });
    forgetRoot();
  }
}

/**
 * The node's garbage-collection pauses per window, from its `--trace-gc` lines (`[pid:0x…]  12345 ms:
 * Mark-Compact 620.1 (623.0) -> 419.3 (623.0) MB, pooled: 0.0 MB, 556.50 / 0.00 ms (…)`: the time is since
 * the isolate started, ~ the spawn; the first figure after the sizes is the main thread's pause).
 */
function gcPauseRow(trace: string, windows: readonly [string, number, number][]): string {
  const re =
    /\s(\d+) ms: ([A-Za-z() -]+?) [\d.]+ \([\d.]+\) -> [\d.]+ \([\d.]+\) MB, (?:pooled: [\d.]+ MB, )?([\d.]+) \/ /;
  const pauses: { atMs: number; kind: string; ms: number }[] = [];
  for (const line of trace.split("\n")) {
    const m = re.exec(line);
    if (m) pauses.push({ atMs: Number(m[1]), kind: m[2], ms: Number(m[3]) });
  }
  const cells = windows.map(([name, from, to]) => {
    const inside = pauses.filter((p) => p.atMs >= from && p.atMs <= to);
    const major = inside.filter((p) => p.kind.includes("Mark-Compact"));
    const longest = [...inside].sort((a, b) => b.ms - a.ms).slice(0, 3);
    const total = inside.reduce((sum, p) => sum + p.ms, 0);
    return `${name}: ${inside.length} pauses (${major.length} mark-compact) totalling ${
      total.toFixed(0)
    } ms, ` +
      `longest ${longest.map((p) => `${p.ms.toFixed(0)} ms (${p.kind.trim()})`).join(", ")}`;
  });
  log(`pause (node): GC ${cells.join("; ")}`);
  return `| the same run's GC pauses (node with \`--trace-gc\`) | ${
    cells.join("; ")
  }; load average ${loadAverage()} |`;
}

// ------------------------------------------------------------------------------------------------------------

/** A 1-node folder with `history` SETs over 10,000 keys; compacted behind a snapshot when `compact`. */
async function buildFolder(dir: string, history: number, compact: boolean): Promise<number> {
  const KEYS = 10_000, TAIL = 5_000;
  const store = await FileLogStore.open(dir, 1, "bench-restart");
  await store.save({ hardState: { term: 1, votedFor: 1 }, entries: [] });
  const kv = new KvStore();
  const batch = 10_000;
  for (let from = 1; from <= history; from += batch) {
    const es: Entry[] = [];
    for (let i = from; i < from + batch && i <= history; i++) {
      es.push(set(i, `key${i % KEYS}`, "v".repeat(100)));
    }
    // The uncompacted folder keeps everything; the compacted one keeps only what a node would.
    if (compact) {
      for (const e of es) kv.apply(e);
    }
    await store.save({ appendFrom: from, entries: es, commitIndex: from + es.length - 1 });
    if (compact && (from + batch - 1) % 50_000 === 0 || compact && from + batch > history) {
      const view = kv.snapshot();
      await writeSnapshotFile(store.folder, {
        header: { index: view.index, term: 1, keys: view.keys, sessions: view.sessions },
        sessions: () => view.sessionEntries(),
        nextPairs: (max) => view.nextPairs(max),
      }, { rename: false });
      view.close();
      const to = Math.max(0, view.index - TAIL);
      await store.save({
        entries: [],
        compactLog: {
          snapshot: { index: view.index, term: 1 },
          compactTo: { index: to, term: to > 0 ? 1 : 0 },
        },
      });
    }
  }
  await store.close();
  let bytes = 0;
  for (const e of Deno.readDirSync(`${dir}/logs_node_1`)) {
    if (e.name === "logs.txt" || e.name === "snapshot.txt") {
      bytes += Deno.statSync(`${dir}/logs_node_1/${e.name}`).size;
    }
  }
  return bytes;
}

/** Time from spawn to a status answer, and to the node's "starting" line (module load + folder open). */
async function timeStart(dir: string, port: number): Promise<[number, number]> {
  const config = `${dir}/cluster.json`;
  Deno.writeTextFileSync(
    config,
    JSON.stringify({ clusterId: "bench-restart", nodes: [{ id: 1, address: `127.0.0.1:${port}` }] }),
  );
  const t0 = performance.now(), wall0 = Date.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      v8FlagsArg(),
      `${REPO}/mod.ts`,
      "node",
      "--id",
      "1",
      "--config",
      config,
      "--data-dir",
      dir,
      "--quiet",
      "--insecure",
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const forget = onInterrupt(() => killQuietly(child));
  try {
    // Wait for the port to accept with plain TCP connects every 2 ms, then ask for status on a fresh
    // channel: a gRPC channel polled before the server listens backs off between its reconnects (up to
    // 100 ms here), which the first version of this measurement counted as restart time.
    while (performance.now() - t0 < 180_000) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port }).catch(() => undefined);
      if (conn === undefined) {
        await sleep(2);
        continue;
      }
      conn.close();
      const stub = new ClusterStub(`127.0.0.1:${port}`);
      try {
        const s = await stub.status(5_000).catch(() => undefined);
        if (s) {
          const total = performance.now() - t0;
          const dump = Deno.readTextFileSync(`${dir}/logs_node_1/dump.txt`).split("\n");
          const line = dump.findLast((l) => l.includes(" starting ("))!;
          return [total, Date.parse(line.slice(0, 24)) - wall0];
        }
      } finally {
        stub.close();
      }
    }
    throw new Error("the node did not answer status within 180 s");
  } finally {
    child.kill("SIGTERM");
    await child.status;
    forget();
  }
}

async function restart(): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "raftkv-restart-" });
  const forget = onInterrupt(() => Deno.remove(root, { recursive: true }));
  const [port] = freePorts(1);
  const cases: [string, number, boolean][] = [
    ["an empty folder (process start, for comparison)", 0, false],
    ["100,000 SETs, compacted", 100_000, true],
    ["1,000,000 SETs, compacted", 1_000_000, true],
    ["1,000,000 SETs, no snapshot (as before)", 1_000_000, false],
  ];
  for (const [name, history, compact] of cases) {
    const dir = `${root}/${history}-${compact}`;
    Deno.mkdirSync(dir, { recursive: true });
    const t0 = performance.now();
    const bytes = await buildFolder(dir, history, compact);
    log(`restart: built ${name} in ${((performance.now() - t0) / 1000).toFixed(0)} s (${bytes} bytes)`);
    const runs: [number, number][] = [];
    for (let i = 0; i < 3; i++) runs.push(await timeStart(dir, port));
    runs.sort((a, b) => a[0] - b[0]);
    const ms = runs.map((r) => r[0]);
    log(`restart: ${name}: ${runs.map((x) => `${x[0].toFixed(0)} (${x[1]})`).join(", ")} ms`);
    rows.push(
      `| restart to status, ${name} | ${ms[1].toFixed(0)} ms [${ms[0].toFixed(0)}–${ms[2].toFixed(0)}] ` +
        `(folder ${(bytes / 1e6).toFixed(1)} MB); its "starting" line (process start, modules, folder ` +
        `loaded) after ${runs[1][1]} ms; load average ${loadAverage()} |`,
    );
    emit({
      kind: "restart",
      history,
      compacted: compact,
      runsMs: ms,
      folderBytes: bytes,
      loadAverage: loadAverage(),
    });
  }
  await Deno.remove(root, { recursive: true });
  forget();
}

// ------------------------------------------------------------------------------------------------------------

/** A process's minor page faults so far (/proc/<pid>/stat field 10, `minflt`). */
function minorFaults(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[7]);
}

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
  return m ? Number(m[1]) : NaN;
}

/**
 * A process's resident memory by kind, from /proc/<pid>/status and /proc/<pid>/smaps, in KiB:
 * `file` (RssFile: mostly the deno executable's pages, shared by every process running it), `anon` (RssAnon),
 * and the anonymous part split into `v8` (V8's heap: its 256 KiB pages), `mallocMain` (glibc's main arena,
 * `[heap]`), `mallocThreads` (other anonymous regions over 1 MiB: glibc's per-thread arenas, which are
 * 64 MiB-aligned reservations, and large V8 objects) and `otherAnon` (small regions: thread stacks, V8's code
 * space, runtime buffers).
 */
function memParts(pid: number): Record<string, number> {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);
  const parts: Record<string, number> = {
    rss: kb("VmRSS"),
    anon: kb("RssAnon"),
    file: kb("RssFile"),
    v8: 0,
    mallocMain: 0,
    mallocThreads: 0,
    otherAnon: 0,
  };
  let kind = "";
  for (const line of Deno.readTextFileSync(`/proc/${pid}/smaps`).split("\n")) {
    const h = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (h) {
      const sizeKb = (parseInt(h[2], 16) - parseInt(h[1], 16)) / 1024;
      kind = h[3] === "[heap]"
        ? "mallocMain"
        : h[3] !== ""
        ? ""
        : sizeKb === 256
        ? "v8"
        : sizeKb > 1024 && sizeKb <= 65536
        ? "mallocThreads"
        : "otherAnon";
      continue;
    }
    const m = /^Rss:\s+(\d+) kB/.exec(line);
    if (m && kind) parts[kind] += Number(m[1]);
  }
  return parts;
}

/** {@link memParts} as one phrase, MiB. */
function describeParts(p: Record<string, number>): string {
  const m = (k: string) => (p[k] / 1024).toFixed(1);
  return `RssFile ${m("file")} + RssAnon ${m("anon")} (V8 pages ${m("v8")}, malloc main arena ${
    m("mallocMain")
  }, other regions > 1 MiB ${m("mallocThreads")}, small regions ${m("otherAnon")}) MiB`;
}

/** The deno executable's mappings in /proc/<pid>/smaps: permissions, offset, resident and anonymous KiB. */
function executableMappings(pid: number): string {
  const exe = Deno.realPathSync(Deno.execPath());
  const out: string[] = [];
  let cur = "";
  for (const line of Deno.readTextFileSync(`/proc/${pid}/smaps`).split("\n")) {
    const h = /^[0-9a-f]+-[0-9a-f]+ (\S+) ([0-9a-f]+) \S+ \S+\s*(.*)$/.exec(line);
    if (h) {
      cur = h[3] === exe ? `${h[1]}@${h[2]}` : "";
      continue;
    }
    const m = /^(Rss|Anonymous):\s+(\d+) kB/.exec(line);
    if (m && cur) {
      out.push(m[1] === "Rss" ? `${cur} ${(Number(m[2]) / 1024).toFixed(1)}` : `(anon ${m[2]} kB)`);
    }
  }
  return out.join(" ").replace(/ \(anon 0 kB\)/g, "");
}

function smapsTop(pid: number): void {
  log(`smaps ${pid}: ${describeParts(memParts(pid))}`);
  log(`smaps ${pid}: the executable's mappings (perms@offset MiB resident): ${executableMappings(pid)}`);
  log(Deno.readTextFileSync(`/proc/${pid}/smaps_rollup`).replace(/\n/g, " ").replace(/\s+/g, " "));
}

/** The CPU time (user + system) process `pid` has used so far, ms (from /proc, 10 ms ticks). */
function cpuMs(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10; // utime, stime (fields 14 and 15 of proc(5))
}

function pidOf(c: LocalCluster, id: number): number {
  return Number(Deno.readTextFileSync(`${c.nodeDir(id)}/lock`).trim().slice(4));
}

function folderBytes(path: string): { logs: number; snapshot: number; dump: number } {
  const size = (name: string) => {
    try {
      return Deno.statSync(`${path}/${name}`).size;
    } catch {
      return 0;
    }
  };
  let dump = 0;
  for (const e of Deno.readDirSync(path)) if (e.name.startsWith("dump.txt")) dump += size(e.name);
  return { logs: size("logs.txt"), snapshot: size("snapshot.txt"), dump };
}

async function bench(c: LocalCluster, args: string[]): Promise<void> {
  // `raftkv bench -n` stops at its time limit (default 5 min): a 1,000,000-SET run needs more on a busy machine.
  const r = await c.runCli(["bench", "--config", c.configPath, "--time-limit", "55m", ...args], 3_600_000);
  // Exit code 1: some operations failed (timeouts on a loaded machine); the load still happened.
  if (r.code > 1) throw new Error(`bench failed: ${r.stderr}`);
  log(`bench: ${r.stdout.trim().split("\n").slice(-6).join(" | ")}`);
}

/** Makes the cluster's next (re)starts run with `--cpu-prof-dir` (the harness has no option for it). */
function profileNodes(c: LocalCluster): void {
  const entry = [`--cpu-prof-dir=${PROFILE_DIR}`, "--cpu-prof-interval=200", ...c.entry];
  (c as unknown as { entry: readonly string[] }).entry = entry;
}

async function rebuild(): Promise<void> {
  const keys = Number(argv.keys ?? 100_000);
  const c = await LocalCluster.start({
    nodes: 3,
    name: "rebuild",
    insecure: argv.insecure,
    // "raw" (the default): the harness puts the raw ports below the ephemeral range (rawPeerPortOffset).
    extraConfig: {
      peerTransport: peerTransport(),
      ...(argv["peer-window-bytes"] === undefined
        ? {}
        : { transportLimits: { peerWindowBytes: Number(argv["peer-window-bytes"]) } }),
      ...(argv["chunk-bytes"] === undefined ? {} : { snapshotChunkBytes: Number(argv["chunk-bytes"]) }),
    },
    timings: {
      electionTimeoutMsMin: 1000,
      electionTimeoutMsMax: 2000,
      leaseDurationMs: 400,
      heartbeatIntervalMs: 100,
    },
  });
  const forget = onInterrupt(() => c.stop());
  try {
    if (argv["load-through-raft"]) {
      log(`rebuild: loading ${keys} keys through the cluster`);
      // Each key written once (a sequential key space would need --keys and -n equal: the bench draws keys).
      await bench(c, [
        "-c",
        "64",
        "-p",
        "2",
        "-n",
        String(keys * 3),
        "--read-ratio",
        "0",
        "--keys",
        String(keys),
        "--value-size",
        "100",
      ]);
    } else {
      // The same state written offline into every node's folder (minutes of load phase saved on a busy
      // machine): `keys` SETs of distinct keys, compacted behind a snapshot, then the nodes restarted on it.
      log(`rebuild: building ${keys} keys offline into each node's folder`);
      const clusterId = JSON.parse(Deno.readTextFileSync(c.configPath)).clusterId;
      for (const id of c.ids) await c.kill(id);
      if (PROFILE_DIR !== undefined) profileNodes(c);
      for (const id of c.ids) {
        await Deno.remove(c.nodeDir(id), { recursive: true });
        await buildSnapshotFolder(c.dataDir, id, clusterId, keys);
      }
      for (const id of c.ids) c.restart(id);
    }
    const leader = await c.leader();
    const snap = await c.runCli(["admin", "snapshot", "--config", c.configPath, "--json"], 300_000);
    if (snap.code !== 0) {
      throw new Error(`admin snapshot failed (${snap.code}): ${snap.stderr} ${snap.stdout}`);
    }
    const info = JSON.parse(snap.stdout);
    const f = c.ids.find((id) => id !== leader.id)!;
    await c.kill(f);
    await Deno.remove(c.nodeDir(f), { recursive: true });
    const size = Deno.statSync(`${c.nodeDir(leader.id)}/snapshot.txt`).size;
    const leaderCpu0 = cpuMs(pidOf(c, leader.id));
    const t0 = performance.now();
    c.restart(f);
    const installed = await c.waitForDump(f, /installed the snapshot at index/, 600_000);
    const ms = performance.now() - t0;
    const nKeysOf = (id: number) =>
      Number(/keys=(\d+)/.exec(Deno.readTextFileSync(`${c.nodeDir(id)}/snapshot.txt`).slice(0, 200))![1]);
    // From the follower's first line (its process is up) to the install, by dump.txt's own timestamps.
    const dump = await c.readDump(f);
    const startLine = [...dump].reverse().find((l) => l.includes(" starting ("))!;
    const transferMs = Date.parse(installed.slice(0, 24)) - Date.parse(startLine.slice(0, 24));
    // Where the time went: the leader's "sending" line (it noticed the follower needs the snapshot), the
    // follower's "installed" and "restored" lines.
    await c.waitForDump(f, /restored the snapshot at index/, 60_000);
    // CPU time (user + system) is what a loaded machine does not distort: the follower's from its start
    // (process start and module load included), the leader's from the follower's restart.
    const followerCpuMs = cpuMs(pidOf(c, f)), leaderCpuMs = cpuMs(pidOf(c, leader.id)) - leaderCpu0;
    const at = (lines: readonly string[], re: RegExp) => {
      const l = [...lines].reverse().find((x) => re.test(x));
      return l === undefined ? NaN : Date.parse(l.slice(0, 24)) - Date.parse(startLine.slice(0, 24));
    };
    const leaderDump = await c.readDump(leader.id);
    const sendingMs = at(leaderDump, /is sending its snapshot .* to Node/);
    const restoredMs = at(await c.readDump(f), /restored the snapshot at index/);
    const rates = rebuildRates(nKeysOf(leader.id), size, restoredMs - sendingMs);
    const phases = `leader starts sending at +${sendingMs} ms, installed at +${
      at(dump, /installed the snapshot/)
    } ms, state swapped in at +${restoredMs} ms; from the first chunk sent to the state swapped in: ${
      Math.round(rates.keysPerSec).toLocaleString("en")
    } keys/s, ${rates.mbPerSec.toFixed(1)} MB/s`;
    const cpu = `CPU time: follower ${followerCpuMs} ms from its start (process start included), ` +
      `leader ${leaderCpuMs} ms while it sent`;
    const links = `${argv["peer-transport"]} peers${
      argv["peer-window-bytes"] === undefined ? "" : `, peerWindowBytes ${argv["peer-window-bytes"]}`
    }${argv["chunk-bytes"] === undefined ? "" : `, snapshotChunkBytes ${argv["chunk-bytes"]}`}${
      argv.insecure ? ", plain text" : ", TLS"
    }`;
    log(`rebuild (${links}): ${phases}; ${cpu}; load average ${loadAverage()}`);
    const nKeys = nKeysOf(leader.id);
    const st = await c.status(leader.id);
    log(
      `rebuild: ${size} bytes, ${nKeys} keys at ${info.snapshotIndex}: ${
        ms.toFixed(0)
      } ms, ${transferMs} ms after start`,
    );
    if (PROFILE_DIR !== undefined) {
      // A node writes its CPU profile when it exits by itself (SIGTERM), not when the harness SIGKILLs it.
      for (const id of c.ids) await c.kill(id, "SIGTERM");
      log(
        `rebuild: CPU profiles of the leader (node ${leader.id}) and the follower (node ${f}) in ${PROFILE_DIR}`,
      );
    }
    rows.push(
      `| wiped follower rebuilt from a ${nKeys.toLocaleString("en")}-key snapshot (${
        (size / 1e6).toFixed(1)
      } MB) | ` +
        `${transferMs} ms from its start to installed: ${
          Math.round(nKeys / (transferMs / 1000)).toLocaleString("en")
        } ` +
        `keys/s, ${(size / 1e6 / (transferMs / 1000)).toFixed(1)} MB/s (${
          (ms / 1000).toFixed(2)
        } s with the process ` +
        `start; leader commit ${st?.commitIndex}); ${phases}; ${cpu}; load average ${loadAverage()} |`,
    );
    emit({
      kind: "rebuild",
      keys: nKeys,
      snapshotBytes: size,
      firstChunkToSwappedMs: restoredMs - sendingMs,
      startToInstalledMs: transferMs,
      followerCpuMs,
      leaderCpuMs,
      links,
      loadAverage: loadAverage(),
    });
  } finally {
    await c.stop();
    forget();
  }
}

/** The node's own memory gauges from /metrics (bytes): rss, heap used, heap total, external. */
async function memOf(c: LocalCluster, id: number): Promise<Record<string, number>> {
  const text = await (await fetch(`http://${c.metricsAddresses.get(id)}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const name of ["process_rss", "heap_used", "heap_total", "external"]) {
    const m = new RegExp(`^raftkv_${name}_bytes\\{[^}]*\\} (\\S+)$`, "m").exec(text);
    out[name] = m ? Number(m[1]) : NaN;
  }
  return out;
}

const mb = (bytes: number) => (bytes / 1048576).toFixed(0);

async function rss(): Promise<void> {
  const sets = Number(argv.sets);
  const keys = Number(argv.keys ?? 10_000);
  // --threshold N: the cluster's snapshotThresholdEntries (default: the policy's), to compare retention.
  const threshold = Number(argv.threshold ?? POLICY.snapshotThresholdEntries);
  const c = await LocalCluster.start({
    nodes: 3,
    name: "rss",
    metrics: true,
    extraConfig: {
      ...(argv.threshold ? { snapshotThresholdEntries: threshold } : {}),
      peerTransport: peerTransport(), // raw by default; the harness places the raw ports
    },
    timings: {
      electionTimeoutMsMin: 1000,
      electionTimeoutMsMax: 2000,
      leaseDurationMs: 400,
      heartbeatIntervalMs: 100,
    },
  });
  const forget = onInterrupt(() => c.stop());
  try {
    // Idle: once start-up is over and the nodes' first idle collection, trim and release of cold pages have
    // run (src/ops/idle_gc.ts: 2 s after the commit index stops moving at start).
    await sleep(7_000);
    const before = c.ids.map((id) => rssKb(pidOf(c, id)));
    if (Deno.env.get("SMAPS")) {
      for (const id of c.ids) log(`rss: node ${id} idle: ${executableMappings(pidOf(c, id))}`);
    }
    for (const id of c.ids) {
      const m = await memOf(c, id);
      log(
        `rss: node ${id} idle: ${describeParts(memParts(pidOf(c, id)))}; V8 heap used ${mb(m.heap_used)} of ${
          mb(m.heap_total)
        } MiB`,
      );
    }
    // The node's release of the executable's cold pages (src/ops/file_pages.ts), from the environment the
    // nodes inherit: RAFTKV_FILE_PAGES=keep measures without it.
    const filePages = Deno.env.get("RAFTKV_FILE_PAGES") || "dontneed";
    log(
      `rss: ${sets} SETs over ${keys} keys, threshold ${threshold}, ${peerTransport()} peers, ` +
        `RAFTKV_FILE_PAGES=${filePages}, load average ${loadAverage()}`,
    );
    const faults0 = c.ids.map((id) => minorFaults(pidOf(c, id)));
    const t0 = performance.now();
    await bench(c, [
      "-c",
      "64",
      "-p",
      "2",
      "-n",
      String(sets),
      "--read-ratio",
      "0",
      "--keys",
      String(keys),
      "--value-size",
      "100",
    ]);
    const loadS = (performance.now() - t0) / 1000;
    log(
      `rss: bench took ${loadS.toFixed(0)} s, load average ${loadAverage()}; minor page faults/s per node ` +
        c.ids.map((id, i) => ((minorFaults(pidOf(c, id)) - faults0[i]) / loadS).toFixed(0)).join(", "),
    );
    // Right at the end of the load, before the idle collection and release: what the load paged back in.
    for (const id of c.ids) {
      log(`rss: node ${id} as the load ends: ${describeParts(memParts(pidOf(c, id)))}`);
      if (Deno.env.get("SMAPS")) log(`rss: node ${id} as the load ends: ${executableMappings(pidOf(c, id))}`);
    }
    // "At the end": once the nodes have collected after the burst (src/ops/idle_gc.ts: 2 s of quiet), not
    // while the last requests' garbage is still mapped.
    await sleep(8_000);
    for (const id of c.ids) {
      const m = await memOf(c, id);
      const kb = rssKb(pidOf(c, id));
      if (Deno.env.get("SMAPS")) smapsTop(pidOf(c, id));
      const f = folderBytes(c.nodeDir(id));
      const st = await c.status(id);
      // Live state: what the snapshot file holds (every key, value, version and session, as text).
      const live = f.snapshot;
      const rssGoal = rssBoundBytes(live);
      // The configured tail in bytes: the entries the policy lets the log hold (threshold + trailing), at
      // this run's average line size.
      const lineBytes = st?.logEntries ? f.logs / st.logEntries : 0;
      const tailBytes = (threshold + POLICY.snapshotTrailingEntries) * lineBytes;
      rows.push(
        `| node ${id} after ${sets.toLocaleString("en")} SETs over ${keys.toLocaleString("en")} keys` +
          `${argv.threshold ? `, snapshotThresholdEntries ${threshold}` : ""}, ${peerTransport()} peers, ` +
          `RAFTKV_FILE_PAGES=${filePages} | RSS ${(before[id - 1] / 1024).toFixed(0)} → ${
            (kb / 1024).toFixed(0)
          } MB (goal ≤ ${mb(rssGoal)} MB: ${kb * 1024 <= rssGoal ? "met" : "missed"}; ` +
          `V8 heap used ${mb(m.heap_used)} of ${mb(m.heap_total)} MB, external ${mb(m.external)} MB; ` +
          `${describeParts(memParts(pidOf(c, id)))}); ` +
          `logs.txt ${(f.logs / 1e6).toFixed(1)} MB (${st?.logEntries ?? 0} entries), snapshot.txt ${
            (f.snapshot / 1e6).toFixed(1)
          } MB, logs.txt + snapshot.txt ≤ 3 × snapshot + tail: ${
            f.logs + f.snapshot <= folderBoundBytes(f.snapshot, tailBytes) ? "met" : "missed"
          } (tail ${(tailBytes / 1e6).toFixed(1)} MB); ` +
          `dump files ${(f.dump / 1e6).toFixed(1)} MB; snapshotIndex ${
            st?.snapshotIndex ?? 0
          }, commit index ` +
          `${st?.commitIndex ?? 0} (SETs that went through, + elections' NO-OPs); ` +
          `load average ${loadAverage()} |`,
      );
      emit({
        kind: "rss",
        node: id,
        sets,
        keys,
        rssIdleBytes: before[id - 1] * 1024,
        rssBytes: kb * 1024,
        snapshotBytes: f.snapshot,
        logsBytes: f.logs,
        tailBytes,
        rssBoundBytes: rssGoal,
        folderBoundBytes: folderBoundBytes(f.snapshot, tailBytes),
        loadAverage: loadAverage(),
      });
    }
  } finally {
    await c.stop();
    forget();
  }
}

if (ONLY.has("pause")) await pause();
if (ONLY.has("pause") || ONLY.has("pause-node")) await pauseThroughNode();
if (ONLY.has("restart")) await restart();
if (ONLY.has("rebuild")) {
  const runs = Number(argv["rebuild-runs"]);
  if (!Number.isInteger(runs) || runs < 1) {
    throw new Error(`--rebuild-runs must be a positive integer, got ${runs}`);
  }
  for (let i = 0; i < runs; i++) await rebuild();
}
if (ONLY.has("rss")) await rss();
console.log(`# bench_snapshot: peer transport ${peerTransport()} (rebuild), load average ${loadAverage()}`);
console.log(rows.join("\n"));
// The listeners would keep the process alive.
Deno.removeSignalListener("SIGINT", onSigint);
Deno.removeSignalListener("SIGTERM", onSigterm);
