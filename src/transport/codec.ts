/**
 * Pure conversions between the Raft core's plain messages (`src/raft/types.ts`), the transport's plain
 * Client/Admin types (`api.ts`) and the generated protobuf messages (`src/gen/raftkv.ts`).
 *
 * `…ToProto` functions never fail on well-typed input. `…FromProto` functions validate what the wire can
 * carry but the types cannot (an unspecified op or role, an entry without a command) and throw `CodecError`,
 * which the server turns into INVALID_ARGUMENT.
 *
 * @module
 */

import * as pb from "../gen/raftkv.ts";
import { encodeSnapshotConfig, parseMembership, parseSnapshotConfig } from "../raft/membership.ts";
import type {
  AppendEntries,
  AppendEntriesResponse,
  CasExpect,
  Command,
  Entry,
  InstallSnapshot,
  InstallSnapshotResponse,
  Message,
  ReadIndex,
  ReadIndexResponse,
  Refusal,
  RequestVote,
  RequestVoteResponse,
  Role,
  TimeoutNow,
} from "../raft/types.ts";
import { Buffer } from "node:buffer";
import type {
  Answer,
  CasReply,
  CasRequest,
  DeleteReply,
  DeleteRequest,
  DumpLogReply,
  DumpLogRequest,
  ErrorKind,
  GetReply,
  GetRequest,
  ListReply,
  ListRequest,
  MembershipReply,
  NodeStatus,
  ReplyCommon,
  SetReply,
  SetRequest,
  TransferLeaderReply,
  WatchEvent,
  WatchReply,
  WatchRequest,
} from "./api.ts";

/** A protobuf message that decodes but does not make sense (e.g. an entry without a command). */
export class CodecError extends Error {
  override readonly name = "CodecError";
}

// ---------------------------------------------------------------------------------------------------------
// Entries

export function commandToProto(command: Command): pb.Command {
  switch (command.op) {
    case "noop":
      return { op: pb.Op.NOOP, key: "", value: "", clientId: "", seq: 0, membershipJson: "" };
    case "config":
      return {
        op: pb.Op.CONFIG,
        key: "",
        value: "",
        clientId: "",
        seq: 0,
        membershipJson: JSON.stringify(command.membership),
      };
    case "set":
      return {
        op: pb.Op.SET,
        key: command.key,
        value: command.value,
        clientId: command.clientId,
        seq: command.seq,
        membershipJson: "",
      };
    case "del":
      return {
        op: pb.Op.DEL,
        key: command.key,
        value: "",
        clientId: command.clientId,
        seq: command.seq,
        membershipJson: "",
      };
    case "cas":
      return {
        op: pb.Op.CAS,
        key: command.key,
        value: command.value,
        clientId: command.clientId,
        seq: command.seq,
        membershipJson: "",
        ...casExpectToProto(command.expect),
      };
  }
}

/** The proto `expect` oneof of a CAS (as Command and CasRequest spell it). */
export function casExpectToProto(expect: CasExpect): { expectedValue?: string; expectedVersion?: number } {
  return "version" in expect ? { expectedVersion: expect.version } : { expectedValue: expect.value };
}

export function casExpectFromProto(m: { expectedValue?: string; expectedVersion?: number }): CasExpect {
  if (m.expectedValue !== undefined) return { value: m.expectedValue };
  if (m.expectedVersion !== undefined) return { version: m.expectedVersion };
  throw new CodecError("a CAS needs an expected value or an expected version");
}

export function commandFromProto(command: pb.Command | undefined): Command {
  if (command === undefined) throw new CodecError("entry without a command");
  switch (command.op) {
    case pb.Op.NOOP:
      return { op: "noop" };
    case pb.Op.CONFIG:
      try {
        return { op: "config", membership: parseMembership(command.membershipJson) };
      } catch (e) {
        throw new CodecError(`bad configuration entry: ${e instanceof Error ? e.message : e}`);
      }
    case pb.Op.SET:
      return {
        op: "set",
        key: command.key,
        value: command.value,
        clientId: command.clientId,
        seq: command.seq,
      };
    case pb.Op.DEL:
      return { op: "del", key: command.key, clientId: command.clientId, seq: command.seq };
    case pb.Op.CAS:
      return {
        op: "cas",
        key: command.key,
        expect: casExpectFromProto(command),
        value: command.value,
        clientId: command.clientId,
        seq: command.seq,
      };
    default:
      throw new CodecError(`unknown command op ${command.op}`);
  }
}

