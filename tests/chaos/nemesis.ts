/**
 * The nemesis: a schedule of faults drawn from the seed, then applied to a running {@linkcode ChaosCluster}.
 *
 * The plan is a pure function of the seed and the duration (`planSchedule`): it opens with every fault kind
 * once, in a random order, then draws kinds at random (weighted). Each step holds its fault for a while,
 * heals it, and leaves a quiet gap. Targets such as "the leader" are resolved when the step runs; every
 * other choice (which node, which split, how long, which clock rate) is drawn in the plan, so a seed names
 * one schedule. Process timing is real, so a replay repeats the schedule, not the exact interleaving.
 *
 * @module
 */
import { type ChaosCluster, ReplacementError } from "./cluster.ts";
import { ProcessFaultGate } from "./gate.ts";
import { type LinkMode, PASS } from "./proxy.ts";
import { Rng } from "./prng.ts";

export const FAULT_KINDS = [
  "kill",
  "kill-leader",
  "pause",
  "pause-leader",
  "partition-halves",
  "partition-leader",
  "partition-one-way",
  "partition-bridge",
  "delay",
  "clock-skew",
  "transfer-leader",
  "wipe",
  "replace",
] as const;
export type FaultKind = typeof FAULT_KINDS[number];

const WEIGHTS: Record<FaultKind, number> = {
  "kill": 2,
  "kill-leader": 2,
  "pause": 1,
  "pause-leader": 2,
  "partition-halves": 2,
  "partition-leader": 2,
  "partition-one-way": 2,
  "partition-bridge": 1,
  "delay": 1,
  "clock-skew": 1,
  "transfer-leader": 2,
  "wipe": 1,
  "replace": 1,
};

export interface Step {
  readonly kind: FaultKind;
  /** How long the fault is held before it is healed, ms. */
  readonly holdMs: number;
  /** Quiet time after healing, ms. */
  readonly quietMs: number;
  /** Uniform draws in [0, 1) that pick nodes when the step runs (index into the candidate list). */
  readonly picks: readonly number[];
  /** A permutation of the node ids (partition shapes). */
  readonly order: readonly number[];
  /** Partitions: blackhole (held bytes) or drop (reset connections). */
  readonly linkMode: "blackhole" | "drop";
  /** At heal: reset the connections a blackhole held instead of letting their bytes through late. */
  readonly healCut: boolean;
  /** One-way partitions: true = the chosen node cannot send; false = it cannot receive. */
  readonly outbound: boolean;
  /** delay: ms per chunk and how many nodes are slowed (0 = every link). */
  readonly delayMs: number;
  readonly delayNodes: number;
  /** clock-skew: the new clock rate of the restarted node. */
  readonly rate: number;
}

export interface ScheduleOptions {
  readonly ids: readonly number[];
  readonly durationMs: number;
  /** The largest |rate − 1| a clock-skew fault may give a node (inside the cluster's drift budget). */
  readonly skewMax: number;
  /** Scales hold and quiet times (1 = default). */
  readonly pace?: number;
}

/** Draws a clock rate in [1 − skewMax, 1 + skewMax], rounded to 4 digits. */
export function drawRate(rng: Rng, skewMax: number): number {
  return Math.round(rng.range(1 - skewMax, 1 + skewMax) * 10_000) / 10_000;
}

function drawStep(rng: Rng, kind: FaultKind, o: ScheduleOptions): Step {
  const pace = o.pace ?? 1;
  const hold: Record<FaultKind, [number, number]> = {
    "kill": [300, 2500],
    "kill-leader": [300, 2000],
    "pause": [300, 1500],
    "pause-leader": [300, 1500],
    "partition-halves": [500, 3000],
    "partition-leader": [500, 3000],
    "partition-one-way": [500, 3000],
    "partition-bridge": [800, 3000],
    "delay": [500, 2500],
    "clock-skew": [0, 0],
    "transfer-leader": [0, 0],
    "wipe": [300, 2000],
    "replace": [0, 0],
  };
  const [lo, hi] = hold[kind];
  return {
    kind,
    holdMs: Math.round(rng.range(lo, hi) * pace),
    quietMs: Math.round(rng.range(300, 1500) * pace),
    picks: [rng.float(), rng.float(), rng.float()],
    order: rng.shuffle(o.ids),
    linkMode: rng.chance(0.5) ? "blackhole" : "drop",
    healCut: rng.chance(0.5),
    outbound: rng.chance(0.5),
    delayMs: rng.int(5, 100),
    delayNodes: rng.int(0, 2),
    rate: drawRate(rng, o.skewMax),
  };
}

