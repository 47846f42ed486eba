/**
 * `raftkv bench`: a closed-loop load generator against a running cluster.
 *
 * ```text
 * raftkv bench [--config F | --node host:port …] [--concurrency 16] [--duration 10s | --ops N]
 *              [--read-ratio 0.5] [--keys 1000] [--value-size 100] [--mode leader|any] [--json] [--processes P]
 * ```
 * Each of `concurrency` workers has one operation in flight (a GET with probability `read-ratio`, else a SET,
 * on a uniformly chosen key). `--mode leader` sends everything to the leader over one gRPC channel per process;
 * `--mode any` goes round-robin over the nodes, and a follower's refusal counts as an error unless its leader
 * hint is followed successfully. `--processes P` starts P child processes of this same program, each with its
 * share of the workers, starts them together and merges their latency histograms.
 *
 * Prints a table (ops/s and p50/p90/p99/max latency per operation, errors) or, with `--json`, one JSON object
 * ({@linkcode BenchSummary}). A progress line goes to stderr while it runs when stderr is a terminal.
 * Exit code 0 when every operation succeeded, 1 when some failed, 2 for bad usage.
 *
 * @module
 */
import { Command, InvalidArgumentError, Option } from "@commander-js/extra-typings";
import { runChildren, serveAsChild } from "../bench/fork.ts";
import { runLoad } from "../bench/load.ts";
import {
  type BenchOptions,
  BenchUsageError,
  childArgs,
  parseRatio,
  type RawBenchOptions,
  resolveBenchOptions,
} from "../bench/options.ts";
import { RaftkvTarget } from "../bench/raftkv_target.ts";
import { type BenchSummary, formatSummary, progressLine, summarize } from "../bench/report.ts";
import {
  CliError,
  collectAddress,
  durationOption,
  EXIT_FAILURE,
  EXIT_USAGE,
  nonNegativeIntOption,
  positiveIntOption,
  resolveCluster,
} from "./common.ts";
import { selfCommand } from "./self_command.ts";

