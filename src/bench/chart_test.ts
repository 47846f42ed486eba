import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  bucketOutcomes,
  type ChartInput,
  chartPathFor,
  type ChartRunRecord,
  latencyCurve,
  renderBenchChart,
  timelineSeries,
} from "./chart.ts";

const FIXTURE = new URL("./testdata/bench_results_small.json", import.meta.url);
const fixture = (): ChartInput => JSON.parse(Deno.readTextFileSync(FIXTURE));

/** Text of every <text> element, in document order. */
function texts(svg: string): string[] {
  return [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1].replaceAll("&gt;", ">"));
}

Deno.test("a latency curve takes the median of the repeats at each concurrency, sorted by concurrency", () => {
  const rec = (
    concurrency: number,
    opsPerSec: number,
    p50Ms: number,
    variant = "raftkv",
  ): ChartRunRecord => ({
    variant,
    op: "SET",
    concurrency,
    opsPerSec,
    p50Ms,
    p99Ms: p50Ms * 3,
  });
  const curve = latencyCurve(
    [
      rec(16, 100, 5),
      rec(1, 10, 1),
      rec(16, 300, 9),
      rec(16, 200, 7),
      rec(1, 30, 3),
      rec(16, 1e6, 0, "etcd"),
    ],
    "raftkv",
    "SET",
  );
  assertEquals(curve, [
    { concurrency: 1, opsPerSec: 20, p50Ms: 2, p99Ms: 6, repeats: 2 },
    { concurrency: 16, opsPerSec: 200, p50Ms: 7, p99Ms: 21, repeats: 3 },
  ]);
  assertEquals(latencyCurve([rec(1, 10, 1)], "raftkv", "GET"), []);
});

Deno.test("a failover timeline becomes ops/s at the middle of each interval", () => {
  assertEquals(
    timelineSeries({ startMs: -200, bucketMs: 100, ok: [20, 0, 5], failed: [0, 3, 0] }),
    [[-150, 200], [-50, 0], [50, 50]],
  );
});

Deno.test("the chart of a saved run has both latency panels, the failover panel, every series and its labels", () => {
  const svg = renderBenchChart(fixture());
  assert(svg.startsWith("<svg"), svg.slice(0, 100));
  assert(svg.trimEnd().endsWith("</svg>"));
  const t = texts(svg);
  // Titles: the run's header and one per panel.
  assert(t.includes("raftkv vs etcd (fixture); 2026-12-01T00:00:00Z"), t.join(" | "));
  assert(t.some((s) => s.startsWith("SET latency (ms, log scale) against throughput")));
  assert(t.some((s) => s.startsWith("GET latency (ms, log scale) against throughput")));
  assert(t.some((s) => s.startsWith("failover: successful probe ops/s around kill -9")));
  // Axis names.
  assertEquals(t.filter((s) => s === "ops/s").length, 3); // two x axes, the timeline's y axis
  assertEquals(t.filter((s) => s === "latency ms").length, 2);
  assert(t.includes("ms from kill -9"));
  // Legend: both systems, both percentiles, and each kill with its first SET.
  for (const name of ["raftkv p50", "raftkv p99", "etcd p50", "etcd p99"]) assert(t.includes(name), name);
  assert(t.includes("raftkv kill 1 (first SET 1276 ms)"), t.join(" | "));
  assert(t.includes("etcd kill 1 (first SET 1036 ms)"));
  // The echo runs in the file are not drawn.
  assert(!t.some((s) => s.startsWith("echo")));
  // Every concurrency labels its points: 4 series per panel × 2 latency panels.
  for (const c of [1, 16, 64, 256]) assertEquals(t.filter((s) => s === `c=${c}`).length, 8, `c=${c}`);
  // The kill is marked once.
  assertEquals(t.filter((s) => s === "kill -9").length, 1);
  // Both colours are drawn as lines.
  assert(/stroke="#1f6feb"/.test(svg) && /stroke="#d9480f"/.test(svg));
  assert(!t.some((s) => s.startsWith("no ")), "no panel says it has no data");
});

Deno.test("a panel without data says so instead of drawing an empty frame", () => {
  const f = fixture();
  const svg = renderBenchChart({
    header: f.header,
    records: f.records!.filter((r) => r.op === "SET"),
    failovers: f.failovers!.map(({ timeline: _, ...rest }) => rest),
  });
  const t = texts(svg);
  assert(t.includes("no GET runs in these results"), t.join(" | "));
  assert(t.some((s) => s.startsWith("no failover timeline in these results")));
  assert(!t.includes("no SET runs in these results"));
  assert(!t.some((s) => s.includes(" kill 1 ")));
});

Deno.test("the chart goes next to the results file, or to bench_chart.svg without one", () => {
  assertEquals(chartPathFor("out/results.json"), "out/results.svg");
  assertEquals(chartPathFor("results"), "results.svg");
  assertEquals(chartPathFor(undefined), "bench_chart.svg");
});

Deno.test("probe outcomes are counted per interval from the start, outside ones dropped", () => {
  const t = bucketOutcomes(
    [
      { atMs: -1001, ok: true }, // before the window
      { atMs: -1000, ok: true },
      { atMs: -901, ok: false },
      { atMs: 0, ok: false },
      { atMs: 0, ok: true },
      { atMs: 99.9, ok: true },
      { atMs: 150, ok: true },
      { atMs: 200, ok: true }, // at the end: outside
    ],
    -1000,
    200,
    100,
  );
  assertEquals(t.startMs, -1000);
  assertEquals(t.bucketMs, 100);
  assertEquals(t.ok, [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1]);
  assertEquals(t.failed, [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
});