export function entryToProto(entry: Entry): pb.Entry {
  return { index: entry.index, term: entry.term, command: commandToProto(entry.command) };
}

export function entryFromProto(entry: pb.Entry): Entry {
  return { index: entry.index, term: entry.term, command: commandFromProto(entry.command) };
}

// ---------------------------------------------------------------------------------------------------------
// Peer service

export function requestVoteToProto(msg: RequestVote, clusterId: string): pb.RequestVoteRequest {
  return {
    clusterId,
    from: msg.from,
    to: msg.to,
    term: msg.term,
    lastLogIndex: msg.lastLogIndex,
    lastLogTerm: msg.lastLogTerm,
    preVote: msg.preVote,
    revokedLeaseTerm: msg.revokedLeaseTerm,
  };
}

export function requestVoteFromProto(req: pb.RequestVoteRequest): RequestVote {
  return {
    type: "RequestVote",
    from: req.from,
    to: req.to,
    term: req.term,
    lastLogIndex: req.lastLogIndex,
    lastLogTerm: req.lastLogTerm,
    preVote: req.preVote,
    revokedLeaseTerm: req.revokedLeaseTerm,
  };
}

export function requestVoteResponseToProto(msg: RequestVoteResponse, clusterId = ""): pb.RequestVoteResponse {
  return {
    clusterId,
    from: msg.from,
    to: msg.to,
    term: msg.term,
    preVote: msg.preVote,
    voteGranted: msg.voteGranted,
    leaseRemainingMs: msg.leaseRemainingMs,
    leaseTerm: msg.leaseTerm,
  };
}

export function requestVoteResponseFromProto(res: pb.RequestVoteResponse): RequestVoteResponse {
  return {
    type: "RequestVoteResponse",
    from: res.from,
    to: res.to,
    term: res.term,
    preVote: res.preVote,
    voteGranted: res.voteGranted,
    leaseRemainingMs: res.leaseRemainingMs,
    leaseTerm: res.leaseTerm,
  };
}

export function appendEntriesToProto(msg: AppendEntries, clusterId: string): pb.AppendEntriesRequest {
  return {
    clusterId,
    from: msg.from,
    to: msg.to,
    term: msg.term,
    prevLogIndex: msg.prevLogIndex,
    prevLogTerm: msg.prevLogTerm,
    entries: msg.entries.map(entryToProto),
    leaderCommit: msg.leaderCommit,
    leaseDurationMs: msg.leaseDurationMs,
    seq: msg.seq,
    ackedSeq: msg.ackedSeq ?? 0,
    leaseCommitIndex: msg.leaseCommitIndex ?? 0,
    senderElapsedMs: msg.senderElapsedMs ?? 0,
  };
}

export function appendEntriesFromProto(req: pb.AppendEntriesRequest): AppendEntries {
  return {
    type: "AppendEntries",
    from: req.from,
    to: req.to,
    term: req.term,
    prevLogIndex: req.prevLogIndex,
    prevLogTerm: req.prevLogTerm,
    entries: req.entries.map(entryFromProto),
    leaderCommit: req.leaderCommit,
    leaseDurationMs: req.leaseDurationMs,
    seq: req.seq,
    ...(req.ackedSeq > 0 ? { ackedSeq: req.ackedSeq } : {}),
    ...(req.leaseCommitIndex > 0 ? { leaseCommitIndex: req.leaseCommitIndex } : {}),
    ...(req.senderElapsedMs > 0 ? { senderElapsedMs: req.senderElapsedMs } : {}),
  };
}

export function appendEntriesResponseToProto(
  msg: AppendEntriesResponse,
  clusterId = "",
): pb.AppendEntriesResponse {
  return {
    clusterId,
    from: msg.from,
    to: msg.to,
    term: msg.term,
    success: msg.success,
    matchIndex: msg.matchIndex,
    conflictIndex: msg.conflictIndex,
    conflictTerm: msg.conflictTerm,
    seq: msg.seq,
    senderElapsedMs: msg.senderElapsedMs ?? 0,
  };
}

