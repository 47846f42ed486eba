/**
 * The gRPC server of a node: the Peer, Client and Admin services on one port, wired to plain handlers.
 *
 * Handlers take and return the plain types of `src/raft/types.ts` and `api.ts`, never protobuf messages.
 * Errors thrown by handlers become gRPC statuses in one place (`toStatus`): an `RpcError` keeps its code, a
 * `CodecError` (malformed request) becomes INVALID_ARGUMENT, anything else INTERNAL. A Peer request whose
 * `cluster_id` differs from this server's is refused with FAILED_PRECONDITION before any handler runs.
 *
 * @module
 */

import type net from "node:net";
import * as grpc from "@grpc/grpc-js";
import * as pb from "../gen/raftkv.ts";
import type {
  AppendEntries,
  AppendEntriesResponse,
  Message,
  NodeId,
  RequestVote,
  RequestVoteResponse,
  TimeoutNow,
} from "../raft/types.ts";
import type {
  Answer,
  CasReply,
  CasRequest,
  DeleteReply,
  DeleteRequest,
  DumpLogReply,
  DumpLogRequest,
  GetReply,
  GetRequest,
  ListReply,
  ListRequest,
  MembershipReply,
  NodeStatus,
  SetReply,
  SetRequest,
  SnapshotReply,
  TransferLeaderReply,
  WatchReply,
  WatchRequest,
} from "./api.ts";
import { FRAME_BATCH_METADATA, type FrameBatching, serveFrames } from "./call_mux.ts";
import { type AdmissionStats, FairAdmission, type Lane } from "./fair.ts";
import {
  type Action,
  allowed as allowedAction,
  describeIdentity,
  type Identity,
} from "../security/identity.ts";
import {
  type CertificateStore,
  identityOfCert,
  serverCredentials,
  tlsSocketOf,
  unauthenticatedReason,
} from "../security/tls.ts";
import * as codec from "./codec.ts";
import { RpcCode, RpcError } from "./errors.ts";
import { PEER_WINDOW_BYTES, PEER_WINDOW_SESSIONS_MAX, PeerWindows, sessionOf } from "./peer_window.ts";

/** 16 MiB: room for large AppendEntries batches while catching up a restarted follower. */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

/**
 * Limits that keep a node's memory bounded whatever its callers do (issue 12). Each refusal is typed:
 * a connection over the limit or without a finished handshake is closed, a stream over the limit is refused
 * by HTTP/2 (REFUSED_STREAM), a frame over the limit is answered RESOURCE_EXHAUSTED, a message over the
 * size limit is refused RESOURCE_EXHAUSTED by grpc-js.
 */
export interface TransportLimits {
  /** Open TCP connections accepted at once; more are closed on arrival. */
  readonly maxConnections: number;
  /** Concurrent HTTP/2 streams (calls) per connection. */
  readonly maxConcurrentStreams: number;
  /** Frames awaiting their answer per Peer or Client stream. */
  readonly maxInFlightFrames: number;
  /**
   * Client frames (GET/SET/…) being served on the whole node at once, all connections together (Raft traffic
   * is not counted). More wait their turn in their connection's lane, served round-robin between connections
   * (src/transport/fair.ts), so a flood on some connections does not starve the others. The unary Client
   * calls (Get, Set, Delete, Cas, List) count here too, in the same lanes, under the same limits.
   */
  readonly maxClientFramesInFlight: number;
  /** Of those, at most this many from one connection at once (its other frames wait their turn). */
  readonly maxClientFramesPerConnection: number;
  /**
   * Client frames waiting for their turn on the whole node: beyond it a frame is refused at once
   * (RESOURCE_EXHAUSTED "node busy"). A stream stops reading while 32 of its frames wait, so this is reached
   * only by very many streams at once.
   */
  readonly maxClientFramesQueued: number;
  /** A connection must finish its TLS handshake (plain text: send its HTTP/2 preface) within this. */
  readonly handshakeTimeoutMs: number;
  /** Largest gRPC message received or sent. */
  readonly maxMessageBytes: number;
  /** Memory one HTTP/2 session may buffer before its new streams are refused (nghttp2's limit), in MB. */
  readonly maxSessionMemoryMb: number;
  /**
   * HTTP/2 window (per stream and per connection) of a connection carrying an admitted Peer stream, in bytes
   * (peer_window.ts): what a peer may send ahead of this node's reads. Other connections keep 64 KiB.
   */
  readonly peerWindowBytes: number;
  /** Connections given `peerWindowBytes` at once; more keep the 64 KiB default (slower, not refused). */
  readonly maxWidePeerConnections: number;
}

