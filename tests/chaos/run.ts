/**
 * One chaos run: a 5-node cluster of real processes behind per-link proxies, concurrent clients recording a
 * history, the nemesis's schedule, then the checks (linearizability per key, acknowledged SETs after a
 * full restart, committed prefixes, at most one lease holder / one leader per term), with everything kept
 * under the results folder.
 *
 * @module
 */
import { ChaosCluster, describeExit, faketimeAvailable } from "./cluster.ts";
import type { HeldBackStep, UnfinishedReplacement } from "./gate.ts";
import {
  checkHistory,
  checkStaleReads,
  History,
  type HistoryEvent,
  type HistoryVerdict,
  withoutStaleReads,
} from "./history.ts";
import { LeaseOverlapDetector, StatusPoller } from "./lease_monitor.ts";
import { checkLogs, type LogsReport, readNodeLogs } from "./logs_check.ts";
import { drawRate, FAULT_KINDS, type FaultKind, Nemesis, planSchedule, type Step } from "./nemesis.ts";
import { Rng } from "./prng.ts";
import { DEFAULT_WORKLOAD, Workload, type WorkloadOptions } from "./workload.ts";
import { checkHistory as checkCounterHistory } from "./history.ts";
import { COUNTER_KEY, type CounterReport, counterWorkload, runCounter } from "./cas_counter.ts";
import { checkWatcher, committedChanges, startWatchers, type Watchers } from "./watch_check.ts";

export interface ChaosOptions {
  readonly seed: string;
  /** Length of the fault phase (the run takes ~20–40 s more: start, settle, final restart, checks). */
  readonly durationMs: number;
  /** Results folder (emptied first). */
  readonly resultsDir: string;
  readonly workers?: number;
  readonly keys?: number;
  readonly readFraction?: number;
  /** Of the workers' writes, the fractions that are DELETEs and CASes (defaults 0.1 and 0.3). */
  readonly deleteFraction?: number;
  readonly casFraction?: number;
  /** Clients incrementing the CAS counter during the run (default 8; 0: none). */
  readonly counterClients?: number;
  /** Watchers following prefixes from index 1 during the run (default 3; 0: none). */
  readonly watchers?: number;
  readonly thinkMsMax?: number;
  readonly pollIntervalMs?: number;
  /** Largest |clock rate − 1| per node; must keep pairwise ratios inside maxClockDrift. */
  readonly skewMax?: number;
  readonly workload?: WorkloadOptions;
  /** Scales fault hold and quiet times. */
  readonly pace?: number;
  /** Progress lines (default: console.log). */
  readonly log?: (line: string) => void;
  /** Plain text instead of mutual TLS. */
  readonly insecure?: boolean;
  /** Node-to-node traffic over the raw peer transport (the default) or "grpc" (`--peer-transport grpc`). */
  readonly peerTransport?: "grpc" | "raw";
  /**
   * Issue 16: workers whose GETs are follower (ReadIndex) reads at random nodes, and workers whose GETs are
   * bounded-stale reads (default 1 each; 0: none), with this bound (default 1000 ms).
   */
  readonly followerReaders?: number;
  readonly staleReaders?: number;
  readonly maxStalenessMs?: number;
  /**
   * How long one replacement may take before it counts as over budget and the gate repairs it (default 60 s).
   * A tiny budget (`--replace-budget 1ms`) makes every replacement go through the repair path.
   */
  readonly replaceBudgetMs?: number;
}

/**
 * A run's verdict: `anomaly` when any check found one (whatever else happened), else `incomplete` when the
 * harness could not complete its schedule (a harness error, a replacement never finished, a fault kind never
 * applied, too few operations to judge), else `pass`.
 */
export type Verdict = "pass" | "anomaly" | "incomplete";

export function judgeRun(anomalies: readonly unknown[], incomplete: readonly unknown[]): Verdict {
  if (anomalies.length > 0) return "anomaly";
  return incomplete.length > 0 ? "incomplete" : "pass";
}

/** The operations floor (README "How many operations"): an absolute minimum, and a share of the baseline. */
export const OPS_FLOOR_MIN = 500;
export const OPS_FLOOR_SHARE = 0.1;
/** The baseline is this quantile of the run's per-second counts of checked operations. */
export const BASELINE_QUANTILE = 0.9;

