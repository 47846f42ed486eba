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
  TransferLeaderReply,
  WatchReply,
  WatchRequest,
} from "./api.ts";
import { serveFrames } from "./call_mux.ts";
import * as codec from "./codec.ts";
import { RpcCode, RpcError } from "./errors.ts";

/** 16 MiB: room for large AppendEntries batches while catching up a restarted follower. */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

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

/** Adapts an async plain-typed function to a grpc-js unary handler. */
function unary<Req, Res>(
  serve: (req: Req, ctx: CallContext) => Awaitable<Res>,
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
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
    };
    Promise.resolve().then(() => serve(call.request, ctx)).then(
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

function checkCluster(expected: string, got: string): void {
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
  async requestVote(h: ServerHandlers, req: pb.RequestVoteRequest, ctx: CallContext) {
    checkCluster(h.clusterId, req.clusterId);
    return codec.requestVoteResponseToProto(await h.peer.requestVote(codec.requestVoteFromProto(req), ctx));
  },
  async appendEntries(h: ServerHandlers, req: pb.AppendEntriesRequest, ctx: CallContext) {
    checkCluster(h.clusterId, req.clusterId);
    return codec.appendEntriesResponseToProto(
      await h.peer.appendEntries(codec.appendEntriesFromProto(req), ctx),
    );
  },
  async timeoutNow(
    h: ServerHandlers,
    req: pb.TimeoutNowRequest,
    ctx: CallContext,
  ): Promise<pb.TimeoutNowResponse> {
    checkCluster(h.clusterId, req.clusterId);
    await h.peer.timeoutNow(codec.timeoutNowFromProto(req), ctx);
    return {};
  },
};

/** The answer frame's body for one request frame (without its call id). */
async function answerFrame(
  h: ServerHandlers,
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
function frameError(err: unknown): { code: number; message: string } {
  const status = toStatus(err);
  return { code: status.code ?? grpc.status.INTERNAL, message: status.details ?? "" };
}

/** The Peer stream (call_mux.ts): request frames in, answer frames out; one-way frames to `deliver`. */
function peerStream(h: ServerHandlers): grpc.handleBidiStreamingCall<pb.PeerFrame, pb.PeerFrame> {
  const deliver = h.peer.deliver?.bind(h.peer);
  const oneWay = deliver === undefined
    ? undefined
    : (frame: pb.PeerFrame, ctx: CallContext, back: (frame: pb.PeerFrame) => boolean) => {
      const { msg, clusterId } = codec.messageFromPeerFrame(frame);
      checkCluster(h.clusterId, clusterId);
      deliver(msg, ctx, (m) => back(codec.messageToPeerFrame(m, h.clusterId)));
    };
  return (call) => serveFrames(call, (frame, ctx) => answerFrame(h, frame, ctx), frameError, oneWay);
}

/** The Client stream: GET and SET frames in, replies out. */
function clientStream(h: ServerHandlers): grpc.handleBidiStreamingCall<pb.ClientFrame, pb.ClientFrame> {
  return (call) =>
    serveFrames(
      call,
      async (frame, ctx): Promise<Omit<pb.ClientFrame, "callId">> => {
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
      },
      frameError,
      undefined,
      {
        // A bounded number of requests per stream in flight: the next is answered overloaded at once.
        max: h.clientFramesInFlightMax ?? 1024,
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
    );
}

/** An optional handler, or UNIMPLEMENTED when this server has none. */
function need<F>(handler: F | undefined, name: string): F {
  if (handler === undefined) throw new RpcError("UNIMPLEMENTED", `this server does not serve Client.${name}`);
  return handler;
}

function peerService(h: ServerHandlers): pb.PeerServer {
  return {
    requestVote: unary((req: pb.RequestVoteRequest, ctx) => servePeer.requestVote(h, req, ctx)),
    appendEntries: unary((req: pb.AppendEntriesRequest, ctx) => servePeer.appendEntries(h, req, ctx)),
    timeoutNow: unary((req: pb.TimeoutNowRequest, ctx) => servePeer.timeoutNow(h, req, ctx)),
    stream: peerStream(h),
  };
}

function clientService(h: ServerHandlers): pb.ClientServer {
  return {
    get: unary(async (req: pb.GetRequest, ctx) => {
      return codec.getReplyToProto(await h.client.get(codec.getRequestFromProto(req), ctx));
    }),
    set: unary(async (req: pb.SetRequest, ctx) => {
      return codec.setReplyToProto(await h.client.set(codec.setRequestFromProto(req), ctx));
    }),
    delete: unary(async (req: pb.DeleteRequest, ctx) => {
      const serve = need(h.client.delete, "Delete");
      return codec.deleteReplyToProto(await serve.call(h.client, codec.deleteRequestFromProto(req), ctx));
    }),
    cas: unary(async (req: pb.CasRequest, ctx) => {
      const serve = need(h.client.cas, "Cas");
      return codec.casReplyToProto(await serve.call(h.client, codec.casRequestFromProto(req), ctx));
    }),
    list: unary(async (req: pb.ListRequest, ctx) => {
      const serve = need(h.client.list, "List");
      return codec.listReplyToProto(await serve.call(h.client, codec.listRequestFromProto(req), ctx));
    }),
    watch: watchStream(h),
    stream: clientStream(h),
  };
}

/**
 * A server stream: writes the handler's replies one by one, waiting for the connection to drain whenever
 * gRPC's buffer is full, so the handler (not the transport) decides what a slow reader may cost.
 */
function watchStream(h: ServerHandlers): grpc.handleServerStreamingCall<pb.WatchRequest, pb.WatchReply> {
  return async (call) => {
    const abort = new AbortController();
    const stop = () => abort.abort(new RpcError("CANCELLED", "watch cancelled by the caller"));
    call.once("cancelled", stop);
    call.once("close", stop);
    const ctx: CallContext = {
      signal: abort.signal,
      deadlineMs: remainingMs(call.getDeadline()),
      peer: call.getPeer(),
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

function adminService(h: ServerHandlers): pb.AdminServer {
  return {
    status: unary(async (_req: pb.StatusRequest, ctx) => codec.statusToProto(await h.admin.status(ctx))),
    transferLeader: unary(async (req: pb.TransferLeaderRequest, ctx) => {
      return codec.transferLeaderReplyToProto(await h.admin.transferLeader(req.toId, ctx));
    }),
    dumpLog: unary(async (req: pb.DumpLogRequest, ctx) => {
      return codec.dumpLogReplyToProto(await h.admin.dumpLog(codec.dumpLogRequestFromProto(req), ctx));
    }),
    addNode: unary(async (req: pb.AddNodeRequest, ctx) => {
      if (!h.admin.addNode) throw new RpcError("UNIMPLEMENTED", "this node does not change membership");
      return codec.membershipReplyToProto(
        await h.admin.addNode({ id: req.id, address: req.address, learner: req.learner }, ctx),
      );
    }),
    removeNode: unary(async (req: pb.RemoveNodeRequest, ctx) => {
      if (!h.admin.removeNode) throw new RpcError("UNIMPLEMENTED", "this node does not change membership");
      return codec.membershipReplyToProto(await h.admin.removeNode(req.id, ctx));
    }),
  };
}

/**
 * Starts serving the three services on `address` ("host:port"; port 0 picks a free port) without TLS.
 * Rejects if the address cannot be bound.
 */
export async function startServer(address: string, handlers: ServerHandlers): Promise<RunningServer> {
  const server = new grpc.Server({
    "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
    "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
  });
  server.addService(pb.PeerService, peerService(handlers));
  server.addService(pb.ClientService, clientService(handlers));
  server.addService(pb.AdminService, adminService(handlers));
  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, port) => {
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
  let closing: Promise<void> | undefined;
  return {
    port,
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
