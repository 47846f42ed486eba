/**
 * The node driver: the one loop around the pure Raft core, used by the real node, the simulator and the
 * tests (see README.md).
 *
 * ```ts
 * import { Driver } from "./mod.ts";
 * const driver = new Driver({ config, persisted, stateMachine, random, store, sender, clock });
 * driver.deliver(message);            // a peer message
 * driver.propose(command, (outcome) => console.log(outcome.kind));
 * driver.read("x", (r) => console.log(r));
 * ```
 * @module
 */
export { DEFAULT_DRIVER_LIMITS, Driver, READ_INDEX_TIMEOUT_MS_DEFAULT } from "./driver.ts";
export type {
  DriverClock,
  DriverHooks,
  DriverLimits,
  DriverOptions,
  DriverStore,
  MembershipOutcome,
  PeerSender,
  ProposalHandle,
  ProposalOutcome,
  ReadOutcome,
  TransferOutcome,
} from "./driver.ts";