export const DEFAULT_TRANSPORT_LIMITS: TransportLimits = {
  maxConnections: 2048,
  maxConcurrentStreams: 128,
  maxInFlightFrames: 1024,
  maxClientFramesInFlight: 4096,
  maxClientFramesPerConnection: 128,
  maxClientFramesQueued: 65_536,
  handshakeTimeoutMs: 10_000,
  maxMessageBytes: MAX_MESSAGE_BYTES,
  maxSessionMemoryMb: 64,
  peerWindowBytes: PEER_WINDOW_BYTES,
  maxWidePeerConnections: PEER_WINDOW_SESSIONS_MAX,
};

/** Options of `startServer`. */
export interface ServerOptions {
  /** Mutual TLS with the store's certificates (and roles checked per call); plain text when absent. */
  readonly tls?: CertificateStore;
  readonly limits?: Partial<TransportLimits>;
}

/** How long `close()` waits for the listener and connections to report closed before resolving anyway. */
const CLOSE_WAIT_MS = 2000;

type Awaitable<T> = T | Promise<T>;

/** What a handler learns about the call it serves. */
export interface CallContext {
  /** Aborted when the caller cancels or its deadline passes: stop waiting, the answer will be dropped. */
  readonly signal: AbortSignal;
  /** Milliseconds left before the caller's deadline when the call arrived (Infinity: no deadline). */
  readonly deadlineMs: number;
  /** The caller's address as grpc-js reports it (e.g. "ipv4:127.0.0.1:51234"). */
  readonly peer: string;
  /** Who the caller's certificate says it is (undefined in plain text). */
  readonly identity?: Identity;
}

/**
 * Raft traffic. Each request handler answers with the response message (`to` = the request's `from`).
 * `deliver`, when given, takes the one-way messages of the Peer stream (call id 0, what nodes send): any
 * of the five Raft messages, already checked for the cluster id; nothing is answered. `back` sends a one-way
 * message to the sender on the same stream (false once it closed): a response takes the path its request
 * came by, as a reply would, without being matched to it.
 */
export interface PeerHandlers {
  requestVote(req: RequestVote, ctx: CallContext): Awaitable<RequestVoteResponse>;
  appendEntries(req: AppendEntries, ctx: CallContext): Awaitable<AppendEntriesResponse>;
  timeoutNow(req: TimeoutNow, ctx: CallContext): Awaitable<void>;
  deliver?(msg: Message, ctx: CallContext, back: (msg: Message) => boolean): void;
}

/** Client requests. A refusal is an answer with `ok: false` (see `codec.refusalToReply`), not an exception. */
export interface ClientHandlers {
  get(req: GetRequest, ctx: CallContext): Awaitable<Answer<GetReply>>;
  set(req: SetRequest, ctx: CallContext): Awaitable<Answer<SetReply>>;
  // The calls below are optional so that test doubles need only what they serve: a server without one
  // answers it with UNIMPLEMENTED.
  delete?(req: DeleteRequest, ctx: CallContext): Awaitable<Answer<DeleteReply>>;
  cas?(req: CasRequest, ctx: CallContext): Awaitable<Answer<CasReply>>;
  list?(req: ListRequest, ctx: CallContext): Awaitable<Answer<ListReply>>;
  /**
   * The replies of one watch stream, pulled one at a time as the transport can send them (a slow reader
   * applies backpressure to the generator; the handler bounds what it buffers). Ends when the caller cancels
   * (`ctx.signal`).
   */
  watch?(req: WatchRequest, ctx: CallContext): AsyncIterable<Partial<WatchReply>>;
}

/** Operator requests. */
export interface AdminHandlers {
  status(ctx: CallContext): Awaitable<NodeStatus>;
  /** `toId` 0: the best follower. */
  transferLeader(toId: NodeId, ctx: CallContext): Awaitable<TransferLeaderReply>;
  dumpLog(req: DumpLogRequest, ctx: CallContext): Awaitable<DumpLogReply>;
  /** Takes a snapshot now (issue 10); absent on servers without snapshots. */
  snapshot?(ctx: CallContext): Awaitable<SnapshotReply>;
  /** Membership (issue 11): add `id` at `address` as a learner (promoted once caught up unless `learner`). */
  addNode?(
    req: { id: NodeId; address: string; learner: boolean },
    ctx: CallContext,
  ): Awaitable<MembershipReply>;
  removeNode?(id: NodeId, ctx: CallContext): Awaitable<MembershipReply>;
}

export interface ServerHandlers {
  /** Peer requests carrying another cluster id are refused with FAILED_PRECONDITION. */
  readonly clusterId: string;
  /**
   * Requests of one Client stream waiting for their answers at most (default 1024): the next is answered
   * `overloaded` at once (nothing done), so one connection cannot pile up unbounded work in the node.
   */
  readonly clientFramesInFlightMax?: number;
  readonly peer: PeerHandlers;
  readonly client: ClientHandlers;
  readonly admin: AdminHandlers;
}

