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

/** Messages from a peer every `everyMs` for `forMs`, its clock running at `rate` of ours, with delays. */
function feed(
  s: ClockSanity,
  rate: number,
  forMs: number,
  delay: (i: number) => number,
  everyMs = 50,
): { found: string[]; checks: number } {
  const found: string[] = [];
  let checks = 0;
  for (let i = 0, t = 0; t < forMs; i++, t += everyMs) {
    const f = s.peerSample(2, 5_000 + t * rate, 1_000_000 + t + delay(i));
    if (s.peerRates().has(2)) checks++;
    if (f) found.push(f.reason);
  }
  return { found, checks };
}

Deno.test("peer traffic from a clock within the budget raises nothing, through delays and stalls", () => {
  const s = new ClockSanity({ leaseDurationMs: D, maxClockDrift: 0.01 });
  // 1.5 % fast (inside (1.01)² ≈ 2 %), each message late by 0-40 ms, and every 97th by a 600 ms stall.
  const { found, checks } = feed(s, 1.015, 120_000, (i) => (i * 7919) % 41 + (i % 97 === 0 ? 600 : 0));
  assertEquals(found, []);
  assertEquals(checks > 0, true, "intervals were judged");
  const rate = s.peerRates().get(2)!;
  assertEquals(Math.abs(rate - 1.015) < 0.001, true, `measured rate ${rate}`);
});

Deno.test("a peer whose clock runs 3 % fast is reported from its traffic, naming the peer", () => {
  const s = new ClockSanity({ leaseDurationMs: D, maxClockDrift: 0.01 });
  const { found } = feed(s, 1.03, 60_000, (i) => (i * 7919) % 41);
  assertEquals(found.length > 0, true, "reported");
  assertEquals(found[0].startsWith("node 2 measured"), true, found[0]);
});

Deno.test("a window whose messages all came late (a stalled receiver) is not a rate finding", () => {
  const s = new ClockSanity({ leaseDurationMs: D, maxClockDrift: 0.01 });
  // Messages every 50 ms; those received in [40 s, 48.5 s) of ours (more than one 8 s window) 1.5 s late.
  const { found, checks } = feed(s, 1, 120_000, (i) => (i * 50 >= 40_000 && i * 50 < 48_500 ? 1_500 : 0));
  assertEquals(found, []);
  assertEquals(checks > 0, true, "intervals were judged");
});

Deno.test("a peer that restarts (its stamps go back) or sends no stamps is not judged against its past", () => {
  const s = new ClockSanity({ leaseDurationMs: D, maxClockDrift: 0.01 });
  assertEquals(s.peerSample(2, 0, 10), undefined);
  feed(s, 1, 40_000, () => 1);
  // A restart: the stamps start from a small value again while ours go on; no finding from the jump.
  const found: string[] = [];
  for (let t = 0; t < 40_000; t += 50) {
    const f = s.peerSample(2, 100 + t, 2_000_000 + t + 1);
    if (f) found.push(f.reason);
  }
  assertEquals(found, []);
});
