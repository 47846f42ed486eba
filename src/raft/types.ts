/**
 * The vocabulary of the pure Raft core: entries, messages, persisted state, and what one call of the core
 * hands back to its caller (`Ready`).
 *
 * Everything here is plain data (JSON-friendly): the simulator, the storage layer, the gRPC transport and the
 * tests all speak it. Times inside the core are readings of the *caller's local monotonic clock* in
 * milliseconds (`nowMs`); they never leave the node. Only durations (`leaseDurationMs`, `leaseRemainingMs`)
 * cross the wire.
 *
 * @module
 */

/** A node's identity in the cluster: a positive integer from the config. */
export type NodeId = number;

import type { Membership } from "./membership.ts";

/** The replicated commands. `noop` is appended by every new leader (Raft §8). */
export type Command =
  | { readonly op: "noop" }
  /** A cluster configuration (issue 11, membership.ts): in force from the moment it is in a node's log. */
  | { readonly op: "config"; readonly membership: Membership }
  | {
    readonly op: "set";
    readonly key: string;
    readonly value: string;
    /** Client session id (exactly-once): a retried SET reuses `clientId` and `seq`. Empty for no session. */
    readonly clientId: string;
    readonly seq: number;
  }
  | {
    /** Removes `key` (a no-op when absent); exactly-once like SET. */
    readonly op: "del";
    readonly key: string;
    readonly clientId: string;
    readonly seq: number;
  }
  | {
    /** Writes `value` iff the comparison `expect` holds for `key` when applied; exactly-once like SET. */
    readonly op: "cas";
    readonly key: string;
    readonly expect: CasExpect;
    readonly value: string;
    readonly clientId: string;
    readonly seq: number;
  };

/**
 * What a compare-and-set compares: the current value (the key must exist and hold exactly `value`), or the
 * key's version (the log index of its last change, as etcd's mod_revision; version 0 = the key is absent).
 */
export type CasExpect = { readonly value: string } | { readonly version: number };

/** The commands that carry a client session (exactly-once writes). */
export type SessionCommand = Exclude<Command, { readonly op: "noop" } | { readonly op: "config" }>;

/**
 * What applying a write did, handed back to the client with its WriteResult (and kept by the session so a
 * retry gets the same answer). `succeeded`: SET always; DELETE when the key existed; CAS when the comparison
 * held. `value`/`found`/`version` describe the key after the write (for a failed CAS: its current state,
 * which the client learns from the refusal; version 0 when absent).
 */
export interface WriteOutcome {
  readonly succeeded: boolean;
  readonly value: string;
  readonly found: boolean;
  readonly version: number;
}

/** One log entry. Indexes start at 1; index 0 with term 0 is the empty prefix. */
export interface Entry {
  readonly index: number;
  readonly term: number;
  readonly command: Command;
}

/** What must be on disk before a message that depends on it leaves the node (Raft Figure 2). */
export interface HardState {
  readonly term: number;
  /** 0 when the node has not voted in `term`. */
  readonly votedFor: NodeId;
  /**
   * The largest lease duration (ms) this node has ever promised a leader (rule 4). After a restart it assumes
   * a promise at least this long (rule 6), so a node restarted with a shorter configured lease never
   * promises less than it may have promised before. Absent (0) in state written before it existed.
   */
  readonly promisedLeaseMs?: number;
}

/** Where a snapshot of the state machine, or the compacted start of a log, stands: an index and its term. */
export interface LogPosition {
  readonly index: number;
  readonly term: number;
}

/** What a node finds on disk when it starts. */
export interface PersistedState {
  readonly hardState: HardState;
  /**
   * The log, in order, from `logStart.index + 1` (from 1 when `logStart` is absent). Entries before that were
   * compacted away: they are in the snapshot.
   */
  readonly entries: readonly Entry[];
  /** The last compacted entry (index and term); absent when nothing was compacted. */
  readonly logStart?: LogPosition;
  /**
   * The snapshot on disk, already restored into the state machine by the caller; absent when none.
   * `logStart.index <= snapshot.index` (entries behind the snapshot are kept for lagging followers).
   */
  readonly snapshot?: SnapshotInfo;
  /** The last commit index written (a hint: commit index is volatile in Raft; it only speeds restart). */
  readonly commitIndex: number;
}

