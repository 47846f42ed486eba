/**
 * `raftkv bench` options after parsing: defaults, checks, and the arguments a child process gets.
 *
 * @module
 */
import { BENCH_MODES, type BenchMode } from "./raftkv_target.ts";

export const DEFAULT_DURATION_MS = 10_000;
/** An `--ops` run never lasts longer than this unless `--time-limit` says otherwise. */
export const DEFAULT_TIME_LIMIT_MS = 5 * 60_000;
export const MAX_CONCURRENCY = 10_000;
export const MAX_PROCESSES = 64;

/** What commander hands over (strings already converted by the option parsers). */
export interface RawBenchOptions {
  config?: string;
  node?: string[];
  concurrency: number;
  duration?: number;
  ops?: number;
  readRatio: number;
  deleteRatio?: number;
  casRatio?: number;
  keys: number;
  valueSize: number;
  mode: string;
  maxStaleness?: number;
  json?: boolean;
  processes: number;
  timeout: number;
  timeLimit?: number;
  child?: boolean;
  workerBase?: number;
}

export interface BenchOptions {
  readonly config?: string;
  readonly node?: readonly string[];
  readonly concurrency: number;
  /** Set unless `ops` is. */
  readonly durationMs?: number;
  readonly ops?: number;
  readonly readRatio: number;
  /** Fractions of DELETEs and compare-and-sets (issue 15); SETs are the rest. */
  readonly deleteRatio: number;
  readonly casRatio: number;
  readonly keys: number;
  readonly valueSize: number;
  readonly mode: BenchMode;
  /** `--mode stale`: the GETs' bound, ms. */
  readonly maxStalenessMs?: number;
  readonly json: boolean;
  readonly processes: number;
  /** Deadline of one operation attempt, ms. */
  readonly timeoutMs: number;
  /** Hard bound on the run, ms. */
  readonly timeLimitMs: number;
  /** Internal: this process is a child of `--processes`. */
  readonly child: boolean;
  readonly workerBase: number;
}

/** A usage mistake, reported as `error: …` with exit code 2. */
export class BenchUsageError extends Error {
  override readonly name = "BenchUsageError";
}

/** Applies defaults and checks the combination of options. */
export function resolveBenchOptions(o: RawBenchOptions): BenchOptions {
  if (o.duration !== undefined && o.ops !== undefined) {
    throw new BenchUsageError("use either --duration or --ops, not both");
  }
  if (!(BENCH_MODES as readonly string[]).includes(o.mode)) {
    throw new BenchUsageError(`--mode must be ${BENCH_MODES.join(", ")}, got "${o.mode}"`);
  }
  if (o.maxStaleness !== undefined && o.mode !== "stale") {
    throw new BenchUsageError(`--max-staleness only applies to --mode stale (got --mode ${o.mode})`);
  }
  if (o.maxStaleness !== undefined && !(o.maxStaleness > 0)) {
    throw new BenchUsageError(`--max-staleness must be greater than 0`);
  }
  if (o.concurrency > MAX_CONCURRENCY) {
    throw new BenchUsageError(`--concurrency ${o.concurrency}: at most ${MAX_CONCURRENCY}`);
  }
  if (o.processes > MAX_PROCESSES) {
    throw new BenchUsageError(`--processes ${o.processes}: at most ${MAX_PROCESSES}`);
  }
  if (o.processes > o.concurrency) {
    throw new BenchUsageError(
      `--processes ${o.processes} is more than --concurrency ${o.concurrency} (each process needs a worker)`,
    );
  }
  if (o.ops !== undefined && o.ops < o.processes) {
    throw new BenchUsageError(`--ops ${o.ops} is fewer than --processes ${o.processes}`);
  }
  if (o.readRatio + (o.deleteRatio ?? 0) + (o.casRatio ?? 0) > 1 + 1e-9) {
    throw new BenchUsageError("--read-ratio, --delete-ratio and --cas-ratio add up to more than 1");
  }
  const durationMs = o.ops === undefined ? (o.duration ?? DEFAULT_DURATION_MS) : undefined;
  const timeLimitMs = o.timeLimit ?? Math.max(DEFAULT_TIME_LIMIT_MS, (durationMs ?? 0) + 60_000);
  if (durationMs !== undefined && durationMs > timeLimitMs) {
    throw new BenchUsageError(`--duration is longer than --time-limit`);
  }
  return {
    config: o.config,
    node: o.node,
    concurrency: o.concurrency,
    durationMs,
    ops: o.ops,
    readRatio: o.readRatio,
    deleteRatio: o.deleteRatio ?? 0,
    casRatio: o.casRatio ?? 0,
    keys: o.keys,
    valueSize: o.valueSize,
    mode: o.mode as BenchMode,
    ...(o.maxStaleness !== undefined ? { maxStalenessMs: o.maxStaleness } : {}),
    json: o.json === true,
    processes: o.processes,
    timeoutMs: o.timeout,
    timeLimitMs,
    child: o.child === true,
    workerBase: o.workerBase ?? 0,
  };
}

/** `0.5`, `.9`, `1`: a number in [0, 1]. */
export function parseRatio(value: string): number {
  const n = Number(value.trim());
  if (value.trim() === "" || !Number.isFinite(n) || n < 0 || n > 1) {
    throw new RangeError(`"${value}" is not a number between 0 and 1`);
  }
  return n;
}

/**
 * The arguments (after `bench`) of child `i` of `n`: the cluster as given, its share of the workers and of
 * `--ops`, and `--child`.
 */
export function childArgs(o: BenchOptions, i: number, n: number, configPath?: string): string[] {
  const share = (total: number) => Math.floor(total / n) + (i < total % n ? 1 : 0);
  const before = (total: number) => {
    let s = 0;
    for (let j = 0; j < i; j++) s += Math.floor(total / n) + (j < total % n ? 1 : 0);
    return s;
  };
  const args: string[] = [];
  if (o.node && o.node.length > 0) { for (const a of o.node) args.push("--node", a); }
  else if (configPath) args.push("--config", configPath);
  args.push("--concurrency", String(share(o.concurrency)));
  if (o.ops !== undefined) args.push("--ops", String(share(o.ops)));
  else args.push("--duration", `${o.durationMs}ms`);
  if (o.deleteRatio > 0) args.push("--delete-ratio", String(o.deleteRatio));
  if (o.casRatio > 0) args.push("--cas-ratio", String(o.casRatio));
  args.push(
    "--read-ratio",
    String(o.readRatio),
    "--keys",
    String(o.keys),
    "--value-size",
    String(o.valueSize),
    "--mode",
    o.mode,
    ...(o.maxStalenessMs !== undefined ? ["--max-staleness", `${o.maxStalenessMs}ms`] : []),
    "--timeout",
    `${o.timeoutMs}ms`,
    "--time-limit",
    `${o.timeLimitMs}ms`,
    "--child",
    "--worker-base",
    String(o.workerBase + before(o.concurrency)),
  );
  return args;
}
