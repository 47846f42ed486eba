import { checkLinearizable, checkRegister, type HistoryOp } from "./linearizability.ts";
import { assert, assertEquals } from "./assert.ts";

let nextId = 0;
function set(
  client: number,
  value: string,
  invokeMs: number,
  returnMs: number,
  outcome: HistoryOp["outcome"] = "ok",
) {
  return {
    id: nextId++,
    client,
    kind: "set",
    key: "k",
    value,
    invokeMs,
    returnMs: outcome === "ok" ? returnMs : Infinity,
    outcome,
  } as const;
}
function get(
  client: number,
  value: string,
  invokeMs: number,
  returnMs: number,
  outcome: HistoryOp["outcome"] = "ok",
) {
  return { id: nextId++, client, kind: "get", key: "k", value, invokeMs, returnMs, outcome } as const;
}
const ok = (h: HistoryOp[]) => checkRegister("k", h).ok;

Deno.test("a sequential history of writes and reads is linearizable", () => {
  assertEquals(ok([set(1, "a", 0, 1), get(2, "a", 2, 3), set(1, "b", 4, 5), get(2, "b", 6, 7)]), true);
});

Deno.test("a read of a missing key returns the empty string", () => {
  assertEquals(ok([get(1, "", 0, 1), set(1, "a", 2, 3), get(1, "a", 4, 5)]), true);
  assertEquals(ok([set(1, "a", 0, 1), get(2, "", 2, 3)]), false);
});

Deno.test("a stale read after a completed write is not linearizable", () => {
  assertEquals(ok([set(1, "a", 0, 1), set(1, "b", 2, 3), get(2, "a", 4, 5)]), false);
});

Deno.test("a read concurrent with a write may return the old or the new value", () => {
  assertEquals(ok([set(1, "a", 0, 1), set(1, "b", 2, 10), get(2, "a", 3, 4)]), true);
  assertEquals(ok([set(1, "a", 0, 1), set(1, "b", 2, 10), get(2, "b", 3, 4)]), true);
});

Deno.test("two reads cannot see concurrent writes in opposite orders one after the other", () => {
  // b and c are concurrent; reader 3 sees c then b, reader 4 (strictly later) sees c: b must have come last.
  const h = [set(1, "b", 0, 10), set(2, "c", 0, 10), get(3, "c", 1, 2), get(3, "b", 3, 4), get(4, "c", 5, 6)];
  assertEquals(ok(h), false);
  assertEquals(ok(h.slice(0, 4)), true);
});

Deno.test("an unknown (info) write may take effect late, or never", () => {
  // It never completes: it may be seen after later operations…
  assertEquals(
    ok([set(1, "a", 0, 1), set(2, "x", 2, 0, "info"), get(3, "a", 5, 6), get(3, "x", 7, 8)]),
    true,
  );
  // …or never be seen at all.
  assertEquals(ok([set(1, "a", 0, 1), set(2, "x", 2, 0, "info"), get(3, "a", 50, 60)]), true);
  // But not before it was invoked.
  assertEquals(ok([get(3, "x", 0, 1), set(2, "x", 2, 0, "info")]), false);
  // And once seen and then overwritten, it cannot come back.
  assertEquals(
    ok([set(2, "x", 0, 0, "info"), get(3, "x", 1, 2), set(1, "a", 3, 4), get(3, "x", 5, 6)]),
    false,
  );
});

Deno.test("failed operations had no effect", () => {
  assertEquals(ok([set(1, "a", 0, 1), set(2, "b", 2, 3, "fail"), get(3, "a", 4, 5)]), true);
  assertEquals(ok([set(1, "a", 0, 1), set(2, "b", 2, 3, "fail"), get(3, "b", 4, 5)]), false);
});

Deno.test("a read of a value that was never written is named in the explanation", () => {
  const r = checkRegister("k", [get(1, "ghost", 0, 1)]);
  assert(r.ok === false && r.explanation.includes("no SET or CAS wrote"));
});

Deno.test("keys are checked independently and a violation names its key", () => {
  const h: HistoryOp[] = [
    { ...set(1, "a", 0, 1), key: "x" },
    { ...get(2, "a", 2, 3), key: "x" },
    { ...set(1, "b", 0, 1), key: "y" },
    { ...get(2, "", 2, 3), key: "y" },
  ];
  const r = checkLinearizable(h);
  assert(r.ok === false && r.key === "y", JSON.stringify(r));
});

