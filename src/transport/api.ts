/**
 * Plain data exchanged between the transport and the node (server side) or the client library (client side).
 * Raft messages themselves are the types of `src/raft/types.ts`; this file adds the Client and Admin services'
 * requests and replies. Nothing here depends on gRPC or on the generated protobuf code.
 *
 * @module
 */

import type { CasExpect, Entry, NodeId, Status } from "../raft/types.ts";

/** Why a Client request was not served (`"none"` when it was). Mirrors the proto `ErrorCode`. */
export type ErrorKind =
  | "none"
  /** Not the leader: retry at `leaderId` / `leaderAddress` (0 / "" when unknown). */
  | "notLeader"
  /** The leader is waiting out an old lease or committing its first entry: retry after `retryAfterMs`. */
  | "notReady"
  /** A leadership transfer is under way: retry at the new leader shortly. */
  | "transferring"
  | "invalidArgument"
  /** The node gave up waiting for the write to commit (e.g. no majority). */
  | "timeout"
  | "internal"
  /** A write this node appended but cannot see through (leadership lost, stopping): retry with the same seq. */
  | "outcomeUnknown"
  /** A bounded queue is full: nothing was done; back off and retry. */
  | "overloaded"
  /** The SET's seq is below its session's last applied seq: refused, nothing done. */
  | "staleSequence"
  /** The cluster expired this client session: start a new session (a new client id). */
  | "sessionExpired"
  /** The requested log index is no longer retained (watch). */
  | "compacted"
  /** A bounded-staleness GET this node cannot show is within its bound (issue 16): read elsewhere. */
  | "tooStale";

/**
 * How a GET is served (issue 16): `leader` (default) under the leader's lease; `follower` by any node after
 * applying the leader's read index (ReadIndex, linearizable); `stale` by any node whose state is at most
 * `maxStalenessMs` old (not linearizable).
 */
export type ReadMode = "leader" | "follower" | "stale";

/** The fields every Client reply carries. */
export interface ReplyCommon {
  readonly ok: boolean;
  readonly error: ErrorKind;
  readonly errorMessage: string;
  /** Leader hint, 0 = unknown. */
  readonly leaderId: NodeId;
  /** Leader address hint ("host:port"), "" = unknown. */
  readonly leaderAddress: string;
  /** Advice for `notReady` / `transferring`, 0 = none. */
  readonly retryAfterMs: number;
  /** The node that answered. */
  readonly nodeId: NodeId;
}

export interface GetRequest {
  readonly key: string;
  /** Absent: "leader". */
  readonly readMode?: ReadMode;
  /** `stale` only: the bound, ms (> 0). */
  readonly maxStalenessMs?: number;
}

export interface GetReply extends ReplyCommon {
  /** "" when the key does not exist. */
  readonly value: string;
  readonly found: boolean;
  /** Log index of the key's last change, 0 when it does not exist. */
  readonly version: number;
}

export interface SetRequest {
  readonly key: string;
  readonly value: string;
  /** Client session id for exactly-once SET; "" for no session. */
  readonly clientId: string;
  readonly seq: number;
}

export interface SetReply extends ReplyCommon {
  /** Log index of the committed entry when known, 0 otherwise. */
  readonly index: number;
}

export interface DeleteRequest {
  readonly key: string;
  readonly clientId: string;
  readonly seq: number;
}

export interface DeleteReply extends ReplyCommon {
  readonly index: number;
  /** The key existed (and is gone now). */
  readonly deleted: boolean;
}

export interface CasRequest {
  readonly key: string;
  readonly expect: CasExpect;
  /** The new value. */
  readonly value: string;
  readonly clientId: string;
  readonly seq: number;
}

/** `ok`: the CAS was committed and applied; `succeeded`: its comparison held and the value was written. */
export interface CasReply extends ReplyCommon {
  readonly index: number;
  readonly succeeded: boolean;
  /** When not succeeded: the key's current value ("" when absent), whether it exists and its version. */
  readonly value: string;
  readonly found: boolean;
  readonly version: number;
}

export interface ListRequest {
  readonly prefix: string;
  /** Continuation: only keys after this one ("" = from the start of the prefix). */
  readonly after: string;
  /** 0 = the node's default; the node caps it. */
  readonly limit: number;
  readonly withValues: boolean;
}

export interface KeyValue {
  readonly key: string;
  /** "" unless asked with values. */
  readonly value: string;
  readonly version: number;
}

export interface ListReply extends ReplyCommon {
  readonly items: readonly KeyValue[];
  /** More keys follow: ask again with `after = nextAfter`. */
  readonly more: boolean;
  readonly nextAfter: string;
}

export interface WatchRequest {
  readonly key: string;
  /** `key` is a prefix ("" with prefix: every key). */
  readonly prefix: boolean;
  /** First log index wanted; 0 = from now. */
  readonly fromIndex: number;
}

/** One committed change. */
export interface WatchEvent {
  readonly index: number;
  readonly op: "set" | "del" | "cas";
  readonly key: string;
  /** "" for a delete. */
  readonly value: string;
}

/**
 * One message of a watch stream: the first says where it starts (`startIndex`), then events; one with an
 * error (`compacted` with `oldestIndex`, `overloaded` for a watcher cut off as too slow, …) ends it.
 */
export interface WatchReply {
  readonly error: ErrorKind;
  readonly errorMessage: string;
  readonly nodeId: NodeId;
  readonly events: readonly WatchEvent[];
  readonly startIndex: number;
  readonly oldestIndex: number;
}

/**
 * What a handler returns for a Client request: `ok` and whatever else applies; missing fields take their
 * defaults (false, "", 0, `error: "none"`).
 */
export type Answer<T extends { readonly ok: boolean }> = Pick<T, "ok"> & Partial<Omit<T, "ok">>;

/** The Admin `Status` view: the core's `Status` plus what only the node knows. */
export interface NodeStatus extends Status {
  /** The address this node listens on ("host:port"). */
  readonly address: string;
  /** Peer RPCs this node has sent since it started. */
  readonly peerRpcCount: number;
  /** raftkv version string. */
  readonly version: string;
  /**
   * With TLS: how long until the node's certificate expires (negative once it has), by the node's wall clock
   * when it answered; absent in plain text (`admin status --json` shows it as `certificateExpiresInDays`).
   */
  readonly certificateExpiresInMs?: number;
}

/** The answer to `admin snapshot`: the snapshot now in place, or why none was taken. */
export interface SnapshotReply {
  readonly ok: boolean;
  readonly index: number;
  readonly term: number;
  readonly error: string;
}

export interface TransferLeaderReply {
  readonly ok: boolean;
  /** The node that leads after the transfer (0 when unknown or failed). */
  readonly newLeaderId: NodeId;
  /** Why the transfer failed, "" on success. */
  readonly error: string;
}

/** The answer to Admin.AddNode / Admin.RemoveNode. */
export interface MembershipReply {
  readonly ok: boolean;
  /** Why the change was refused, "" on success. */
  readonly error: string;
  /** When the node asked is not the leader: the leader it knows (0: none). */
  readonly leaderId: NodeId;
  /** Log index of the committed configuration entry. */
  readonly index: number;
}

export interface DumpLogRequest {
  /** First index wanted (0 or 1: from the start). */
  readonly fromIndex: number;
  /** 0 = the node's default limit. */
  readonly maxEntries: number;
}

export interface DumpLogReply {
  readonly entries: readonly Entry[];
  readonly commitIndex: number;
}
