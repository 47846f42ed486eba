/**
 * Issue 10's figures (snapshots, compaction, bounded memory) inside `deno task bench`.
 *
 * scripts/bench_snapshot.ts takes the measurements; next to each Markdown row it prints one machine-readable
 * line, `BENCH_SNAPSHOT_JSON {…}` ({@link formatSnapshotLine}). scripts/bench_vs_etcd.ts (section `snapshot`,
 * and the opt-in `snapshot-rss`) runs it as a child process with the arguments {@link snapshotPlan} gives,
 * reads those lines back ({@link parseSnapshotLines}) and judges them against the issue's goals
 * ({@link snapshotGoals}):
 *
 * - a wiped follower rebuilt from a 100,000-key snapshot: ≥ 200,000 keys/s or ≥ 50 MB/s, from the first chunk
 *   the leader sends to the state swapped in on the follower;
 * - restart to serving after 100,000 and 1,000,000 writes (compacted): ≤ 1 s each, and independent of the
 *   history;
 * - the pause while a 1,000,000-key snapshot is taken: p99 and max SET and GET latency during it, against
 *   without it (reported: the issue sets no bound);
 * - 1,000,000 SETs over 10,000 keys on 3 nodes: every node's RSS ≤ 2 × live state + 100 MB, and logs.txt +
 *   snapshot.txt ≤ 3 × snapshot + the configured tail.
 *
 * Pure: no I/O. The bounds are computed here so that the script's Markdown rows and the bench's verdicts are
 * the same arithmetic.
 *
 * @module
 */

/** The tag that starts every machine-readable line of scripts/bench_snapshot.ts. */
export const SNAPSHOT_JSON_TAG = "BENCH_SNAPSHOT_JSON";

/** The issue's sizes: a verdict is given only for runs of this size (a smaller run is reported, not judged). */
export const GOAL_REBUILD_KEYS = 100_000;
export const GOAL_PAUSE_KEYS = 1_000_000;
export const GOAL_RSS_SETS = 1_000_000;
export const GOAL_RSS_KEYS = 10_000;
export const GOAL_REBUILD_KEYS_PER_SEC = 200_000;
/** Rebuilds the full (not `--quick`) section runs; the goal is judged on their median. */
export const REBUILD_RUNS = 5;
export const GOAL_REBUILD_MB_PER_SEC = 50;
export const GOAL_RESTART_MS = 1000;
/** The histories the restart goal is shown at (SETs over 10,000 keys, compacted). */
export const GOAL_RESTART_HISTORIES = [100_000, 1_000_000] as const;
/**
 * "Independent of how many writes came before": the fastest restart after 1,000,000 writes may be slower than
 * the fastest after 100,000 by at most this fraction of the latter, or {@link RESTART_SAME_MS}, whichever is
 * larger. The fastest runs, not the medians: a shared machine only ever adds time to a process start (tens to
 * hundreds of ms at load 3–6), and the two folders hold the same snapshot and tail, so what is left is noise;
 * a restart that replays the history takes ~10× longer after 10× the writes.
 */
export const RESTART_SAME_FRACTION = 0.2;
export const RESTART_SAME_MS = 100;

const MIB = 1048576;

/** RSS bound of the goal run: 2 × live state (the snapshot file's size) + 100 MB (MiB, as the script has it). */
export function rssBoundBytes(snapshotBytes: number): number {
  return 2 * snapshotBytes + 100 * MIB;
}

/** Folder bound of the goal run: 3 × the snapshot + the configured tail (in bytes at the run's line size). */
export function folderBoundBytes(snapshotBytes: number, tailBytes: number): number {
  return 3 * snapshotBytes + tailBytes;
}

/** Rates of a rebuild: keys and MB (10^6 bytes) per second over `ms`. */
export function rebuildRates(
  keys: number,
  bytes: number,
  ms: number,
): { keysPerSec: number; mbPerSec: number } {
  const s = ms / 1000;
  return { keysPerSec: keys / s, mbPerSec: bytes / 1e6 / s };
}

// ------------------------------------------------------------------------------------------------------------
// The lines

/** Client latency of one operation kind over a `raftkv bench` window. */
export interface Latency {
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly opsPerSec: number;
}

