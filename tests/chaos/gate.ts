/**
 * The nemesis's guard against cascading into the loss of the majority (stop 19's closing note).
 *
 * The schedule is built on one assumption: each process fault (kill, pause, wipe, clock-skew restart, replace)
 * hits a cluster whose configuration is whole, five voters all running, so one node down still leaves a
 * majority. A replacement that does not finish in its budget breaks that assumption: the dead voter stays in
 * the configuration (or the successor never becomes a voter), and the next replacement, or a kill on top of
 * it, can take the majority away. The run then fails for the harness's own reason.
 *
 * As a Jepsen nemesis would, the harness then repairs before it breaks anything again:
 *
 * - **Unfinished replacements are finished** (`repair`): the dead node is removed and its successor added and
 *   waited for until it is a voter, each step idempotent, with a fresh budget; an operator would rerun
 *   `raftkv admin add-node --replace` the same way. The nemesis tries before each later step, and the run
 *   once more after healing.
 * - **Process faults wait for a whole configuration** (`admit`): the leader's committed, non-joint
 *   configuration has exactly the members the harness runs as voters, and every one of them answers its
 *   status. The nemesis waits a little for it (a restarted node may still be starting); if it is still not
 *   whole, the step is held back (recorded with its reason) and the schedule goes on with its network faults
 *   (partitions, delays, transfers: they heal by themselves and cannot remove a voter).
 *
 * Held back "until whole", not "for good": a 10-minute run that stopped every process fault after one slow
 * replacement would test little for the rest of its time, and a whole configuration restores exactly the
 * precondition the schedule was designed for. Every held-back step and every late or unfinished replacement
 * is in the run's report; an unfinished one makes the verdict "incomplete" (never "pass"), and neither ever
 * hides an anomaly: the checks run on the whole history whatever the nemesis could do.
 *
 * @module
 */
import type { FaultKind } from "./nemesis.ts";

/** The kinds that take a node's process out of service (for a while, or for good). */
export const PROCESS_FAULTS: ReadonlySet<FaultKind> = new Set<FaultKind>([
  "kill",
  "kill-leader",
  "pause",
  "pause-leader",
  "wipe",
  "clock-skew",
  "replace",
]);

/** What the gate needs of the leader's status (a `NodeStatus`). */
export interface LeaderView {
  readonly id: number;
  readonly commitIndex: number;
  readonly membership?: {
    readonly members: readonly { readonly id: number; readonly voter: boolean }[];
    readonly outgoingVoters?: readonly number[];
  };
  readonly membershipIndex?: number;
}

/** One look at the cluster. */
export interface ConfigurationView {
  /** The node serving as leader now (undefined: none). */
  readonly leader?: LeaderView;
  /** The nodes the harness runs as members (`ChaosCluster.ids`). */
  readonly members: readonly number[];
  /** Members that answered a status just now (running, not paused). */
  readonly answering: ReadonlySet<number>;
}

export type Wholeness = { readonly whole: true } | { readonly whole: false; readonly reason: string };

/** Whether the cluster is as the schedule assumes (see the module doc), and if not, why. */
export function judgeConfiguration(v: ConfigurationView): Wholeness {
  const no = (reason: string): Wholeness => ({ whole: false, reason });
  const l = v.leader;
  if (l === undefined) return no("no leader");
  const m = l.membership;
  if (m === undefined) return no(`leader ${l.id} reports no configuration`);
  if (m.outgoingVoters !== undefined) return no(`a joint configuration is in force (leader ${l.id})`);
  if (l.commitIndex < (l.membershipIndex ?? 0)) {
    return no(`the configuration at index ${l.membershipIndex} is not committed yet (leader ${l.id})`);
  }
  const voters = m.members.filter((x) => x.voter).map((x) => x.id);
  const gone = voters.filter((id) => !v.members.includes(id));
  if (gone.length > 0) return no(`voter ${gone.join(", ")} is no longer run by the harness (replaced)`);
  const notYet = v.members.filter((id) => !voters.includes(id));
  if (notYet.length > 0) return no(`member ${notYet.join(", ")} is not a voter yet`);
  const silent = voters.filter((id) => !v.answering.has(id));
  if (silent.length > 0) return no(`voter ${silent.join(", ")} does not answer`);
  return { whole: true };
}

/** A replacement that did not finish in its budget: `dead` killed for good, `successor` started. */
export interface UnfinishedReplacement {
  readonly dead: number;
  readonly successor: number;
  /** Harness clock (ms) when its budget ran out, and why. */
  readonly failedAtMs: number;
  readonly error: string;
  /** Set once a repair finished it. */
  finishedAtMs?: number;
  /** Repair attempts made, and the last one's failure. */
  attempts: number;
  lastError?: string;
}