export interface RunningServer {
  /** The bound port (useful after binding port 0). */
  readonly port: number;
  /** TCP connections open now (for tests and metrics). */
  readonly connections: number;
  /** Connections given the wider Peer windows now (`peerWindowBytes`; for tests and metrics). */
  readonly widePeerConnections: number;
  /** The fair admission of client requests now (for metrics): in flight, queued, refused since start. */
  readonly admission: AdmissionStats;
  /** Stops at once: open calls are cancelled, connections closed. Idempotent. */
  close(): Promise<void>;
}

/**
 * Maps anything a handler threw to a gRPC status: the single place where this happens.
 * Exported for tests.
 */
export function toStatus(err: unknown): Partial<grpc.StatusObject> {
  if (err instanceof RpcError) return { code: RpcCode[err.codeName], details: err.message };
  if (err instanceof codec.CodecError) return { code: grpc.status.INVALID_ARGUMENT, details: err.message };
  const details = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return { code: grpc.status.INTERNAL, details };
}

function remainingMs(deadline: grpc.Deadline): number {
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : Infinity;
}

const ACTION_TEXT: Record<Action, string> = {
  "peer": "call the Peer service (Raft traffic)",
  "kv": "read or write keys",
  "status": "read the node status",
  "transfer-leader": "transfer leadership",
  "change-membership": "change membership",
  "snapshot": "take snapshots",
  "dump-log": "dump the log",
};

/** Who may do what once TLS is on; plain text lets everything through. */
interface Guard {
  /** Returns the caller's identity, or throws UNAUTHENTICATED / PERMISSION_DENIED naming it and `action`. */
  check(
    call: Pick<grpc.ServerUnaryCall<unknown, unknown>, "getAuthContext" | "getPeer">,
    action: Action,
  ): Identity | undefined;
}

const OPEN_GUARD: Guard = { check: () => undefined };

const TLS_GUARD: Guard = {
  check(call, action) {
    const auth = call.getAuthContext();
    const peer = call.getPeer();
    if (auth.transportSecurityType !== "ssl" || !auth.sslPeerCertificate) {
      // grpc-js reports no certificate unless the CA verified it: ask the socket why.
      throw new RpcError(
        "UNAUTHENTICATED",
        `${unauthenticatedReason(tlsSocketOf(call))} (${peer}): refused to ${ACTION_TEXT[action]}`,
      );
    }
    const id = identityOfCert(auth.sslPeerCertificate);
    if (id === undefined) {
      throw new RpcError(
        "UNAUTHENTICATED",
        `the certificate of ${peer} names no raftkv identity (raftkv://node|client|admin/…): refused to ` +
          ACTION_TEXT[action],
      );
    }
    if (!allowedAction(id, action)) {
      throw new RpcError("PERMISSION_DENIED", `${describeIdentity(id)} may not ${ACTION_TEXT[action]}`);
    }
    return id;
  },
};

/** Refuses a Peer request whose sender differs from the member the caller's certificate names. */
export function checkClaim(caller: Identity | undefined, claimedFrom: number, what: string): void {
  if (caller?.role === "node" && caller.nodeId !== claimedFrom) {
    throw new RpcError(
      "PERMISSION_DENIED",
      `${describeIdentity(caller)} may not send ${what} claiming to be node ${claimedFrom}`,
    );
  }
}

/** Adapts an async plain-typed function to a grpc-js unary handler, after `guard` allowed `action`. */
function unary<Req, Res>(
  guard: Guard,
  action: Action,
  serve: (req: Req, ctx: CallContext, call: grpc.ServerUnaryCall<Req, Res>) => Awaitable<Res>,
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    let identity: Identity | undefined;
    try {
      identity = guard.check(call, action);
    } catch (err) {
      callback(toStatus(err));
      return;
    }
    const abort = new AbortController();
    let pending = true;
    // Under Deno grpc-js reports "cancelled" for every finished call too: only abort a handler still running,
    // so the hot path does not build an Error (with its stack) per call.
    call.once("cancelled", () => {
      if (pending) abort.abort(new RpcError("CANCELLED", "call cancelled by the caller"));
    });
    const ctx: CallContext = {
      signal: abort.signal,
      deadlineMs: remainingMs(call.getDeadline()),
      peer: call.getPeer(),
      identity,
    };
    Promise.resolve().then(() => serve(call.request, ctx, call)).then(
      (res) => {
        pending = false;
        if (!call.cancelled) callback(null, res);
      },
      (err: unknown) => {
        pending = false;
        if (!call.cancelled) callback(toStatus(err));
      },
    );
  };
}

export function checkCluster(expected: string, got: string): void {
  if (got !== expected) {
    throw new RpcError(
      "FAILED_PRECONDITION",
      `cluster id or timings mismatch: the request is for "${got}", this node runs "${expected}" ` +
        `(every node needs the same clusterId, heartbeatIntervalMs, electionTimeoutMs, leaseDurationMs, maxClockDrift)`,
    );
  }
}

