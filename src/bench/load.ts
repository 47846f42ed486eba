/**
 * The closed-loop load generator: `concurrency` workers, each issuing one operation at a time against a
 * {@linkcode LoadTarget} until a duration or an operation count is reached (and never past a time limit).
 * Latency of each successful operation goes into a per-kind {@linkcode Histogram}; failures are counted by a
 * short error kind.
 *
 * @module
 */
import { Histogram, type HistogramJson } from "./histogram.ts";

export type OpKind = "GET" | "SET" | "DEL" | "CAS";
export const OP_KINDS: readonly OpKind[] = ["GET", "SET", "DEL", "CAS"];

function perKind<T>(make: (k: OpKind) => T): Record<OpKind, T> {
  return { GET: make("GET"), SET: make("SET"), DEL: make("DEL"), CAS: make("CAS") };
}

/** What a load target does; a rejected promise is an error, its kind from {@linkcode errorKind}. */
export interface LoadTarget {
  /** Connect, find the leader, warm the channels. Called once before the clock starts. */
  prepare(): Promise<void>;
  get(key: string, worker: number): Promise<void>;
  set(key: string, value: string, worker: number): Promise<void>;
  /** DELETE (issue 15); a target without it cannot run a workload with `deleteRatio`. */
  delete?(key: string, worker: number): Promise<void>;
  /**
   * Compare-and-set from the value this worker last saw for `key` (or its absence) to `value`; resolves
   * whether or not the comparison held (both are completed operations).
   */
  cas?(key: string, value: string, worker: number): Promise<void>;
  /** Operations that succeeded only after following a redirect (0 if the target never redirects). */
  readonly redirects: number;
  close(): Promise<void> | void;
}

/** An operation that failed with a known, short reason (`notLeader`, `UNAVAILABLE`, …). */
export class OpError extends Error {
  override readonly name = "OpError";
  readonly kind: string;
  constructor(kind: string, message = kind) {
    super(message);
    this.kind = kind;
  }
}

/** The short kind of an operation's failure, used as a key of `errors`. */
export function errorKind(e: unknown): string {
  if (e instanceof OpError) return e.kind;
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" || typeof code === "number") return `${e.name}:${code}`;
    return e.name || "Error";
  }
  return typeof e;
}

export interface LoadSpec {
  /** Workers, each with one operation in flight. */
  readonly concurrency: number;
  /** Stop after this long (ms); ignored when `ops` is set. */
  readonly durationMs?: number;
  /** Stop after exactly this many operations (issued, so completed = ops). */
  readonly ops?: number;
  /** Hard bound on the run (ms), whatever `ops` says. */
  readonly timeLimitMs: number;
  /** Fraction of GETs, 0..1. */
  readonly readRatio: number;
  /** Fractions of DELETEs and compare-and-sets, 0..1 (default 0); the rest of the operations are SETs. */
  readonly deleteRatio?: number;
  readonly casRatio?: number;
  /** Key space: `key0` … `key<keys-1>`. */
  readonly keys: number;
  /** Bytes per SET value (ASCII). */
  readonly valueSize: number;
  /** Offset added to worker numbers (so the workers of several processes differ). */
  readonly workerBase?: number;
}

/** Counters so far (for a progress line). */
export interface Progress {
  readonly elapsedMs: number;
  readonly ops: number;
  readonly errors: number;
}

export interface LoadResult {
  readonly elapsedMs: number;
  readonly histograms: Record<OpKind, Histogram>;
  /** Failures per error kind, per operation kind. */
  readonly errors: Record<OpKind, Map<string, number>>;
  readonly redirects: number;
  /** True when the time limit cut an `ops` run short. */
  readonly timedOut: boolean;
}

/** The serializable form of a {@linkcode LoadResult} (what child processes send their parent). */
export interface LoadResultJson {
  readonly elapsedMs: number;
  readonly histograms: Record<OpKind, HistogramJson>;
  readonly errors: Record<OpKind, Record<string, number>>;
  readonly redirects: number;
  readonly timedOut: boolean;
}

export function resultToJson(r: LoadResult): LoadResultJson {
  return {
    elapsedMs: r.elapsedMs,
    histograms: perKind((k) => r.histograms[k].toJSON()),
    errors: perKind((k) => Object.fromEntries(r.errors[k])),
    redirects: r.redirects,
    timedOut: r.timedOut,
  };
}

export function resultFromJson(j: LoadResultJson): LoadResult {
  return {
    elapsedMs: j.elapsedMs,
    // A kind missing from the JSON (an older child) had no operations.
    histograms: perKind((k) => j.histograms[k] ? Histogram.fromJSON(j.histograms[k]) : new Histogram()),
    errors: perKind((k) => new Map(Object.entries(j.errors[k] ?? {}))),
    redirects: j.redirects,
    timedOut: j.timedOut,
  };
}

