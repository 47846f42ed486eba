import { ClockSanity } from "./sanity.ts";

function assertEquals<T>(actual: T, expected: T, msg = ""): void {
  const a = JSON.stringify(actual), e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${msg}\nexpected: ${e}\nactual:   ${a}`);
}

const D = 800;

Deno.test("regular loop turns with clocks drifting within the budget raise nothing", () => {
  const s = new ClockSanity({ leaseDurationMs: D, maxClockDrift: 0.01 });
  const found: string[] = [];
  for (let t = 0; t < 60_000; t += 100) {
    const f = s.observe(t * 1.01 + 5, t + 1e12); // monotonic runs 1 % fast, wall at real rate
    if (f) found.push(f.reason);
  }
  assertEquals(found, []);
});

Deno.test("a loop stall longer than 3/4 of the lease is reported as a stall", () => {
  const s = new ClockSanity({ leaseDurationMs: D, maxClockDrift: 0.01 });
  s.observe(0, 0);
  assertEquals(s.observe(500, 500), undefined);
  assertEquals(s.observe(1101, 1101)?.kind, "stall");
});

Deno.test("a stopped monotonic clock (VM frozen) shows as a jump against the wall clock", () => {
  const s = new ClockSanity({ leaseDurationMs: D, maxClockDrift: 0.01 });
  s.observe(1000, 50_000);
  // Frozen for 5 s: the wall clock (resynchronised) moved on, the monotonic one did not.
  const f = s.observe(1010, 55_010);
  assertEquals(f?.kind, "jump");
  assertEquals(s.observe(1110, 55_110), undefined, "later turns are normal again");
});

Deno.test("a wall clock stepped back shows as a jump too", () => {
  const s = new ClockSanity({ leaseDurationMs: D, maxClockDrift: 0.01 });
  s.observe(0, 10_000);
  assertEquals(s.observe(100, 9_000)?.kind, "jump");
});

Deno.test("a peer's long interval off by more than the squared budget is reported; jitter on short ones is not", () => {
  const s = new ClockSanity({ leaseDurationMs: D, maxClockDrift: 0.01 });
  assertEquals(s.peerInterval(2, 100, 150), undefined, "too short to judge");
  assertEquals(s.peerInterval(2, 10_000, 10_150), undefined, "1.5 % is within (1.01)^2");
  assertEquals(s.peerInterval(2, 10_000, 10_500)?.kind, "peerRate");
  assertEquals(s.peerInterval(2, 10_500, 10_000)?.kind, "peerRate");
});