/** Serves one Peer request (unary or a frame of the Peer stream) and returns its protobuf response. */
const servePeer = {
  async requestVote(h: PeerServing, req: pb.RequestVoteRequest, ctx: CallContext) {
    checkCluster(h.clusterId, req.clusterId);
    const msg = codec.requestVoteFromProto(req);
    checkClaim(ctx.identity, msg.from, "RequestVote");
    return codec.requestVoteResponseToProto(await h.peer.requestVote(msg, ctx));
  },
  async appendEntries(h: PeerServing, req: pb.AppendEntriesRequest, ctx: CallContext) {
    checkCluster(h.clusterId, req.clusterId);
    const msg = codec.appendEntriesFromProto(req);
    checkClaim(ctx.identity, msg.from, "AppendEntries");
    return codec.appendEntriesResponseToProto(await h.peer.appendEntries(msg, ctx));
  },
  async timeoutNow(
    h: PeerServing,
    req: pb.TimeoutNowRequest,
    ctx: CallContext,
  ): Promise<pb.TimeoutNowResponse> {
    checkCluster(h.clusterId, req.clusterId);
    const msg = codec.timeoutNowFromProto(req);
    checkClaim(ctx.identity, msg.from, "TimeoutNow");
    await h.peer.timeoutNow(msg, ctx);
    return {};
  },
};

/** What serving Peer traffic needs of the handlers (the raw peer transport serves only this). */
export type PeerServing = Pick<ServerHandlers, "clusterId" | "peer">;

/** The answer frame's body for one request frame (without its call id). */
export async function answerFrame(
  h: PeerServing,
  frame: pb.PeerFrame,
  ctx: CallContext,
): Promise<Omit<pb.PeerFrame, "callId">> {
  if (frame.appendEntries) {
    return { appendEntriesResponse: await servePeer.appendEntries(h, frame.appendEntries, ctx) };
  }
  if (frame.requestVote) {
    return { requestVoteResponse: await servePeer.requestVote(h, frame.requestVote, ctx) };
  }
  if (frame.timeoutNow) return { timeoutNowResponse: await servePeer.timeoutNow(h, frame.timeoutNow, ctx) };
  throw new codec.CodecError(
    "a Peer stream frame must carry a request (AppendEntries, RequestVote or TimeoutNow)",
  );
}

/** An error frame's code and message for what a handler threw (same mapping as a unary call's status). */
export function frameError(err: unknown): { code: number; message: string } {
  const status = toStatus(err);
  return { code: status.code ?? grpc.status.INTERNAL, message: status.details ?? "" };
}

/** Refuses a stream the guard does not allow; otherwise returns the caller's identity. */
function openStream(
  guard: Guard,
  action: Action,
  call: grpc.ServerDuplexStream<unknown, unknown>,
): { ok: true; identity: Identity | undefined } | { ok: false } {
  try {
    return { ok: true, identity: guard.check(call, action) };
  } catch (err) {
    const status = toStatus(err);
    call.emit("error", { code: status.code, details: status.details, metadata: new grpc.Metadata() });
    return { ok: false };
  }
}

/** Gives a stream's frames one context carrying the caller's identity (built once per stream). */
function withIdentity(identity: Identity | undefined): (ctx: CallContext) => CallContext {
  let built: CallContext | undefined;
  return (ctx) => built ??= identity === undefined ? ctx : { ...ctx, identity };
}

/** The Peer stream (call_mux.ts): request frames in, answer frames out; one-way frames to `deliver`. */
function peerStream(
  h: ServerHandlers,
  guard: Guard,
  limits: TransportLimits,
  windows: PeerWindows,
): grpc.handleBidiStreamingCall<pb.PeerFrame, pb.PeerFrame> {
  const deliver = h.peer.deliver?.bind(h.peer);
  return (call) => {
    const open = openStream(guard, "peer", call);
    if (!open.ok) return;
    // An admitted peer's connection gets HTTP/2 windows as wide as the snapshot chunks in flight (bounded in
    // count: peer_window.ts); client connections keep the defaults.
    windows.widen(sessionOf(call));
    const context = withIdentity(open.identity);
    const oneWay = deliver === undefined
      ? undefined
      : (frame: pb.PeerFrame, ctx: CallContext, back: (frame: pb.PeerFrame) => boolean) => {
        const { msg, clusterId } = codec.messageFromPeerFrame(frame);
        checkCluster(h.clusterId, clusterId);
        // One-way messages too: a node certificate speaks only for its own member id (else dropped).
        checkClaim(open.identity, msg.from, msg.type);
        deliver(msg, context(ctx), (m) => back(codec.messageToPeerFrame(m, h.clusterId)));
      };
    serveFrames(call, (frame, ctx) => answerFrame(h, frame, context(ctx)), frameError, oneWay, {
      max: limits.maxInFlightFrames,
      overloaded: () => {
        throw new RpcError("RESOURCE_EXHAUSTED", `too many frames in flight on this stream`);
      },
    });
  };
}

