/**
 * The CAS counter (issue 15): clients increment one counter concurrently, each increment a compare-and-set
 * from the value the client last saw to the next number, retried until it holds. Afterwards the counter must
 * equal the number of CAS replies that said "held": a lost update (two CASes from one value both holding),
 * a CAS applied twice (a retry re-evaluated instead of answered from the session), or an acknowledged CAS
 * that was lost would each make the two differ.
 *
 * Every attempt of one increment keeps its (clientId, seq) until its outcome is known, so an attempt whose
 * reply was lost (timeout, partition, killed leader) is answered by the session on retry, never applied a
 * second time; the increment is one operation of the history from its first attempt to its answer. The
 * operations go into their own history (one register, checked for linearizability too).
 *
 * @module
 */
import { History } from "./history.ts";
import { Workload } from "./workload.ts";

export const COUNTER_KEY = "cas-counter";

export interface CounterReport {
  readonly clients: number;
  /** CAS replies that said the comparison held. */
  readonly succeeded: number;
  /** CAS replies that said it did not (the client then learnt the current value). */
  readonly failed: number;
  /** Increments abandoned with their outcome unknown at the end (make the check impossible: must be 0). */
  readonly abandoned: number;
  readonly history: History;
}

/** Runs `clients` incrementers until `stop` resolves (each finishes its increment first, up to `finishMs`). */
export async function runCounter(
  workload: Workload,
  clients: number,
  stop: Promise<void>,
  finishMs = 30_000,
): Promise<CounterReport> {
  let stopped = false;
  stop.then(() => (stopped = true));
  let succeeded = 0, failed = 0, abandoned = 0;
  let process = 2_000_000;
  const loops = Array.from({ length: clients }, async (_, c) => {
    const clientId = `counter-${c}-${crypto.randomUUID().slice(0, 8)}`;
    let seq = 0;
    let seen: string | null = null; // the counter's value as last seen (null: absent)
    while (!stopped) {
      seq++;
      const next: string = String(seen === null ? 1 : Number(seen) + 1);
      // One increment: one operation, the same (clientId, seq) until its outcome is known.
      const r = await workload.writeUntilKnown(
        process++,
        { f: "cas", key: COUNTER_KEY, expected: seen, value: next },
        clientId,
        seq,
        performance.now() + finishMs,
      );
      if (r.kind !== "ok") {
        if (r.kind === "info") abandoned++;
        return;
      }
      if (r.cas?.succeeded) {
        succeeded++;
        seen = next;
      } else {
        failed++;
        seen = r.cas?.current || null;
      }
    }
  });
  await Promise.all(loops);
  return { clients, succeeded, failed, abandoned, history: workload.history };
}

/** A workload of its own (own history) for the counter, over the same cluster. */
export function counterWorkload(source: ConstructorParameters<typeof Workload>[0]): Workload {
  return new Workload(source, new History(), { opTimeoutMs: 2000, attemptTimeoutMs: 500 });
}
