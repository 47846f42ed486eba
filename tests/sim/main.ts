/**
 * `deno task sim`: the deterministic cluster simulator's command line.
 *
 *     deno task sim --seeds 1000 [--nodes 5] [--break RULE] [--start-seed S] [--jobs 2]
 *     deno task sim --seed S [--nodes 5] [--break RULE] [--verbose]
 *
 * A sweep prints the seed base first, one line per failing seed (seed, violation, description, replay
 * command), and a summary `sim: N seeds, V violations, R seeds/min`; it exits 0 only when no seed failed.
 * With `--break RULE` (lease-wait, lease-anchor, restart-promise, commit-term, drift) a safety rule is
 * switched off: the sweep is then expected to fail, and reports how many seeds it took.
 * `--seed S` replays one seed; `--verbose` prints every event.
 *
 * @module
 */
import {
  BREAK_RULES,
  type BreakRule,
  describeOptions,
  drawOptions,
  type Episode,
  EPISODES,
  type OptionOverrides,
} from "./options.ts";
import { runSeed } from "./simulator.ts";
import { describeFailure, runOne, type SeedOutcome } from "./sweep.ts";

/** Worker threads load the simulator's modules, which needs read access to them. */
function workersAllowed(): boolean {
  const root = new URL("../../", import.meta.url);
  for (const dir of ["tests/sim/", "src/"]) {
    if (Deno.permissions.querySync({ name: "read", path: new URL(dir, root) }).state !== "granted") {
      return false;
    }
  }
  return true;
}

const USAGE = `usage: deno task sim [--seeds N | --seed S] [--start-seed S] [--nodes 3|5|7] [--break RULE]
                     [--jobs J] [--scale F] [--episodes E,E] [--prevote on|off] [--verbose] [--keep-going]
  --seeds N       run N seeds (default 200) from a random base, or from --start-seed
  --seed S        replay one seed and describe it (--verbose: one line per event)
  --nodes K       cluster size (default: drawn per seed, mostly 5)
  --break RULE    switch a safety rule off: ${BREAK_RULES.join(", ")}
  --jobs J        worker threads (default: the number of cores)
  --scale F       multiply the fault phase length (default 1)
  --episodes E,E  run only these fault episodes: ${EPISODES.join(", ")}
  --prevote X     force PreVote on or off (default: drawn per seed)
  --keep-going    with --break: do not stop at the first failing seed`;

