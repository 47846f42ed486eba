import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import {
  errorCount,
  type LoadTarget,
  mergeResults,
  OpError,
  resultFromJson,
  resultToJson,
  runLoad,
} from "./load.ts";
import { formatSummary, summarize } from "./report.ts";

/** A target that answers after `delayMs`, failing every `failEvery`-th SET, and tracks concurrency. */
class FakeTarget implements LoadTarget {
  redirects = 0;
  inFlight = 0;
  maxInFlight = 0;
  sets = 0;
  gets = 0;
  workers = new Set<number>();
  constructor(readonly delayMs: number, readonly failEvery = 0) {}
  prepare(): Promise<void> {
    return Promise.resolve();
  }
  async #op(worker: number): Promise<void> {
    this.workers.add(worker);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    await new Promise((r) => setTimeout(r, this.delayMs));
    this.inFlight--;
  }
  async get(_key: string, worker: number): Promise<void> {
    this.gets++;
    await this.#op(worker);
  }
  async set(_key: string, value: string, worker: number): Promise<void> {
    const n = ++this.sets;
    strictEqual(value.length, 10);
    await this.#op(worker);
    if (this.failEvery > 0 && n % this.failEvery === 0) throw new OpError("notLeader");
    this.redirects++;
  }
  close(): void {}
}

const spec = { concurrency: 4, timeLimitMs: 10_000, readRatio: 0.5, keys: 10, valueSize: 10 };

Deno.test("an --ops run issues exactly that many operations, at most `concurrency` at a time", async () => {
  const t = new FakeTarget(1);
  const r = await runLoad({ ...spec, ops: 101, workerBase: 8 }, t);
  strictEqual(r.histograms.GET.count + r.histograms.SET.count, 101);
  strictEqual(t.gets + t.sets, 101);
  strictEqual(errorCount(r), 0);
  strictEqual(t.maxInFlight, 4);
  deepStrictEqual([...t.workers].sort((x, y) => x - y), [8, 9, 10, 11]);
  strictEqual(r.redirects, t.sets);
  ok(r.histograms.GET.min >= 900, `a 1 ms operation took ${r.histograms.GET.min} µs`);
  strictEqual(r.timedOut, false);
});

Deno.test("errors are counted by kind and kept out of the latency histograms", async () => {
  const t = new FakeTarget(0, 2);
  const r = await runLoad({ ...spec, ops: 200, readRatio: 0 }, t);
  strictEqual(r.histograms.SET.count + errorCount(r), 200);
  strictEqual(r.errors.SET.get("notLeader"), 100);
  strictEqual(r.histograms.GET.count, 0);
  const s = summarize(r, { ...spec, target: "x", mode: "leader", processes: 1 });
  strictEqual(s.ops, 200);
  strictEqual(s.errors, 100);
  deepStrictEqual(s.SET.errorKinds, { notLeader: 100 });
  ok(formatSummary(s).includes("SET notLeader ×100"));
});

Deno.test("a duration run stops on time; the time limit cuts an --ops run short", async () => {
  const t0 = performance.now();
  const r = await runLoad({ ...spec, durationMs: 150 }, new FakeTarget(2));
  const took = performance.now() - t0;
  ok(took >= 150 && took < 1000, `took ${took} ms`);
  ok(r.histograms.GET.count + r.histograms.SET.count > 10);
  const cut = await runLoad({ ...spec, ops: 1_000_000, timeLimitMs: 100 }, new FakeTarget(2));
  strictEqual(cut.timedOut, true);
});

Deno.test("results survive JSON and merge: counts add, elapsed is the longest", async () => {
  const a = await runLoad({ ...spec, ops: 50 }, new FakeTarget(0, 5));
  const b = await runLoad({ ...spec, ops: 70 }, new FakeTarget(0));
  const m = mergeResults([resultFromJson(JSON.parse(JSON.stringify(resultToJson(a)))), b]);
  strictEqual(m.histograms.GET.count + m.histograms.SET.count + errorCount(m), 120);
  strictEqual(errorCount(m), errorCount(a));
  strictEqual(m.elapsedMs, Math.max(a.elapsedMs, b.elapsedMs));
  strictEqual(m.redirects, a.redirects + b.redirects);
});

Deno.test("a mix with DELETE and CAS ratios issues those operations and reports them per kind", async () => {
  const t = new FakeTarget(0);
  let deletes = 0, cases = 0;
  const target: LoadTarget = Object.assign(t, {
    delete: () => {
      deletes++;
      return Promise.resolve();
    },
    cas: () => {
      cases++;
      return Promise.resolve();
    },
  });
  const r = await runLoad({ ...spec, ops: 2000, readRatio: 0.25, deleteRatio: 0.25, casRatio: 0.25 }, target);
  strictEqual(r.histograms.DEL.count, deletes);
  strictEqual(r.histograms.CAS.count, cases);
  ok(deletes > 350 && cases > 350 && t.sets > 350 && t.gets > 350, `${deletes} ${cases} ${t.sets} ${t.gets}`);
  const back = resultFromJson(JSON.parse(JSON.stringify(resultToJson(r))));
  strictEqual(back.histograms.CAS.count, cases);
  const s = summarize(r, {
    ...spec,
    target: "x",
    mode: "leader",
    processes: 1,
    deleteRatio: 0.25,
    casRatio: 0.25,
  });
  strictEqual(s.ops, 2000);
  ok(/25% DEL, 25% CAS/.test(formatSummary(s)) && /\nCAS +\d+/.test(formatSummary(s)), formatSummary(s));
});
