/**
 * Re-renders the benchmark's chart from a saved run (issue 16):
 *
 *   deno task bench-chart --from results.json [--out chart.svg]
 *
 * `--from` is the JSON `deno task bench --out FILE` writes; `--out` defaults to the same path with .svg.
 * src/bench/chart.ts explains the picture.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type ChartInput, chartPathFor, renderBenchChart } from "../src/bench/chart.ts";

const { values: argv } = parseArgs({
  args: Deno.args,
  options: { from: { type: "string" }, out: { type: "string" } },
  strict: true,
});
if (!argv.from) {
  console.error("usage: deno task bench-chart --from RESULTS.json [--out CHART.svg]");
  Deno.exit(2);
}
let input: ChartInput;
try {
  input = JSON.parse(await Deno.readTextFile(argv.from));
} catch (e) {
  console.error(`bench-chart: cannot read ${argv.from} as deno task bench's --out JSON: ${e}`);
  Deno.exit(1);
}
const out = argv.out ?? chartPathFor(argv.from);
await Deno.writeTextFile(out, renderBenchChart(input));
console.error(
  `bench-chart: ${input.records?.length ?? 0} runs, ${input.failovers?.length ?? 0} kills → ${out}`,
);
