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
import { parseMembership } from "../raft/membership.ts";
import type {
  AppendEntries,
  AppendEntriesResponse,
  Command,
  Entry,
  Refusal,
  RequestVote,
  RequestVoteResponse,
  Role,
  TimeoutNow,
} from "../raft/types.ts";
import type {
  Answer,
  DumpLogReply,
  DumpLogRequest,
  ErrorKind,
  GetReply,
  GetRequest,
  MembershipReply,
  NodeStatus,
  ReplyCommon,
  SetReply,
  SetRequest,
  TransferLeaderReply,
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
  }
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

export function requestVoteResponseToProto(msg: RequestVoteResponse): pb.RequestVoteResponse {
  return {
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
  };
}

export function appendEntriesResponseToProto(msg: AppendEntriesResponse): pb.AppendEntriesResponse {
  return {
    from: msg.from,
    to: msg.to,
    term: msg.term,
    success: msg.success,
    matchIndex: msg.matchIndex,
    conflictIndex: msg.conflictIndex,
    conflictTerm: msg.conflictTerm,
    seq: msg.seq,
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
  };
}

export function timeoutNowToProto(msg: TimeoutNow, clusterId: string): pb.TimeoutNowRequest {
  return { clusterId, from: msg.from, to: msg.to, term: msg.term };
}

export function timeoutNowFromProto(req: pb.TimeoutNowRequest): TimeoutNow {
  return { type: "TimeoutNow", from: req.from, to: req.to, term: req.term };
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
    default:
      return undefined;
  }
}

function commonToProto(answer: Answer<ReplyCommon>): Omit<pb.GetReply, "value" | "found"> {
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

function commonFromProto(reply: Omit<pb.GetReply, "value" | "found">): ReplyCommon {
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
  return { key: req.key };
}

export function getRequestFromProto(req: pb.GetRequest): GetRequest {
  return { key: req.key };
}

export function getReplyToProto(answer: Answer<GetReply>): pb.GetReply {
  return { ...commonToProto(answer), value: answer.value ?? "", found: answer.found ?? false };
}

export function getReplyFromProto(reply: pb.GetReply): GetReply {
  return { ...commonFromProto(reply), value: reply.value, found: reply.found };
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
    members: (status.membership?.members ?? []).map((m) => ({
      id: m.id,
      address: m.address,
      voter: m.voter,
      promote: m.promote ?? false,
    })),
    outgoingVoters: [...(status.membership?.outgoingVoters ?? [])],
    membershipIndex: status.membershipIndex ?? 0,
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