/** A process fault the gate held back. */
export interface HeldBackStep {
  readonly kind: FaultKind;
  readonly atMs: number;
  readonly reason: string;
}

export interface GateDeps {
  /** A fresh look at the cluster (statuses of every member). */
  view(): Promise<ConfigurationView>;
  /** Finishes a replacement (remove the dead node, add the successor, wait until it is a voter); throws if not done within `budgetMs`. */
  finish(r: UnfinishedReplacement, budgetMs: number): Promise<void>;
  now(): number;
  sleep(ms: number): Promise<void>;
  log(line: string): void;
}

export interface GateOptions {
  /** How long a process fault waits for a whole configuration before it is held back (default 10 s). */
  readonly waitMs?: number;
  /** Budget of one repair attempt of one replacement (default 60 s, the replacement's own budget). */
  readonly repairBudgetMs?: number;
  /** Pause between two looks while waiting (default 200 ms). */
  readonly pollMs?: number;
}

/** The shortest wait for a whole configuration, even at the end of the fault phase. */
const MIN_WAIT_MS = 2000;

export class ProcessFaultGate {
  readonly #deps: GateDeps;
  readonly #waitMs: number;
  readonly #repairBudgetMs: number;
  readonly #pollMs: number;
  /** Every replacement that did not finish in its budget (finished later or not). */
  readonly replacements: UnfinishedReplacement[] = [];
  readonly heldBack: HeldBackStep[] = [];

  constructor(deps: GateDeps, o: GateOptions = {}) {
    this.#deps = deps;
    this.#waitMs = o.waitMs ?? 10_000;
    this.#repairBudgetMs = o.repairBudgetMs ?? 60_000;
    this.#pollMs = o.pollMs ?? 200;
  }

  /** Replacements still unfinished. */
  get unfinished(): UnfinishedReplacement[] {
    return this.replacements.filter((r) => r.finishedAtMs === undefined);
  }

  /** Records a replacement whose budget ran out (its dead voter may still be in the configuration). */
  replacementFailed(dead: number, successor: number, error: string): void {
    this.replacements.push({ dead, successor, failedAtMs: this.#deps.now(), error, attempts: 0 });
  }

  /**
   * Tries once to finish every unfinished replacement, each within `budgetMs` (default: the repair budget).
   * Resolves true when none is left.
   */
  async repair(budgetMs = this.#repairBudgetMs): Promise<boolean> {
    for (const r of this.unfinished) {
      r.attempts++;
      try {
        await this.#deps.finish(r, budgetMs);
        r.finishedAtMs = this.#deps.now();
        this.#deps.log(
          `repair: the replacement of node ${r.dead} by node ${r.successor} finished ` +
            `${Math.round((r.finishedAtMs - r.failedAtMs) / 1000)} s after its budget ran out`,
        );
      } catch (e) {
        r.lastError = e instanceof Error ? e.message : String(e);
        this.#deps.log(`repair: the replacement of node ${r.dead} by node ${r.successor}: ${r.lastError}`);
      }
    }
    return this.unfinished.length === 0;
  }

  /**
   * Before a step: repairs what is unfinished; for a process fault, waits (up to the wait, cut at `untilMs`
   * but at least 2 s) for a whole configuration. Resolves undefined when the step may run, else the reason it is held back
   * (recorded in `heldBack`).
   */
  async admit(kind: FaultKind, untilMs = Infinity): Promise<string | undefined> {
    if (this.unfinished.length > 0) {
      const left = untilMs - this.#deps.now();
      await this.repair(
        Number.isFinite(left) ? Math.max(5_000, Math.min(this.#repairBudgetMs, left)) : undefined,
      );
    }
    if (!PROCESS_FAULTS.has(kind)) return undefined;
    // At least 2 s (an election after the last step healed), at most the wait, else up to `untilMs`.
    const now = this.#deps.now();
    const end = now + Math.min(this.#waitMs, Math.max(MIN_WAIT_MS, untilMs - now));
    let verdict = judgeConfiguration(await this.#deps.view());
    while (!verdict.whole && this.#deps.now() < end) {
      await this.#deps.sleep(this.#pollMs);
      verdict = judgeConfiguration(await this.#deps.view());
    }
    if (verdict.whole) return undefined;
    const unfinished = this.unfinished.map((r) => `${r.dead} → ${r.successor}`);
    const reason = `configuration not whole: ${verdict.reason}` +
      (unfinished.length > 0 ? ` (unfinished replacement ${unfinished.join(", ")})` : "");
    this.heldBack.push({ kind, atMs: this.#deps.now(), reason });
    return reason;
  }
}
