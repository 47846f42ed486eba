/**
 * `deno task chaos [--duration 2m] [--seed S] [--results DIR]`: Jepsen-style fault testing of a real 5-node
 * raftkv cluster on loopback (see run.ts). Prints the seed first, the faults as they are applied, then one
 * summary line; exits 1 on any anomaly (with the command that replays the seed), 3 when the harness could not
 * complete its schedule and found no anomaly (the reasons are printed), 2 on bad usage.
 *
 * Needs libfaketime (`apt-get install -y faketime`) for the clock-rate faults.
 *
 * @module
 */
import { parseDuration } from "../../src/cli/duration.ts";
import { killEveryNode } from "./cluster.ts";
import { runNegativeControl } from "./negative.ts";
import { runChaos } from "./run.ts";

const USAGE = `usage: deno task chaos [--duration 2m] [--seed S] [--results DIR] [--workers N] [--keys N]
  --duration D   length of the fault phase (default 2m; e.g. 90s, 10m)
  --seed S       the schedule's seed (default: random); a failing seed is printed with its replay command
  --results DIR  where the history, timeline, node logs and summary go (default ./results/chaos-<seed>/)
  --workers N    concurrent client processes (default 5)
  --keys N       size of the key space (default 4)
  --insecure     plain text between every process (default: mutual TLS, as in production)
  --peer-transport grpc|raw
                 node-to-node traffic over the raw peer transport (default, src/transport/raw/) or gRPC
  --replace-budget D
                 how long one node replacement may take (default 60s); past it the replacement is over budget:
                 process faults wait until the harness has finished it (a tiny budget exercises that path)
  --negative-control
                 instead of a schedule, run the negative control (a leader whose clock runs at x0.25, far
                 outside the drift budget, cut off from its peers): exits 0 only if the harness catches it
exit status: 0 pass, 1 anomaly found, 3 the harness could not complete its schedule (no anomaly), 2 usage`;

function fail(msg: string): never {
  console.error(`chaos: ${msg}\n${USAGE}`);
  Deno.exit(2);
}

export async function main(args: string[]): Promise<number> {
  let durationMs = 120_000;
  let seed = String(Math.floor(Math.random() * 2 ** 31));
  let results: string | undefined;
  let workers: number | undefined, keys: number | undefined;
  let insecure = false;
  let negative = false;
  let peerTransport: "grpc" | "raw" = "raw"; // the product's default
  let replaceBudgetMs: number | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const [name, inline] = a.includes("=")
      ? [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)]
      : [a, undefined];
    const value = () => inline ?? args[++i] ?? fail(`${name} needs a value`);
    switch (name) {
      case "--duration": {
        const v = value();
        try {
          durationMs = /^\d+$/.test(v) ? Number(v) * 1000 : parseDuration(v);
        } catch (e) {
          fail(`--duration: ${(e as Error).message}`);
        }
        break;
      }
      case "--seed":
        seed = value();
        if (!/^[A-Za-z0-9._-]{1,64}$/.test(seed)) fail("--seed must be 1-64 characters of A-Z a-z 0-9 . _ -");
        break;
      case "--results":
        results = value();
        break;
      case "--workers":
        workers = Number(value());
        if (!Number.isInteger(workers) || workers < 1 || workers > 64) fail("--workers must be 1..64");
        break;
      case "--keys":
        keys = Number(value());
        if (!Number.isInteger(keys) || keys < 1 || keys > 100) fail("--keys must be 1..100");
        break;
      case "--insecure":
        insecure = true;
        break;
      case "--peer-transport": {
        const v = value();
        if (v !== "grpc" && v !== "raw") fail("--peer-transport must be grpc or raw");
        peerTransport = v;
        break;
      }
      case "--replace-budget": {
        const v = value();
        try {
          replaceBudgetMs = /^\d+$/.test(v) ? Number(v) * 1000 : parseDuration(v);
        } catch (e) {
          fail(`--replace-budget: ${(e as Error).message}`);
        }
        break;
      }
      case "--negative-control":
        negative = true;
        break;
      case "-h":
      case "--help":
        console.log(USAGE);
        return 0;
      default:
        fail(`unknown argument ${a}`);
    }
  }
  if (negative) {
    const dir = results ?? "results/chaos-negative-control";
    console.log(`chaos: negative control, results in ${dir}/`);
    const r = await runNegativeControl({ resultsDir: dir });
    console.log(r.summary);
    return r.caught ? 0 : 1;
  }
  const resultsDir = results ?? `results/chaos-${seed}`;
  console.log(
    `chaos: seed ${seed}, fault phase ${Math.round(durationMs / 1000)} s, results in ${resultsDir}/`,
  );
  const report = await runChaos({
    seed,
    durationMs,
    resultsDir,
    workers,
    keys,
    insecure,
    peerTransport,
    replaceBudgetMs,
  });
  for (const a of report.anomalies) console.log(`ANOMALY ${a.kind}: ${a.description}`);
  for (const e of report.incomplete) console.log(`INCOMPLETE ${e}`);
  console.log(report.summary);
  const replay = `history and node logs in ${resultsDir}/; replay the schedule with: ` +
    `deno task chaos --seed ${seed} --duration ${Math.round(durationMs / 1000)}s`;
  if (report.verdict === "anomaly") {
    console.log(`chaos: FAILED: ${report.anomalies.length} anomalies; ${replay}`);
    return 1;
  }
  if (report.verdict === "incomplete") {
    console.log(
      `chaos: INCOMPLETE: the harness could not complete its schedule (no anomaly found in what ran); ${replay}`,
    );
    return 3;
  }
  console.log(`chaos: ok (history in ${resultsDir}/history.jsonl)`);
  return 0;
}

if (import.meta.main) {
  // Ctrl-C or kill: no node process may outlive the harness.
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(sig, () => {
      console.error(`chaos: ${sig}: killing the node processes`);
      killEveryNode();
      Deno.exit(130);
    });
  }
  Deno.exit(await main(Deno.args));
}
