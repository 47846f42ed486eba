/**
 * The client history of a chaos run in the Jepsen convention, one JSON object per line:
 *
 * ```json
 * {"process": 3, "type": "invoke", "f": "set", "key": "k1", "value": "3-17", "time": 1234.567}
 * {"process": 3, "type": "ok", "f": "set", "key": "k1", "value": "3-17", "time": 1236.012, "node": 2}
 * ```
 *
 * `type` is `invoke`, then one of `ok`, `fail` (the operation certainly had no effect) or `info` (outcome
 * unknown: a SET that timed out may or may not have taken effect, later). A GET's `ok` carries the value read
 * ("" for an absent key). `time` is milliseconds on the harness's one monotonic clock (`performance.now()`).
 * A process runs one operation at a time; after an `info` it never runs another (the client moves on
 * under a new process number, as in Jepsen), so a late effect cannot be confused with a later operation.
 *
 * The check reuses the simulator's register checker (`tests/sim/linearizability.ts`, Wing–Gong with Lowe's
 * memoization, unknown SETs returning at +∞).
 *
 * @module
 */
import { checkLinearizable, type HistoryOp, type LinearizabilityResult } from "../sim/linearizability.ts";

export type EventType = "invoke" | "ok" | "fail" | "info";
export type Fn = "get" | "set";

export interface HistoryEvent {
  readonly process: number;
  readonly type: EventType;
  readonly f: Fn;
  readonly key: string;
  /** SET: the value written (invoke and completion); GET: the value read (ok only), null otherwise. */
  readonly value: string | null;
  readonly time: number;
  /** The node that answered (completions). */
  readonly node?: number;
  /** Why a `fail` or `info` (one line). */
  readonly error?: string;
}

/** An append-only history; `toJsonl` writes it out. */
export class History {
  readonly events: HistoryEvent[] = [];

  invoke(process: number, f: Fn, key: string, value: string | null, time = performance.now()): void {
    this.events.push({ process, type: "invoke", f, key, value, time });
  }

  complete(
    process: number,
    type: Exclude<EventType, "invoke">,
    f: Fn,
    key: string,
    value: string | null,
    extra: { node?: number; error?: string } = {},
    time = performance.now(),
  ): void {
    const e: HistoryEvent = { process, type, f, key, value, time, ...extra };
    this.events.push(e);
  }

  toJsonl(): string {
    return this.events.map((e) => JSON.stringify(e)).join("\n") + (this.events.length > 0 ? "\n" : "");
  }
}

export function parseJsonl(text: string): HistoryEvent[] {
  return text.split("\n").filter((l) => l.trim() !== "").map((l, i) => {
    try {
      return JSON.parse(l) as HistoryEvent;
    } catch (e) {
      throw new Error(`history line ${i + 1}: ${(e as Error).message}`);
    }
  });
}

export interface OpCounts {
  readonly ok: number;
  readonly fail: number;
  readonly info: number;
  readonly gets: number;
  readonly sets: number;
}

/**
 * Pairs each invoke with its completion (per process) into the checker's operations. An invoke with no
 * completion counts as `info`. Malformed histories (a completion without invoke, two invokes in a row, a
 * completion of another key or function) are reported in `problems`.
 */
export function toOperations(events: readonly HistoryEvent[]): {
  ops: HistoryOp[];
  counts: OpCounts;
  problems: string[];
} {
  const open = new Map<number, HistoryEvent>();
  const ops: HistoryOp[] = [];
  const problems: string[] = [];
  let ok = 0, fail = 0, info = 0, gets = 0, sets = 0;
  const push = (inv: HistoryEvent, type: Exclude<EventType, "invoke">, done?: HistoryEvent) => {
    if (type === "ok") ok++;
    else if (type === "fail") fail++;
    else info++;
    if (inv.f === "get") gets++;
    else sets++;
    ops.push({
      id: ops.length,
      client: inv.process,
      kind: inv.f,
      key: inv.key,
      value: inv.f === "set" ? (inv.value ?? "") : (type === "ok" ? (done?.value ?? "") : ""),
      invokeMs: inv.time,
      returnMs: type === "info" ? Infinity : done!.time,
      outcome: type,
    });
  };
  for (const e of events) {
    if (e.type === "invoke") {
      const prev = open.get(e.process);
      if (prev) {
        problems.push(
          `process ${e.process} invoked again at ${e.time} before completing its call at ${prev.time}`,
        );
        push(prev, "info");
      }
      open.set(e.process, e);
      continue;
    }
    const inv = open.get(e.process);
    if (!inv) {
      problems.push(`process ${e.process}: ${e.type} at ${e.time} without an invoke`);
      continue;
    }
    open.delete(e.process);
    if (inv.f !== e.f || inv.key !== e.key || (inv.f === "set" && inv.value !== e.value)) {
      problems.push(`process ${e.process}: completion at ${e.time} does not match its invoke at ${inv.time}`);
    }
    if (e.type === "ok" && inv.f === "get" && typeof e.value !== "string") {
      problems.push(`process ${e.process}: get ok at ${e.time} carries no value`);
    }
    push(inv, e.type, e);
  }
  for (const inv of open.values()) push(inv, "info");
  return { ops, counts: { ok, fail, info, gets, sets }, problems };
}

/** Operations that constrain the model: completed ones and SETs of unknown outcome. */
export function checkedCount(ops: readonly HistoryOp[]): number {
  return ops.filter((o) => o.outcome === "ok" || (o.outcome === "info" && o.kind === "set")).length;
}

export interface HistoryVerdict {
  readonly result: LinearizabilityResult;
  readonly counts: OpCounts;
  readonly checked: number;
  readonly keys: number;
  readonly problems: readonly string[];
  readonly ms: number;
}

export function checkHistory(events: readonly HistoryEvent[], maxSteps = 5_000_000): HistoryVerdict {
  const t0 = performance.now();
  const { ops, counts, problems } = toOperations(events);
  const result = checkLinearizable(ops, { maxSteps });
  return {
    result,
    counts,
    checked: checkedCount(ops),
    keys: new Set(ops.map((o) => o.key)).size,
    problems,
    ms: performance.now() - t0,
  };
}