// ---------------------------------------------------------------------------------------------------------
// Messages. Every message names its sender, receiver and the sender's term.

export interface RequestVote {
  readonly type: "RequestVote";
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
  readonly lastLogIndex: number;
  readonly lastLogTerm: number;
  /** PreVote (Raft thesis §9.6): asks "would you vote for me in `term`" without anyone changing term. */
  readonly preVote: boolean;
  /**
   * Set when the campaign follows a TimeoutNow from the leader of term `revokedLeaseTerm`, which revoked its
   * lease before handing over (SPEC rule 8): leases of that term and earlier need no wait. 0 otherwise.
   */
  readonly revokedLeaseTerm: number;
}

export interface RequestVoteResponse {
  readonly type: "RequestVoteResponse";
  readonly from: NodeId;
  readonly to: NodeId;
  /** The voter's term after handling the request (for a PreVote: the term it was asked about when granted). */
  readonly term: number;
  readonly preVote: boolean;
  readonly voteGranted: boolean;
  /**
   * The longest lease promise the voter still holds for any leader, as a duration measured on the voter's
   * clock when it replied (SPEC rule 5). 0 when none.
   */
  readonly leaseRemainingMs: number;
  /** The highest term a lease promise in `leaseRemainingMs` was made for (0 when none). */
  readonly leaseTerm: number;
}

export interface AppendEntries {
  readonly type: "AppendEntries";
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
  readonly prevLogIndex: number;
  readonly prevLogTerm: number;
  readonly entries: readonly Entry[];
  readonly leaderCommit: number;
  /** The lease the leader will claim from this message's send time; the follower promises ≥ this·(1+ε). */
  readonly leaseDurationMs: number;
  /** Sequence number of this send within the leader's term: acks echo it so the lease is anchored at send time. */
  readonly seq: number;
  /**
   * Bounded-staleness reads (issue 16): the highest `seq` the receiver has acknowledged in this term, as the
   * leader knows at send time (0: none). The receiver knows when it sent that ack on its own clock, which is
   * before this message left: the anchor of its freshness.
   */
  readonly ackedSeq?: number;
  /**
   * The leader's commit index when it held a ready lease at send time (every write visible anywhere is at or
   * below it then); 0 when it did not. A follower that has applied it is current as of the `ackedSeq` ack.
   */
  readonly leaseCommitIndex?: number;
  /**
   * Clock sanity (src/clock/): the sender's monotonic clock as the message left, a duration since its process
   * started (ms). Set by the node runtime on the way out, never by the core, which ignores it.
   */
  readonly senderElapsedMs?: number;
}

export interface AppendEntriesResponse {
  readonly type: "AppendEntriesResponse";
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
  readonly success: boolean;
  /** On success: prevLogIndex + entries.length (the prefix now known to match the leader's). */
  readonly matchIndex: number;
  /** On rejection: where the leader should look next (fast backtracking, Raft §5.3). */
  readonly conflictIndex: number;
  /** On rejection: the follower's term at prevLogIndex, 0 if its log is too short. */
  readonly conflictTerm: number;
  /** Echo of the AppendEntries `seq`. */
  readonly seq: number;
  /** As AppendEntries `senderElapsedMs`. */
  readonly senderElapsedMs?: number;
}

/** Leadership transfer (Raft thesis §3.10): "start an election now". */
export interface TimeoutNow {
  readonly type: "TimeoutNow";
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
}

/**
 * The configuration in force at a log index, as a snapshot carries it (issue 11 with issue 10): once the log
 * is compacted past a configuration entry, this is where a node finds its membership (never the bootstrap
 * configuration of cluster.json again).
 */