/** Frames of one Client stream waiting for their turn at which the stream stops reading (back-pressure). */
const PAUSE_AT_QUEUED_FRAMES = 32;

export { FRAME_BATCH_METADATA };

/**
 * An upper bound of a request or reply frame's encoded size (UTF-16 length × 3 bounds a string's UTF-8 bytes,
 * 64 bytes the numbers, tags and lengths), or undefined for the kinds that go out alone (LIST replies: any
 * size; batches).
 */
export function clientFrameSizeBound(f: pb.ClientFrame): number | undefined {
  if (f.listReply !== undefined || f.batch !== undefined) return undefined;
  const body: object | undefined = f.setReply ?? f.getReply ?? f.deleteReply ?? f.casReply ?? f.error ??
    f.set ??
    f.get ?? f.delete ?? f.cas ?? f.list;
  if (body === undefined) return undefined;
  let chars = 0;
  for (const v of Object.values(body)) if (typeof v === "string") chars += v.length;
  return 64 + 3 * chars;
}

/**
 * How a Client stream's answers are batched for a caller that reads batches: at most 256 frames and 256 KiB
 * (by `clientFrameSizeBound`) per batch, far below any message size limit; a bigger GET reply goes alone.
 */
export const CLIENT_FRAME_BATCHING: FrameBatching<pb.ClientFrame> = {
  pack: (frames) => ({ callId: 0, batch: { frames } }),
  unbatch: (f) => f.batch?.frames,
  sizeOf: (f) => {
    const bytes = clientFrameSizeBound(f);
    return bytes !== undefined && bytes <= 64 * 1024 ? bytes : undefined;
  },
  maxFrames: 256,
  maxBytes: 256 * 1024,
};

/**
 * The fair scheduler of client frames and the lane of each connection (its HTTP/2 session; a stream whose
 * session cannot be found gets a lane of its own).
 */
interface ClientAdmission {
  readonly scheduler: FairAdmission;
  readonly lanes: WeakMap<object, Lane>;
}

function laneOf(admission: ClientAdmission, call: unknown): Lane {
  const session = sessionOf(call);
  if (session === undefined) return admission.scheduler.lane();
  let lane = admission.lanes.get(session);
  if (lane === undefined) {
    lane = admission.scheduler.lane();
    admission.lanes.set(session, lane);
  }
  return lane;
}

/** The Client stream: GET and SET frames in, replies out. */
function clientStream(
  h: ServerHandlers,
  guard: Guard,
  limits: TransportLimits,
  admission: ClientAdmission,
): grpc.handleBidiStreamingCall<pb.ClientFrame, pb.ClientFrame> {
  return (call) => {
    const open = openStream(guard, "kv", call);
    if (!open.ok) return;
    // This server reads batch frames: the caller may send its requests so (see FrameBatching).
    const md = new grpc.Metadata();
    md.set(FRAME_BATCH_METADATA, "1");
    call.sendMetadata(md);
    const context = withIdentity(open.identity);
    const serve = async (
      frame: pb.ClientFrame,
      ctx: CallContext,
    ): Promise<Omit<pb.ClientFrame, "callId">> => {
      if (frame.get) {
        return {
          getReply: codec.getReplyToProto(await h.client.get(codec.getRequestFromProto(frame.get), ctx)),
        };
      }
      if (frame.set) {
        return {
          setReply: codec.setReplyToProto(await h.client.set(codec.setRequestFromProto(frame.set), ctx)),
        };
      }
      if (frame.delete) {
        const answer = await need(h.client.delete, "Delete").call(
          h.client,
          codec.deleteRequestFromProto(frame.delete),
          ctx,
        );
        return { deleteReply: codec.deleteReplyToProto(answer) };
      }
      if (frame.cas) {
        const answer = await need(h.client.cas, "Cas").call(
          h.client,
          codec.casRequestFromProto(frame.cas),
          ctx,
        );
        return { casReply: codec.casReplyToProto(answer) };
      }
      if (frame.list) {
        const answer = await need(h.client.list, "List").call(
          h.client,
          codec.listRequestFromProto(frame.list),
          ctx,
        );
        return { listReply: codec.listReplyToProto(answer) };
      }
      throw new codec.CodecError(
        "a Client stream frame must carry a request (GET, SET, DELETE, CAS or LIST)",
      );
    };
    serveFrames(
      call,
      (frame, frameCtx) => serve(frame, context(frameCtx)),
      frameError,
      undefined,
      {
        // A bounded number of requests per stream in flight: the next is answered overloaded at once.
        max: h.clientFramesInFlightMax ?? limits.maxInFlightFrames,
        overloaded: (frame, inFlight): Omit<pb.ClientFrame, "callId"> => {
          const refusal = {
            ok: false,
            error: "overloaded" as const,
            errorMessage: `${inFlight} requests of this stream are in flight (clientFramesInFlightMax)`,
          };
          if (frame.get) return { getReply: codec.getReplyToProto(refusal) };
          if (frame.set) return { setReply: codec.setReplyToProto(refusal) };
          if (frame.delete) return { deleteReply: codec.deleteReplyToProto(refusal) };
          if (frame.cas) return { casReply: codec.casReplyToProto(refusal) };
          if (frame.list) return { listReply: codec.listReplyToProto(refusal) };
          throw new codec.CodecError("a Client stream frame must carry a request");
        },
      },
      {
        // Round-robin between connections for the node's slots; a stream that backs up stops reading.
        lane: laneOf(admission, call),
        pauseQueued: PAUSE_AT_QUEUED_FRAMES,
        busy: () => ({ code: grpc.status.RESOURCE_EXHAUSTED, message: nodeBusyMessage(limits) }),
      },
      { limits: CLIENT_FRAME_BATCHING, replies: call.metadata.get(FRAME_BATCH_METADATA)[0] === "1" },
    );
  };
}

