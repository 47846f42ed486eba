/**
 * The benchmark's pictures (issue 16): one SVG with latency percentiles against throughput for raftkv and
 * etcd at each concurrency (SET and GET), and the failover timeline (successful probe ops/s around the
 * kill -9 of the leader). Rendered server-side by Apache ECharts' SSR SVG renderer: no browser, no DOM.
 *
 * Input is the JSON `deno task bench --out FILE` writes (only the fields read here), so a saved run can be
 * re-rendered: `deno task bench-chart --from FILE`.
 */
import * as echarts from "echarts";

/** The fields of one load run the chart reads (scripts/bench_vs_etcd.ts RunRecord). */
export interface ChartRunRecord {
  readonly variant: string;
  readonly op: "GET" | "SET";
  readonly concurrency: number;
  readonly opsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

/** Successful and failed probe operations per interval around the kill (time 0 = the kill). */
export interface FailoverTimeline {
  /** Start of the first interval, ms from the kill (negative: before it). */
  readonly startMs: number;
  readonly bucketMs: number;
  readonly ok: readonly number[];
  readonly failed: readonly number[];
}

export interface ChartFailoverRecord {
  readonly system: string;
  readonly firstSetMs: number | null;
  readonly killedNode: number;
  /** Absent in results saved before the timeline was recorded. */
  readonly timeline?: FailoverTimeline;
}

export interface ChartInput {
  readonly header?: readonly string[];
  readonly records?: readonly ChartRunRecord[];
  readonly failovers?: readonly ChartFailoverRecord[];
}

/** One point of a latency curve: medians over the repeats of one (system, op, concurrency). */
export interface LatencyPoint {
  readonly concurrency: number;
  readonly opsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly repeats: number;
}

/** The systems drawn, in legend order. */
export const CHART_SYSTEMS = ["raftkv", "etcd"] as const;

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Medians per concurrency of one system's runs of one op, sorted by concurrency. */
export function latencyCurve(
  records: readonly ChartRunRecord[],
  variant: string,
  op: "GET" | "SET",
): LatencyPoint[] {
  const by = new Map<number, ChartRunRecord[]>();
  for (const r of records) {
    if (r.variant !== variant || r.op !== op || !Number.isFinite(r.opsPerSec) || r.opsPerSec <= 0) continue;
    by.set(r.concurrency, [...(by.get(r.concurrency) ?? []), r]);
  }
  return [...by.entries()].sort((a, b) => a[0] - b[0]).map(([concurrency, rs]) => ({
    concurrency,
    opsPerSec: median(rs.map((r) => r.opsPerSec)),
    p50Ms: median(rs.map((r) => r.p50Ms)),
    p99Ms: median(rs.map((r) => r.p99Ms)),
    repeats: rs.length,
  }));
}

/** Counts outcomes (completion times, ms from the kill) into intervals of `bucketMs` from `startMs`. */
export function bucketOutcomes(
  outcomes: readonly { atMs: number; ok: boolean }[],
  startMs: number,
  endMs: number,
  bucketMs: number,
): FailoverTimeline {
  const n = Math.max(1, Math.ceil((endMs - startMs) / bucketMs));
  const ok = new Array<number>(n).fill(0), failed = new Array<number>(n).fill(0);
  for (const o of outcomes) {
    const i = Math.floor((o.atMs - startMs) / bucketMs);
    if (i < 0 || i >= n) continue;
    (o.ok ? ok : failed)[i]++;
  }
  return { startMs, bucketMs, ok, failed };
}

/** ops/s of successful probes per interval, as [ms from kill (interval middle), ops/s] pairs. */
export function timelineSeries(t: FailoverTimeline): [number, number][] {
  return t.ok.map((n, i) => [t.startMs + (i + 0.5) * t.bucketMs, (n * 1000) / t.bucketMs]);
}

const COLORS: Record<string, string> = { raftkv: "#1f6feb", etcd: "#d9480f" };
const WIDTH = 1100;
const PANEL_H = 300;
const GAP = 90;

/**
 * The whole picture as an SVG string. Panels: SET latency vs throughput, GET latency vs throughput (log
 * latency axis; p50 solid, p99 dashed; each point labelled with its concurrency), failover timeline (one
 * line per kill, a vertical mark at the kill). A panel without data says so instead of drawing nothing.
 */
export function renderBenchChart(input: ChartInput): string {
  const records = input.records ?? [];
  const failovers = input.failovers ?? [];
  const title = input.header?.[0] ?? "raftkv vs etcd";
  const panels = ["SET", "GET", "failover"] as const;
  const top = (i: number) => 70 + i * (PANEL_H + GAP);
  const height = top(panels.length) - GAP + 60;

  // deno-lint-ignore no-explicit-any
  const grid: any[] = [], xAxis: any[] = [], yAxis: any[] = [], series: any[] = [], titles: any[] = [];
  titles.push({ text: title, left: "center", top: 8, textStyle: { fontSize: 14 } });
  panels.forEach((panel, i) => {
    grid.push({ left: 80, right: 300, top: top(i), height: PANEL_H });
    if (panel !== "failover") {
      titles.push({
        text: `${panel} latency (ms, log scale) against throughput (ops/s), medians over repeats`,
        left: 80,
        top: top(i) - 28,
        textStyle: { fontSize: 13 },
      });
      xAxis.push({ gridIndex: i, type: "value", name: "ops/s", nameLocation: "middle", nameGap: 28 });
      yAxis.push({ gridIndex: i, type: "log", logBase: 10, ...yName("latency ms") });
      let drawn = 0;
      for (const sys of CHART_SYSTEMS) {
        const curve = latencyCurve(records, sys, panel);
        if (curve.length === 0) continue;
        for (const pct of ["p50", "p99"] as const) {
          drawn++;
          series.push({
            name: `${sys} ${pct}`,
            type: "line",
            xAxisIndex: i,
            yAxisIndex: i,
            color: COLORS[sys],
            lineStyle: { type: pct === "p50" ? "solid" : "dashed" },
            symbol: pct === "p50" ? "circle" : "triangle",
            symbolSize: 7,
            label: { show: true, formatter: (p: { value: number[] }) => `c=${p.value[2]}`, fontSize: 10 },
            data: curve.map((p) => [p.opsPerSec, pct === "p50" ? p.p50Ms : p.p99Ms, p.concurrency]),
          });
        }
      }
      if (drawn === 0) titles.push(noData(i, `no ${panel} runs in these results`));
    } else {
      titles.push({
        text: "failover: successful probe ops/s around kill -9 of the leader (one line per kill)",
        left: 80,
        top: top(i) - 28,
        textStyle: { fontSize: 13 },
      });
      xAxis.push({
        gridIndex: i,
        type: "value",
        name: "ms from kill -9",
        nameLocation: "middle",
        nameGap: 28,
      });
      yAxis.push({ gridIndex: i, type: "value", ...yName("ops/s") });
      const counts = new Map<string, number>();
      let drawn = 0;
      for (const f of failovers) {
        const k = (counts.get(f.system) ?? 0) + 1;
        counts.set(f.system, k);
        if (!f.timeline) continue;
        const firstSet = f.firstSetMs === null ? "none" : `${f.firstSetMs.toFixed(0)} ms`;
        series.push({
          name: `${f.system} kill ${k} (first SET ${firstSet})`,
          type: "line",
          xAxisIndex: i,
          yAxisIndex: i,
          color: COLORS[f.system],
          lineStyle: { opacity: 0.8, width: 1.5 },
          symbol: "none",
          step: "middle",
          data: timelineSeries(f.timeline),
          ...(drawn === 0
            ? {
              markLine: {
                symbol: "none",
                label: { formatter: "kill -9", position: "insideEndTop" },
                data: [{ xAxis: 0 }],
              },
            }
            : {}),
        });
        drawn++;
      }
      if (drawn === 0) {
        titles.push(
          noData(i, "no failover timeline in these results (recorded by deno task bench since issue 16)"),
        );
      }
    }
  });

  const chart = echarts.init(null, null, { renderer: "svg", ssr: true, width: WIDTH, height });
  try {
    chart.setOption({
      animation: false,
      backgroundColor: "#ffffff",
      title: titles,
      legend: { type: "plain", orient: "vertical", left: WIDTH - 285, top: 70, textStyle: { fontSize: 11 } },
      grid,
      xAxis,
      yAxis,
      series,
    });
    return chart.renderToSVGString();
  } finally {
    chart.dispose();
  }
}

function yName(name: string) {
  return { name, nameLocation: "middle", nameGap: 50, nameRotate: 90 };
}

function noData(panel: number, text: string) {
  return {
    text,
    left: "center",
    top: 70 + panel * (PANEL_H + GAP) + PANEL_H / 2,
    textStyle: { fontSize: 13, color: "#888888" },
  };
}

/** Where `deno task bench` writes the chart: next to --out (results.json → results.svg), else bench_chart.svg. */
export function chartPathFor(out: string | undefined): string {
  if (!out) return "bench_chart.svg";
  return out.endsWith(".json") ? out.slice(0, -".json".length) + ".svg" : `${out}.svg`;
}