export interface SnapshotConfig {
  /** Log index of the configuration entry (0: the bootstrap configuration, no entry yet). */
  readonly index: number;
  /** That configuration (joint or not). */
  readonly membership: Membership;
  /** Every node id that was a member up to the snapshot's index (fresh ids only: never reused). */
  readonly everUsed: readonly NodeId[];
}

/** A snapshot the node holds: its position and the size of its file (what InstallSnapshot sends). */
export interface SnapshotInfo extends LogPosition {
  readonly sizeBytes: number;
  /** The configuration in force at `index`; absent for a snapshot from before membership changes. */
  readonly config?: SnapshotConfig;
}

/**
 * One chunk of the leader's snapshot file (Raft §7), for a follower that needs entries the leader compacted.
 * Same term checks as AppendEntries, but no lease: it carries no `leaseDurationMs`, the follower promises
 * nothing on it, and its reply does not renew the leader's lease (see README.md).
 *
 * The core leaves `data` empty; the caller fills it with `snapshot.txt` bytes [offset, offset + length) of the
 * snapshot at `lastIncludedIndex` before sending (and drops the message if it no longer holds that snapshot).
 */
export interface InstallSnapshot {
  readonly type: "InstallSnapshot";
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
  readonly lastIncludedIndex: number;
  readonly lastIncludedTerm: number;
  /** Byte offset of this chunk in the file. */
  readonly offset: number;
  /** Bytes in this chunk (at most `snapshotChunkBytes`). */
  readonly length: number;
  /** The file's size: the chunk ending there is the last. */
  readonly sizeBytes: number;
  readonly data: Uint8Array;
  /** The configuration in force at `lastIncludedIndex` (the follower's configuration once it installs). */
  readonly config?: SnapshotConfig;
}

export interface InstallSnapshotResponse {
  readonly type: "InstallSnapshotResponse";
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
  readonly lastIncludedIndex: number;
  /** Bytes of the snapshot the follower holds in a row from 0: where the leader continues (0: restart). */
  readonly offset: number;
  /** The follower's log now matches the leader's up to this index (set once installed, or not needed). */
  readonly matchIndex: number;
}

/**
 * A follower's linearizable read (ReadIndex, Raft thesis §6.4): "what is your commit index, once you know you
 * are still the leader?". `id` names the follower's batch of reads; the answer echoes it.
 */
export interface ReadIndex {
  readonly type: "ReadIndex";
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
  readonly id: number;
}

/**
 * The leader's answer to a ReadIndex: `readIndex` (> 0) is its commit index at a moment after the request
 * arrived when it held its lease or had confirmed its leadership with a majority, and had committed an entry
 * of its term. 0 means refused: `leaderId` is the leader this node knows (0: none), `retryAfterMs` > 0 when it
 * is the leader but not ready.
 */
export interface ReadIndexResponse {
  readonly type: "ReadIndexResponse";
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
  readonly id: number;
  readonly readIndex: number;
  readonly leaderId: NodeId;
  readonly retryAfterMs: number;
}

export type Message =
  | RequestVote
  | RequestVoteResponse
  | AppendEntries
  | AppendEntriesResponse
  | TimeoutNow
  | InstallSnapshot
  | InstallSnapshotResponse
  | ReadIndex
  | ReadIndexResponse;

// ---------------------------------------------------------------------------------------------------------
// Client-facing results.

export type Role = "follower" | "candidate" | "leader";

/** Why a node cannot serve a request right now. */
export type Refusal =
  /** Not the leader; `leaderId` is the leader this node knows of, 0 when none. */
  | { readonly kind: "notLeader"; readonly leaderId: NodeId }
  /** The leader is waiting out an old lease or has not committed an entry of its term; retry after this. */
  | { readonly kind: "notReady"; readonly retryAfterMs: number }
  /** A leadership transfer is under way; retry at the new leader shortly. */
  | { readonly kind: "transferring"; readonly leaderId: NodeId }
  /**
   * The SET's seq is below its session's last applied seq `lastSeq` (or reuses it for another write): it was
   * not applied and never will be. Final: do not retry it with the same (clientId, seq).
   */
  | { readonly kind: "staleSequence"; readonly lastSeq: number }
  /** The SET's session expired (the cluster forgot it): nothing was applied; start a new session. */
  | { readonly kind: "sessionExpired" }
  /**
   * A bounded-staleness read (issue 16): this node cannot show that its state is at most `maxStalenessMs`
   * old (`stalenessMs`: how old it can show, Infinity when it cannot say). Read from the leader or retry.
   */
  | {
    readonly kind: "tooStale";
    readonly stalenessMs: number;
    readonly maxStalenessMs: number;
    readonly leaderId: NodeId;
  };

