/**
 * The negative control: proof that the harness catches a real violation. One node's clock runs far slower
 * than the drift budget allows (libfaketime `x0.25` against `maxClockDrift` 0.02), so its 240 ms lease lasts
 * ~960 ms of real time. The harness makes that node the leader (a planned transfer), keeps readers pinned to
 * it and writers on the other four nodes, then cuts it off from its peers. The majority elects a new leader
 * and commits new values well before the old leader's slow lease runs out, while the old leader keeps
 * answering GETs with the old values: stale reads (the linearizability check) and an old-term lease served
 * after the new leader started serving (the lease check). A correct harness reports both; `runNegativeControl`
 * says what it found.
 *
 * @module
 */
import { ChaosCluster } from "./cluster.ts";
import { checkHistory, History, type HistoryVerdict } from "./history.ts";
import { type LeaseAnomaly, LeaseOverlapDetector, StatusPoller } from "./lease_monitor.ts";
import { Rng } from "./prng.ts";
import { Workload } from "./workload.ts";

export interface NegativeOptions {
  readonly resultsDir: string;
  /** The slow node's clock rate (default 0.25: its lease lasts 4× longer in real time). */
  readonly rate?: number;
  /** Isolation attempts before giving up (default 3). */
  readonly attempts?: number;
  readonly log?: (line: string) => void;
}