/** A wiped follower rebuilt from the leader's snapshot (bench_snapshot `--only rebuild`). */
export interface RebuildMeasurement {
  readonly kind: "rebuild";
  /** Keys in the snapshot sent. */
  readonly keys: number;
  readonly snapshotBytes: number;
  /** The leader's "is sending its snapshot" line → the follower's "restored the snapshot" line. */
  readonly firstChunkToSwappedMs: number;
  /** The follower's first dump line (its process is up) → "installed the snapshot". */
  readonly startToInstalledMs: number;
  /** CPU time (user + system) of the follower from its process start, and of the leader while it sent. */
  readonly followerCpuMs: number;
  readonly leaderCpuMs: number;
  /** The links: peer transport, TLS or plain text, chunk size if not the default. */
  readonly links: string;
  readonly loadAverage: string;
}

/** A 1-node restart until it answers `admin status` (bench_snapshot `--only restart`). */
export interface RestartMeasurement {
  readonly kind: "restart";
  /** SETs over 10,000 keys before the restart (0: an empty folder, the process start alone). */
  readonly history: number;
  /** Snapshot + 5,000-entry tail; false: the whole log, as before issue 10. */
  readonly compacted: boolean;
  /** Every run's time to the status answer, ms. */
  readonly runsMs: readonly number[];
  readonly folderBytes: number;
  readonly loadAverage: string;
}

/** Clients of a 1-node cluster holding `keys` keys, with and without a snapshot of them taken meanwhile. */
export interface PauseMeasurement {
  readonly kind: "pause";
  readonly keys: number;
  readonly snapshotBytes: number;
  /** How long `admin snapshot` took to answer (the snapshot written). */
  readonly snapshotMs: number;
  readonly during: { readonly SET: Latency; readonly GET: Latency };
  readonly without: { readonly SET: Latency; readonly GET: Latency };
  readonly loadAverage: string;
}

/** The event-loop stall of an in-process snapshot of `keys` keys while SETs are applied. */
export interface PauseInProcessMeasurement {
  readonly kind: "pause-in-process";
  readonly keys: number;
  readonly freezeMs: number;
  readonly writeMs: number;
  readonly snapshotBytes: number;
  readonly stallP99Ms: number;
  readonly stallMaxMs: number;
  readonly withoutP99Ms: number;
  readonly withoutMaxMs: number;
  readonly loadAverage: string;
}

/** One node at the end of the RSS run (bench_snapshot `--only rss`). */
export interface RssMeasurement {
  readonly kind: "rss";
  readonly node: number;
  readonly sets: number;
  readonly keys: number;
  readonly rssIdleBytes: number;
  readonly rssBytes: number;
  /** snapshot.txt: the live state (every key, value, version and session, as text). */
  readonly snapshotBytes: number;
  readonly logsBytes: number;
  /** The configured tail (threshold + trailing entries) in bytes at the run's average line size. */
  readonly tailBytes: number;
  /** {@link rssBoundBytes} and {@link folderBoundBytes} as the script computed them (for readers). */
  readonly rssBoundBytes: number;
  readonly folderBoundBytes: number;
  readonly loadAverage: string;
}

export type SnapshotMeasurement =
  | RebuildMeasurement
  | RestartMeasurement
  | PauseMeasurement
  | PauseInProcessMeasurement
  | RssMeasurement;

/** One machine-readable line for `m`. */
export function formatSnapshotLine(m: SnapshotMeasurement): string {
  return `${SNAPSHOT_JSON_TAG} ${JSON.stringify(m)}`;
}

