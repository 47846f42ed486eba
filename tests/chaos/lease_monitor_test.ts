import { deepStrictEqual as assertEquals, match as assertMatch } from "node:assert/strict";
import { LeaseOverlapDetector, type StatusSample } from "./lease_monitor.ts";

const serving = (node: number, term: number, sentMs: number, recvMs: number, lease = 200): StatusSample => ({
  node,
  term,
  sentMs,
  recvMs,
  role: "leader",
  servingReads: true,
  leaseRemainingMs: lease,
});

const follower = (node: number, term: number, sentMs: number, recvMs: number): StatusSample => ({
  node,
  term,
  sentMs,
  recvMs,
  role: "follower",
  servingReads: false,
  leaseRemainingMs: 0,
});

Deno.test("lease monitor: a clean hand-over (old stops, then new serves) is no anomaly", () => {
  const d = new LeaseOverlapDetector();
  d.add(serving(1, 3, 0, 2));
  d.add(serving(1, 3, 15, 17, 150)); // still claims 150 ms of lease, then revokes it for a transfer
  d.add(follower(1, 4, 30, 32));
  d.add(serving(2, 4, 31, 33));
  d.add(serving(2, 4, 45, 46));
  assertEquals(d.anomalies, []);
  assertEquals(d.servingSamples, 4);
});

Deno.test("lease monitor: polls of old and new leader in flight together prove nothing", () => {
  const d = new LeaseOverlapDetector();
  d.add(serving(2, 4, 10, 20)); // new leader, answered at 20
  d.add(serving(1, 3, 12, 25)); // old leader, sent at 12 < 20: may have been answered before 20
  assertEquals(d.anomalies, []);
});

Deno.test("lease monitor: an older term served after a newer term served is a stale lease", () => {
  const d = new LeaseOverlapDetector();
  d.add(serving(1, 3, 0, 2));
  d.add(serving(2, 4, 10, 12));
  d.add(serving(1, 3, 13, 15)); // sent after node 2's poll was answered
  assertEquals(d.anomalies.length, 1);
  assertEquals(d.anomalies[0].kind, "stale-lease");
  assertMatch(
    d.anomalies[0].description,
    /node 1 served lease reads in term 3 after node 2 had served in term 4/,
  );
});

Deno.test("lease monitor: the order is found whichever answer the harness processes first", () => {
  const d = new LeaseOverlapDetector();
  d.add(serving(1, 3, 13, 15));
  d.add(serving(2, 4, 10, 12));
  assertEquals(d.anomalies.map((a) => a.kind), ["stale-lease"]);
});

Deno.test("lease monitor: two leaders in one term, reported once", () => {
  const d = new LeaseOverlapDetector();
  d.add({ ...follower(1, 5, 0, 1), role: "leader" });
  d.add({ ...follower(2, 5, 100, 101), role: "leader" });
  d.add({ ...follower(2, 5, 120, 121), role: "leader" });
  assertEquals(d.anomalies.map((a) => a.kind), ["two-leaders-one-term"]);
});

Deno.test("lease monitor: poll skew is recorded", () => {
  const d = new LeaseOverlapDetector();
  d.add(follower(1, 1, 0, 7.5));
  d.add(follower(2, 1, 0, 3));
  assertEquals(d.maxSkewMs, 7.5);
  assertEquals(d.samples, 2);
});