/**
 * Every kind once (random order), then weighted random kinds until twice the duration is filled (steps often
 * take less than their estimate; the runner stops at the duration).
 */
export function planSchedule(seed: string, o: ScheduleOptions): Step[] {
  const rng = new Rng(seed).fork("nemesis");
  const steps: Step[] = [];
  let totalMs = 0;
  const push = (kind: FaultKind) => {
    const s = drawStep(rng, kind, o);
    steps.push(s);
    totalMs += s.holdMs + s.quietMs + 300; // + the time a step takes to apply and heal
  };
  for (const kind of rng.shuffle(FAULT_KINDS)) push(kind);
  const weighted = FAULT_KINDS.flatMap((k) => Array<FaultKind>(WEIGHTS[k]).fill(k));
  for (let i = 0; i < 10_000 && totalMs < 2 * o.durationMs; i++) push(rng.pick(weighted));
  return steps;
}

export function describeStep(s: Step): string {
  return `${s.kind} hold ${s.holdMs} ms`;
}

/** One applied fault, for the timeline. */
export interface FaultRecord {
  readonly kind: FaultKind;
  readonly startMs: number;
  healedMs: number;
  readonly detail: string;
  error?: string;
  /** A process fault not applied because the configuration was not whole (see gate.ts), and why. */
  heldBack?: string;
  /** replace: the node killed for good and its successor (also when the replacement did not finish). */
  replacement?: { readonly dead: number; readonly successor: number };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function pickFrom<T>(items: readonly T[], u: number): T {
  return items[Math.min(items.length - 1, Math.floor(u * items.length))];
}

/**
 * Runs a plan against a cluster; `leader()` says who leads now (from the status poller). Before each step the
 * gate (gate.ts) repairs an unfinished replacement, and holds a process fault back while the configuration is
 * not whole.
 */
export class Nemesis {
  readonly #cluster: ChaosCluster;
  readonly #leader: () => number | undefined;
  readonly records: FaultRecord[] = [];
  readonly #log: (line: string) => void;
  readonly gate: ProcessFaultGate;
  /** How long a replacement may take before the gate takes over (`--replace-budget`; default 60 s). */
  replaceBudgetMs = 60_000;
  #stopped = false;

  constructor(
    cluster: ChaosCluster,
    leader: () => number | undefined,
    log: (line: string) => void,
    gate?: ProcessFaultGate,
  ) {
    this.#cluster = cluster;
    this.#leader = leader;
    this.#log = log;
    this.gate = gate ?? new ProcessFaultGate({
      view: () => cluster.configurationView(),
      finish: (r, budgetMs) =>
        cluster.finishReplacement(r.dead, r.successor, (l) => log(`  repair ${r.dead}: ${l}`), budgetMs),
      now: () => performance.now(),
      sleep,
      log: (line) => log(`${(performance.now() / 1000).toFixed(2)}s ${line}`),
    });
  }

  stop(): void {
    this.#stopped = true;
  }

  /**
   * Faults applied so far, by kind. A replacement that ran out of its budget counts once the gate's repair
   * finished it; a held-back step does not count.
   */
  counts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const k of FAULT_KINDS) out[k] = 0;
    for (const r of this.records) if (!r.heldBack && (!r.error || this.#finishedLate(r))) out[r.kind]++;
    return out;
  }

  #finishedLate(r: FaultRecord): boolean {
    const p = r.replacement;
    return p !== undefined &&
      this.gate.replacements.some((u) =>
        u.dead === p.dead && u.successor === p.successor && u.finishedAtMs !== undefined
      );
  }

