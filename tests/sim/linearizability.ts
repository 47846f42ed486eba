/**
 * Linearizability of a client history of registers (one per key): SET writes a value, GET returns the
 * value ("" when the key is missing), DELETE makes the key missing, CAS writes its new value iff the
 * register holds the expected one ("" expects the key to be missing) and otherwise reveals the value it saw
 * (a failed CAS is a read). The model takes "" for a missing key, so histories must not write "". A Wing–Gong search with Lowe's memoization (as in Porcupine): walk
 * the calls in time order, tentatively linearize one whose effect fits the current state, and backtrack
 * when a call's return is reached before the call was linearized; a cache of (set of linearized
 * operations, state) prunes states already explored.
 *
 * Operations whose outcome is unknown ("info": the client gave up, the write may or may not have taken
 * effect) return at +∞: they may be linearized anywhere after their call, or never. Failed operations and
 * unknown reads had no effect and are dropped. Histories are split by key (registers compose).
 *
 * @module
 */
import { Prng } from "./prng.ts";

export type OpKind = "get" | "set" | "delete" | "cas";

/** One client operation of the history. */
export interface HistoryOp {
  readonly id: number;
  readonly client: number;
  readonly kind: OpKind;
  readonly key: string;
  /**
   * SET and CAS: the value written; GET: the value read ("" when absent). Unused for a GET that is not ok and
   * for a DELETE.
   */
  readonly value: string;
  /** CAS: the value expected ("" = the key must be absent). */
  readonly expected?: string;
  /** CAS that completed ok: whether the comparison held. */
  readonly succeeded?: boolean;
  /** CAS that completed ok without succeeding: the value it found ("" = absent). */
  readonly current?: string;
  readonly invokeMs: number;
  /** When the client saw the answer; Infinity for "info". */
  readonly returnMs: number;
  readonly outcome: "ok" | "fail" | "info";
}

export type LinearizabilityResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly key: string; readonly explanation: string }
  | { readonly ok: "unknown"; readonly key: string; readonly explanation: string };

export interface CheckOptions {
  /** Search steps per key before giving up with "unknown". */
  readonly maxSteps?: number;
}

interface Node {
  op: HistoryOp;
  bit: number;
  isCall: boolean;
  /** The call's return node (or the return's call node). */
  match: Node;
  prev: Node;
  next: Node | null;
}

export function describeOp(op: HistoryOp): string {
  const ret = op.returnMs === Infinity ? "∞" : op.returnMs.toFixed(3);
  const what = op.kind === "set"
    ? `SET ${op.key}=${JSON.stringify(op.value)}`
    : op.kind === "delete"
    ? `DEL ${op.key}`
    : op.kind === "cas"
    ? `CAS ${op.key} ${JSON.stringify(op.expected)}→${JSON.stringify(op.value)}` +
      (op.outcome !== "ok" ? "" : op.succeeded ? " held" : ` failed, saw ${JSON.stringify(op.current)}`)
    : `GET ${op.key} → ${JSON.stringify(op.value)}`;
  return `c${op.client} ${what} [${op.invokeMs.toFixed(3)}, ${ret}] ${op.outcome}`;
}

/** Checks every key's register history. */
export function checkLinearizable(
  history: readonly HistoryOp[],
  options: CheckOptions = {},
): LinearizabilityResult {
  const byKey = new Map<string, HistoryOp[]>();
  for (const op of history) {
    const list = byKey.get(op.key);
    if (list) list.push(op);
    else byKey.set(op.key, [op]);
  }
  let unknown: LinearizabilityResult | undefined;
  for (const key of [...byKey.keys()].sort()) {
    const r = checkRegister(key, byKey.get(key)!, options);
    if (r.ok === false) return r;
    if (r.ok === "unknown") unknown ??= r;
  }
  return unknown ?? { ok: true };
}

