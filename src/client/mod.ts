/**
 * The raftkv client library: SET, GET, DELETE, compare-and-set, prefix LIST and WATCH against a cluster, following the leader, retrying within a
 * deadline, and applying each SET exactly once (SPEC §3).
 *
 * @example Write and read
 * ```ts
 * import { RaftkvClient } from "./mod.ts";
 * const client = new RaftkvClient({
 *   nodes: [{ id: 1, address: "127.0.0.1:7101" }, { id: 2, address: "127.0.0.1:7102" }],
 *   timeoutMs: 5000,
 * });
 * const { nodeId, latencyMs } = await client.set("name", "Jon");
 * const { value, found } = await client.get("name");
 * client.close();
 * ```
 *
 * Failures reject with a {@linkcode RaftkvClientError} subclass whose message is one line:
 * {@linkcode NoLeaderError}, {@linkcode TimeoutError}, {@linkcode InvalidArgumentError},
 * {@linkcode NotRaftkvError}, {@linkcode ClientClosedError}.
 *
 * @module
 */
export {
  accessDenied,
  type AttemptEvent,
  type CasResult,
  DEFAULT_ATTEMPT_TIMEOUT_MS,
  DEFAULT_TIMEOUT_MS,
  type DeleteResult,
  describeTransportError,
  type GetOptions,
  type GetResult,
  type ListOptions,
  type ListResult,
  type Op,
  RaftkvClient,
  type RaftkvClientOptions,
  type RequestOptions,
  type SetResult,
  WatchError,
  type WatchOptions,
} from "./client.ts";
export { backoffMs, type BackoffOptions, DEFAULT_BACKOFF } from "./backoff.ts";
export {
  AccessDeniedError,
  type AttemptSummary,
  ClientClosedError,
  InvalidArgumentError,
  NoLeaderError,
  NotRaftkvError,
  RaftkvClientError,
  RequestTooLargeError,
  SessionExpiredError,
  StaleSequenceError,
  TimeoutError,
} from "./errors.ts";
