/**
 * The errors of the client library. Every message is one line a person can act on, e.g.
 * `no leader reachable after 5000 ms (tried nodes 1,2,3; last error: node 3: UNAVAILABLE)`.
 *
 * @module
 */

/** Base class: anything the client library gives up with. */
export class RaftkvClientError extends Error {
  override readonly name: string = "RaftkvClientError";
}

/** What a request saw before giving up: which nodes it tried and the last thing that went wrong. */
export interface AttemptSummary {
  /** The operation, e.g. `SET` or `GET`. */
  readonly op: string;
  /** Milliseconds the request ran. */
  readonly elapsedMs: number;
  /** Node labels in the order first tried (ids, or addresses for nodes whose id is unknown). */
  readonly tried: readonly string[];
  /** e.g. `node 3: UNAVAILABLE` (empty when nothing was attempted). */
  readonly lastError: string;
  /**
   * SET only: an attempt may have been appended by a leader that then could not commit it (no majority,
   * leadership lost, no answer in time). Such a SET can still take effect later, once; it cannot be told
   * apart from one that did not, so the message says so.
   */
  readonly maybeApplied?: boolean;
  /** How many distinct nodes answered at all, of `total` known: below a majority no leader can be elected. */
  readonly answered?: number;
  readonly total?: number;
}

function uncertainty(s: AttemptSummary): string {
  return s.maybeApplied ? `; the ${s.op} may or may not have been applied` : "";
}

function triedText(s: AttemptSummary): string {
  const nodes = s.tried.length > 0 ? `tried nodes ${s.tried.join(",")}` : "no node tried";
  return s.lastError ? `${nodes}; last error: ${s.lastError}` : nodes;
}

/**
 * No node acted as a leader before the deadline: all unreachable, or none knew a leader. When fewer than a
 * majority of the known nodes answered at all, the message says that no quorum is available (the cause an
 * operator must fix), not merely that no leader was reachable.
 */
export class NoLeaderError extends RaftkvClientError {
  override readonly name = "NoLeaderError";
  readonly summary: AttemptSummary;

  constructor(summary: AttemptSummary) {
    const { answered, total } = summary;
    const majority = total !== undefined ? Math.floor(total / 2) + 1 : 0;
    const head = answered !== undefined && total !== undefined && total > 1 && answered < majority
      ? `no quorum available: only ${answered} of ${total} nodes answered and a leader needs ${majority}; ` +
        `start the stopped nodes (or fix the network) so that a majority is up. Gave up after`
      : "no leader reachable after";
    super(`${head} ${Math.round(summary.elapsedMs)} ms${uncertainty(summary)} (${triedText(summary)})`);
    this.summary = summary;
  }

  /** True when fewer than a majority of the known nodes answered (see the class comment). */
  get noQuorum(): boolean {
    return this.message.startsWith("no quorum available");
  }
}

/** A leader was found, but the request did not complete before the deadline (e.g. no majority to commit). */
export class TimeoutError extends RaftkvClientError {
  override readonly name = "TimeoutError";
  readonly summary: AttemptSummary;
  /** The node that last acted as leader. */
  readonly leader: string;

  constructor(summary: AttemptSummary, leader: string) {
    super(
      `${summary.op} timed out after ${Math.round(summary.elapsedMs)} ms${uncertainty(summary)} ` +
        `(leader was node ${leader}; ${triedText(summary)})`,
    );
    this.summary = summary;
    this.leader = leader;
  }
}

/** The cluster refused the request itself (empty key, value too large, …): retrying cannot help. */
export class InvalidArgumentError extends RaftkvClientError {
  override readonly name = "InvalidArgumentError";
  /** The node that refused it. */
  readonly nodeId: number;

  constructor(op: string, nodeId: number, reason: string) {
    super(`${op} refused by node ${nodeId}: ${reason}`);
    this.nodeId = nodeId;
  }
}

/** The client was closed while the request ran, or before. */
export class ClientClosedError extends RaftkvClientError {
  override readonly name = "ClientClosedError";

  constructor() {
    super("the client is closed");
  }
}

/** Every address answered with another protocol (an HTTP server, another gRPC service, …). */
export class NotRaftkvError extends RaftkvClientError {
  override readonly name = "NotRaftkvError";

  constructor(lastError: string) {
    super(`no raftkv node answers at the given address(es): ${lastError}`);
  }
}

/** The cluster refused this client's certificate or its right to do the operation: retrying cannot help. */
export class AccessDeniedError extends RaftkvClientError {
  override readonly name = "AccessDeniedError";
}

/**
 * The session's sequence moved past this SET (another process uses the same client id, or this one restarted
 * with it and a fresh counter): the cluster refused it and applied nothing. Not retried: a retry would be
 * refused the same way. Use a fresh client id per process.
 */
export class StaleSequenceError extends RaftkvClientError {
  override readonly name = "StaleSequenceError";
  readonly nodeId: number;

  constructor(op: string, nodeId: number, reason: string) {
    super(`${op} refused by node ${nodeId}: ${reason}`);
    this.nodeId = nodeId;
  }
}

/**
 * The cluster expired this client's session while a SET of it was being retried, so it can no longer tell
 * whether an earlier attempt was applied: the SET may or may not have been applied, and is not retried
 * blindly. The client has started a new session for later SETs.
 */
export class SessionExpiredError extends RaftkvClientError {
  override readonly name = "SessionExpiredError";
  readonly nodeId: number;
  /** An earlier attempt of this SET may have been applied (true: the outcome is unknown). */
  readonly maybeApplied: boolean;

  constructor(op: string, nodeId: number, reason: string, maybeApplied: boolean) {
    super(
      `${op} refused by node ${nodeId}: ${reason}${
        maybeApplied ? `; the ${op} may or may not have been applied` : ""
      }`,
    );
    this.nodeId = nodeId;
    this.maybeApplied = maybeApplied;
  }
}

/**
 * The request is larger than one message may be (the key and value of a SET or CAS over the transport's 16 MiB
 * message limit): it was not sent, so nothing was applied. Far over any cluster's `maxValueBytes`.
 */
export class RequestTooLargeError extends RaftkvClientError {
  override readonly name = "RequestTooLargeError";
}