export function appendEntriesResponseFromProto(res: pb.AppendEntriesResponse): AppendEntriesResponse {
  return {
    type: "AppendEntriesResponse",
    from: res.from,
    to: res.to,
    term: res.term,
    success: res.success,
    matchIndex: res.matchIndex,
    conflictIndex: res.conflictIndex,
    conflictTerm: res.conflictTerm,
    seq: res.seq,
    ...(res.senderElapsedMs > 0 ? { senderElapsedMs: res.senderElapsedMs } : {}),
  };
}

export function timeoutNowToProto(msg: TimeoutNow, clusterId: string): pb.TimeoutNowRequest {
  return { clusterId, from: msg.from, to: msg.to, term: msg.term };
}

export function timeoutNowFromProto(req: pb.TimeoutNowRequest): TimeoutNow {
  return { type: "TimeoutNow", from: req.from, to: req.to, term: req.term };
}

export function readIndexToProto(msg: ReadIndex, clusterId: string): pb.ReadIndexRequest {
  return { clusterId, from: msg.from, to: msg.to, term: msg.term, id: msg.id };
}

export function readIndexFromProto(req: pb.ReadIndexRequest): ReadIndex {
  return { type: "ReadIndex", from: req.from, to: req.to, term: req.term, id: req.id };
}

export function readIndexResponseToProto(msg: ReadIndexResponse, clusterId: string): pb.ReadIndexResponse {
  return {
    clusterId,
    from: msg.from,
    to: msg.to,
    term: msg.term,
    id: msg.id,
    readIndex: msg.readIndex,
    leaderId: msg.leaderId,
    retryAfterMs: msg.retryAfterMs,
  };
}

export function readIndexResponseFromProto(res: pb.ReadIndexResponse): ReadIndexResponse {
  return {
    type: "ReadIndexResponse",
    from: res.from,
    to: res.to,
    term: res.term,
    id: res.id,
    readIndex: res.readIndex,
    leaderId: res.leaderId,
    retryAfterMs: res.retryAfterMs,
  };
}

export function installSnapshotToProto(msg: InstallSnapshot, clusterId: string): pb.InstallSnapshotRequest {
  return {
    clusterId,
    from: msg.from,
    to: msg.to,
    term: msg.term,
    lastIncludedIndex: msg.lastIncludedIndex,
    lastIncludedTerm: msg.lastIncludedTerm,
    offset: msg.offset,
    sizeBytes: msg.sizeBytes,
    data: Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength),
    configJson: msg.config === undefined ? "" : encodeSnapshotConfig(msg.config),
  };
}

export function installSnapshotFromProto(req: pb.InstallSnapshotRequest): InstallSnapshot {
  return {
    type: "InstallSnapshot",
    from: req.from,
    to: req.to,
    term: req.term,
    lastIncludedIndex: req.lastIncludedIndex,
    lastIncludedTerm: req.lastIncludedTerm,
    offset: req.offset,
    length: req.data.length,
    sizeBytes: req.sizeBytes,
    data: req.data,
    ...(req.configJson === "" ? {} : { config: parseSnapshotConfig(req.configJson) }),
  };
}

export function installSnapshotResponseToProto(
  msg: InstallSnapshotResponse,
  clusterId: string,
): pb.InstallSnapshotResponse {
  return {
    clusterId,
    from: msg.from,
    to: msg.to,
    term: msg.term,
    lastIncludedIndex: msg.lastIncludedIndex,
    offset: msg.offset,
    matchIndex: msg.matchIndex,
  };
}

