/**
 * Client-side latency of SET and GET against a running cluster: from the library (in-process, one
 * connection reused) and from the CLI (a new process per call, as a person or script would run it).
 *
 *     deno run -A scripts/measure_latency.ts --config raftkv-data/cluster.json [--ops 300] [--cli-ops 10]
 *
 * Prints medians and p99 in ms. For throughput and etcd comparisons use `deno task bench`.
 * @module
 */
import { RaftkvClient } from "../src/client/mod.ts";
import { loadClusterConfig } from "../src/config/cluster_config.ts";

function arg(name: string, dflt: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Deno.args[i + 1] : dflt;
}
const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];

const configPath = arg("config", "raftkv-data/cluster.json");
const ops = Number(arg("ops", "300"));
const cliOps = Number(arg("cli-ops", "10"));
const config = await loadClusterConfig(configPath);
const client = new RaftkvClient({ nodes: config.nodes, timeoutMs: 5000 });
const sets: number[] = [], gets: number[] = [];
await client.set("warmup", "x");
for (let i = 0; i < ops; i++) {
  let t = performance.now();
  await client.set(`k${i % 100}`, `v${i}`);
  sets.push(performance.now() - t);
  t = performance.now();
  await client.get(`k${i % 100}`);
  gets.push(performance.now() - t);
}
client.close();
console.log(
  `library: SET p50 ${pct(sets, 0.5).toFixed(2)} ms p99 ${pct(sets, 0.99).toFixed(2)} ms; ` +
    `GET p50 ${pct(gets, 0.5).toFixed(2)} ms p99 ${pct(gets, 0.99).toFixed(2)} ms (${ops} each)`,
);

const mod = new URL("../mod.ts", import.meta.url).pathname;
const cli = async (...args: string[]) => {
  const t = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", mod, "client", "--config", configPath, ...args],
  })
    .output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  return performance.now() - t;
};
const cliSets: number[] = [], cliGets: number[] = [];
for (let i = 0; i < cliOps; i++) {
  cliSets.push(await cli("set", "cli", `v${i}`));
  cliGets.push(await cli("get", "cli"));
}
console.log(
  `cli (process per call): SET p50 ${pct(cliSets, 0.5).toFixed(0)} ms; GET p50 ${
    pct(cliGets, 0.5).toFixed(0)
  } ms (${cliOps} each)`,
);
