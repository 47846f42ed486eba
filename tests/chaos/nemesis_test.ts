import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { FAULT_KINDS, planSchedule } from "./nemesis.ts";

const OPTS = { ids: [1, 2, 3, 4, 5], durationMs: 60_000, skewMax: 0.009 };

Deno.test("nemesis: a seed names one schedule", () => {
  assertEquals(planSchedule("42", OPTS), planSchedule("42", OPTS));
  assert(JSON.stringify(planSchedule("42", OPTS)) !== JSON.stringify(planSchedule("43", OPTS)));
});

Deno.test("nemesis: every fault kind comes once before any repeats", () => {
  for (const seed of ["1", "2", "abc"]) {
    const plan = planSchedule(seed, OPTS);
    assertEquals(new Set(plan.slice(0, FAULT_KINDS.length).map((s) => s.kind)).size, FAULT_KINDS.length);
  }
});

Deno.test("nemesis: the plan fills the duration; draws stay in their ranges", () => {
  const plan = planSchedule("7", OPTS);
  const total = plan.reduce((t, s) => t + s.holdMs + s.quietMs + 300, 0);
  assert(total >= 2 * OPTS.durationMs, `plan covers ${total} ms`);
  for (const s of plan) {
    assert(Math.abs(s.rate - 1) <= OPTS.skewMax + 1e-9, `rate ${s.rate}`);
    assertEquals([...s.order].sort(), [1, 2, 3, 4, 5]);
    if (s.kind === "pause" || s.kind === "pause-leader") {
      assert(s.holdMs >= 300, "a pause outlasts the lease");
    }
    assert(s.delayMs >= 5 && s.delayMs <= 100);
  }
});

Deno.test("nemesis: a short duration still gets every kind", () => {
  const plan = planSchedule("9", { ...OPTS, durationMs: 0 });
  assertEquals(plan.length, FAULT_KINDS.length);
});