export interface NegativeReport {
  /** True when at least one anomaly was found (what the control expects). */
  readonly caught: boolean;
  /** Both checks caught it: a non-linearizable history and a stale lease. */
  readonly caughtByBoth: boolean;
  readonly attempts: number;
  readonly history: HistoryVerdict;
  readonly leaseAnomalies: readonly LeaseAnomaly[];
  readonly summary: string;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function runNegativeControl(o: NegativeOptions): Promise<NegativeReport> {
  const log = o.log ?? ((l: string) => console.log(l));
  const rate = o.rate ?? 0.25;
  const slow = 1;
  await Deno.remove(o.resultsDir, { recursive: true }).catch(() => {});
  await Deno.mkdir(o.resultsDir, { recursive: true });
  const cluster = await ChaosCluster.start({ dir: o.resultsDir, initialRates: new Map([[slow, rate]]) });
  const history = new History();
  const detector = new LeaseOverlapDetector();
  const poller = new StatusPoller(cluster, detector, 10);
  const workload = new Workload(cluster, history, { opTimeoutMs: 1000, attemptTimeoutMs: 300 });
  const rng = new Rng("negative-control");
  const others = cluster.ids.filter((id) => id !== slow);
  let attempts = 0;
  try {
    for (attempts = 1; attempts <= (o.attempts ?? 3); attempts++) {
      // Make the slow node the leader.
      let leader = await cluster.waitForLeader(30_000);
      for (let i = 0; i < 10 && leader.id !== slow; i++) {
        await cluster.stub(leader.id).transferLeader(slow, 3000).catch(() => undefined);
        leader = await cluster.waitForLeader(10_000);
      }
      if (leader.id !== slow) throw new Error(`node ${slow} did not become the leader`);
      log(`  negative control attempt ${attempts}: node ${slow} (clock x${rate}) leads term ${leader.term}`);
      if (attempts === 1) {
        poller.start();
        for (let w = 0; w < 3; w++) {
          workload.addWorker(rng.fork(`reader${w}`), {
            keys: ["k1"],
            readFraction: 1,
            nodes: [slow],
            followHints: false,
            thinkMsMax: 2,
          });
        }
        for (let w = 0; w < 2; w++) {
          workload.addWorker(rng.fork(`writer${w}`), {
            keys: ["k1"],
            readFraction: 0.2,
            nodes: others,
            thinkMsMax: 2,
          });
        }
      }
      await sleep(1000);
      log(`  isolating node ${slow} from its peers (clients still reach it)`);
      cluster.net.partition([[slow], others], { kind: "blackhole" });
      await sleep(3000);
      cluster.net.heal(true);
      await sleep(1500);
      const verdict = checkHistory(history.events);
      const stale = verdict.result.ok === false, overlap = detector.anomalies.length > 0;
      if (stale && overlap) break;
      log(
        `  attempt ${attempts}: stale read ${stale ? "" : "not "}caught, lease overlap ${
          overlap ? "" : "not "
        }caught`,
      );
    }
  } finally {
    await workload.stop();
    await poller.stop();
    await cluster.close();
  }
  const verdict = checkHistory(history.events);
  await Deno.writeTextFile(`${o.resultsDir}/history.jsonl`, history.toJsonl());
  const caught = verdict.result.ok === false || detector.anomalies.length > 0;
  const parts: string[] = [];
  if (verdict.result.ok === false) parts.push(`not linearizable: ${verdict.result.explanation}`);
  for (const a of detector.anomalies) parts.push(`${a.kind}: ${a.description}`);
  const summary =
    `negative control (clock x${rate} on an isolated leader, ${Math.min(attempts, o.attempts ?? 3)} ` +
    `attempt(s), ` +
    `${verdict.checked} operations checked): ${
      caught ? `caught ${parts.length} anomalies` : "NOTHING CAUGHT"
    }` +
    (parts.length > 0 ? `\n  ${parts.join("\n  ")}` : "");
  const caughtByBoth = verdict.result.ok === false && detector.anomalies.length > 0;
  return {
    caught,
    caughtByBoth,
    attempts: Math.min(attempts, o.attempts ?? 3),
    history: verdict,
    leaseAnomalies: detector.anomalies,
    summary,
  };
}

export interface FollowerReadControlOptions {
  readonly resultsDir: string;
  /** Run the nodes with `read-index` switched off (RAFTKV_NEGATIVE_CONTROL): followers answer at once. */
  readonly broken: boolean;
  /** How long the workload runs (default 6 s). */
  readonly durationMs?: number;
  /** Extra delay on the leader's links to the read followers, ms (default 40): they apply late. */
  readonly lagMs?: number;
  readonly log?: (line: string) => void;
}

export interface FollowerReadControlReport {
  /** The history is not linearizable (what the broken control expects, and the sound one must not show). */
  readonly caught: boolean;
  readonly followerReads: number;
  readonly history: HistoryVerdict;
  readonly summary: string;
}

/**
 * The follower-read control (issue 16): writers SET through the leader while readers send follower
 * (ReadIndex) GETs to two followers whose links from the leader are delayed, so they learn of commits late.
 * A sound follower waits until it has applied the leader's read index; with `broken` (the core's
 * `read-index` rule switched off on every node) it answers from whatever it has applied, and reads miss
 * acknowledged writes: the linearizability checker must catch that. Run both ways, this shows the check
 * catches a broken follower read and passes a sound one on the same schedule.
 */
export async function runFollowerReadControl(
  o: FollowerReadControlOptions,
): Promise<FollowerReadControlReport> {
  const log = o.log ?? ((l: string) => console.log(l));
  await Deno.remove(o.resultsDir, { recursive: true }).catch(() => {});
  await Deno.mkdir(o.resultsDir, { recursive: true });
  const cluster = await ChaosCluster.start({
    dir: o.resultsDir,
    insecure: true,
    nodeEnv: o.broken ? { RAFTKV_NEGATIVE_CONTROL: "read-index" } : {},
  });
  const history = new History();
  const workload = new Workload(cluster, history, { opTimeoutMs: 2000, attemptTimeoutMs: 1000 });
  const rng = new Rng(`follower-read-control-${o.broken}`);
  try {
    const leader = await cluster.waitForLeader(30_000);
    const readers = cluster.ids.filter((id) => id !== leader.id).slice(0, 2);
    for (const f of readers) cluster.net.setLink(leader.id, f, { kind: "delay", ms: o.lagMs ?? 40 });
    log(
      `  follower-read control (${o.broken ? "read-index switched off" : "sound"}): leader ${leader.id}, ` +
        `readers at ${readers.join(", ")} (links from the leader delayed ${o.lagMs ?? 40} ms)`,
    );
    for (let w = 0; w < 2; w++) {
      workload.addWorker(rng.fork(`writer${w}`), { keys: ["k1"], readFraction: 0, thinkMsMax: 5 });
    }
    for (let w = 0; w < 4; w++) {
      workload.addWorker(rng.fork(`reader${w}`), {
        keys: ["k1"],
        readFraction: 1,
        nodes: readers,
        followHints: false,
        thinkMsMax: 2,
        readMode: "follower",
      });
    }
    await sleep(o.durationMs ?? 6000);
  } finally {
    await workload.stop();
    await cluster.close();
  }
  await Deno.writeTextFile(`${o.resultsDir}/history.jsonl`, history.toJsonl());
  const verdict = checkHistory(history.events);
  const followerReads = history.events.filter((e) => e.readMode === "follower").length;
  const caught = verdict.result.ok === false;
  const summary =
    `follower-read control (${o.broken ? "broken" : "sound"}): ${followerReads} follower reads, ` +
    `${verdict.checked} operations checked: ` +
    (caught
      ? `not linearizable: ${(verdict.result as { explanation: string }).explanation}`
      : "linearizable");
  return { caught, followerReads, history: verdict, summary };
}