/** The answer to a ReadIndex request (`RaftCore.requestReadIndex`), in `Ready.readIndexes`. */
export type ReadIndexResult =
  /** Serve the read once this node has applied `index`. */
  | { readonly tag: number; readonly index: number }
  | { readonly tag: number; readonly refusal: Refusal };

export type ReadResult =
  | { readonly ok: true; readonly value: string; readonly found: boolean }
  | { readonly ok: false; readonly refusal: Refusal };

export type ProposeResult =
  /** Accepted: the result arrives later in `Ready.results` carrying the same `tag`. */
  | { readonly ok: true; readonly index: number }
  | { readonly ok: false; readonly refusal: Refusal };

/** The answer to a write proposal, released only when it is committed, applied and the leader is ready. */
export interface WriteResult {
  /** The caller's handle from `propose`. */
  readonly tag: number;
  readonly index: number;
  /**
   * False when the proposal was lost (e.g. overwritten after a leader change: `notLeader`, the client must
   * retry) or when the state machine refused it at apply (`staleSequence`, `sessionExpired`: final, nothing
   * applied); `refusal` says which.
   */
  readonly ok: boolean;
  readonly refusal?: Refusal;
  /** When ok: what the write did (see WriteOutcome); absent when the state machine did not say. */
  readonly outcome?: WriteOutcome;
}

/** Notable things the core did, rendered into dump.txt by the node (see describe.ts). */
export type RaftEvent =
  | { readonly kind: "electionTimeout"; readonly term: number }
  /** A planned transfer: the leader `from` asked this node to campaign now (TimeoutNow); no timer fired. */
  | { readonly kind: "transferElection"; readonly from: NodeId; readonly term: number }
  | { readonly kind: "becameLeader"; readonly term: number }
  | { readonly kind: "leaseWaitStarted"; readonly term: number; readonly waitMs: number }
  | { readonly kind: "leaseWaitEnded"; readonly term: number }
  | { readonly kind: "heartbeat"; readonly term: number }
  | { readonly kind: "leaseRenewalFailed"; readonly term: number }
  | { readonly kind: "steppedDown"; readonly term: number; readonly reason: string }
  | { readonly kind: "voteGranted"; readonly candidate: NodeId; readonly term: number }
  | {
    readonly kind: "voteDenied";
    readonly candidate: NodeId;
    readonly term: number;
    readonly reason: string;
  }
  | { readonly kind: "appendAccepted"; readonly leader: NodeId }
  | { readonly kind: "appendRejected"; readonly leader: NodeId; readonly reason: string }
  | { readonly kind: "committed"; readonly entry: Entry; readonly role: Role }
  | { readonly kind: "transferStarted"; readonly to: NodeId; readonly term: number }
  | { readonly kind: "transferAborted"; readonly to: NodeId; readonly term: number }
  /** The connection to the leader was reset (its process is gone): a PreVote round starts soon. */
  | { readonly kind: "leaderConnectionLost"; readonly leader: NodeId; readonly term: number }
  /** A configuration entry appended by this leader (`describe`: the configuration now in force). */
  | {
    readonly kind: "configAppended";
    readonly index: number;
    readonly term: number;
    readonly describe: string;
  }
  /** Clock sanity: the leader dropped its lease until acks of new heartbeats renew it (`dropLease`). */
  | { readonly kind: "leaseDropped"; readonly term: number; readonly reason: string }
  | {
    readonly kind: "snapshotTaken";
    readonly index: number;
    readonly term: number;
    readonly compactedTo: number;
  }
  | {
    readonly kind: "snapshotSending";
    readonly to: NodeId;
    readonly index: number;
    readonly sizeBytes: number;
  }
  | {
    readonly kind: "snapshotInstalled";
    readonly leader: NodeId;
    readonly index: number;
    readonly term: number;
  };