interface Args {
  seeds: number;
  seed?: number;
  startSeed?: number;
  nodes?: number;
  breakRule?: BreakRule;
  jobs: number;
  scale?: number;
  episodes?: Episode[];
  preVote?: boolean;
  verbose: boolean;
  keepGoing: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    seeds: 200,
    jobs: navigator.hardwareConcurrency || 1,
    verbose: false,
    keepGoing: false,
  };
  const num = (name: string, v: string | undefined): number => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n)) throw new Error(`${name} needs a number (got ${v})`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case "--seeds":
        args.seeds = num(a, argv[++i]);
        break;
      case "--seed":
        args.seed = num(a, argv[++i]) >>> 0;
        break;
      case "--start-seed":
        args.startSeed = num(a, argv[++i]) >>> 0;
        break;
      case "--nodes": {
        const n = num(a, argv[++i]);
        if (![1, 3, 5, 7].includes(n)) throw new Error(`--nodes must be 3, 5 or 7 (got ${n})`);
        args.nodes = n;
        break;
      }
      case "--break": {
        const r = argv[++i];
        if (!BREAK_RULES.includes(r as BreakRule)) {
          throw new Error(`--break must be one of ${BREAK_RULES.join(", ")} (got ${r})`);
        }
        args.breakRule = r as BreakRule;
        break;
      }
      case "--jobs":
        args.jobs = Math.max(1, num(a, argv[++i]));
        break;
      case "--scale":
        args.scale = num(a, argv[++i]);
        break;
      case "--episodes": {
        const list = (argv[++i] ?? "").split(",").filter((e) => e !== "");
        for (const e of list) {
          if (!EPISODES.includes(e as Episode)) {
            throw new Error(`--episodes: unknown episode ${e} (${EPISODES.join(", ")})`);
          }
        }
        args.episodes = list as Episode[];
        break;
      }
      case "--prevote": {
        const v = argv[++i];
        if (v !== "on" && v !== "off") throw new Error(`--prevote must be on or off (got ${v})`);
        args.preVote = v === "on";
        break;
      }
      case "--verbose":
        args.verbose = true;
        break;
      case "--keep-going":
        args.keepGoing = true;
        break;
      case "-h":
      case "--help":
        console.log(USAGE);
        Deno.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${a}\n${USAGE}`);
    }
  }
  return args;
}

function replay(args: Args, overrides: OptionOverrides): number {
  const options = drawOptions(args.seed!, overrides);
  for (const line of describeOptions(options)) console.log(line);
  const started = performance.now();
  const r = runSeed(options, { verbose: args.verbose });
  const wallMs = performance.now() - started;
  const s = r.stats;
  console.log(
    `simulated ${(s.simulatedMs / 1000).toFixed(1)}s in ${wallMs.toFixed(0)}ms wall: ${s.events} events, ` +
      `${s.messages} messages, ${s.leadersElected} leaders, ${s.committed} entries committed, ${s.crashes} crashes ` +
      `(disk: ${s.disk.failStops} fail-stops, ${s.disk.tornTails} torn tails cut, ${s.disk.refusals} refused starts); ` +
      `client ops ${s.opsOk} ok, ${s.opsInfo} info, ${s.opsFail} failed`,
  );
  console.log(`episodes: ${s.episodes.join(", ")}`);
  if (r.linearizability?.ok === "unknown") {
    console.log(`linearizability: inconclusive (${r.linearizability.explanation})`);
  }
  for (const v of r.violations) console.log(`VIOLATION ${v.name} at ${v.atMs.toFixed(3)}ms: ${v.detail}`);
  const total = [...r.counts.values()].reduce((a, b) => a + b, 0);
  console.log(
    total === 0
      ? "no violation"
      : `${total} violations: ${[...r.counts].map(([k, v]) => `${k} ×${v}`).join(", ")}`,
  );
  return total === 0 ? 0 : 1;
}

async function sweep(args: Args, overrides: OptionOverrides): Promise<number> {
  const base = args.startSeed ?? (crypto.getRandomValues(new Uint32Array(1))[0]);
  console.log(
    `sim: seeds ${base}..${(base + args.seeds - 1) >>> 0} (${args.seeds}), nodes ${args.nodes ?? "3/5/7"}, ` +
      `break ${args.breakRule ?? "none"}, ${args.jobs} jobs`,
  );
  const started = performance.now();
  const seeds = Array.from({ length: args.seeds }, (_, i) => (base + i) >>> 0);
  const stopEarly = args.breakRule !== undefined && !args.keepGoing;
  let next = 0, finished = 0, failing = 0, unknown = 0, ops = 0;
  let firstFailingIndex = -1;
  const byName = new Map<string, number>();
  const onOutcome = (o: SeedOutcome) => {
    finished++;
    ops += o.opsOk;
    if (o.linearizabilityUnknown) unknown++;
    if (o.first) {
      failing++;
      const index = seeds.indexOf(o.seed);
      if (firstFailingIndex < 0 || index < firstFailingIndex) firstFailingIndex = index;
      for (const [k, v] of Object.entries(o.counts)) byName.set(k, (byName.get(k) ?? 0) + v);
      console.log(describeFailure(o, overrides));
    }
  };
  if (args.jobs <= 1 || !workersAllowed()) {
    if (args.jobs > 1) {
      console.log("sim: no read permission for worker threads (see deno.json's sim task): one thread");
    }
    for (const seed of seeds) {
      onOutcome(runOne(seed, overrides));
      if (stopEarly && failing > 0) break;
    }
  } else {
    await new Promise<void>((resolve) => {
      let stopped = false, active = 0;
      /** Sends the next seed to `w`; false (and the worker ends) when there is none. */
      const feed = (w: Worker): boolean => {
        if (stopped || next >= seeds.length) {
          w.terminate();
          return false;
        }
        w.postMessage({ seed: seeds[next++], overrides });
        return true;
      };
      for (let j = 0; j < Math.min(args.jobs, seeds.length); j++) {
        const w = new Worker(new URL("./worker.ts", import.meta.url).href, { type: "module" });
        active++;
        w.onmessage = (e: MessageEvent<SeedOutcome>) => {
          onOutcome(e.data);
          if (stopEarly && failing > 0) stopped = true;
          if (!feed(w) && --active === 0) resolve();
        };
        w.onerror = (e) => {
          console.error(`worker error: ${e.message}`);
          e.preventDefault();
          failing++;
          stopped = true;
          w.terminate();
          if (--active === 0) resolve();
        };
        if (!feed(w) && --active === 0) resolve();
      }
    });
  }
  const minutes = (performance.now() - started) / 60_000;
  const names = [...byName].map(([k, v]) => `${k} ×${v}`).join(", ");
  if (args.breakRule !== undefined) {
    console.log(
      failing > 0
        ? `sim: break ${args.breakRule} caught after ${firstFailingIndex + 1} seeds (${names})`
        : `sim: break ${args.breakRule} NOT caught in ${finished} seeds`,
    );
  }
  if (unknown > 0) console.log(`sim: linearizability inconclusive (search limit) on ${unknown} seeds`);
  console.log(
    `sim: ${finished} seeds, ${failing} violations${names ? ` (${names})` : ""}, ${
      (finished / minutes).toFixed(1)
    } seeds/min, ` +
      `${ops} client ops ok`,
  );
  return failing === 0 ? 0 : 1;
}

if (import.meta.main) {
  let args: Args;
  try {
    args = parseArgs(Deno.args);
  } catch (e) {
    console.error((e as Error).message);
    Deno.exit(2);
  }
  const overrides: OptionOverrides = {
    nodes: args.nodes,
    breakRule: args.breakRule,
    durationScale: args.scale,
    episodes: args.episodes,
    preVote: args.preVote,
  };
  const code = args.seed !== undefined ? replay(args, overrides) : await sweep(args, overrides);
  Deno.exit(code);
}