export function installSnapshotResponseFromProto(res: pb.InstallSnapshotResponse): InstallSnapshotResponse {
  return {
    type: "InstallSnapshotResponse",
    from: res.from,
    to: res.to,
    term: res.term,
    lastIncludedIndex: res.lastIncludedIndex,
    offset: res.offset,
    matchIndex: res.matchIndex,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Client service

const ERROR_TO_PROTO: Readonly<Record<ErrorKind, pb.ErrorCode>> = {
  none: pb.ErrorCode.NONE,
  notLeader: pb.ErrorCode.NOT_LEADER,
  notReady: pb.ErrorCode.NOT_READY,
  transferring: pb.ErrorCode.TRANSFERRING,
  invalidArgument: pb.ErrorCode.INVALID_ARGUMENT,
  timeout: pb.ErrorCode.TIMEOUT,
  internal: pb.ErrorCode.INTERNAL,
  outcomeUnknown: pb.ErrorCode.OUTCOME_UNKNOWN,
  overloaded: pb.ErrorCode.OVERLOADED,
  staleSequence: pb.ErrorCode.STALE_SEQUENCE,
  sessionExpired: pb.ErrorCode.SESSION_EXPIRED,
  compacted: pb.ErrorCode.COMPACTED,
  tooStale: pb.ErrorCode.TOO_STALE,
};

export function errorKindToProto(kind: ErrorKind): pb.ErrorCode {
  return ERROR_TO_PROTO[kind];
}

/** An error code this build does not know (sent by a newer node) reads as `"internal"`. */
export function errorKindFromProto(code: pb.ErrorCode): ErrorKind {
  switch (code) {
    case pb.ErrorCode.NONE:
      return "none";
    case pb.ErrorCode.NOT_LEADER:
      return "notLeader";
    case pb.ErrorCode.NOT_READY:
      return "notReady";
    case pb.ErrorCode.TRANSFERRING:
      return "transferring";
    case pb.ErrorCode.INVALID_ARGUMENT:
      return "invalidArgument";
    case pb.ErrorCode.TIMEOUT:
      return "timeout";
    case pb.ErrorCode.OUTCOME_UNKNOWN:
      return "outcomeUnknown";
    case pb.ErrorCode.OVERLOADED:
      return "overloaded";
    case pb.ErrorCode.STALE_SEQUENCE:
      return "staleSequence";
    case pb.ErrorCode.SESSION_EXPIRED:
      return "sessionExpired";
    case pb.ErrorCode.COMPACTED:
      return "compacted";
    case pb.ErrorCode.TOO_STALE:
      return "tooStale";
    default:
      return "internal";
  }
}

/** The reply fields describing a core `Refusal` (the node adds `leaderAddress` and `nodeId`). */
export function refusalToReply(refusal: Refusal): Answer<ReplyCommon> & { readonly ok: false } {
  switch (refusal.kind) {
    case "notLeader":
      return {
        ok: false,
        error: "notLeader",
        errorMessage: refusal.leaderId === 0
          ? "not the leader; no leader known"
          : `not the leader; the leader is node ${refusal.leaderId}`,
        leaderId: refusal.leaderId,
      };
    case "notReady":
      return {
        ok: false,
        error: "notReady",
        errorMessage: `the leader is not ready yet; retry in ${Math.ceil(refusal.retryAfterMs)} ms`,
        retryAfterMs: refusal.retryAfterMs,
      };
    case "transferring":
      return {
        ok: false,
        error: "transferring",
        errorMessage: `leadership is being transferred to node ${refusal.leaderId}`,
        leaderId: refusal.leaderId,
      };
    case "staleSequence":
      return {
        ok: false,
        error: "staleSequence",
        errorMessage:
          `stale sequence: the session already applied seq ${refusal.lastSeq}; this SET was not ` +
          `applied (is another process using the same client id?)`,
      };
    case "sessionExpired":
      return {
        ok: false,
        error: "sessionExpired",
        errorMessage:
          "session expired: the cluster no longer remembers this client id; nothing was applied, " +
          "start a new session",
      };
    case "tooStale":
      return {
        ok: false,
        error: "tooStale",
        errorMessage: Number.isFinite(refusal.stalenessMs)
          ? `this node's state may be ${Math.ceil(refusal.stalenessMs)} ms old, more than --max-staleness ` +
            `${refusal.maxStalenessMs} ms; read from the leader or another node`
          : `this node cannot show how old its state is (no recent word from a leader holding its lease); ` +
            `read from the leader or another node`,
        leaderId: refusal.leaderId,
      };
  }
}

/** The core `Refusal` a reply describes, if it describes one (the other errors have no core counterpart). */
export function refusalFromReply(reply: ReplyCommon): Refusal | undefined {
  switch (reply.error) {
    case "notLeader":
      return { kind: "notLeader", leaderId: reply.leaderId };
    case "notReady":
      return { kind: "notReady", retryAfterMs: reply.retryAfterMs };
    case "transferring":
      return { kind: "transferring", leaderId: reply.leaderId };
    case "staleSequence":
      return { kind: "staleSequence", lastSeq: 0 }; // the seq is only in the message
    case "sessionExpired":
      return { kind: "sessionExpired" };
    case "tooStale":
      return { kind: "tooStale", stalenessMs: Infinity, maxStalenessMs: 0, leaderId: reply.leaderId };
    default:
      return undefined;
  }
}

function commonToProto(answer: Answer<ReplyCommon>): Omit<pb.GetReply, "value" | "found" | "version"> {
  return {
    ok: answer.ok,
    error: errorKindToProto(answer.error ?? "none"),
    errorMessage: answer.errorMessage ?? "",
    leaderId: answer.leaderId ?? 0,
    leaderAddress: answer.leaderAddress ?? "",
    retryAfterMs: answer.retryAfterMs ?? 0,
    nodeId: answer.nodeId ?? 0,
  };
}

function commonFromProto(reply: Omit<pb.GetReply, "value" | "found" | "version">): ReplyCommon {
  return {
    ok: reply.ok,
    error: errorKindFromProto(reply.error),
    errorMessage: reply.errorMessage,
    leaderId: reply.leaderId,
    leaderAddress: reply.leaderAddress,
    retryAfterMs: reply.retryAfterMs,
    nodeId: reply.nodeId,
  };
}

export function getRequestToProto(req: GetRequest): pb.GetRequest {
  return {
    key: req.key,
    readMode: req.readMode === "follower"
      ? pb.ReadMode.FOLLOWER
      : req.readMode === "stale"
      ? pb.ReadMode.STALE
      : pb.ReadMode.LEADER,
    maxStalenessMs: req.maxStalenessMs ?? 0,
  };
}

export function getRequestFromProto(req: pb.GetRequest): GetRequest {
  const readMode = req.readMode === pb.ReadMode.FOLLOWER
    ? "follower"
    : req.readMode === pb.ReadMode.STALE
    ? "stale"
    : req.readMode === pb.ReadMode.LEADER
    ? undefined
    : "unknown";
  if (readMode === "unknown") throw new CodecError(`unknown read mode ${req.readMode}`);
  return {
    key: req.key,
    ...(readMode !== undefined ? { readMode } : {}),
    ...(req.maxStalenessMs > 0 ? { maxStalenessMs: req.maxStalenessMs } : {}),
  };
}

export function getReplyToProto(answer: Answer<GetReply>): pb.GetReply {
  return {
    ...commonToProto(answer),
    value: answer.value ?? "",
    found: answer.found ?? false,
    version: answer.version ?? 0,
  };
}

export function getReplyFromProto(reply: pb.GetReply): GetReply {
  return { ...commonFromProto(reply), value: reply.value, found: reply.found, version: reply.version };
}

export function setRequestToProto(req: SetRequest): pb.SetRequest {
  return { key: req.key, value: req.value, clientId: req.clientId, seq: req.seq };
}

export function setRequestFromProto(req: pb.SetRequest): SetRequest {
  return { key: req.key, value: req.value, clientId: req.clientId, seq: req.seq };
}

export function setReplyToProto(answer: Answer<SetReply>): pb.SetReply {
  return { ...commonToProto(answer), index: answer.index ?? 0 };
}

export function setReplyFromProto(reply: pb.SetReply): SetReply {
  return { ...commonFromProto(reply), index: reply.index };
}

export function deleteRequestToProto(req: DeleteRequest): pb.DeleteRequest {
  return { key: req.key, clientId: req.clientId, seq: req.seq };
}

export function deleteRequestFromProto(req: pb.DeleteRequest): DeleteRequest {
  return { key: req.key, clientId: req.clientId, seq: req.seq };
}

export function deleteReplyToProto(answer: Answer<DeleteReply>): pb.DeleteReply {
  return { ...commonToProto(answer), index: answer.index ?? 0, deleted: answer.deleted ?? false };
}

export function deleteReplyFromProto(reply: pb.DeleteReply): DeleteReply {
  return { ...commonFromProto(reply), index: reply.index, deleted: reply.deleted };
}

export function casRequestToProto(req: CasRequest): pb.CasRequest {
  return {
    key: req.key,
    ...casExpectToProto(req.expect),
    value: req.value,
    clientId: req.clientId,
    seq: req.seq,
  };
}

export function casRequestFromProto(req: pb.CasRequest): CasRequest {
  return {
    key: req.key,
    expect: casExpectFromProto(req),
    value: req.value,
    clientId: req.clientId,
    seq: req.seq,
  };
}

export function casReplyToProto(answer: Answer<CasReply>): pb.CasReply {
  return {
    ...commonToProto(answer),
    index: answer.index ?? 0,
    succeeded: answer.succeeded ?? false,
    value: answer.value ?? "",
    found: answer.found ?? false,
    version: answer.version ?? 0,
  };
}

export function casReplyFromProto(reply: pb.CasReply): CasReply {
  return {
    ...commonFromProto(reply),
    index: reply.index,
    succeeded: reply.succeeded,
    value: reply.value,
    found: reply.found,
    version: reply.version,
  };
}

export function listRequestToProto(req: ListRequest): pb.ListRequest {
  return { prefix: req.prefix, after: req.after, limit: req.limit, withValues: req.withValues };
}

export function listRequestFromProto(req: pb.ListRequest): ListRequest {
  return { prefix: req.prefix, after: req.after, limit: req.limit, withValues: req.withValues };
}

export function listReplyToProto(answer: Answer<ListReply>): pb.ListReply {
  return {
    ...commonToProto(answer),
    items: (answer.items ?? []).map((i) => ({ key: i.key, value: i.value, version: i.version })),
    more: answer.more ?? false,
    nextAfter: answer.nextAfter ?? "",
  };
}

export function listReplyFromProto(reply: pb.ListReply): ListReply {
  return {
    ...commonFromProto(reply),
    items: reply.items.map((i) => ({ key: i.key, value: i.value, version: i.version })),
    more: reply.more,
    nextAfter: reply.nextAfter,
  };
}

export function watchRequestToProto(req: WatchRequest): pb.WatchRequest {
  return { key: req.key, prefix: req.prefix, fromIndex: req.fromIndex };
}

export function watchRequestFromProto(req: pb.WatchRequest): WatchRequest {
  return { key: req.key, prefix: req.prefix, fromIndex: req.fromIndex };
}

const WATCH_OP_TO_PROTO = { set: pb.Op.SET, del: pb.Op.DEL, cas: pb.Op.CAS } as const;

export function watchEventToProto(e: WatchEvent): pb.WatchEvent {
  return { index: e.index, op: WATCH_OP_TO_PROTO[e.op], key: e.key, value: e.value };
}

export function watchEventFromProto(e: pb.WatchEvent): WatchEvent {
  const op = e.op === pb.Op.SET ? "set" : e.op === pb.Op.DEL ? "del" : e.op === pb.Op.CAS ? "cas" : undefined;
  if (op === undefined) throw new CodecError(`a watch event with op ${e.op}`);
  return { index: e.index, op, key: e.key, value: e.value };
}

export function watchReplyToProto(r: Partial<WatchReply>): pb.WatchReply {
  return {
    error: errorKindToProto(r.error ?? "none"),
    errorMessage: r.errorMessage ?? "",
    nodeId: r.nodeId ?? 0,
    events: (r.events ?? []).map(watchEventToProto),
    startIndex: r.startIndex ?? 0,
    oldestIndex: r.oldestIndex ?? 0,
  };
}

export function watchReplyFromProto(r: pb.WatchReply): WatchReply {
  return {
    error: errorKindFromProto(r.error),
    errorMessage: r.errorMessage,
    nodeId: r.nodeId,
    events: r.events.map(watchEventFromProto),
    startIndex: r.startIndex,
    oldestIndex: r.oldestIndex,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Admin service

export function roleToProto(role: Role): pb.Role {
  switch (role) {
    case "follower":
      return pb.Role.FOLLOWER;
    case "candidate":
      return pb.Role.CANDIDATE;
    case "leader":
      return pb.Role.LEADER;
  }
}

export function roleFromProto(role: pb.Role): Role {
  switch (role) {
    case pb.Role.FOLLOWER:
      return "follower";
    case pb.Role.CANDIDATE:
      return "candidate";
    case pb.Role.LEADER:
      return "leader";
    default:
      throw new CodecError(`unknown role ${role}`);
  }
}

export function statusToProto(status: NodeStatus): pb.StatusReply {
  return {
    nodeId: status.id,
    address: status.address,
    role: roleToProto(status.role),
    term: status.term,
    votedFor: status.votedFor,
    leaderId: status.leaderId,
    commitIndex: status.commitIndex,
    lastLogIndex: status.lastLogIndex,
    lastLogTerm: status.lastLogTerm,
    leaseRemainingMs: status.leaseRemainingMs,
    leaseWaitRemainingMs: status.leaseWaitRemainingMs,
    servingReads: status.servingReads,
    promiseRemainingMs: status.promiseRemainingMs,
    peerRpcCount: status.peerRpcCount,
    version: status.version,
    snapshotIndex: status.snapshotIndex ?? 0,
    logEntries: status.logEntries ?? 0,
    members: (status.membership?.members ?? []).map((m) => ({
      id: m.id,
      address: m.address,
      voter: m.voter,
      promote: m.promote ?? false,
    })),
    outgoingVoters: [...(status.membership?.outgoingVoters ?? [])],
    membershipIndex: status.membershipIndex ?? 0,
    certificateExpiresInMs: status.certificateExpiresInMs,
  };
}

export function statusFromProto(reply: pb.StatusReply): NodeStatus {
  return {
    id: reply.nodeId,
    address: reply.address,
    role: roleFromProto(reply.role),
    term: reply.term,
    votedFor: reply.votedFor,
    leaderId: reply.leaderId,
    commitIndex: reply.commitIndex,
    lastLogIndex: reply.lastLogIndex,
    lastLogTerm: reply.lastLogTerm,
    leaseRemainingMs: reply.leaseRemainingMs,
    leaseWaitRemainingMs: reply.leaseWaitRemainingMs,
    servingReads: reply.servingReads,
    promiseRemainingMs: reply.promiseRemainingMs,
    peerRpcCount: reply.peerRpcCount,
    version: reply.version,
    // Zero on the wire is "no snapshot" or a node that does not report them: left out, like an older node's.
    ...(reply.snapshotIndex > 0 ? { snapshotIndex: reply.snapshotIndex } : {}),
    ...(reply.logEntries > 0 ? { logEntries: reply.logEntries } : {}),
    // Absent: a node in plain text, or from before certificate expiry was reported.
    ...(reply.certificateExpiresInMs !== undefined
      ? { certificateExpiresInMs: reply.certificateExpiresInMs }
      : {}),
    // A node from before issue 11 (or a stand-in) reports no members: no membership then.
    ...(reply.members.length === 0 ? {} : {
      membership: {
        members: reply.members.map((m) => ({
          id: m.id,
          address: m.address,
          voter: m.voter,
          ...(m.promote ? { promote: true } : {}),
        })),
        ...(reply.outgoingVoters.length > 0 ? { outgoingVoters: reply.outgoingVoters } : {}),
      },
      membershipIndex: reply.membershipIndex,
    }),
  };
}

export function membershipReplyToProto(reply: MembershipReply): pb.MembershipReply {
  return { ok: reply.ok, error: reply.error, leaderId: reply.leaderId, index: reply.index };
}

export function membershipReplyFromProto(reply: pb.MembershipReply): MembershipReply {
  return { ok: reply.ok, error: reply.error, leaderId: reply.leaderId, index: reply.index };
}

export function transferLeaderReplyToProto(reply: TransferLeaderReply): pb.TransferLeaderReply {
  return { ok: reply.ok, newLeaderId: reply.newLeaderId, error: reply.error };
}

export function transferLeaderReplyFromProto(reply: pb.TransferLeaderReply): TransferLeaderReply {
  return { ok: reply.ok, newLeaderId: reply.newLeaderId, error: reply.error };
}

export function dumpLogRequestToProto(req: DumpLogRequest): pb.DumpLogRequest {
  return { fromIndex: req.fromIndex, maxEntries: req.maxEntries };
}

export function dumpLogRequestFromProto(req: pb.DumpLogRequest): DumpLogRequest {
  return { fromIndex: req.fromIndex, maxEntries: req.maxEntries };
}

export function dumpLogReplyToProto(reply: DumpLogReply): pb.DumpLogReply {
  return { entries: reply.entries.map(entryToProto), commitIndex: reply.commitIndex };
}

export function dumpLogReplyFromProto(reply: pb.DumpLogReply): DumpLogReply {
  return { entries: reply.entries.map(entryFromProto), commitIndex: reply.commitIndex };
}

/** The body of a one-way PeerFrame (call_id 0) carrying `msg`, any kind of Raft message (`Message`). */
export function messageToPeerFrame(msg: Message, clusterId: string): pb.PeerFrame {
  switch (msg.type) {
    case "RequestVote":
      return { callId: 0, requestVote: requestVoteToProto(msg, clusterId) };
    case "RequestVoteResponse":
      return { callId: 0, requestVoteResponse: requestVoteResponseToProto(msg, clusterId) };
    case "AppendEntries":
      return { callId: 0, appendEntries: appendEntriesToProto(msg, clusterId) };
    case "AppendEntriesResponse":
      return { callId: 0, appendEntriesResponse: appendEntriesResponseToProto(msg, clusterId) };
    case "TimeoutNow":
      return { callId: 0, timeoutNow: timeoutNowToProto(msg, clusterId) };
    case "InstallSnapshot":
      return { callId: 0, installSnapshot: installSnapshotToProto(msg, clusterId) };
    case "InstallSnapshotResponse":
      return { callId: 0, installSnapshotResponse: installSnapshotResponseToProto(msg, clusterId) };
    case "ReadIndex":
      return { callId: 0, readIndex: readIndexToProto(msg, clusterId) };
    case "ReadIndexResponse":
      return { callId: 0, readIndexResponse: readIndexResponseToProto(msg, clusterId) };
  }
}

/** The Raft message in a one-way PeerFrame and the cluster id it carries; throws CodecError if it has none. */
export function messageFromPeerFrame(frame: pb.PeerFrame): { msg: Message; clusterId: string } {
  if (frame.requestVote) return decodedWithCluster(frame.requestVote, requestVoteFromProto);
  if (frame.requestVoteResponse) {
    return decodedWithCluster(frame.requestVoteResponse, requestVoteResponseFromProto);
  }
  if (frame.appendEntries) return decodedWithCluster(frame.appendEntries, appendEntriesFromProto);
  if (frame.appendEntriesResponse) {
    return decodedWithCluster(frame.appendEntriesResponse, appendEntriesResponseFromProto);
  }
  if (frame.timeoutNow) return decodedWithCluster(frame.timeoutNow, timeoutNowFromProto);
  if (frame.installSnapshot) return decodedWithCluster(frame.installSnapshot, installSnapshotFromProto);
  if (frame.installSnapshotResponse) {
    return decodedWithCluster(frame.installSnapshotResponse, installSnapshotResponseFromProto);
  }
  if (frame.readIndex) return decodedWithCluster(frame.readIndex, readIndexFromProto);
  if (frame.readIndexResponse) return decodedWithCluster(frame.readIndexResponse, readIndexResponseFromProto);
  throw new CodecError("a one-way Peer frame must carry a Raft message");
}

/** A proto message decoded by `fromProto`, with the cluster id every peer message carries. */
function decodedWithCluster<P extends { clusterId: string }>(
  p: P,
  fromProto: (p: P) => Message,
): { msg: Message; clusterId: string } {
  return { msg: fromProto(p), clusterId: p.clusterId };
}
