import { deepStrictEqual as assertEquals, match as assertMatch, ok as assert } from "node:assert/strict";
import {
  checkHistory,
  checkStaleReads,
  History,
  type HistoryEvent,
  parseJsonl,
  toOperations,
} from "./history.ts";

/** A tiny DSL: [process, type, f, key, value, time]. */
type Row = [number, HistoryEvent["type"], "get" | "set", string, string | null, number];
const h = (...rows: Row[]): HistoryEvent[] =>
  rows.map(([process, type, f, key, value, time]) => ({ process, type, f, key, value, time }));

Deno.test("history: invoke/completion pairs become operations; an unfinished call is info", () => {
  const { ops, counts, problems } = toOperations(h(
    [0, "invoke", "set", "k", "a", 1],
    [1, "invoke", "get", "k", null, 2],
    [0, "ok", "set", "k", "a", 3],
    [1, "ok", "get", "k", "a", 4],
    [2, "invoke", "set", "k", "b", 5],
  ));
  assertEquals(problems, []);
  assertEquals(counts, {
    ok: 2,
    fail: 0,
    info: 1,
    gets: 1,
    sets: 2,
    deletes: 0,
    cases: 0,
    casSucceeded: 0,
    casFailed: 0,
  });
  assertEquals(ops.map((o) => [o.kind, o.value, o.invokeMs, o.returnMs, o.outcome]), [
    ["set", "a", 1, 3, "ok"],
    ["get", "a", 2, 4, "ok"],
    ["set", "b", 5, Infinity, "info"],
  ]);
});

Deno.test("history: malformed histories are reported", () => {
  const { problems } = toOperations(h(
    [0, "ok", "set", "k", "a", 1],
    [1, "invoke", "get", "k", null, 2],
    [1, "invoke", "get", "k", null, 3],
    [2, "invoke", "set", "k", "x", 4],
    [2, "ok", "set", "k", "y", 5],
  ));
  assertEquals(problems.length, 3);
});

Deno.test("history: JSON lines round-trip in the Jepsen shape", () => {
  const hist = new History();
  hist.invoke(3, "set", "k1", "v", 1.5);
  hist.complete(3, "ok", "set", "k1", "v", { node: 2 }, 2.25);
  hist.invoke(4, "get", "k1", null, 3);
  hist.complete(4, "info", "get", "k1", null, { error: "node 1: DEADLINE_EXCEEDED" }, 4);
  const text = hist.toJsonl();
  assertEquals(
    text.split("\n")[0],
    `{"process":3,"type":"invoke","f":"set","key":"k1","value":"v","time":1.5}`,
  );
  assertEquals(parseJsonl(text), hist.events);
});

Deno.test("checker: a sequential history with concurrent reads is linearizable", () => {
  const v = checkHistory(h(
    [0, "invoke", "get", "k", null, 0],
    [0, "ok", "get", "k", "", 1],
    [0, "invoke", "set", "k", "a", 2],
    [1, "invoke", "get", "k", null, 3],
    [1, "ok", "get", "k", "a", 4], // concurrent with the SET: may see it
    [0, "ok", "set", "k", "a", 5],
    [1, "invoke", "get", "k", null, 6],
    [1, "ok", "get", "k", "a", 7],
  ));
  assertEquals(v.result.ok, true);
  assertEquals(v.checked, 4);
});

Deno.test("checker: a stale read after an acknowledged SET is caught", () => {
  const v = checkHistory(h(
    [0, "invoke", "set", "k", "a", 0],
    [0, "ok", "set", "k", "a", 1],
    [0, "invoke", "set", "k", "b", 2],
    [0, "ok", "set", "k", "b", 3],
    [1, "invoke", "get", "k", null, 4],
    [1, "ok", "get", "k", "a", 5],
  ));
  assertEquals(v.result.ok, false);
  if (v.result.ok === false) assertMatch(v.result.explanation, /GET k → "a"/);
});

Deno.test("checker: a lost acknowledged SET (final read sees the older value) is caught", () => {
  const v = checkHistory(h(
    [0, "invoke", "set", "k", "a", 0],
    [0, "ok", "set", "k", "a", 1],
    [1, "invoke", "set", "k", "b", 2],
    [1, "ok", "set", "k", "b", 3],
    [1_000_000, "invoke", "get", "k", null, 10],
    [1_000_000, "ok", "get", "k", "a", 11],
  ));
  assertEquals(v.result.ok, false);
  if (v.result.ok === false) assertMatch(v.result.explanation, /c1000000/);
});

Deno.test("checker: an info SET may take effect later, or never", () => {
  const base: Row[] = [
    [0, "invoke", "set", "k", "a", 0],
    [0, "ok", "set", "k", "a", 1],
    [1, "invoke", "set", "k", "b", 2],
    [1, "info", "set", "k", "b", 3],
  ];
  // Read long after the timeout: the SET applied late.
  assertEquals(
    checkHistory(h(...base, [2, "invoke", "get", "k", null, 100], [2, "ok", "get", "k", "b", 101])).result.ok,
    true,
  );
  // Or it never applied.
  assertEquals(
    checkHistory(h(...base, [2, "invoke", "get", "k", null, 100], [2, "ok", "get", "k", "a", 101])).result.ok,
    true,
  );
  // But it cannot apply before it was invoked.
  const early = checkHistory(h(
    [1, "invoke", "get", "k", null, 0],
    [1, "ok", "get", "k", "b", 1],
    [0, "invoke", "set", "k", "b", 2],
    [0, "info", "set", "k", "b", 3],
  ));
  assertEquals(early.result.ok, false);
});

