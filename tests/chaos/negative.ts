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