/**
 * Operations the fault phase must complete: `OPS_FLOOR_SHARE` of the baseline rate over the fault phase's
 * length, and at least `OPS_FLOOR_MIN`.
 */
export function operationsFloor(baselineOpsPerS: number, faultPhaseMs: number): number {
  return Math.max(OPS_FLOOR_MIN, Math.round(OPS_FLOOR_SHARE * baselineOpsPerS * faultPhaseMs / 1000));
}

/**
 * What the cluster could do in this run: the `quantile` of the counts of checked operations completed in each
 * whole second of [fromMs, toMs) (0 when the span holds no whole second). The run's own best seconds, on this
 * machine at this load: a healthy window measured apart was found low either way (20 TLS workers still
 * connecting at the start; leaders still changing right after healing).
 */
export function baselineRate(
  events: readonly HistoryEvent[],
  fromMs: number,
  toMs: number,
  quantile = BASELINE_QUANTILE,
): number {
  const seconds = Math.floor((toMs - fromMs) / 1000);
  if (!(seconds > 0)) return 0;
  const counts = new Array<number>(seconds).fill(0);
  for (const e of withoutStaleReads(events)) {
    if (!isChecked(e)) continue;
    const s = Math.floor((e.time - fromMs) / 1000);
    if (s >= 0 && s < seconds) counts[s]++;
  }
  counts.sort((a, b) => a - b);
  return counts[Math.floor(quantile * (seconds - 1))];
}

function isChecked(e: HistoryEvent): boolean {
  return e.type === "ok" || (e.type === "info" && e.f !== "get");
}

/**
 * Operations that count as checked (as `checkedCount` counts them: completed ok, or a write of unknown outcome;
 * bounded-stale reads left out) whose completion fell in [fromMs, toMs) of the harness clock.
 */
export function checkedBetween(events: readonly HistoryEvent[], fromMs: number, toMs: number): number {
  let n = 0;
  for (const e of withoutStaleReads(events)) {
    if (e.time < fromMs || e.time >= toMs) continue;
    if (isChecked(e)) n++;
  }
  return n;
}

export interface Throughput {
  /** The run's 90th percentile of checked operations completed per second (`baselineRate`). */
  readonly baselineOpsPerS: number;
  readonly faultPhaseMs: number;
  /** Checked operations completed during the fault phase, and the floor they had to reach. */
  readonly faultPhaseOps: number;
  readonly floor: number;
}

export interface Anomaly {
  readonly kind: string;
  readonly description: string;
}

export interface ChaosReport {
  readonly seed: string;
  readonly ok: boolean;
  readonly summary: string;
  readonly resultsDir: string;
  readonly history: HistoryVerdict;
  readonly faults: Record<string, number>;
  readonly anomalies: readonly Anomaly[];
  /** Harness trouble that is not a finding about the product (e.g. no leader after healing). */
  readonly errors: readonly string[];
  /** `anomaly` over `incomplete` over `pass` (see {@linkcode Verdict}). */
  readonly verdict: Verdict;
  /** Why the harness could not complete its schedule: the errors, then the shortfalls (kinds, operations). */
  readonly incomplete: readonly string[];
  readonly throughput: Throughput;
  /**
   * The nemesis's gate (gate.ts): process faults held back while the configuration was not whole, and the
   * replacements that ran out of their budget (finished later by a repair, or never).
   */
  readonly gate: {
    readonly heldBack: readonly HeldBackStep[];
    readonly replacements: readonly UnfinishedReplacement[];
  };
  readonly logs?: LogsReport;
  readonly lease: { samples: number; servingSamples: number; maxSkewMs: number };
  /** Largest lateness of a 50 ms harness timer during the run. */
  readonly harnessLagMaxMs: number;
  readonly elapsedMs: number;
  /** The CAS counter: successful CAS replies and the final value (when it ran). */
  readonly counter?: { succeeded: number; failed: number; final: string };
  /** Watch events checked against the committed changes, per watcher. */
  readonly watch?: { watchers: number; events: number[]; reconnects: number };
  /** Issue 16: follower (ReadIndex) GETs that completed ok, and bounded-stale GETs checked. */
  readonly followerReads?: { followerOk: number; staleChecked: number };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** How long each final read-back after the full restart may keep trying. */
const FINAL_READ_MS = 30_000;

export function keyNames(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `k${i + 1}`);
}