/** An optional handler, or UNIMPLEMENTED when this server has none. */
function need<F>(handler: F | undefined, name: string): F {
  if (handler === undefined) throw new RpcError("UNIMPLEMENTED", `this server does not serve Client.${name}`);
  return handler;
}

function peerService(
  h: ServerHandlers,
  g: Guard,
  limits: TransportLimits,
  windows: PeerWindows,
): pb.PeerServer {
  return {
    requestVote: unary(g, "peer", (req: pb.RequestVoteRequest, ctx) => servePeer.requestVote(h, req, ctx)),
    appendEntries: unary(
      g,
      "peer",
      (req: pb.AppendEntriesRequest, ctx) => servePeer.appendEntries(h, req, ctx),
    ),
    timeoutNow: unary(g, "peer", (req: pb.TimeoutNowRequest, ctx) => servePeer.timeoutNow(h, req, ctx)),
    stream: peerStream(h, g, limits, windows),
  };
}

/**
 * A unary Client call (GET, SET, DELETE, CAS, LIST) through the same fair admission as the Client stream's
 * frames: it waits in its connection's lane for one of the node's slots (`maxClientFramesInFlight`, at most
 * `maxClientFramesPerConnection` of one connection), and is refused at once with RESOURCE_EXHAUSTED "node
 * busy" when `maxClientFramesQueued` requests already wait. A unary call is its own HTTP/2 stream, so the
 * back-pressure a Client stream gets by pausing its reads comes here from `maxConcurrentStreams` per
 * connection. The slot is given back once the answer (or error) has been handed to grpc-js; a call cancelled
 * while it waited never reaches the handler.
 */
function admittedUnary<Req, Res>(
  g: Guard,
  limits: TransportLimits,
  admission: ClientAdmission,
  serve: (req: Req, ctx: CallContext) => Promise<Res>,
): grpc.handleUnaryCall<Req, Res> {
  return unary(g, "kv", (req: Req, ctx, call) =>
    new Promise<Res>((resolve, reject) => {
      const admitted = laneOf(admission, call).submit(() => {
        if (call.cancelled || ctx.signal.aborted) {
          reject(new RpcError("CANCELLED", "call cancelled while it waited for its turn"));
          return Promise.resolve();
        }
        const answer = Promise.resolve().then(() => serve(req, ctx));
        answer.then(resolve, reject);
        // resolve/reject above run first: the reply is handed to grpc-js before the slot is given back.
        return answer.then(() => {}, () => {});
      });
      if (!admitted) reject(new RpcError("RESOURCE_EXHAUSTED", nodeBusyMessage(limits)));
    }));
}

/** The refusal of a client request when the node's queue of waiting requests is full (stream and unary). */
function nodeBusyMessage(limits: TransportLimits): string {
  return `node busy: ${limits.maxClientFramesQueued} client requests wait for their turn; back off and retry`;
}

function clientService(
  h: ServerHandlers,
  g: Guard,
  limits: TransportLimits,
  admission: ClientAdmission,
): pb.ClientServer {
  const kv = <Req, Res>(serve: (req: Req, ctx: CallContext) => Promise<Res>) =>
    admittedUnary(g, limits, admission, serve);
  return {
    get: kv(async (req: pb.GetRequest, ctx) => {
      return codec.getReplyToProto(await h.client.get(codec.getRequestFromProto(req), ctx));
    }),
    set: kv(async (req: pb.SetRequest, ctx) => {
      return codec.setReplyToProto(await h.client.set(codec.setRequestFromProto(req), ctx));
    }),
    delete: kv(async (req: pb.DeleteRequest, ctx) => {
      const serve = need(h.client.delete, "Delete");
      return codec.deleteReplyToProto(await serve.call(h.client, codec.deleteRequestFromProto(req), ctx));
    }),
    cas: kv(async (req: pb.CasRequest, ctx) => {
      const serve = need(h.client.cas, "Cas");
      return codec.casReplyToProto(await serve.call(h.client, codec.casRequestFromProto(req), ctx));
    }),
    list: kv(async (req: pb.ListRequest, ctx) => {
      const serve = need(h.client.list, "List");
      return codec.listReplyToProto(await serve.call(h.client, codec.listRequestFromProto(req), ctx));
    }),
    watch: watchStream(h, g),
    stream: clientStream(h, g, limits, admission),
  };
}