/** Checks the history of one register (all ops on `key`). */
export function checkRegister(
  key: string,
  history: readonly HistoryOp[],
  options: CheckOptions = {},
): LinearizabilityResult {
  const maxSteps = options.maxSteps ?? 2_000_000;
  // Values read by successful GETs: an unknown SET nobody read can be dropped (if some linearization used
  // it, its value was overwritten before any read, so the same order without it is a linearization too).
  // A CAS's expected value counts as observed too (an unknown CAS may depend on it).
  const observed = new Set<string>();
  for (const op of history) {
    if (op.kind === "get" && op.outcome === "ok") observed.add(op.value);
    if (op.kind === "cas" && op.outcome !== "fail") {
      observed.add(op.expected ?? "");
      if (op.outcome === "ok" && !op.succeeded) observed.add(op.current ?? "");
    }
  }
  const written = new Set<string>();
  for (const op of history) {
    if ((op.kind === "set" || op.kind === "cas") && op.outcome !== "fail") written.add(op.value);
  }
  const ops = history.filter((op) => {
    if (op.outcome === "fail") return false;
    if (op.outcome === "info") {
      return op.kind === "delete" || ((op.kind === "set" || op.kind === "cas") && observed.has(op.value));
    }
    return true;
  });
  for (const op of ops) {
    const seen = op.kind === "get"
      ? op.value
      : op.kind === "cas" && op.outcome === "ok" && !op.succeeded
      ? (op.current ?? "")
      : "";
    if (seen !== "" && !written.has(seen)) {
      return { ok: false, key, explanation: `read a value no SET or CAS wrote: ${describeOp(op)}` };
    }
    if (op.outcome === "ok" && !(op.returnMs >= op.invokeMs)) {
      return { ok: false, key, explanation: `returned before invoked: ${describeOp(op)}` };
    }
  }
  if (ops.length === 0) return { ok: true };

  // The doubly linked list of call and return events, in time order (a call before a return at the same
  // instant: they overlap).
  const events: { t: number; isCall: boolean; op: HistoryOp; bit: number }[] = [];
  ops.forEach((op, bit) => {
    events.push({ t: op.invokeMs, isCall: true, op, bit });
    events.push({ t: op.outcome === "info" ? Infinity : op.returnMs, isCall: false, op, bit });
  });
  events.sort((a, b) => a.t - b.t || (a.isCall === b.isCall ? a.bit - b.bit : a.isCall ? -1 : 1));
  const head = { next: null } as unknown as Node;
  const calls: Node[] = new Array(ops.length);
  const returns: Node[] = new Array(ops.length);
  let prev: Node = head;
  for (const e of events) {
    const node = { op: e.op, bit: e.bit, isCall: e.isCall, prev, next: null } as unknown as Node;
    prev.next = node;
    prev = node;
    (e.isCall ? calls : returns)[e.bit] = node;
  }
  for (let i = 0; i < ops.length; i++) {
    calls[i].match = returns[i];
    returns[i].match = calls[i];
  }

  const lift = (call: Node) => {
    call.prev.next = call.next;
    if (call.next) call.next.prev = call.prev;
    const ret = call.match;
    ret.prev.next = ret.next;
    if (ret.next) ret.next.prev = ret.prev;
  };
  const unlift = (call: Node) => {
    const ret = call.match;
    ret.prev.next = ret;
    if (ret.next) ret.next.prev = ret;
    call.prev.next = call;
    if (call.next) call.next.prev = call;
  };

  // Zobrist hashing of the linearized set, with exact comparison on a hash hit.
  const zRng = new Prng(`zobrist/${key}`);
  const z1 = new Uint32Array(ops.length), z2 = new Uint32Array(ops.length);
  for (let i = 0; i < ops.length; i++) {
    z1[i] = zRng.u32();
    z2[i] = zRng.u32();
  }
  const words = (ops.length + 31) >>> 5;
  const bits = new Uint32Array(words);
  let h1 = 0, h2 = 0;
  const cache = new Map<string, Uint32Array[]>();
  const seen = (state: string): boolean => {
    const k = `${h1 >>> 0}:${h2 >>> 0}:${state}`;
    const list = cache.get(k);
    if (list) {
      for (const b of list) {
        let same = true;
        for (let w = 0; w < words; w++) {
          if (b[w] !== bits[w]) {
            same = false;
            break;
          }
        }
        if (same) return true;
      }
      list.push(bits.slice());
    } else cache.set(k, [bits.slice()]);
    return false;
  };
  const flip = (bit: number) => {
    bits[bit >>> 5] ^= 1 << (bit & 31);
    h1 ^= z1[bit];
    h2 ^= z2[bit];
  };

  const stack: { call: Node; state: string }[] = [];
  let state = "";
  let entry: Node | null = head.next;
  let steps = 0;
  let deepest = -1;
  let stuckAt: HistoryOp | undefined;
  while (entry !== null) {
    if (++steps > maxSteps) {
      return {
        ok: "unknown",
        key,
        explanation: `gave up after ${maxSteps} steps on ${ops.length} operations`,
      };
    }
    if (entry.isCall) {
      const op = entry.op;
      const [fits, next] = step(op, state);
      if (fits) {
        flip(entry.bit);
        if (!seen(next)) {
          stack.push({ call: entry, state });
          state = next;
          lift(entry);
          entry = head.next;
          continue;
        }
        flip(entry.bit);
      }
      entry = entry.next;
    } else {
      // A return reached before its call was linearized. An unknown op's return is at +∞, after every
      // known return: reaching one means every known operation is linearized.
      if (entry.op.outcome === "info") return { ok: true };
      if (stack.length > deepest) {
        deepest = stack.length;
        stuckAt = entry.op;
      }
      const top = stack.pop();
      if (top === undefined) break;
      state = top.state;
      flip(top.call.bit);
      unlift(top.call);
      entry = top.call.next;
    }
  }
  if (head.next === null) return { ok: true };
  const completed = ops.filter((o) => o.outcome === "ok").length;
  return {
    ok: false,
    key,
    explanation:
      `no linearization of ${ops.length} operations on key ${
        JSON.stringify(key)
      } (${completed} completed); ` +
      `the longest linearizable prefix has ${deepest} operations and then cannot place ${
        stuckAt ? describeOp(stuckAt) : "?"
      }` +
      contextOf(stuckAt, ops),
  };
}

/** Whether `op` can take effect in register state `state` ("" = absent), and the state after it. */
function step(op: HistoryOp, state: string): [boolean, string] {
  switch (op.kind) {
    case "get":
      return [op.value === state, state];
    case "set":
      return [true, op.value];
    case "delete":
      return [true, ""];
    case "cas":
      if (op.outcome === "ok" && !op.succeeded) return [state !== op.expected && state === op.current, state];
      return [state === op.expected, op.value];
  }
}

/** The operations around `op` in time, to read a violation without replaying. */
function contextOf(op: HistoryOp | undefined, ops: readonly HistoryOp[]): string {
  if (!op) return "";
  const from = op.invokeMs - 2000, to = op.returnMs;
  const near = ops
    .filter((o) => o !== op && o.invokeMs <= to && (o.returnMs >= from))
    .sort((a, b) => a.invokeMs - b.invokeMs)
    .slice(-12);
  return near.length === 0 ? "" : `; nearby: ${near.map(describeOp).join("; ")}`;
}
