/**
 * The summary of a load run: the `--json` object and the plain table.
 *
 * @module
 */
import { formatTable } from "../cli/table.ts";
import { errorCount, type LoadResult, OP_KINDS, type OpKind } from "./load.ts";

export interface OpSummary {
  /** Completed operations, failed ones included. */
  readonly ops: number;
  readonly ok: number;
  readonly errors: number;
  /** Successful operations per second. */
  readonly opsPerSec: number;
  /** Latency of successful operations, ms. */
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly meanMs: number;
  /** Failures by kind (`notLeader`, `UNAVAILABLE`, `DEADLINE_EXCEEDED`, …). */
  readonly errorKinds: Record<string, number>;
}

export interface BenchSummary {
  /** What was driven: the leader's address, or the nodes in turn. */
  readonly target: string;
  readonly mode: string;
  readonly concurrency: number;
  readonly processes: number;
  readonly readRatio: number;
  readonly deleteRatio?: number;
  readonly casRatio?: number;
  readonly keys: number;
  readonly valueSize: number;
  readonly elapsedMs: number;
  /** Completed operations, failed ones included. */
  readonly ops: number;
  readonly errors: number;
  /** Successful operations per second. */
  readonly opsPerSec: number;
  /** Operations that succeeded after following a leader redirect. */
  readonly redirects: number;
  /** True when the time limit stopped an `--ops` run early. */
  readonly timedOut: boolean;
  readonly GET: OpSummary;
  readonly SET: OpSummary;
  readonly DEL: OpSummary;
  readonly CAS: OpSummary;
}

export interface SummaryContext {
  readonly target: string;
  readonly mode: string;
  readonly concurrency: number;
  readonly processes: number;
  readonly readRatio: number;
  readonly keys: number;
  readonly valueSize: number;
  readonly deleteRatio?: number;
  readonly casRatio?: number;
}

const ms = (us: number) => Math.round(us) / 1000;

export function summarize(r: LoadResult, ctx: SummaryContext): BenchSummary {
  const secs = r.elapsedMs / 1000;
  const per = (k: OpKind): OpSummary => {
    const h = r.histograms[k];
    const errors = errorCount(r, k);
    return {
      ops: h.count + errors,
      ok: h.count,
      errors,
      opsPerSec: secs > 0 ? Math.round((h.count / secs) * 10) / 10 : 0,
      p50Ms: ms(h.percentile(50)),
      p90Ms: ms(h.percentile(90)),
      p99Ms: ms(h.percentile(99)),
      maxMs: ms(h.max),
      meanMs: ms(h.mean),
      errorKinds: Object.fromEntries(r.errors[k]),
    };
  };
  const GET = per("GET"), SET = per("SET"), DEL = per("DEL"), CAS = per("CAS");
  const all = [GET, SET, DEL, CAS];
  return {
    ...ctx,
    elapsedMs: Math.round(r.elapsedMs),
    ops: all.reduce((n, o) => n + o.ops, 0),
    errors: all.reduce((n, o) => n + o.errors, 0),
    opsPerSec: Math.round(all.reduce((n, o) => n + o.opsPerSec, 0) * 10) / 10,
    redirects: r.redirects,
    timedOut: r.timedOut,
    GET,
    SET,
    DEL,
    CAS,
  };
}

function fmtMs(v: number): string {
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

/** The human form: a header line, one row per operation and a total, then error kinds if any. */
export function formatSummary(s: BenchSummary): string {
  const head =
    `raftkv bench: ${s.concurrency} in flight (${s.processes} process${s.processes === 1 ? "" : "es"}), ` +
    `${s.mode === "leader" ? `leader ${s.target}` : s.target}, ${(s.elapsedMs / 1000).toFixed(1)} s, ` +
    `${Math.round(s.readRatio * 100)}% GET` +
    (s.deleteRatio ? `, ${Math.round(s.deleteRatio * 100)}% DEL` : "") +
    (s.casRatio ? `, ${Math.round(s.casRatio * 100)}% CAS` : "") +
    `, ${s.keys} keys, ${s.valueSize}-byte values`;
  const rows: string[][] = [];
  for (const k of OP_KINDS) {
    const o = s[k];
    if (o.ops === 0) continue;
    rows.push([
      k,
      String(o.ops),
      o.opsPerSec.toFixed(0),
      fmtMs(o.p50Ms),
      fmtMs(o.p90Ms),
      fmtMs(o.p99Ms),
      fmtMs(o.maxMs),
      String(o.errors),
    ]);
  }
  rows.push(["total", String(s.ops), s.opsPerSec.toFixed(0), "", "", "", "", String(s.errors)]);
  const table = formatTable(
    [
      { header: "op" },
      { header: "ops", align: "right" },
      { header: "ops/s", align: "right" },
      { header: "p50 ms", align: "right" },
      { header: "p90 ms", align: "right" },
      { header: "p99 ms", align: "right" },
      { header: "max ms", align: "right" },
      { header: "errors", align: "right" },
    ],
    rows,
  );
  const lines = [head, table];
  const kinds = OP_KINDS.flatMap((k) => Object.entries(s[k].errorKinds).map(([e, n]) => `${k} ${e} ×${n}`));
  if (kinds.length > 0) lines.push(`errors: ${kinds.join(", ")}`);
  if (s.redirects > 0) lines.push(`redirects followed: ${s.redirects}`);
  if (s.timedOut) lines.push("stopped by the time limit before all operations were issued");
  return lines.join("\n");
}

/** The progress line: `  3.0 s  12345 ops  4115 ops/s  0 errors`. */
export function progressLine(
  p: { elapsedMs: number; ops: number; errors: number },
  totalMs?: number,
): string {
  const secs = p.elapsedMs / 1000;
  const rate = secs > 0 ? Math.round(p.ops / secs) : 0;
  const of = totalMs ? ` / ${(totalMs / 1000).toFixed(0)} s` : "";
  return `${secs.toFixed(1)} s${of}  ${p.ops} ops  ${rate} ops/s  ${p.errors} errors`;
}