function ratioOption(value: string): number {
  try {
    return parseRatio(value);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

/** The command with its options; `action` receives the checked options (the default runs the benchmark). */
export function benchCommand(action: (o: BenchOptions) => Promise<void> = runBench) {
  return new Command("bench")
    .description("closed-loop load generator: ops/s and latency percentiles of GET and SET")
    .option("--config <file>", "cluster config (default: $RAFTKV_CONFIG or ./cluster.json)")
    .addOption(
      new Option("--node <host:port>", "a node address instead of a config file (repeatable)").argParser(
        collectAddress,
      ),
    )
    .option("-c, --concurrency <n>", "operations in flight (one per worker)", positiveIntOption, 16)
    .addOption(
      new Option("-d, --duration <duration>", "run this long (default 10s)").argParser(durationOption),
    )
    .addOption(
      new Option("-n, --ops <n>", "run exactly this many operations instead").argParser(positiveIntOption),
    )
    .option("--read-ratio <r>", "fraction of GETs, 0..1", ratioOption, 0.5)
    .option(
      "--delete-ratio <r>",
      "fraction of DELETEs, 0..1 (the rest after GET, DELETE, CAS: SET)",
      ratioOption,
    )
    .option("--cas-ratio <r>", "fraction of compare-and-sets (from the value last seen), 0..1", ratioOption)
    .option("--keys <n>", "size of the key space (key0 … key<n-1>)", positiveIntOption, 1000)
    .option("--value-size <bytes>", "bytes per SET value", nonNegativeIntOption, 100)
    .addOption(
      new Option(
        "--mode <mode>",
        "leader: all to the leader; any: round-robin over the nodes; follower: GETs round-robin as " +
          "follower (ReadIndex) reads, writes to the leader; stale: GETs round-robin within --max-staleness",
      )
        .choices(["leader", "any", "follower", "stale"] as const)
        .default("leader" as const),
    )
    .addOption(
      new Option("--max-staleness <duration>", "with --mode stale: the GETs' bound (default 1s)").argParser(
        durationOption,
      ),
    )
    .option("--json", "print the summary as one JSON object")
    .option(
      "-p, --processes <n>",
      "load-generating processes (their histograms are merged)",
      positiveIntOption,
      1,
    )
    .addOption(
      new Option("--timeout <duration>", "deadline of one operation")
        .default(5000, "5s")
        .argParser(durationOption),
    )
    .addOption(
      new Option("--time-limit <duration>", "hard bound on the whole run (default: 5m, or duration + 1m)")
        .argParser(durationOption),
    )
    .addOption(new Option("--child").hideHelp())
    .addOption(new Option("--worker-base <n>").argParser(nonNegativeIntOption).hideHelp())
    .action(async (raw) => {
      let o: BenchOptions;
      try {
        o = resolveBenchOptions(raw as RawBenchOptions);
      } catch (e) {
        if (e instanceof BenchUsageError) throw new CliError(e.message, EXIT_USAGE);
        throw e;
      }
      await action(o);
    });
}

/** Parses `bench` arguments into checked options without running anything (for tests and tools). */
export async function parseBenchArgs(args: readonly string[]): Promise<BenchOptions> {
  let out: BenchOptions | undefined;
  const cmd = benchCommand((o) => {
    out = o;
    return Promise.resolve();
  }).exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  await cmd.parseAsync([...args], { from: "user" });
  return out!;
}

function showProgress(): boolean {
  try {
    return Deno.stderr.isTerminal();
  } catch {
    return false;
  }
}

const encoder = new TextEncoder();

/** Runs the benchmark described by `o` and prints its summary. */
export async function runBench(o: BenchOptions): Promise<void> {
  const cluster = await resolveCluster({ config: o.config, node: o.node ? [...o.node] : undefined });
  const spec = {
    concurrency: o.concurrency,
    durationMs: o.durationMs,
    ops: o.ops,
    timeLimitMs: o.timeLimitMs,
    readRatio: o.readRatio,
    deleteRatio: o.deleteRatio,
    casRatio: o.casRatio,
    keys: o.keys,
    valueSize: o.valueSize,
    workerBase: o.workerBase,
  };
  if (o.child) {
    const target = new RaftkvTarget({
      nodes: cluster.nodes,
      mode: o.mode,
      maxStalenessMs: o.maxStalenessMs,
      deadlineMs: o.timeoutMs,
      tls: cluster.tls,
    });
    const code = await serveAsChild(target, spec, () => target.leaderAddress ?? "");
    if (code !== 0) throw new CliError("", code);
    return;
  }

  const tty = showProgress();
  const totalMs = o.durationMs;
  const onProgress = tty
    ? (p: { elapsedMs: number; ops: number; errors: number }) =>
      Deno.stderr.writeSync(encoder.encode(`\r\x1b[K${progressLine(p, totalMs)}`))
    : undefined;
  let summary: BenchSummary;
  const ctx = {
    mode: o.mode,
    concurrency: o.concurrency,
    processes: o.processes,
    readRatio: o.readRatio,
    deleteRatio: o.deleteRatio,
    casRatio: o.casRatio,
    keys: o.keys,
    valueSize: o.valueSize,
  };
  try {
    if (o.processes === 1) {
      const target = new RaftkvTarget({
        nodes: cluster.nodes,
        mode: o.mode,
        maxStalenessMs: o.maxStalenessMs,
        deadlineMs: o.timeoutMs,
        tls: cluster.tls,
      });
      try {
        await target.prepare();
        const result = await runLoad(spec, target, { onProgress, progressEveryMs: 500 });
        summary = summarize(result, {
          ...ctx,
          target: o.mode === "leader" ? target.leaderAddress ?? "?" : `${cluster.nodes.length} nodes in turn`,
        });
      } catch (e) {
        if (e instanceof Error && e.name === "OpError") throw new CliError(e.message, EXIT_FAILURE);
        throw e;
      } finally {
        target.close();
      }
    } else {
      const self = selfCommand();
      const commands = Array.from({ length: o.processes }, (_, i) => ({
        cmd: self.cmd,
        args: [...self.args, "bench", ...childArgs(o, i, o.processes, cluster.configPath)],
      }));
      let merged;
      try {
        merged = await runChildren(commands, { onProgress, runTimeoutMs: o.timeLimitMs + 30_000 });
      } catch (e) {
        throw new CliError(e instanceof Error ? e.message : String(e), EXIT_FAILURE);
      }
      const leaders = [...new Set(merged.targets.filter((t) => t))];
      summary = summarize(merged.result, {
        ...ctx,
        target: o.mode === "leader" ? leaders.join(",") || "?" : `${cluster.nodes.length} nodes in turn`,
      });
    }
  } finally {
    if (tty) Deno.stderr.writeSync(encoder.encode("\r\x1b[K"));
  }
  console.log(o.json ? JSON.stringify(summary) : formatSummary(summary));
  if (summary.errors > 0) throw new CliError("", EXIT_FAILURE);
}