export function formatFaults(faults: Record<string, number>): string {
  return Object.entries(faults).map(([k, v]) => `${k} ${v}`).join(", ");
}

export async function runChaos(o: ChaosOptions): Promise<ChaosReport> {
  const log = o.log ?? ((l: string) => console.log(l));
  const t0 = performance.now();
  if (!faketimeAvailable()) {
    throw new Error("libfaketime is missing (apt-get install -y faketime): the clock-skew faults need it");
  }
  const seed = o.seed;
  const rng = new Rng(seed);
  const skewMax = o.skewMax ?? 0.009;
  const keys = keyNames(o.keys ?? 4);
  await Deno.remove(o.resultsDir, { recursive: true }).catch(() => {});
  await Deno.mkdir(o.resultsDir, { recursive: true });
  const timeline: string[] = [];
  const tl = (line: string) => {
    timeline.push(line);
    log(`  ${line}`);
  };

  const rateRng = rng.fork("rates");
  const initialRates = new Map<number, number>();
  for (let id = 1; id <= 5; id++) initialRates.set(id, rateRng.chance(0.5) ? drawRate(rateRng, skewMax) : 1);
  const cluster = await ChaosCluster.start({
    dir: o.resultsDir,
    initialRates,
    insecure: o.insecure,
    peerTransport: o.peerTransport,
  });
  tl(
    `${(performance.now() / 1000).toFixed(2)}s cluster started, clock rates ${
      [...initialRates].map(([id, r]) => `${id}:x${r}`).join(" ")
    }`,
  );
  const history = new History();
  const detector = new LeaseOverlapDetector();
  const poller = new StatusPoller(cluster, detector, o.pollIntervalMs ?? 15);
  const workload = new Workload(cluster, history, o.workload ?? DEFAULT_WORKLOAD);
  const nemesis = new Nemesis(cluster, () => poller.leader(), tl);
  if (o.replaceBudgetMs !== undefined) nemesis.replaceBudgetMs = o.replaceBudgetMs;
  const errors: string[] = [];
  // How late the harness's own timers fire (CPU starvation widens every measured interval).
  let lagMaxMs = 0;
  let lagExpected = performance.now() + 50;
  const lagTimer = setInterval(() => {
    const now = performance.now();
    lagMaxMs = Math.max(lagMaxMs, now - lagExpected);
    lagExpected = now + 50;
  }, 50);
  const anomalies: Anomaly[] = [];
  let logsReport: LogsReport | undefined;
  const counterLoad = counterWorkload(cluster);
  let stopCounter: () => void = () => {};
  const counterStop = new Promise<void>((r) => (stopCounter = r));
  let counterRun: Promise<CounterReport> | undefined;
  /** The CAS counter read back after the final restart (undefined: that read failed). */
  let counterFinal: string | undefined;
  let watchers: Watchers | undefined;
  let trafficStart = NaN, trafficEnd = NaN, faultStart = NaN, faultEnd = NaN;
  try {
    const first = await cluster.waitForLeader(30_000);
    tl(`${(performance.now() / 1000).toFixed(2)}s node ${first.id} leads (term ${first.term})`);
    poller.start();
    const workers = o.workers ?? 5;
    trafficStart = performance.now();
    for (let w = 0; w < workers; w++) {
      workload.addWorker(rng.fork(`worker${w}`), {
        keys,
        readFraction: o.readFraction ?? 0.5,
        deleteFraction: o.deleteFraction ?? 0.1,
        casFraction: o.casFraction ?? 0.3,
        thinkMsMax: o.thinkMsMax ?? 10,
        roam: w % 5 >= 3, // 2 of 5 start each operation at a random node
      });
    }
    // Issue 16: follower reads (linearizable, in the same history) and bounded-stale reads (own check).
    for (let w = 0; w < (o.followerReaders ?? 1); w++) {
      workload.addWorker(rng.fork(`follower-reader${w}`), {
        keys,
        readFraction: 0.8,
        thinkMsMax: o.thinkMsMax ?? 10,
        readMode: "follower",
      });
    }
    for (let w = 0; w < (o.staleReaders ?? 1); w++) {
      workload.addWorker(rng.fork(`stale-reader${w}`), {
        keys,
        readFraction: 1,
        thinkMsMax: o.thinkMsMax ?? 10,
        readMode: "stale",
        maxStalenessMs: o.maxStalenessMs ?? 1000,
      });
    }

    if ((o.counterClients ?? 8) > 0) counterRun = runCounter(counterLoad, o.counterClients ?? 8, counterStop);
    if ((o.watchers ?? 3) > 0) {
      const nodes = cluster.ids.map((id) => ({ id, address: cluster.addresses.get(id)! }));
      const prefixes = ["", ...keys.slice(0, 2)].slice(0, o.watchers ?? 3);
      watchers = startWatchers(nodes, prefixes, cluster.tls);
    }

    // The fault phase.
    faultStart = performance.now();
    const plan: Step[] = planSchedule(seed, {
      ids: cluster.ids,
      durationMs: o.durationMs,
      skewMax,
      pace: o.pace,
    });
    const until = performance.now() + o.durationMs;
    await nemesis.run(plan, until);
    // Kinds the schedule could not apply (e.g. no leader known at the time) get another chance.
    const extra = new Rng(seed).fork("coverage");
    for (let round = 0; round < 3; round++) {
      const missing = FAULT_KINDS.filter((k) => nemesis.counts()[k] === 0);
      if (missing.length === 0) break;
      for (const kind of missing) {
        await cluster.waitForLeader(10_000).catch(() => {});
        await nemesis.runStep(
          planSchedule(`${seed}/${extra.u32()}`, {
            ids: cluster.ids,
            durationMs: 0,
            skewMax,
            pace: o.pace,
          }).find((s) => s.kind === kind)!,
        );
        await sleep(500);
      }
    }

    faultEnd = performance.now();
    // A replacement that failed before it started a successor is the harness's trouble.
    for (const r of nemesis.records) {
      if (r.kind === "replace" && r.error && !r.replacement) errors.push(`replace: ${r.error}`);
    }

    // Heal, settle, and let the clients see a healthy cluster for a while.
    cluster.healAll();
    tl(`${(performance.now() / 1000).toFixed(2)}s healed: all links pass, every node running`);
    try {
      await cluster.waitForLeader(20_000);
    } catch (e) {
      errors.push(`after healing: ${(e as Error).message}`);
    }
    // A replacement that ran out of its budget gets one more, on the healed cluster; one that never finishes
    // leaves a dead voter in the configuration, a cluster the operator would have to repair.
    if (nemesis.gate.unfinished.length > 0) await nemesis.gate.repair();
    for (const r of nemesis.gate.unfinished) {
      errors.push(
        `replace: the replacement of node ${r.dead} by node ${r.successor} never finished (${r.error}; ` +
          `${r.attempts} repairs, last: ${r.lastError ?? "none"}): the configuration may keep the dead voter`,
      );
    }
    await sleep(2000);
    trafficEnd = performance.now();
    await workload.stop();
    stopCounter();
    await counterRun;

    // Everyone restarts (kill -9), then every key is read back.
    await Promise.all(cluster.ids.map((id) => cluster.kill(id)));
    for (const id of cluster.ids) cluster.spawn(id, cluster.rate(id));
    tl(`${(performance.now() / 1000).toFixed(2)}s all nodes killed and restarted`);
    // The final reads get 30 s each: right after a full restart on a loaded machine leaders may come and go
    // for a while (stop 20 saw 10 s of it), and a read that never gets through proves nothing either way.
    try {
      await cluster.waitForLeader(30_000);
      for (const key of keys) {
        const r = await workload.readOnce(key, FINAL_READ_MS);
        tl(`final read ${key}: ${r.kind === "ok" ? JSON.stringify(r.value) : `${r.kind} (${r.error})`}`);
        if (r.kind !== "ok") errors.push(`final read of ${key} failed: ${r.error}`);
      }
      if (counterRun) {
        const r = await counterLoad.readOnce(COUNTER_KEY, FINAL_READ_MS);
        if (r.kind === "ok") counterFinal = r.value ?? "";
        else errors.push(`final read of the CAS counter failed: ${r.error}`);
      }
    } catch (e) {
      errors.push(`after the final restart: ${(e as Error).message}`);
    }
    await sleep(500); // followers learn the final commit index
    if (watchers) await sleep(1500); // watchers catch up after the restart
  } catch (e) {
    errors.push(`harness: ${(e as Error).stack ?? e}`);
  } finally {
    nemesis.stop();
    clearInterval(lagTimer);
    stopCounter();
    await workload.stop().catch(() => {});
    counterLoad.closeWrites();
    await counterRun?.catch(() => {});
    await watchers?.stop().catch(() => {});
    await poller.stop();
    await cluster.terminateAll();
    await cluster.close();
  }

  // Checks.
  const verdict: HistoryVerdict = checkHistory(history.events);
  if (verdict.result.ok === false) {
    const lost = /cannot place c1\d{6} /.test(verdict.result.explanation); // a final read-back
    anomalies.push({
      kind: lost ? "lost-acknowledged-write" : "not-linearizable",
      description: verdict.result.explanation,
    });
  } else if (verdict.result.ok === "unknown") {
    errors.push(`linearizability undecided on key ${verdict.result.key}: ${verdict.result.explanation}`);
  }
  for (const p of verdict.problems.slice(0, 5)) errors.push(`history: ${p}`);
  const staleVerdict = checkStaleReads(history.events);
  for (const v of staleVerdict.violations.slice(0, 20)) {
    anomalies.push({ kind: "stale-read-too-old", description: v });
  }
  const followerOk = history.events.filter((e) => e.readMode === "follower").length;
  for (const a of detector.anomalies) anomalies.push({ kind: a.kind, description: a.description });
  let watchSummary: ChaosReport["watch"];
  try {
    const nodes = await Promise.all(cluster.everIds.map((id) => readNodeLogs(cluster.logsDir(id), id)));
    logsReport = checkLogs(nodes, history.events);
    for (const a of logsReport.anomalies) anomalies.push(a);
    if (watchers) {
      const committed = committedChanges(nodes);
      for (const rec of watchers.records) {
        for (const p of checkWatcher(rec, committed)) anomalies.push({ kind: "watch-gap", description: p });
        if (rec.error) errors.push(`${rec.name} stopped: ${rec.error}`);
        for (const g of rec.gaps) {
          console.log(`chaos: ${rec.name} resumed at ${g.to} after ${g.from}..${g.to - 1} was compacted`);
        }
      }
      watchSummary = {
        watchers: watchers.records.length,
        events: watchers.records.map((r) => r.events.length),
        reconnects: watchers.records.reduce((n, r) => n + Math.max(0, r.connects.length - 1), 0),
      };
      await Deno.writeTextFile(
        `${o.resultsDir}/watch.jsonl`,
        watchers.records.flatMap((r) => r.events.map((e) => JSON.stringify({ watcher: r.name, ...e }))).join(
          "\n",
        ) +
          "\n",
      );
    }
  } catch (e) {
    errors.push(`logs check: ${(e as Error).message}`);
  }
  let counterSummary: ChaosReport["counter"];
  if (counterRun) {
    const c = await counterRun;
    counterSummary = { succeeded: c.succeeded, failed: c.failed, final: counterFinal ?? "(not read)" };
    const final = counterFinal === undefined || counterFinal === "" ? 0 : Number(counterFinal);
    if (c.abandoned > 0) {
      errors.push(`CAS counter: ${c.abandoned} increments abandoned with an unknown outcome`);
    } else if (counterFinal === undefined) {
      // Not read back (a harness error above, so the run is incomplete): nothing to compare, no finding.
    } else if (final !== c.succeeded) {
      anomalies.push({
        kind: "cas-counter-mismatch",
        description: `the counter reads ${
          JSON.stringify(counterFinal)
        } after ${c.succeeded} CAS replies said held`,
      });
    }
    const v = checkCounterHistory(c.history.events, 2_000_000);
    if (v.result.ok === false) {
      anomalies.push({ kind: "not-linearizable", description: `counter: ${v.result.explanation}` });
    }
    await Deno.writeTextFile(`${o.resultsDir}/counter_history.jsonl`, c.history.toJsonl());
  }
  for (const e of cluster.unexpectedExits) {
    // Another program took the node's port while it was down: the harness's problem, not the product's.
    if (/address already in use/i.test(e.lastLine)) errors.push(describeExit(e));
    else anomalies.push({ kind: "node-exited", description: describeExit(e) });
  }

  const faults = nemesis.counts();
  const elapsedMs = performance.now() - t0;
  const faultPhaseMs = Number.isFinite(faultEnd - faultStart) ? faultEnd - faultStart : 0;
  const baselineOpsPerS = baselineRate(history.events, trafficStart, trafficEnd);
  const throughput: Throughput = {
    baselineOpsPerS,
    faultPhaseMs,
    faultPhaseOps: faultPhaseMs > 0 ? checkedBetween(history.events, faultStart, faultEnd) : 0,
    floor: operationsFloor(baselineOpsPerS, faultPhaseMs),
  };
  const incomplete = [...errors];
  const missingKinds = FAULT_KINDS.filter((k) => !(faults[k] > 0));
  if (missingKinds.length > 0) incomplete.push(`fault kinds never applied: ${missingKinds.join(", ")}`);
  if (throughput.faultPhaseOps < throughput.floor) {
    incomplete.push(
      `only ${throughput.faultPhaseOps} checked operations in the ${Math.round(faultPhaseMs / 1000)} s ` +
        `fault phase, below the floor of ${throughput.floor} (${OPS_FLOOR_SHARE * 100} % of the baseline's ` +
        `${Math.round(baselineOpsPerS)}/s, at least ${OPS_FLOOR_MIN}; harness lag ${
          Math.round(lagMaxMs)
        } ms)`,
    );
  }
  const runVerdict = judgeRun(anomalies, incomplete);
  const ok = runVerdict === "pass";
  const late = nemesis.gate.replacements.filter((r) => r.finishedAtMs !== undefined).length;
  const c = verdict.counts;
  const summary = `chaos seed ${seed}: ${verdict.checked} operations checked ` +
    `(${c.ok} ok, ${c.info} info, ${c.fail} fail; ${c.gets} get, ${c.sets} set, ${c.deletes} delete, ` +
    `${c.cases} cas (${c.casSucceeded} held, ${c.casFailed} failed); ${verdict.keys} keys, ` +
    `checker ${Math.round(verdict.ms)} ms); faults: ${formatFaults(faults)}; ` +
    `${detector.samples} status polls (max skew ${Math.round(detector.maxSkewMs)} ms, harness lag ` +
    `${Math.round(lagMaxMs)} ms); ` +
    (counterSummary
      ? `CAS counter ${counterSummary.final || 0} after ${counterSummary.succeeded} held CAS replies ` +
        `(${counterSummary.failed} failed); `
      : "") +
    (watchSummary
      ? `watchers saw ${watchSummary.events.join("/")} events, ${watchSummary.reconnects} reconnects; `
      : "") +
    `follower reads ${followerOk} invoked, ${staleVerdict.checked} stale reads checked; ` +
    `${throughput.faultPhaseOps} checked in the fault phase (floor ${throughput.floor}, baseline ` +
    `${baselineOpsPerS}/s at the run's 90th percentile second); ` +
    (nemesis.gate.replacements.length > 0 || nemesis.gate.heldBack.length > 0
      ? `${nemesis.gate.replacements.length} replacements over budget (${late} finished by a repair), ` +
        `${nemesis.gate.heldBack.length} process faults held back; `
      : "") +
    `${anomalies.length} anomalies${errors.length > 0 ? `, ${errors.length} harness errors` : ""}; ` +
    `verdict ${runVerdict}; ${Math.round(elapsedMs / 1000)} s`;

  await Deno.writeTextFile(`${o.resultsDir}/history.jsonl`, history.toJsonl());
  await Deno.writeTextFile(`${o.resultsDir}/timeline.txt`, timeline.join("\n") + "\n");
  const report: ChaosReport = {
    followerReads: { followerOk, staleChecked: staleVerdict.checked },
    seed,
    ok,
    summary,
    resultsDir: o.resultsDir,
    history: verdict,
    faults,
    anomalies,
    errors,
    verdict: runVerdict,
    incomplete,
    throughput,
    gate: { heldBack: nemesis.gate.heldBack, replacements: nemesis.gate.replacements },
    logs: logsReport,
    lease: {
      samples: detector.samples,
      servingSamples: detector.servingSamples,
      maxSkewMs: detector.maxSkewMs,
    },
    harnessLagMaxMs: lagMaxMs,
    elapsedMs,
    counter: counterSummary,
    watch: watchSummary,
  };
  await Deno.writeTextFile(
    `${o.resultsDir}/summary.json`,
    JSON.stringify(
      {
        ...report,
        history: { ...verdict, result: verdict.result },
        faultRecords: nemesis.records,
        statusPolls: poller.polls,
        processStarts: cluster.starts,
      },
      null,
      2,
    ) + "\n",
  );
  return report;
}

export type { FaultKind };
