/**
 * The pure Raft core with a leader lease. No I/O, no clock, no randomness of its own: the caller passes its
 * local monotonic time (`nowMs`) and a seeded random source, and handles each `Ready` by persisting, then
 * sending, then answering.
 *
 * ```ts
 * import { RaftCore, DEFAULT_TIMINGS, DEFAULT_LIMITS } from "./mod.ts";
 * const core = new RaftCore(
 *   { ...DEFAULT_TIMINGS, ...DEFAULT_LIMITS, id: 1, voterIds: [1], preVote: true },
 *   { hardState: { term: 0, votedFor: 0 }, entries: [], commitIndex: 0 },
 *   stateMachine, seededRandom, nowMs,
 * );
 * core.tick(nowMs);
 * const rd = core.ready(); // persist rd.hardState/rd.entries, then send rd.messages, then deliver rd.results
 * ```
 * See README.md in this folder for the lease design.
 * @module
 */
export { RaftCore, sendableBeforePersist } from "./core.ts";
export type { CoreOptions } from "./core.ts";
export {
  ConfigError,
  DEFAULT_LIMITS,
  DEFAULT_TIMINGS,
  validateConfig,
  validateLimits,
  validateTimings,
} from "./config.ts";
export type { RaftConfig, RaftLimits, RaftTimings } from "./config.ts";
export { BROKEN_RULES } from "./state_machine.ts";
export type { BrokenRule, Random, StateMachine } from "./state_machine.ts";
export { describeCommand, describeEntry, describeEvent, describeMessage, token } from "./describe.ts";
export type * from "./types.ts";