Deno.test("a long concurrent history with many unknown writes is checked quickly", () => {
  const h: HistoryOp[] = [];
  let t = 0;
  for (let i = 0; i < 3000; i++) {
    const c = i % 5;
    if (i % 3 === 0) h.push(set(c, `v${i}`, t, t + 3, i % 30 === 0 ? "info" : "ok"));
    else {h.push(get(
        c,
        h.filter((o) => o.kind === "set" && o.outcome === "ok").at(-1)?.value ?? "",
        t + 4,
        t + 6,
      ));}
    t += 2;
  }
  const started = performance.now();
  assertEquals(checkRegister("k", h).ok, true);
  assert(performance.now() - started < 5000);
});

function del(
  client: number,
  invokeMs: number,
  returnMs: number,
  outcome: HistoryOp["outcome"] = "ok",
): HistoryOp {
  return {
    id: nextId++,
    client,
    kind: "delete",
    key: "k",
    value: "",
    invokeMs,
    returnMs: outcome === "ok" ? returnMs : Infinity,
    outcome,
  };
}
function cas(
  client: number,
  expected: string,
  value: string,
  invokeMs: number,
  returnMs: number,
  result: { succeeded: boolean; current?: string } | "info",
): HistoryOp {
  return {
    id: nextId++,
    client,
    kind: "cas",
    key: "k",
    value,
    expected,
    invokeMs,
    returnMs: result === "info" ? Infinity : returnMs,
    outcome: result === "info" ? "info" : "ok",
    ...(result === "info" ? {} : result),
  };
}

Deno.test("a delete makes later reads see a missing key, and a stale read after it is caught", () => {
  assertEquals(ok([set(1, "a", 0, 1), del(1, 2, 3), get(2, "", 4, 5)]), true);
  assertEquals(ok([set(1, "a", 0, 1), del(1, 2, 3), get(2, "a", 4, 5)]), false);
  // An unknown delete may or may not have happened.
  assertEquals(ok([set(1, "a", 0, 1), del(1, 2, 3, "info"), get(2, "a", 4, 5), get(2, "", 6, 7)]), true);
});

Deno.test("a CAS holds only on the expected value, and a failed CAS is a read of what it saw", () => {
  assertEquals(ok([set(1, "a", 0, 1), cas(2, "a", "b", 2, 3, { succeeded: true }), get(1, "b", 4, 5)]), true);
  // Two CASes from the same value cannot both hold (the lost update a counter must not suffer).
  assertEquals(
    ok([
      set(1, "a", 0, 1),
      cas(2, "a", "b", 2, 5, { succeeded: true }),
      cas(3, "a", "c", 2, 5, { succeeded: true }),
    ]),
    false,
  );
  // A CAS expecting absence on a key that exists cannot hold.
  assertEquals(ok([set(1, "a", 0, 1), cas(2, "", "b", 2, 3, { succeeded: true })]), false);
  assertEquals(ok([cas(2, "", "b", 0, 1, { succeeded: true }), get(1, "b", 2, 3)]), true);
  // A failed CAS reveals the value: it must be the current one, and not the expected one.
  assertEquals(ok([set(1, "a", 0, 1), cas(2, "x", "b", 2, 3, { succeeded: false, current: "a" })]), true);
  assertEquals(
    ok([set(1, "a", 0, 1), set(1, "z", 2, 3), cas(2, "x", "b", 4, 5, { succeeded: false, current: "a" })]),
    false,
  );
  assertEquals(ok([set(1, "a", 0, 1), cas(2, "a", "b", 2, 3, { succeeded: false, current: "a" })]), false);
  // An unknown CAS whose value was read took effect; one nobody read may not have.
  assertEquals(ok([set(1, "a", 0, 1), cas(2, "a", "b", 2, 3, "info"), get(1, "b", 4, 5)]), true);
  assertEquals(ok([set(1, "a", 0, 1), cas(2, "q", "b", 2, 3, "info"), get(1, "b", 4, 5)]), false);
});