/**
 * What the caller must do after one or more calls into the core, in this order (the contract):
 *  1. persist `hardState` (if set) and the log change (`appendFrom` + `entries`: truncate the stored log to
 *     `appendFrom - 1`, then append `entries`), durably (fsync);
 *  2. then send `messages` (never before step 1: a vote or an ack must not leave before what it promises is on
 *     disk). One exception, `sendableBeforePersist` in core.ts: a leader's AppendEntries may leave while step 1
 *     is under way, provided no input is stepped into the core until step 1 is done;
 *  3. then deliver `results` to waiting clients.
 * `commitIndex` may be written lazily (it is a restart hint, not a safety property).
 */
export interface Ready {
  readonly hardState?: HardState;
  /** First index of `entries`; entries at or after it on disk are replaced. Undefined: no log change. */
  readonly appendFrom?: number;
  readonly entries: readonly Entry[];
  /** Set when the commit index advanced. */
  readonly commitIndex?: number;
  /**
   * A chunk of a snapshot being received from the leader: write `data` at `offset` of the snapshot being
   * received (offset 0 starts a new one), durably, before the messages leave.
   */
  readonly snapshotChunk?: SnapshotChunk;
  /**
   * Set when a received snapshot is complete: before anything else of this Ready (and before stepping the core
   * again), make it the node's snapshot (check it, rename it over snapshot.txt), restore the state machine
   * from it, and reset the stored log to start at it (keeping the entries after it if the stored log holds
   * its index with its term, as the core did). Then persist the rest of the Ready.
   */
  readonly installSnapshot?: LogPosition;
  /**
   * Set after `snapshotTaken`: the snapshot this node wrote becomes its snapshot, and the stored log is
   * compacted up to `compactTo` (entries behind the snapshot are kept for lagging followers).
   */
  readonly compactLog?: { readonly snapshot: LogPosition; readonly compactTo: LogPosition };
  readonly messages: readonly Message[];
  readonly results: readonly WriteResult[];
  readonly events: readonly RaftEvent[];
  /** Answers to `requestReadIndex` (issue 16): the index to apply before serving, or a refusal. */
  readonly readIndexes?: readonly ReadIndexResult[];
}

/** A piece of a snapshot file received from the leader (see `Ready.snapshotChunk`). */
export interface SnapshotChunk {
  readonly index: number;
  readonly term: number;
  readonly offset: number;
  readonly data: Uint8Array;
  /** True for the last chunk (`installSnapshot` is then set). */
  readonly done: boolean;
}

/** A snapshot of the node for status displays and the simulator's checkers. */
export interface Status {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: number;
  readonly votedFor: NodeId;
  readonly leaderId: NodeId;
  readonly commitIndex: number;
  readonly lastLogIndex: number;
  readonly lastLogTerm: number;
  /** Index of the last entry in the node's snapshot (0 when it has none; absent from older nodes). */
  readonly snapshotIndex?: number;
  /** Entries held in the log (from the compacted start to the last index; absent from older nodes). */
  readonly logEntries?: number;
  /** Leader only: how long the lease still holds (0 without lease). */
  readonly leaseRemainingMs: number;
  /** Leader only: how long until the old leaders' leases are waited out (0 when done). */
  readonly leaseWaitRemainingMs: number;
  /** True iff a GET would be answered locally right now. */
  readonly servingReads: boolean;
  /** Follower: how long this node's promise not to help elect another leader still runs (its own clock). */
  readonly promiseRemainingMs: number;
  /** The configuration this node uses (the latest in its log, or the bootstrap one). */
  readonly membership?: Membership;
  /** Log index of that configuration (0: the bootstrap configuration). */
  readonly membershipIndex?: number;
}
