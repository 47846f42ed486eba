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
 * ("" for an absent key). DELETE and compare-and-set (issue 15):
 *
 * ```json
 * {"process": 4, "type": "invoke", "f": "delete", "key": "k2", "value": null, "time": 1240.1}
 * {"process": 5, "type": "invoke", "f": "cas", "key": "k1", "value": ["3-17", "5-20"], "time": 1241.0}
 * {"process": 5, "type": "fail", "f": "cas", "key": "k1", "value": ["3-17", "5-20"], "current": "4-19", ...}
 * ```
 *
 * A CAS's value is `[expected, new]` (expected `null`: the key must be absent). It completes `ok` when the
 * comparison held, and `fail` with `current` (the value it found, "" when absent) when it did not: a failed
 * CAS had no effect but is a read. A `fail` without `current` is a refusal (nothing learnt). `time` is milliseconds on the harness's one monotonic clock (`performance.now()`).
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
export type Fn = "get" | "set" | "delete" | "cas";

/** What an event's `value` holds: SET/GET a string (or null), CAS `[expected or null, new]`. */
export type EventValue = string | null | readonly [string | null, string];

export interface HistoryEvent {
  readonly process: number;
  readonly type: EventType;
  readonly f: Fn;
  readonly key: string;
  /**
   * SET: the value written (invoke and completion); GET: the value read (ok only), null otherwise; DELETE:
   * null; CAS: `[expected, new]` (expected null: absent).
   */
  readonly value: EventValue;
  /** A CAS that failed its comparison: the value it found ("" when absent). */
  readonly current?: string;
  readonly time: number;
  /** The node that answered (completions). */
  readonly node?: number;
  /** Why a `fail` or `info` (one line). */
  readonly error?: string;
  /**
   * GET only, issue 16: the read mode when not the leader's lease read. `follower` (ReadIndex) reads are
   * linearizable and checked with the rest; `stale` reads carry their bound and are checked by
   * `checkStaleReads` instead (they are not linearizable by design).
   */
  readonly readMode?: "follower" | "stale";
  readonly maxStalenessMs?: number;
}

/** An append-only history; `toJsonl` writes it out. */
export class History {
  readonly events: HistoryEvent[] = [];

  invoke(
    process: number,
    f: Fn,
    key: string,
    value: EventValue,
    time = performance.now(),
    extra: { readMode?: "follower" | "stale"; maxStalenessMs?: number } = {},
  ): void {
    this.events.push({ process, type: "invoke", f, key, value, time, ...extra });
  }