Deno.test("checker: a failed SET never takes effect; reading its value is a violation", () => {
  const v = checkHistory(h(
    [0, "invoke", "set", "k", "a", 0],
    [0, "fail", "set", "k", "a", 1],
    [1, "invoke", "get", "k", null, 2],
    [1, "ok", "get", "k", "a", 3],
  ));
  assertEquals(v.result.ok, false);
});

Deno.test("checker: keys are independent registers", () => {
  const v = checkHistory(h(
    [0, "invoke", "set", "x", "1", 0],
    [0, "ok", "set", "x", "1", 1],
    [1, "invoke", "get", "y", null, 2],
    [1, "ok", "get", "y", "", 3],
  ));
  assertEquals(v.result.ok, true);
  assertEquals(v.keys, 2);
});

Deno.test("checker: thousands of operations with many concurrent unknown SETs finish quickly", () => {
  const rows: Row[] = [];
  let t = 0, n = 0;
  for (let i = 0; i < 3000; i++) {
    const p = i % 5;
    if (i % 7 === 3) {
      const v = `v${n++}`;
      rows.push([1000 + i, "invoke", "set", "k", v, t], [1000 + i, "info", "set", "k", v, t + 1]);
      rows.push([p, "invoke", "get", "k", null, t + 2], [p, "ok", "get", "k", v, t + 3]); // it applied
    } else if (i % 2 === 0) {
      const v = `v${n++}`;
      rows.push([p, "invoke", "set", "k", v, t], [p, "ok", "set", "k", v, t + 1]);
    } else {
      const last = rows.findLast((r) => r[2] === "set" && r[1] !== "invoke")!;
      rows.push([p, "invoke", "get", "k", null, t], [p, "ok", "get", "k", last[4], t + 1]);
    }
    t += 4;
  }
  const t0 = performance.now();
  const v = checkHistory(h(...rows));
  assertEquals(v.result.ok, true);
  assert(performance.now() - t0 < 10_000, "the checker took too long");
});

Deno.test("delete and CAS events pair up; a CAS whose comparison failed is a read of the value it found", () => {
  const h = new History();
  h.invoke(1, "set", "k", "a", 0);
  h.complete(1, "ok", "set", "k", "a", { node: 1 }, 1);
  h.invoke(2, "cas", "k", ["a", "b"], 2);
  h.complete(2, "ok", "cas", "k", ["a", "b"], { node: 1 }, 3);
  h.invoke(3, "cas", "k", [null, "c"], 4);
  h.complete(3, "fail", "cas", "k", [null, "c"], { node: 1, current: "b" }, 5);
  h.invoke(4, "delete", "k", null, 6);
  h.complete(4, "ok", "delete", "k", null, { node: 1 }, 7);
  h.invoke(5, "cas", "k", ["zzz", "d"], 8);
  h.complete(5, "fail", "cas", "k", ["zzz", "d"], { error: "no leader" }, 9);
  const events = parseJsonl(h.toJsonl());
  assertEquals(events[2].value, ["a", "b"]);
  const { ops, counts, problems } = toOperations(events);
  assertEquals(problems, []);
  assertEquals([counts.deletes, counts.cases, counts.casSucceeded, counts.casFailed], [1, 3, 1, 1]);
  const failed = ops.find((o) => o.client === 3)!;
  assertEquals([failed.outcome, failed.succeeded, failed.current, failed.expected], ["ok", false, "b", ""]);
  assertEquals(ops.find((o) => o.client === 5)!.outcome, "fail"); // a refusal: nothing learnt
  assertEquals(checkHistory(events).result.ok, true);
  // The failed CAS claims to have seen "a" after the CAS that replaced it: caught.
  const bad = parseJsonl(h.toJsonl().replace('"current":"b"', '"current":"a"'));
  assertEquals(checkHistory(bad).result.ok, false);
});

Deno.test("history: a stale read is accepted within its bound, refused past it, and left out of linearizability", () => {
  const stale = (
    process: number,
    inv: number,
    done: number,
    value: string,
    bound: number,
  ): HistoryEvent[] => [
    {
      process,
      type: "invoke",
      f: "get",
      key: "k",
      value: null,
      time: inv,
      readMode: "stale",
      maxStalenessMs: bound,
    },
    { process, type: "ok", f: "get", key: "k", value, time: done },
  ];
  const writes = h(
    [0, "invoke", "set", "k", "a", 0],
    [0, "ok", "set", "k", "a", 10],
    [1, "invoke", "set", "k", "b", 100],
    [1, "ok", "set", "k", "b", 110],
  );
  // "a" was current until "b" was acknowledged at 110: a read at [300, 305] with a 250 ms bound may see it
  // (the window opens at 50), with a 100 ms bound it may not (the window opens at 200).
  const okRead = checkStaleReads([...writes, ...stale(2, 300, 305, "a", 250)]);
  assertEquals([okRead.checked, okRead.violations], [1, []]);
  const tooOld = checkStaleReads([...writes, ...stale(2, 300, 305, "a", 100)]);
  assertEquals(tooOld.checked, 1);
  assertMatch(tooOld.violations[0], /stale GET k → "a"/);
  // The absent key before any write is a value too: too old once "a" was acknowledged before the window.
  assertEquals(checkStaleReads([...writes, ...stale(2, 300, 305, "", 100)]).violations.length, 1);
  assertEquals(checkStaleReads([...writes, ...stale(2, 5, 8, "", 100)]).violations.length, 0);
  // A value from the future (written after the read completed) is refused whatever the bound.
  assertEquals(checkStaleReads([...writes, ...stale(2, 20, 30, "b", 1000)]).violations.length, 1);
  // The linearizability check ignores stale reads: this history would not be linearizable with it.
  assertEquals(checkHistory([...writes, ...stale(2, 300, 305, "a", 250)]).result.ok, true);
});
