/**
 * Agreement on timings (issue 11 part 5): the fingerprint every peer request carries, and its refusal.
 */
import { DEFAULT_TIMINGS, fingerprintMismatch, peerFingerprint } from "./config.ts";

function assert(cond: unknown, msg = "assertion failed"): asserts cond {
  if (!cond) throw new Error(msg);
}

Deno.test("peers with the same cluster id and timings agree on their fingerprint", () => {
  const a = peerFingerprint("prod", DEFAULT_TIMINGS);
  assert(a === peerFingerprint("prod", { ...DEFAULT_TIMINGS }), a);
  assert(fingerprintMismatch(a, a) === undefined);
});

Deno.test("a different lease, election timeout, heartbeat, drift budget or cluster id changes the fingerprint", () => {
  const base = peerFingerprint("prod", DEFAULT_TIMINGS);
  const variants = [
    peerFingerprint("prod", { ...DEFAULT_TIMINGS, leaseDurationMs: 400 }),
    peerFingerprint("prod", { ...DEFAULT_TIMINGS, electionTimeoutMsMin: 1200 }),
    peerFingerprint("prod", { ...DEFAULT_TIMINGS, electionTimeoutMsMax: 2500 }),
    peerFingerprint("prod", { ...DEFAULT_TIMINGS, heartbeatIntervalMs: 50 }),
    peerFingerprint("prod", { ...DEFAULT_TIMINGS, maxClockDrift: 0.02 }),
    peerFingerprint("test", DEFAULT_TIMINGS),
  ];
  for (const v of variants) assert(fingerprintMismatch(base, v) !== undefined, `${v} accepted as ${base}`);
  assert(new Set(variants).size === variants.length);
});

Deno.test("a timing mismatch is refused with an error naming both values", () => {
  const ours = peerFingerprint("prod", DEFAULT_TIMINGS);
  const theirs = peerFingerprint("prod", { ...DEFAULT_TIMINGS, leaseDurationMs: 400 });
  const why = fingerprintMismatch(ours, theirs)!;
  assert(why.includes("lease=800ms") && why.includes("lease=400ms"), why);
});
