/**
 * One load-generating child process for any system the comparison drives (the protocol of `fork.ts`):
 *
 *   deno run -A src/bench/worker.ts --system raftkv|raftkv-unary|etcd|etcd-serializable|echo|echo-stream \
 *     --endpoints a:1,b:2
 *       --concurrency 16 (--duration-ms 5000 | --ops 1000) [--read-ratio 0.5] [--keys 1000] [--value-size 100]
 *       [--worker-base 0] [--mode leader|any]
 *
 * raftkv: the endpoints are the nodes (the leader is found as `raftkv bench` does); etcd: the endpoints the
 * client may use (the comparison gives the leader's only); echo: the echo server, one unary call per operation;
 * echo-stream: the echo server, one message per operation on a single bidirectional stream.
 * raftkv-unary: raftkv with GET/SET as one unary call each instead of frames on the Client stream.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { EchoTarget } from "./echo.ts";
import { EtcdTarget } from "./etcd_target.ts";
import { serveAsChild } from "./fork.ts";
import type { LoadSpec, LoadTarget } from "./load.ts";
import { BENCH_MODES, type BenchMode, RaftkvTarget } from "./raftkv_target.ts";
import { CertificateStore, loadTlsMaterial } from "../security/mod.ts";

export type SystemName = "raftkv" | "raftkv-unary" | "etcd" | "etcd-serializable" | "echo" | "echo-stream";

export interface WorkerArgs {
  readonly system: SystemName;
  readonly endpoints: readonly string[];
  readonly spec: LoadSpec;
  readonly mode: BenchMode;
  readonly deadlineMs: number;
  /** `stale` mode: the GETs' bound, ms. */
  readonly maxStalenessMs?: number;
}

/** The command-line arguments of a worker (after the script path). */
export function workerArgv(w: WorkerArgs): string[] {
  const a = [
    "--system",
    w.system,
    "--endpoints",
    w.endpoints.join(","),
    "--concurrency",
    String(w.spec.concurrency),
    "--read-ratio",
    String(w.spec.readRatio),
    "--keys",
    String(w.spec.keys),
    "--value-size",
    String(w.spec.valueSize),
    "--worker-base",
    String(w.spec.workerBase ?? 0),
    "--mode",
    w.mode,
    "--deadline-ms",
    String(w.deadlineMs),
    "--time-limit-ms",
    String(w.spec.timeLimitMs),
  ];
  if (w.maxStalenessMs !== undefined) a.push("--max-staleness-ms", String(w.maxStalenessMs));
  if (w.spec.ops !== undefined) a.push("--ops", String(w.spec.ops));
  else a.push("--duration-ms", String(w.spec.durationMs));
  return a;
}

export function parseWorkerArgv(argv: string[]): WorkerArgs {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      system: { type: "string" },
      endpoints: { type: "string" },
      concurrency: { type: "string" },
      "duration-ms": { type: "string" },
      ops: { type: "string" },
      "read-ratio": { type: "string", default: "0.5" },
      keys: { type: "string", default: "1000" },
      "value-size": { type: "string", default: "100" },
      "worker-base": { type: "string", default: "0" },
      mode: { type: "string", default: "leader" },
      "deadline-ms": { type: "string", default: "5000" },
      "time-limit-ms": { type: "string", default: "300000" },
      "max-staleness-ms": { type: "string" },
    },
    strict: true,
  });
  const system = v.system as SystemName;
  if (!["raftkv", "raftkv-unary", "etcd", "etcd-serializable", "echo", "echo-stream"].includes(system)) {
    throw new Error(
      `--system must be raftkv, raftkv-unary, etcd, etcd-serializable, echo or echo-stream, got ${v.system}`,
    );
  }
  const num = (name: string, s: string | undefined): number => {
    const n = Number(s);
    if (s === undefined || !Number.isFinite(n) || n < 0) {
      throw new Error(`--${name} must be a number, got ${s}`);
    }
    return n;
  };
  const endpoints = (v.endpoints ?? "").split(",").filter((e) => e);
  if (endpoints.length === 0) throw new Error("--endpoints is required");
  const spec: LoadSpec = {
    concurrency: num("concurrency", v.concurrency),
    durationMs: v["duration-ms"] !== undefined ? num("duration-ms", v["duration-ms"]) : undefined,
    ops: v.ops !== undefined ? num("ops", v.ops) : undefined,
    timeLimitMs: num("time-limit-ms", v["time-limit-ms"]),
    readRatio: num("read-ratio", v["read-ratio"]),
    keys: num("keys", v.keys),
    valueSize: num("value-size", v["value-size"]),
    workerBase: num("worker-base", v["worker-base"]),
  };
  const mode = (BENCH_MODES as readonly string[]).includes(v.mode ?? "") ? v.mode as BenchMode : "leader";
  return {
    system,
    endpoints,
    spec,
    mode,
    deadlineMs: num("deadline-ms", v["deadline-ms"]),
    ...(v["max-staleness-ms"] !== undefined
      ? { maxStalenessMs: num("max-staleness-ms", v["max-staleness-ms"]) }
      : {}),
  };
}

/**
 * The client certificate for raftkv targets from RAFTKV_CACERT/CERT/KEY (set by the bench's parent), or
 * undefined for plain text.
 */
export async function tlsFromEnv(): Promise<CertificateStore | undefined> {
  const cacert = Deno.env.get("RAFTKV_CACERT"), cert = Deno.env.get("RAFTKV_CERT");
  const key = Deno.env.get("RAFTKV_KEY");
  if (!cacert || !cert || !key) return undefined;
  return new CertificateStore(await loadTlsMaterial({ cacert, cert, key }));
}

export function makeTarget(w: WorkerArgs, tls?: CertificateStore): LoadTarget {
  switch (w.system) {
    case "raftkv":
    case "raftkv-unary":
      return new RaftkvTarget({
        nodes: w.endpoints.map((address) => ({ id: 0, address })),
        mode: w.mode,
        deadlineMs: w.deadlineMs,
        maxStalenessMs: w.maxStalenessMs,
        streams: w.system === "raftkv",
        tls,
      });
    case "etcd":
    case "etcd-serializable":
      return new EtcdTarget({
        endpoints: w.endpoints,
        serializable: w.system === "etcd-serializable",
        deadlineMs: w.deadlineMs,
      });
    case "echo":
    case "echo-stream":
      return new EchoTarget(w.endpoints[0], w.deadlineMs, w.system === "echo-stream");
  }
}

if (import.meta.main) {
  let w: WorkerArgs;
  try {
    w = parseWorkerArgv(Deno.args);
  } catch (e) {
    console.log(JSON.stringify({ t: "error", message: (e as Error).message }));
    Deno.exit(2);
  }
  const target = makeTarget(w, await tlsFromEnv());
  const label = () => target instanceof RaftkvTarget ? target.leaderAddress ?? "" : w.endpoints.join(",");
  Deno.exit(await serveAsChild(target, w.spec, label));
}