  complete(
    process: number,
    type: Exclude<EventType, "invoke">,
    f: Fn,
    key: string,
    value: EventValue,
    extra: { node?: number; error?: string; current?: string } = {},
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
  readonly deletes: number;
  readonly cases: number;
  /** CASes whose comparison held / failed (a failed one completes `fail` with `current`). */
  readonly casSucceeded: number;
  readonly casFailed: number;
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
  let ok = 0, fail = 0, info = 0, gets = 0, sets = 0, deletes = 0, cases = 0, casSucceeded = 0, casFailed = 0;
  const push = (inv: HistoryEvent, type: Exclude<EventType, "invoke">, done?: HistoryEvent) => {
    if (type === "ok") ok++;
    else if (type === "fail") fail++;
    else info++;
    if (inv.f === "get") gets++;
    else if (inv.f === "set") sets++;
    else if (inv.f === "delete") deletes++;
    else cases++;
    const base = {
      id: ops.length,
      client: inv.process,
      key: inv.key,
      invokeMs: inv.time,
      returnMs: type === "info" ? Infinity : done!.time,
    };
    if (inv.f === "cas") {
      const [expected, value] = Array.isArray(inv.value) ? inv.value : [null, ""];
      // A failed comparison is a completed read of `current`.
      const revealed = type === "fail" && typeof done?.current === "string";
      if (type === "ok") casSucceeded++;
      if (revealed) casFailed++;
      ops.push({
        ...base,
        kind: "cas",
        value,
        expected: expected ?? "",
        outcome: revealed ? "ok" : type,
        ...(type === "ok"
          ? { succeeded: true }
          : revealed
          ? { succeeded: false, current: done!.current }
          : {}),
      });
      return;
    }
    ops.push({
      ...base,
      kind: inv.f,
      value: inv.f === "set"
        ? (inv.value as string | null ?? "")
        : inv.f === "get" && type === "ok"
        ? (done?.value as string | null ?? "")
        : "",
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
    if (
      inv.f !== e.f || inv.key !== e.key || (inv.f === "set" && inv.value !== e.value) ||
      (inv.f === "cas" && JSON.stringify(inv.value) !== JSON.stringify(e.value))
    ) {
      problems.push(`process ${e.process}: completion at ${e.time} does not match its invoke at ${inv.time}`);
    }
    if (e.type === "ok" && inv.f === "get" && typeof e.value !== "string") {
      problems.push(`process ${e.process}: get ok at ${e.time} carries no value`);
    }
    push(inv, e.type, e);
  }
  for (const inv of open.values()) push(inv, "info");
  return { ops, counts: { ok, fail, info, gets, sets, deletes, cases, casSucceeded, casFailed }, problems };
}

/** Operations that constrain the model: completed ones and SETs of unknown outcome. */
export function checkedCount(ops: readonly HistoryOp[]): number {
  return ops.filter((o) => o.outcome === "ok" || (o.outcome === "info" && o.kind !== "get")).length;
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
  const { ops, counts, problems } = toOperations(withoutStaleReads(events));
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

/** The history without its bounded-staleness reads (their invokes and completions), which are not linearizable. */
export function withoutStaleReads(events: readonly HistoryEvent[]): HistoryEvent[] {
  const stale = new Set<number>(); // processes with a stale read open
  const out: HistoryEvent[] = [];
  for (const e of events) {
    if (e.type === "invoke") {
      if (e.readMode === "stale") {
        stale.add(e.process);
        continue;
      }
      stale.delete(e.process);
    } else if (stale.has(e.process)) {
      stale.delete(e.process);
      continue;
    }
    out.push(e);
  }
  return out;
}

export interface StaleVerdict {
  /** Stale reads that completed ok and were checked. */
  readonly checked: number;
  /** One line per read whose value was not current at any instant of [invoke − bound, complete]. */
  readonly violations: readonly string[];
}

/**
 * Bounded-staleness reads (issue 16): a stale GET with bound B invoked at `inv` and completed at `done` may
 * return any value that was current at some instant of [inv − B, done]. Checked per read against the writes of
 * its key (SET, DELETE as "", successful CAS; the initial state is "" before everything): the read is wrong
 * when no write of its value can have been current then, i.e. every write `w` of that value either started
 * after `done`, or was certainly overwritten before `inv − B`: another write `w2` invoked after `w` completed
 * (so certainly after it) and acknowledged before `inv − B`. Writes of unknown outcome (`info`) may take
 * effect at any later time, so they are never "certainly overwritten" by, nor certainly overwrite, anything.
 */
export function checkStaleReads(events: readonly HistoryEvent[]): StaleVerdict {
  interface Write {
    readonly value: string;
    readonly invoke: number;
    readonly done: number; // Infinity: unknown outcome
    readonly ok: boolean;
  }
  const writes = new Map<string, Write[]>();
  const reads: { key: string; value: string; invoke: number; done: number; bound: number; node?: number }[] =
    [];
  const open = new Map<number, HistoryEvent>();
  for (const e of events) {
    if (e.type === "invoke") {
      open.set(e.process, e);
      continue;
    }
    const inv = open.get(e.process);
    if (!inv) continue;
    open.delete(e.process);
    if (inv.f === "get") {
      if (inv.readMode === "stale" && e.type === "ok") {
        reads.push({
          key: inv.key,
          value: typeof e.value === "string" ? e.value : "",
          invoke: inv.time,
          done: e.time,
          bound: inv.maxStalenessMs ?? 0,
          node: e.node,
        });
      }
      continue;
    }
    if (e.type === "fail") continue; // no effect (a refusal, or a CAS whose comparison failed)
    const value = inv.f === "set"
      ? (inv.value as string)
      : inv.f === "delete"
      ? ""
      : (inv.value as readonly [string | null, string])[1];
    const list = writes.get(inv.key) ?? [];
    list.push({ value, invoke: inv.time, done: e.type === "ok" ? e.time : Infinity, ok: e.type === "ok" });
    writes.set(inv.key, list);
  }
  for (const inv of open.values()) {
    if (inv.f === "get") continue;
    const value = inv.f === "set"
      ? (inv.value as string)
      : inv.f === "delete"
      ? ""
      : (inv.value as [string | null, string])[1];
    const list = writes.get(inv.key) ?? [];
    list.push({ value, invoke: inv.time, done: Infinity, ok: false });
    writes.set(inv.key, list);
  }
  const violations: string[] = [];
  for (const r of reads) {
    const ws = writes.get(r.key) ?? [];
    const from = r.invoke - r.bound;
    const overwrittenBefore = (w: { done: number }) =>
      ws.some((w2) => w2.ok && w2.invoke > w.done && w2.done < from);
    const initial = { value: "", invoke: -Infinity, done: -Infinity };
    const candidates = [initial, ...ws].filter((w) => w.value === r.value && w.invoke <= r.done);
    if (candidates.some((w) => !overwrittenBefore(w))) continue;
    const newest = ws.filter((w) => w.ok && w.done < from).sort((a, b) => b.done - a.done)[0];
    violations.push(
      `stale GET ${r.key} → ${JSON.stringify(r.value)} [${r.invoke.toFixed(1)}, ${r.done.toFixed(1)}] ` +
        `bound ${r.bound} ms at node ${r.node ?? "?"}: no write of that value can have been current after ` +
        `${from.toFixed(1)}` +
        (newest ? ` (${JSON.stringify(newest.value)} was acknowledged at ${newest.done.toFixed(1)})` : ""),
    );
  }
  return { checked: reads.length, violations };
}
