import { deepStrictEqual as assertEquals, ok as assert, throws as assertThrows } from "node:assert/strict";

function assertAlmostEquals(actual: number, expected: number, tolerance: number): void {
  assert(Math.abs(actual - expected) <= tolerance, `${actual} is not within ${tolerance} of ${expected}`);
}
import { bucketHigh, bucketLow, bucketOf, BUCKETS, Histogram } from "./histogram.ts";

Deno.test("buckets are contiguous, ordered and cover 0..2^32-1", () => {
  let prevHigh = -1;
  for (let i = 0; i < BUCKETS; i++) {
    assertEquals(bucketLow(i), prevHigh + 1, `bucket ${i}`);
    assert(bucketHigh(i) >= bucketLow(i));
    prevHigh = bucketHigh(i);
  }
  assertEquals(prevHigh, 0xffff_ffff);
});

Deno.test("every value falls in its bucket, with at most 1/64 relative width", () => {
  const values = [0, 1, 127, 128, 129, 255, 256, 1000, 4095, 4096, 123_456, 9_999_999, 0xffff_ffff];
  for (let v = 1; v < 2 ** 32; v = Math.floor(v * 1.37) + 1) values.push(v);
  for (const v of values) {
    const i = bucketOf(v);
    assert(i >= 0 && i < BUCKETS, `value ${v}: bucket ${i}`);
    assert(bucketLow(i) <= v && v <= bucketHigh(i), `value ${v} outside bucket ${i}`);
    if (v >= 128) assert((bucketHigh(i) - bucketLow(i) + 1) / bucketLow(i) <= 1 / 64 + 1e-12);
  }
});

Deno.test("percentiles of a uniform 1..10000 µs distribution are within 1%", () => {
  const h = new Histogram();
  for (let v = 1; v <= 10_000; v++) h.record(v);
  assertEquals(h.count, 10_000);
  assertEquals(h.min, 1);
  assertEquals(h.max, 10_000);
  assertAlmostEquals(h.mean, 5000.5, 1e-9);
  for (const p of [50, 90, 99, 99.9]) {
    const want = (p / 100) * 10_000;
    const got = h.percentile(p);
    assert(Math.abs(got - want) / want < 0.01, `p${p}: ${got} vs ${want}`);
  }
  assertEquals(h.percentile(100), 10_000);
  assertEquals(h.percentile(0), 1);
});

Deno.test("small values are exact; ms helper; clamping; empty histogram", () => {
  const h = new Histogram();
  assertEquals(h.percentile(50), 0);
  assertEquals(h.mean, 0);
  assertEquals(h.min, 0);
  h.record(3);
  h.record(3);
  h.record(7);
  assertEquals(h.percentile(50), 3);
  assertEquals(h.percentile(99), 7);
  h.recordMs(0.01); // 10 µs
  assertEquals(h.min, 3);
  h.record(-5);
  h.record(Number.NaN);
  assertEquals(h.min, 0);
  h.record(1e12);
  assertEquals(h.max, 0xffff_ffff);
});

Deno.test("merge and JSON round trip keep every count and statistic", () => {
  const a = new Histogram(), b = new Histogram();
  for (let i = 0; i < 1000; i++) a.record(100 + i * 7);
  for (let i = 0; i < 500; i++) b.record(50_000 + i * 13);
  const merged = Histogram.fromJSON(JSON.parse(JSON.stringify(a.toJSON()))).merge(
    Histogram.fromJSON(b.toJSON()),
  );
  assertEquals(merged.count, 1500);
  assertEquals(merged.min, 100);
  assertEquals(merged.max, 50_000 + 499 * 13);
  assertAlmostEquals(merged.mean, (a.mean * 1000 + b.mean * 500) / 1500, 1e-6);
  // two thirds of the values are in a: p50 in a's range, p90 in b's
  assert(merged.percentile(50) < 7200);
  assert(merged.percentile(90) > 50_000);
  assertEquals(merged.merge(new Histogram()).count, 1500);
});

Deno.test("fromJSON refuses malformed input", () => {
  assertThrows(
    () => Histogram.fromJSON({ buckets: [[BUCKETS, 1]], count: 1, sum: 1, min: 1, max: 1 }),
    TypeError,
  );
  assertThrows(() => Histogram.fromJSON({ buckets: [[3, 2]], count: 1, sum: 6, min: 3, max: 3 }), TypeError);
  assertThrows(() => Histogram.fromJSON(null as never), TypeError);
});