/** Merges the results of processes that ran at the same time: counts add up, elapsed is the longest. */
export function mergeResults(results: readonly LoadResult[]): LoadResult {
  const out: LoadResult = {
    elapsedMs: 0,
    histograms: perKind(() => new Histogram()),
    errors: perKind(() => new Map()),
    redirects: 0,
    timedOut: false,
  };
  let elapsed = 0, redirects = 0, timedOut = false;
  for (const r of results) {
    elapsed = Math.max(elapsed, r.elapsedMs);
    redirects += r.redirects;
    timedOut ||= r.timedOut;
    for (const k of OP_KINDS) {
      out.histograms[k].merge(r.histograms[k]);
      for (const [kind, n] of r.errors[k]) out.errors[k].set(kind, (out.errors[k].get(kind) ?? 0) + n);
    }
  }
  return { ...out, elapsedMs: elapsed, redirects, timedOut };
}

export function errorCount(r: LoadResult, kind?: OpKind): number {
  let n = 0;
  for (const k of kind ? [kind] : OP_KINDS) for (const v of r.errors[k].values()) n += v;
  return n;
}

/** A printable ASCII value of `size` bytes, different per worker. */
export function makeValue(size: number, worker: number): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  let s = "";
  let x = (worker * 2654435761) >>> 0;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    s += alphabet[(x >>> 16) % alphabet.length];
  }
  return s;
}

export interface RunOptions {
  /** Called about every `progressEveryMs` while the run lasts. */
  readonly onProgress?: (p: Progress) => void;
  readonly progressEveryMs?: number;
  /** Stops the run early (workers finish their operation in flight). */
  readonly signal?: AbortSignal;
  /** [0, 1) source for op and key choice (default Math.random). */
  readonly random?: () => number;
}

/** Runs the closed loop. `target.prepare()` must already have been called. */
export async function runLoad(
  spec: LoadSpec,
  target: LoadTarget,
  opts: RunOptions = {},
): Promise<LoadResult> {
  if (!(spec.concurrency >= 1)) throw new RangeError(`concurrency must be ≥ 1, got ${spec.concurrency}`);
  if (spec.ops === undefined && !(spec.durationMs! > 0)) {
    throw new RangeError("give a duration or an op count");
  }
  const random = opts.random ?? Math.random;
  const deleteRatio = spec.deleteRatio ?? 0, casRatio = spec.casRatio ?? 0;
  if (spec.readRatio + deleteRatio + casRatio > 1 + 1e-9) {
    throw new RangeError("the GET, DELETE and CAS ratios add up to more than 1");
  }
  if (deleteRatio > 0 && !target.delete) throw new RangeError("this target has no DELETE");
  if (casRatio > 0 && !target.cas) throw new RangeError("this target has no CAS");
  const histograms: Record<OpKind, Histogram> = perKind(() => new Histogram());
  const errors: Record<OpKind, Map<string, number>> = perKind(() => new Map());
  const redirects0 = target.redirects;
  const base = spec.workerBase ?? 0;
  const t0 = performance.now();
  const limitAt = t0 + spec.timeLimitMs;
  const endAt = spec.ops === undefined ? Math.min(t0 + spec.durationMs!, limitAt) : limitAt;
  let issued = 0, done = 0, failed = 0;
  let timedOut = false;
  const stop = () => {
    if (opts.signal?.aborted) return true;
    if (spec.ops !== undefined && issued >= spec.ops) return true;
    if (performance.now() >= endAt) {
      if (spec.ops !== undefined) timedOut = true;
      return true;
    }
    return false;
  };
  // Each key's name is made when it is drawn: an array of `spec.keys` names (1,000,000 in the snapshot pause
  // benchmark) was promoted by the client's first collections, which stalled the client ~90 ms at a time while
  // its operations were being timed (docs/benchmarks.md, "The 401 ms wait").
  const keyCount = spec.keys;

  const worker = async (w: number) => {
    const id = base + w;
    const value = makeValue(spec.valueSize, id);
    while (!stop()) {
      issued++;
      const r = random();
      const kind: OpKind = r < spec.readRatio
        ? "GET"
        : r < spec.readRatio + deleteRatio
        ? "DEL"
        : r < spec.readRatio + deleteRatio + casRatio
        ? "CAS"
        : "SET";
      const key = `key${Math.floor(random() * keyCount)}`;
      const a = performance.now();
      try {
        if (kind === "GET") await target.get(key, id);
        else if (kind === "SET") await target.set(key, value, id);
        else if (kind === "DEL") await target.delete!(key, id);
        else await target.cas!(key, `${value.slice(0, Math.max(0, value.length - 12))}${id}:${issued}`, id);
        histograms[kind].record((performance.now() - a) * 1000);
      } catch (e) {
        const k = errorKind(e);
        errors[kind].set(k, (errors[kind].get(k) ?? 0) + 1);
        failed++;
      }
      done++;
    }
  };

  let timer: ReturnType<typeof setTimeout> | undefined;
  if (opts.onProgress) {
    const every = opts.progressEveryMs ?? 1000;
    timer = setInterval(() => {
      opts.onProgress!({ elapsedMs: performance.now() - t0, ops: done, errors: failed });
    }, every);
  }
  try {
    await Promise.all(Array.from({ length: spec.concurrency }, (_, w) => worker(w)));
  } finally {
    if (timer !== undefined) clearInterval(timer);
  }
  return {
    elapsedMs: performance.now() - t0,
    histograms,
    errors,
    redirects: target.redirects - redirects0,
    timedOut,
  };
}