/** The fields each kind must carry, by type ("n": a finite number, "s": a string, "b": a boolean). */
const LATENCY_FIELDS = { p99Ms: "n", maxMs: "n", opsPerSec: "n" } as const;
const FIELDS: Record<SnapshotMeasurement["kind"], Record<string, "n" | "s" | "b" | "ns" | "lat2">> = {
  rebuild: {
    keys: "n",
    snapshotBytes: "n",
    firstChunkToSwappedMs: "n",
    startToInstalledMs: "n",
    followerCpuMs: "n",
    leaderCpuMs: "n",
    links: "s",
    loadAverage: "s",
  },
  restart: { history: "n", compacted: "b", runsMs: "ns", folderBytes: "n", loadAverage: "s" },
  pause: {
    keys: "n",
    snapshotBytes: "n",
    snapshotMs: "n",
    during: "lat2",
    without: "lat2",
    loadAverage: "s",
  },
  "pause-in-process": {
    keys: "n",
    freezeMs: "n",
    writeMs: "n",
    snapshotBytes: "n",
    stallP99Ms: "n",
    stallMaxMs: "n",
    withoutP99Ms: "n",
    withoutMaxMs: "n",
    loadAverage: "s",
  },
  rss: {
    node: "n",
    sets: "n",
    keys: "n",
    rssIdleBytes: "n",
    rssBytes: "n",
    snapshotBytes: "n",
    logsBytes: "n",
    tailBytes: "n",
    rssBoundBytes: "n",
    folderBoundBytes: "n",
    loadAverage: "s",
  },
};

const isNum = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/** What is wrong with `o` as a measurement of its kind, or undefined when nothing is. */
function problemOf(o: Record<string, unknown>): string | undefined {
  const kind = o.kind;
  if (typeof kind !== "string" || !Object.hasOwn(FIELDS, kind)) return `unknown kind ${JSON.stringify(kind)}`;
  for (const [name, type] of Object.entries(FIELDS[kind as SnapshotMeasurement["kind"]])) {
    const v = o[name];
    const bad = (what: string) => `${kind}: ${name} must be ${what}, got ${JSON.stringify(v)}`;
    if (type === "n" && !isNum(v)) return bad("a finite number");
    if (type === "s" && typeof v !== "string") return bad("a string");
    if (type === "b" && typeof v !== "boolean") return bad("true or false");
    if (type === "ns" && !(Array.isArray(v) && v.length > 0 && v.every(isNum))) {
      return bad("a non-empty list of finite numbers");
    }
    if (type === "lat2") {
      for (const op of ["SET", "GET"]) {
        const l = (v as Record<string, Record<string, unknown>> | undefined)?.[op];
        for (const f of Object.keys(LATENCY_FIELDS)) {
          if (!isNum(l?.[f])) return `${kind}: ${name}.${op}.${f} must be a finite number, got ${l?.[f]}`;
        }
      }
    }
  }
  return undefined;
}

/** The measurements found in a child's stdout, and one problem per tagged line that could not be read. */
export interface ParsedLines {
  readonly measurements: SnapshotMeasurement[];
  readonly problems: string[];
}

/**
 * Reads every `BENCH_SNAPSHOT_JSON {…}` line of `text` (other lines, e.g. the Markdown rows, are ignored). A
 * tagged line that is not valid JSON, has an unknown kind or lacks a figure (a NaN the script printed as
 * null) becomes a problem, not a measurement: a figure that was not taken must not be judged.
 */