/**
 * A server stream: writes the handler's replies one by one, waiting for the connection to drain whenever
 * gRPC's buffer is full, so the handler (not the transport) decides what a slow reader may cost.
 */
function watchStream(
  h: ServerHandlers,
  g: Guard,
): grpc.handleServerStreamingCall<pb.WatchRequest, pb.WatchReply> {
  return async (call) => {
    let identity: Identity | undefined;
    try {
      identity = g.check(call, "kv");
    } catch (err) {
      call.emit("error", { ...toStatus(err), metadata: new grpc.Metadata() });
      return;
    }
    const abort = new AbortController();
    const stop = () => abort.abort(new RpcError("CANCELLED", "watch cancelled by the caller"));
    call.once("cancelled", stop);
    call.once("close", stop);
    const ctx: CallContext = {
      signal: abort.signal,
      deadlineMs: remainingMs(call.getDeadline()),
      peer: call.getPeer(),
      identity,
    };
    try {
      const replies = need(h.client.watch, "Watch").call(
        h.client,
        codec.watchRequestFromProto(call.request),
        ctx,
      );
      for await (const reply of replies) {
        if (abort.signal.aborted || call.cancelled) break;
        if (!call.write(codec.watchReplyToProto(reply))) {
          await new Promise<void>((resolve) => {
            const done = () => {
              call.off("drain", done);
              abort.signal.removeEventListener("abort", done);
              resolve();
            };
            call.on("drain", done);
            abort.signal.addEventListener("abort", done, { once: true });
          });
        }
      }
      if (!call.cancelled) call.end();
    } catch (err) {
      // grpc-js ends a server stream with an error status when the call emits 'error' with code and details.
      if (!call.cancelled) call.emit("error", { ...toStatus(err), metadata: new grpc.Metadata() });
    } finally {
      stop();
    }
  };
}

function adminService(h: ServerHandlers, g: Guard): pb.AdminServer {
  return {
    status: unary(
      g,
      "status",
      async (_req: pb.StatusRequest, ctx) => codec.statusToProto(await h.admin.status(ctx)),
    ),
    transferLeader: unary(g, "transfer-leader", async (req: pb.TransferLeaderRequest, ctx) => {
      return codec.transferLeaderReplyToProto(await h.admin.transferLeader(req.toId, ctx));
    }),
    dumpLog: unary(g, "dump-log", async (req: pb.DumpLogRequest, ctx) => {
      return codec.dumpLogReplyToProto(await h.admin.dumpLog(codec.dumpLogRequestFromProto(req), ctx));
    }),
    snapshot: unary(g, "snapshot", async (_req: pb.SnapshotRequest, ctx) => {
      if (h.admin.snapshot === undefined) {
        return { ok: false, index: 0, term: 0, error: "snapshots not supported" };
      }
      return { ...(await h.admin.snapshot(ctx)) };
    }),
    addNode: unary(g, "change-membership", async (req: pb.AddNodeRequest, ctx) => {
      if (!h.admin.addNode) throw new RpcError("UNIMPLEMENTED", "this node does not change membership");
      return codec.membershipReplyToProto(
        await h.admin.addNode({ id: req.id, address: req.address, learner: req.learner }, ctx),
      );
    }),
    removeNode: unary(g, "change-membership", async (req: pb.RemoveNodeRequest, ctx) => {
      if (!h.admin.removeNode) throw new RpcError("UNIMPLEMENTED", "this node does not change membership");
      return codec.membershipReplyToProto(await h.admin.removeNode(req.id, ctx));
    }),
  };
}

/** The HTTP/2 preface every plain-text gRPC client sends first. */
const H2_PREFACE_BYTES = 24;

/**
 * Counts connections on grpc-js's HTTP/2 server and closes those over `maxConnections` on arrival, and those
 * that have not finished their handshake within `handshakeTimeoutMs` (TLS: the handshake; plain text: the
 * HTTP/2 preface).
 *
 * A connection is counted from its arrival to its raw socket's "close". Under Deno 2.8.3 destroying the raw
 * socket closes the TCP connection in mid-handshake too (its TLSWrap closes the native handle), and so does the
 * TLS layer's own handshake timeout (tlsClientError, then destroy): either alone closes a stalled handshake
 * (security_test.ts fails with both switched off). A peer that never reads does not notice the FIN, which
 * made an earlier measurement believe such connections stayed open; scripts/abuse.ts now reads, and counts
 * the node's open descriptors.
 */
