/**
 * Clock sanity for the leader lease: a pure detector of clock stalls, monotonic/wall jumps and peers whose
 * durations disagree with ours beyond the drift budget. See sanity.ts and src/raft/README.md.
 *
 * ```ts
 * import { ClockSanity } from "./mod.ts";
 * const sanity = new ClockSanity({ leaseDurationMs: 800, maxClockDrift: 0.01 });
 * const finding = sanity.observe(performance.now(), Date.now()); // once per loop turn
 * if (finding) core.dropLease(performance.now(), finding.reason);
 * ```
 * @module
 */
export { ClockSanity } from "./sanity.ts";
export type { ClockFinding, ClockSanityOptions } from "./sanity.ts";