export function parseSnapshotLines(text: string): ParsedLines {
  const measurements: SnapshotMeasurement[] = [];
  const problems: string[] = [];
  for (const [i, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (!line.startsWith(SNAPSHOT_JSON_TAG)) continue;
    const body = line.slice(SNAPSHOT_JSON_TAG.length).trim();
    let o: unknown;
    try {
      o = JSON.parse(body);
    } catch (e) {
      problems.push(`line ${i + 1}: not JSON (${(e as Error).message}): ${body.slice(0, 120)}`);
      continue;
    }
    if (typeof o !== "object" || o === null || Array.isArray(o)) {
      problems.push(`line ${i + 1}: not an object: ${body.slice(0, 120)}`);
      continue;
    }
    const p = problemOf(o as Record<string, unknown>);
    if (p !== undefined) problems.push(`line ${i + 1}: ${p}`);
    else measurements.push(o as SnapshotMeasurement);
  }
  return { measurements, problems };
}

// ------------------------------------------------------------------------------------------------------------
// What to run

/** The sections of bench_snapshot.ts the bench runs (its `--only` names). */
export type SnapshotSection = "rebuild" | "restart" | "pause" | "rss";

export interface SnapshotPlan {
  /** Arguments after `run -A scripts/bench_snapshot.ts`. */
  readonly args: string[];
  readonly sections: SnapshotSection[];
  /** Why a section the goals need is not in this run, by section. */
  readonly skipped: Partial<Record<SnapshotSection, string>>;
  /** One line saying what this run is (the table's title carries it). */
  readonly scope: string;
}

/**
 * What the bench runs for its `snapshot` (default) and `snapshot-rss` (opt-in) sections: undefined when
 * neither is asked for. `--quick` runs the rebuild alone (at the goal's 100,000 keys, 1 run, ~15 s) and an RSS
 * run of 100,000 SETs instead of 1,000,000 (reported, not judged).
 */
export function snapshotPlan(only: ReadonlySet<string>, quick: boolean): SnapshotPlan | undefined {
  const base = only.has("snapshot"), rss = only.has("snapshot-rss");
  if (!base && !rss) return undefined;
  const sections: SnapshotSection[] = base ? (quick ? ["rebuild"] : ["rebuild", "restart", "pause"]) : [];
  const skipped: Partial<Record<SnapshotSection, string>> = {};
  const why = base ? "not run by --quick (rebuild only)" : "not run (section snapshot not selected)";
  if (!sections.includes("rebuild")) skipped.rebuild = why;
  if (!sections.includes("restart")) skipped.restart = why;
  if (!sections.includes("pause")) skipped.pause = why;
  const sets = quick ? 100_000 : GOAL_RSS_SETS;
  if (rss) sections.push("rss");
  else skipped.rss = "not run (opt-in: --only snapshot-rss, 1,000,000 SETs, 5–8 min)";
  const args = ["--only", sections.join(",")];
  // The rebuild's goal is judged on the median of REBUILD_RUNS (one run on a shared machine swings by a third).
  if (sections.includes("rebuild") && !quick) args.push("--rebuild-runs", String(REBUILD_RUNS));
  // --sets only sizes the RSS run; --keys is left to each section's default (100,000 for the rebuild, 10,000
  // for the RSS run).
  if (rss) args.push("--sets", String(sets));
  const parts = [
    base
      ? (quick ? "--quick: rebuild only, 1 run" : `rebuild (${REBUILD_RUNS} runs), restart, pause`)
      : undefined,
    rss
      ? `RSS run of ${sets.toLocaleString("en")} SETs${quick ? " (--quick: not the goal's size)" : ""}`
      : undefined,
  ].filter((p) => p !== undefined);
  return { args, sections, skipped, scope: parts.join("; ") };
}

/** The measurement kinds each section prints. */
const KINDS_OF: Record<SnapshotSection, readonly SnapshotMeasurement["kind"][]> = {
  rebuild: ["rebuild"],
  restart: ["restart"],
  pause: ["pause", "pause-in-process"],
  rss: ["rss"],
};

/** The sections of `sections` that left no measurement in `ms` (the child failed or stopped before them). */
export function unmeasuredSections(
  sections: readonly SnapshotSection[],
  ms: readonly SnapshotMeasurement[],
): SnapshotSection[] {
  return sections.filter((s) => !ms.some((m) => KINDS_OF[s].includes(m.kind)));
}

// ------------------------------------------------------------------------------------------------------------
// The verdicts

/** met / missed against a bound; reported where the issue asks for figures only or the run is not its size. */
export type Verdict = "met" | "missed" | "reported" | "not measured";

export interface SnapshotGoal {
  readonly goal: string;
  readonly measured: string;
  readonly verdict: Verdict;
}

const int = (n: number) => Math.round(n).toLocaleString("en");
const ms0 = (n: number) => `${Math.round(n)} ms`;
const mb1 = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
const mib0 = (bytes: number) => `${(bytes / MIB).toFixed(0)} MB`;

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const lat = (l: Latency) => `p99 ${l.p99Ms.toFixed(1)} ms, max ${l.maxMs.toFixed(1)} ms`;

/**
 * Issue 10's goals, one row each, from the measurements of one run. `skipped` says why a section has no
 * measurement (e.g. `--quick`, opt-in, the child failed); a goal without its measurement is "not measured"
 * with that reason, never met.
 */
export function snapshotGoals(
  ms: readonly SnapshotMeasurement[],
  skipped: Partial<Record<SnapshotSection, string>> = {},
): SnapshotGoal[] {
  const out: SnapshotGoal[] = [];
  const none = (goal: string, section: SnapshotSection) =>
    out.push({ goal, measured: skipped[section] ?? "not measured", verdict: "not measured" });

  // Rebuild.
  const rebuildGoal =
    `wiped follower rebuilt from a ${int(GOAL_REBUILD_KEYS)}-key snapshot ≥ ${
      int(GOAL_REBUILD_KEYS_PER_SEC)
    } keys/s or ≥ ${GOAL_REBUILD_MB_PER_SEC} MB/s ` +
    `(first chunk sent → state swapped in)`;
  const rebuilds = ms.filter((m): m is RebuildMeasurement => m.kind === "rebuild");
  if (rebuilds.length === 0) none(rebuildGoal, "rebuild");
  else {
    const rates = rebuilds.map((r) => rebuildRates(r.keys, r.snapshotBytes, r.firstChunkToSwappedMs));
    const kps = median(rates.map((r) => r.keysPerSec)), mbps = median(rates.map((r) => r.mbPerSec));
    const r = rebuilds[0];
    const fullSize = rebuilds.every((x) => x.keys >= GOAL_REBUILD_KEYS);
    const met = kps >= GOAL_REBUILD_KEYS_PER_SEC || mbps >= GOAL_REBUILD_MB_PER_SEC;
    out.push({
      goal: rebuildGoal,
      measured:
        `${int(kps)} keys/s, ${mbps.toFixed(1)} MB/s${
          rebuilds.length > 1 ? ` (median of ${rebuilds.length} runs)` : ""
        }: ${int(r.keys)} keys, ${mb1(r.snapshotBytes)} in ${ms0(r.firstChunkToSwappedMs)}; ` +
        `${ms0(r.startToInstalledMs)} from the follower's start to installed; CPU: follower ${
          ms0(r.followerCpuMs)
        } ` +
        `from its start, leader ${ms0(r.leaderCpuMs)} while it sent; ${r.links}; load ${r.loadAverage}` +
        (fullSize ? "" : `; not judged: the goal is for ${int(GOAL_REBUILD_KEYS)} keys`),
      verdict: fullSize ? (met ? "met" : "missed") : "reported",
    });
  }

  // Restart.
  const restarts = ms.filter((m): m is RestartMeasurement => m.kind === "restart");
  const restartOf = (history: number, compacted: boolean) =>
    restarts.find((r) => r.history === history && r.compacted === compacted);
  const cellOf = (r: RestartMeasurement) => {
    const s = [...r.runsMs].sort((a, b) => a - b);
    return `${ms0(median(s))}${s.length > 1 ? ` [${Math.round(s[0])}–${Math.round(s.at(-1)!)}]` : ""}`;
  };
  const empty = restartOf(0, false);
  const before = restartOf(GOAL_RESTART_HISTORIES[1], false);
  for (const h of GOAL_RESTART_HISTORIES) {
    const goal = `restart to serving after ${int(h)} SETs (compacted) ≤ ${GOAL_RESTART_MS / 1000} s`;
    const r = restartOf(h, true);
    if (!r) {
      none(goal, "restart");
      continue;
    }
    const beside = h === GOAL_RESTART_HISTORIES[0]
      ? (empty ? `; an empty folder (the process start alone): ${cellOf(empty)}` : "")
      : (before ? `; the uncompacted ${int(h)}-entry log, as before issue 10: ${cellOf(before)}` : "");
    out.push({
      goal,
      measured: `${cellOf(r)} (median of ${r.runsMs.length}; folder ${
        mb1(r.folderBytes)
      })${beside}; load ${r.loadAverage}`,
      verdict: median(r.runsMs) <= GOAL_RESTART_MS ? "met" : "missed",
    });
  }
  const sameGoal =
    `restart independent of history: the fastest after ${int(GOAL_RESTART_HISTORIES[1])} SETs at most ` +
    `${RESTART_SAME_FRACTION * 100} % (or ${RESTART_SAME_MS} ms) slower than the fastest after ${
      int(GOAL_RESTART_HISTORIES[0])
    }`;
  const small = restartOf(GOAL_RESTART_HISTORIES[0], true), big = restartOf(GOAL_RESTART_HISTORIES[1], true);
  if (!small || !big) none(sameGoal, "restart");
  else {
    const a = Math.min(...small.runsMs), b = Math.min(...big.runsMs);
    const allowed = Math.max(RESTART_SAME_MS, RESTART_SAME_FRACTION * a);
    out.push({
      goal: sameGoal,
      measured: `${ms0(b)} vs ${ms0(a)}: ${b - a >= 0 ? "+" : "−"}${Math.round(Math.abs(b - a))} ms ` +
        `(allowed +${Math.round(allowed)} ms)`,
      verdict: b - a <= allowed ? "met" : "missed",
    });
  }

  // Pause.
  const pauseGoal = `p99 and max SET/GET latency while a ${
    int(GOAL_PAUSE_KEYS)
  }-key snapshot is taken, against without it`;
  const pauses = ms.filter((m): m is PauseMeasurement => m.kind === "pause");
  if (pauses.length === 0) none(pauseGoal, "pause");
  for (const p of pauses) {
    out.push({
      goal: pauseGoal,
      measured:
        `during: SET ${lat(p.during.SET)}, GET ${lat(p.during.GET)}; without: SET ${
          lat(p.without.SET)
        }, GET ${lat(p.without.GET)}; ${int(p.keys)} keys, snapshot ${mb1(p.snapshotBytes)} written in ${
          (p.snapshotMs / 1000).toFixed(1)
        } s; load ${p.loadAverage}` +
        (p.keys >= GOAL_PAUSE_KEYS ? "" : `; the goal is for ${int(GOAL_PAUSE_KEYS)} keys`),
      verdict: "reported",
    });
  }
  for (const p of ms.filter((m): m is PauseInProcessMeasurement => m.kind === "pause-in-process")) {
    out.push({
      goal: `(in-process) event-loop stall while a ${
        int(p.keys)
      }-key snapshot is written, against without it`,
      measured: `during: p99 ${p.stallP99Ms.toFixed(1)} ms, max ${p.stallMaxMs.toFixed(1)} ms; without: p99 ${
        p.withoutP99Ms.toFixed(1)
      } ms, max ${p.withoutMaxMs.toFixed(1)} ms; freeze ${p.freezeMs.toFixed(1)} ms, written in ${
        (p.writeMs / 1000).toFixed(1)
      } s (${mb1(p.snapshotBytes)}); load ${p.loadAverage}`,
      verdict: "reported",
    });
  }

  // Memory and folder.
  const rssGoal = `every node's RSS ≤ 2 × live state + 100 MB after ${int(GOAL_RSS_SETS)} SETs over ${
    int(GOAL_RSS_KEYS)
  } keys`;
  const folderGoal = "logs.txt + snapshot.txt ≤ 3 × snapshot + the configured tail (every node)";
  const nodes = ms.filter((m): m is RssMeasurement => m.kind === "rss").sort((a, b) => a.node - b.node);
  if (nodes.length === 0) {
    none(rssGoal, "rss");
    none(folderGoal, "rss");
  } else {
    const fullSize = nodes.every((n) => n.sets >= GOAL_RSS_SETS && n.keys === GOAL_RSS_KEYS);
    const size = fullSize
      ? ""
      : `; not judged: this run was ${int(nodes[0].sets)} SETs over ${int(nodes[0].keys)} keys`;
    const judge = (ok: boolean): Verdict => fullSize ? (ok ? "met" : "missed") : "reported";
    out.push({
      goal: rssGoal,
      measured: nodes.map((n) =>
        `node ${n.node} ${mib0(n.rssIdleBytes)} → ${mib0(n.rssBytes)} (bound ${
          mib0(rssBoundBytes(n.snapshotBytes))
        })`
      ).join(", ") + `; load ${nodes.at(-1)!.loadAverage}${size}`,
      verdict: judge(nodes.every((n) =>
        n.rssBytes <= rssBoundBytes(n.snapshotBytes)
      )),
    });
    out.push({
      goal: folderGoal,
      measured: nodes.map((n) =>
        `node ${n.node} ${mb1(n.logsBytes + n.snapshotBytes)} (logs.txt ${mb1(n.logsBytes)} + snapshot.txt ${
          mb1(n.snapshotBytes)
        }; bound ${mb1(folderBoundBytes(n.snapshotBytes, n.tailBytes))})`
      ).join(", ") + size,
      verdict: judge(
        nodes.every((n) =>
          n.logsBytes + n.snapshotBytes <= folderBoundBytes(n.snapshotBytes, n.tailBytes)
        ),
      ),
    });
  }
  return out;
}