function limitConnections(http2Server: net.Server, limits: TransportLimits, secure: boolean): () => number {
  let open = 0;
  const track = (socket: net.Socket) => {
    open++;
    socket.once("close", () => open--);
  };
  /** TLS handshakes under way, by the peer's "address:port": the function stops the handshake timer. */
  const handshaking = new Map<string, () => void>();
  const peerKey = (s: net.Socket) => `${s.remoteAddress}:${s.remotePort}`;
  http2Server.prependListener("connection", (socket: net.Socket) => {
    if (open >= limits.maxConnections) {
      socket.destroy();
      return;
    }
    track(socket);
    // Closes a connection that has not finished its handshake in time (TLS: the handshake, whose end is the
    // server's "secureConnection"; plain text: the HTTP/2 preface).
    const timer = setTimeout(() => socket.destroy(), limits.handshakeTimeoutMs);
    const key = peerKey(socket);
    const done = () => {
      clearTimeout(timer);
      if (handshaking.get(key) === done) handshaking.delete(key);
    };
    socket.once("close", done);
    if (secure) {
      handshaking.set(key, done);
      return;
    }
    let received = 0;
    const onData = (chunk: Uint8Array) => {
      received += chunk.length;
      if (received < H2_PREFACE_BYTES) return;
      done();
      socket.off("data", onData);
    };
    socket.on("data", onData);
  });
  if (secure) {
    http2Server.on("secureConnection", (tlsSocket: net.Socket) => handshaking.get(peerKey(tlsSocket))?.());
    http2Server.on("tlsClientError", (_err: Error, tlsSocket: net.Socket) => tlsSocket.destroy());
  }
  return () => open;
}

/**
 * Starts serving the three services on `address` ("host:port"; port 0 picks a free port), with mutual TLS
 * and per-call role checks when `options.tls` is given, in plain text otherwise.
 * Rejects if the address cannot be bound.
 */
export async function startServer(
  address: string,
  handlers: ServerHandlers,
  options: ServerOptions = {},
): Promise<RunningServer> {
  const limits = { ...DEFAULT_TRANSPORT_LIMITS, ...options.limits };
  const server = new grpc.Server({
    "grpc.max_receive_message_length": limits.maxMessageBytes,
    "grpc.max_send_message_length": limits.maxMessageBytes,
    "grpc.max_concurrent_streams": limits.maxConcurrentStreams,
    "grpc-node.max_session_memory": limits.maxSessionMemoryMb,
  });
  const guard = options.tls ? TLS_GUARD : OPEN_GUARD;
  const windows = new PeerWindows(limits.peerWindowBytes, limits.maxWidePeerConnections);
  server.addService(pb.PeerService, peerService(handlers, guard, limits, windows));
  const admission: ClientAdmission = {
    scheduler: new FairAdmission({
      maxInFlight: limits.maxClientFramesInFlight,
      perLane: limits.maxClientFramesPerConnection,
      maxQueued: limits.maxClientFramesQueued,
    }),
    lanes: new WeakMap(),
  };
  server.addService(pb.ClientService, clientService(handlers, guard, limits, admission));
  server.addService(pb.AdminService, adminService(handlers, guard));
  const credentials = options.tls
    ? serverCredentials(options.tls, limits.handshakeTimeoutMs)
    : grpc.ServerCredentials.createInsecure();
  let port: number;
  let connections: () => number = () => 0;
  try {
    port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(address, credentials, (err, port) => {
        if (err) reject(err);
        else resolve(port);
      });
    });
  } catch (err) {
    server.forceShutdown();
    throw new Error(`cannot listen on ${address}: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    });
  }
  // grpc-js does not expose its HTTP/2 server; the pinned version keeps it in `http2Servers`.
  const http2Servers = (server as unknown as { http2Servers: Map<net.Server, unknown> }).http2Servers;
  for (const h2 of http2Servers.keys()) connections = limitConnections(h2, limits, options.tls !== undefined);
  let closing: Promise<void> | undefined;
  return {
    port,
    get connections() {
      return connections();
    },
    get widePeerConnections() {
      return windows.size;
    },
    get admission() {
      return admission.scheduler.stats;
    },
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        // tryShutdown stops the listener and reports when it and every connection are closed;
        // forceShutdown right after cancels the open calls and destroys the connections.
        const fallback = setTimeout(resolve, CLOSE_WAIT_MS);
        server.tryShutdown(() => {
          clearTimeout(fallback);
          resolve();
        });
        server.forceShutdown();
      });
      return closing;
    },
  };
}