  /** Applies steps until the plan or `untilMs` (harness clock) runs out. */
  async run(plan: readonly Step[], untilMs: number): Promise<void> {
    for (const step of plan) {
      if (this.#stopped || performance.now() >= untilMs) break;
      await this.runStep(step, untilMs);
      if (this.#stopped) break;
      await sleep(Math.max(0, Math.min(step.quietMs, untilMs - performance.now())));
    }
  }

  /** Applies one step, holds it (cut short at `untilMs`), heals it. */
  async runStep(step: Step, untilMs = Infinity): Promise<void> {
    const c = this.#cluster;
    // Right after a fault there may be no leader yet: wait up to 2 s for one.
    for (let i = 0; i < 20 && this.#leader() === undefined && !this.#stopped; i++) await sleep(100);
    // An unfinished replacement is finished first; a process fault waits for a whole configuration.
    const heldBack = await this.gate.admit(step.kind, untilMs);
    if (heldBack !== undefined || this.#stopped) {
      const at = performance.now();
      if (heldBack !== undefined) {
        this.records.push({ kind: step.kind, startMs: at, healedMs: at, detail: "", heldBack });
        this.#log(`${(at / 1000).toFixed(2)}s ${step.kind}: held back: ${heldBack}`);
      }
      return;
    }
    const ids = c.ids;
    // The plan names the first members; a node replaced since then stands for its successor.
    const order = step.order.map((id) => c.resolve(id));
    const leaderOr = (u: number) => {
      const l = this.#leader();
      return l !== undefined && c.isRunning(l) ? l : pickFrom(ids, u);
    };
    const hold = () => sleep(Math.max(0, Math.min(step.holdMs, untilMs - performance.now())));
    const rec: FaultRecord = { kind: step.kind, startMs: performance.now(), healedMs: NaN, detail: "" };
    const note = (detail: string) => {
      (rec as { detail: string }).detail = detail;
      this.#log(`${(rec.startMs / 1000).toFixed(2)}s ${step.kind}: ${detail}`);
    };
    const mode: LinkMode = { kind: step.linkMode };
    try {
      switch (step.kind) {
        case "kill":
        case "kill-leader": {
          const id = step.kind === "kill" ? pickFrom(ids, step.picks[0]) : leaderOr(step.picks[0]);
          note(`kill -9 node ${id}, restart after ${step.holdMs} ms`);
          this.records.push(rec);
          await c.kill(id);
          await hold();
          c.spawn(id, c.rate(id));
          break;
        }
        case "wipe": {
          // A lost disk (a VM rebuilt): kill -9, delete the node's folder, restart it empty. The leader rebuilds
          // it with a snapshot (InstallSnapshot), its log compacted past where the node could catch up.
          const id = pickFrom(ids, step.picks[0]);
          note(`kill -9 node ${id}, wipe its folder, restart after ${step.holdMs} ms`);
          this.records.push(rec);
          await c.kill(id);
          await Deno.remove(c.logsDir(id), { recursive: true }).catch(() => {});
          await hold();
          c.spawn(id, c.rate(id));
          break;
        }
        case "pause":
        case "pause-leader": {
          const id = step.kind === "pause" ? pickFrom(ids, step.picks[0]) : leaderOr(step.picks[0]);
          if (!c.isRunning(id)) throw new Error(`node ${id} is not running`);
          note(`SIGSTOP node ${id} for ${step.holdMs} ms`);
          this.records.push(rec);
          c.pause(id);
          await hold();
          c.resume(id);
          break;
        }
        case "partition-halves": {
          const [a, b] = [order.slice(0, 2), order.slice(2)];
          note(`partition {${a}} | {${b}} (${step.linkMode}) for ${step.holdMs} ms`);
          this.records.push(rec);
          c.net.partition([a, b], mode);
          await hold();
          c.net.heal(step.healCut);
          break;
        }
        case "partition-leader": {
          const id = leaderOr(step.picks[0]);
          const rest = ids.filter((x) => x !== id);
          note(`isolate leader ${id} from {${rest}} (${step.linkMode}) for ${step.holdMs} ms`);
          this.records.push(rec);
          c.net.partition([[id], rest], mode);
          await hold();
          c.net.heal(step.healCut);
          break;
        }
        case "partition-one-way": {
          const id = step.picks[1] < 0.5 ? leaderOr(step.picks[0]) : pickFrom(ids, step.picks[0]);
          const rest = ids.filter((x) => x !== id);
          if (step.outbound) c.net.block([id], rest, mode);
          else c.net.block(rest, [id], mode);
          note(
            `one-way: node ${id} ${step.outbound ? "cannot send to" : "cannot receive from"} the others ` +
              `(${step.linkMode}) for ${step.holdMs} ms`,
          );
          this.records.push(rec);
          await hold();
          c.net.heal(step.healCut);
          break;
        }
        case "partition-bridge": {
          const [bridge, a1, a2, b1, b2] = order;
          const a = [a1, a2].filter((x) => x !== undefined), b = [b1, b2].filter((x) => x !== undefined);
          note(
            `bridge: {${a}} and {${b}} cut apart, node ${bridge} sees both (${step.linkMode}) for ${step.holdMs} ms`,
          );
          this.records.push(rec);
          c.net.block(a, b, mode);
          c.net.block(b, a, mode);
          await hold();
          c.net.heal(step.healCut);
          break;
        }
        case "delay": {
          const slowed = step.delayNodes === 0 ? [...ids] : order.slice(0, step.delayNodes);
          note(`delay ${step.delayMs} ms on every link of {${slowed}} for ${step.holdMs} ms`);
          this.records.push(rec);
          const d: LinkMode = { kind: "delay", ms: step.delayMs };
          c.net.block(slowed, ids, d);
          c.net.block(ids, slowed, d);
          await hold();
          c.net.block(ids, ids, PASS);
          break;
        }
        case "clock-skew": {
          const id = pickFrom(ids, step.picks[0]);
          note(`restart node ${id} (kill -9) with clock rate x${step.rate} (was x${c.rate(id)})`);
          this.records.push(rec);
          await c.kill(id);
          c.spawn(id, step.rate);
          break;
        }
        case "replace": {
          // A VM lost for good (issue 11): a node (the leader in a third of the runs) is killed and never
          // restarted; a fresh node on a new port takes its place through Admin.AddNode / RemoveNode, in
          // either order, while the clients go on.
          const dead = step.picks[1] < 0.33 ? leaderOr(step.picks[0]) : pickFrom(ids, step.picks[0]);
          const removeFirst = step.outbound;
          note(
            `replace node ${dead} for good (kill -9; ${
              removeFirst ? "remove, then add" : "add, then remove"
            })`,
          );
          this.records.push(rec);
          try {
            const id = await c.replace(
              dead,
              removeFirst,
              (line) => this.#log(`  replace ${dead}: ${line}`),
              this.replaceBudgetMs,
            );
            rec.replacement = { dead, successor: id };
            (rec as { detail: string }).detail += `: node ${id} took its place`;
          } catch (e) {
            if (!(e instanceof ReplacementError)) throw e;
            // Its dead voter may still be in the configuration: no process fault until the gate repaired it.
            rec.replacement = { dead: e.dead, successor: e.successor };
            this.gate.replacementFailed(e.dead, e.successor, e.message);
            this.#log(`  replace ${dead}: not finished in its budget (${e.message}); process faults wait`);
            throw e;
          }
          break;
        }
        case "transfer-leader": {
          const l = this.#leader();
          if (l === undefined || !c.isRunning(l)) throw new Error("no leader known");
          const others = ids.filter((x) => x !== l);
          const to = step.picks[1] < 0.3 ? 0 : pickFrom(others, step.picks[0]);
          note(`transfer leadership from node ${l} to ${to === 0 ? "its best follower" : `node ${to}`}`);
          this.records.push(rec);
          const r = await c.stub(l).transferLeader(to, 2000);
          if (!r.ok) rec.error = `transfer refused: ${r.error}`;
          break;
        }
      }
    } catch (e) {
      rec.error = e instanceof Error ? e.message : String(e);
      if (!this.records.includes(rec)) {
        note(`not applied: ${rec.error}`);
        this.records.push(rec);
      }
    }
    rec.healedMs = performance.now();
  }
}
