/**
 * A thin typed client for one node's Client and Admin services (used by the client library and the admin
 * CLI). Replies are plain objects; a call that produced no reply rejects with a `TransportError` carrying the
 * gRPC status code (UNAVAILABLE: node unreachable; DEADLINE_EXCEEDED: no answer in time; …).
 *
 * GET and SET travel as frames on one long-lived Client `Stream` (call_mux.ts) unless `streams: false` asks
 * for a unary call each; Admin calls are unary (rare, and the operator tools open one stub per command).
 *
 * @module
 */

import { Buffer } from "node:buffer";
import * as grpc from "@grpc/grpc-js";
import * as pb from "../gen/raftkv.ts";
import type { NodeId } from "../raft/types.ts";
import type {
  CasReply,
  CasRequest,
  DeleteReply,
  DumpLogReply,
  GetReply,
  GetRequest,
  ListReply,
  ListRequest,
  MembershipReply,
  NodeStatus,
  SetReply,
  SnapshotReply,
  TransferLeaderReply,
  WatchReply,
  WatchRequest,
} from "./api.ts";
import { CallMux } from "./call_mux.ts";
import * as codec from "./codec.ts";
import { toTransportError, TransportError } from "./errors.ts";
import { CLIENT_FRAME_BATCHING, FRAME_BATCH_METADATA, MAX_MESSAGE_BYTES } from "./server.ts";
import { type CertificateStore, channelCredentials } from "../security/tls.ts";

/** Channel options for clients: quick reconnects, no proxy, no transparent retries. */
export const STUB_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  "grpc.initial_reconnect_backoff_ms": 100,
  "grpc.max_reconnect_backoff_ms": 1000,
  "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
  "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
  "grpc.enable_retries": 0,
  "grpc.enable_http_proxy": 0,
  "grpc.use_local_subchannel_pool": 1,
};

type Callback<T> = (err: grpc.ServiceError | null, res: T) => void;

/** Key and value bytes beyond which a SET or CAS cannot fit in one message (room left for the rest). */
const MAX_PAYLOAD_BYTES = MAX_MESSAGE_BYTES - 64 * 1024;
/** Marks the refusal below in a TransportError's details (`isRequestTooLarge`). */
const NOT_SENT = "message limit: not sent";

/**
 * A refusal of a SET or CAS whose texts cannot fit in one message, before anything is sent: written on the
 * shared stream, grpc-js would fail the stream and every request in flight on it. Cheap for ordinary sizes.
 */
function tooLarge(op: string, address: string, ...texts: string[]): TransportError | undefined {
  let chars = 0;
  for (const t of texts) chars += t.length;
  if (chars * 3 <= MAX_PAYLOAD_BYTES) return undefined; // at most 3 UTF-8 bytes per UTF-16 unit
  let bytes = 0;
  for (const t of texts) bytes += Buffer.byteLength(t, "utf8");
  if (bytes <= MAX_PAYLOAD_BYTES) return undefined;
  return new TransportError(
    grpc.status.RESOURCE_EXHAUSTED,
    `${op} of ${bytes} bytes (key and value) is over the ${MAX_MESSAGE_BYTES}-byte ${NOT_SENT}, nothing ` +
      `applied (a value may be at most the cluster's maxValueBytes)`,
    address,
  );
}

/** True for the refusal of a request too large to send (nothing was sent: retrying cannot help). */
export function isRequestTooLarge(e: TransportError): boolean {
  return e.code === grpc.status.RESOURCE_EXHAUSTED && e.details.includes(NOT_SENT);
}

export interface ClusterStubOptions {
  /** GET and SET as frames on one Client stream (default true) or as one unary call each (false). */
  readonly streams?: boolean;
  /** Mutual TLS with this certificate (client, admin or node), expecting a node certificate; else plain text. */
  readonly tls?: CertificateStore;
}

/** Client and Admin calls to the node at one address, over one channel. */
export class ClusterStub {
  /** "host:port" of the node. */
  readonly address: string;
  readonly #channel: grpc.Channel;
  readonly #client: pb.ClientClient;
  readonly #admin: pb.AdminClient;
  /** GET/SET frames, or undefined for unary calls. */
  readonly #mux: CallMux<pb.ClientFrame> | undefined;
  #closed = false;

  constructor(address: string, channelOptions: grpc.ChannelOptions = {}, options: ClusterStubOptions = {}) {
    this.address = address;
    const secure = options.tls && channelCredentials(options.tls, address);
    const creds = secure ? secure.credentials : grpc.credentials.createInsecure();
    const channel = { ...STUB_CHANNEL_OPTIONS, ...channelOptions, ...secure?.options };
    this.#channel = new grpc.Channel(address, creds, channel);
    this.#client = new pb.ClientClient(address, creds, { channelOverride: this.#channel });
    this.#admin = new pb.AdminClient(address, creds, { channelOverride: this.#channel });
    if (options.streams ?? true) {
      this.#mux = new CallMux<pb.ClientFrame>(
        address,
        () => {
          const md = new grpc.Metadata();
          md.set(FRAME_BATCH_METADATA, "1"); // this stub reads batch frames (ClientFrameBatch)
          return this.#client.stream(md);
        },
        this.#channel,
        CLIENT_FRAME_BATCHING,
      );
    }
  }

  get(key: string, deadlineMs: number, mode: Omit<GetRequest, "key"> = {}): Promise<GetReply> {
    const req = codec.getRequestToProto({ key, ...mode });
    if (this.#mux) {
      return this.#frame({ callId: 0, get: req }, deadlineMs, (f) => {
        if (!f.getReply) throw new Error("expected a GET reply frame");
        return codec.getReplyFromProto(f.getReply);
      });
    }
    return this.#call<pb.GetReply, GetReply>(
      deadlineMs,
      (md, opts, cb) => this.#client.get(req, md, opts, cb),
      codec.getReplyFromProto,
    );
  }

  set(key: string, value: string, clientId: string, seq: number, deadlineMs: number): Promise<SetReply> {
    const refused = tooLarge("SET", this.address, key, value);
    if (refused) return Promise.reject(refused);
    if (this.#mux) {
      const set = codec.setRequestToProto({ key, value, clientId, seq });
      return this.#frame({ callId: 0, set }, deadlineMs, (f) => {
        if (!f.setReply) throw new Error("expected a SET reply frame");
        return codec.setReplyFromProto(f.setReply);
      });
    }
    return this.#call<pb.SetReply, SetReply>(
      deadlineMs,
      (md, opts, cb) =>
        this.#client.set(codec.setRequestToProto({ key, value, clientId, seq }), md, opts, cb),
      codec.setReplyFromProto,
    );
  }

  delete(key: string, clientId: string, seq: number, deadlineMs: number): Promise<DeleteReply> {
    const req = codec.deleteRequestToProto({ key, clientId, seq });
    if (this.#mux) {
      return this.#frame({ callId: 0, delete: req }, deadlineMs, (f) => {
        if (!f.deleteReply) throw new Error("expected a DELETE reply frame");
        return codec.deleteReplyFromProto(f.deleteReply);
      });
    }
    return this.#call<pb.DeleteReply, DeleteReply>(
      deadlineMs,
      (md, opts, cb) => this.#client.delete(req, md, opts, cb),
      codec.deleteReplyFromProto,
    );
  }

  cas(request: CasRequest, deadlineMs: number): Promise<CasReply> {
    const expected = "value" in request.expect ? request.expect.value : "";
    const refused = tooLarge("CAS", this.address, request.key, request.value, expected);
    if (refused) return Promise.reject(refused);
    const req = codec.casRequestToProto(request);
    if (this.#mux) {
      return this.#frame({ callId: 0, cas: req }, deadlineMs, (f) => {
        if (!f.casReply) throw new Error("expected a CAS reply frame");
        return codec.casReplyFromProto(f.casReply);
      });
    }
    return this.#call<pb.CasReply, CasReply>(
      deadlineMs,
      (md, opts, cb) => this.#client.cas(req, md, opts, cb),
      codec.casReplyFromProto,
    );
  }

  list(request: ListRequest, deadlineMs: number): Promise<ListReply> {
    const req = codec.listRequestToProto(request);
    if (this.#mux) {
      return this.#frame({ callId: 0, list: req }, deadlineMs, (f) => {
        if (!f.listReply) throw new Error("expected a LIST reply frame");
        return codec.listReplyFromProto(f.listReply);
      });
    }
    return this.#call<pb.ListReply, ListReply>(
      deadlineMs,
      (md, opts, cb) => this.#client.list(req, md, opts, cb),
      codec.listReplyFromProto,
    );
  }

  /**
   * Opens a watch stream: the replies in order. Iteration ends when the node ends the stream; a transport
   * failure throws a `TransportError`; `signal` cancels the call. Replies are read as the caller pulls them
   * (gRPC's flow control pushes back on the node when the caller is slow).
   */
  async *watch(request: WatchRequest, signal?: AbortSignal): AsyncGenerator<WatchReply> {
    if (this.#closed) throw new TransportError(grpc.status.CANCELLED, "the stub is closed", this.address);
    const call = this.#client.watch(codec.watchRequestToProto(request), new grpc.Metadata());
    const cancel = () => call.cancel();
    signal?.addEventListener("abort", cancel, { once: true });
    try {
      for await (const reply of call as AsyncIterable<pb.WatchReply>) {
        let converted: WatchReply;
        try {
          converted = codec.watchReplyFromProto(reply);
        } catch (e) {
          throw new TransportError(grpc.status.INTERNAL, `bad reply: ${String(e)}`, this.address, {
            cause: e,
          });
        }
        yield converted;
      }
    } catch (e) {
      if (e instanceof TransportError) throw e;
      if (signal?.aborted) return;
      if (e && typeof e === "object" && "code" in e) {
        throw toTransportError(e as grpc.ServiceError, this.address);
      }
      throw e;
    } finally {
      signal?.removeEventListener("abort", cancel);
      call.cancel();
    }
  }

  status(deadlineMs: number): Promise<NodeStatus> {
    return this.#call<pb.StatusReply, NodeStatus>(
      deadlineMs,
      (md, opts, cb) => this.#admin.status({}, md, opts, cb),
      codec.statusFromProto,
    );
  }

  /** `toId` 0: let the leader pick its best follower. */
  transferLeader(toId: NodeId, deadlineMs: number): Promise<TransferLeaderReply> {
    return this.#call<pb.TransferLeaderReply, TransferLeaderReply>(
      deadlineMs,
      (md, opts, cb) => this.#admin.transferLeader({ toId }, md, opts, cb),
      codec.transferLeaderReplyFromProto,
    );
  }

  /** Takes a snapshot on this node now; resolves once it is durable. */
  snapshot(deadlineMs: number): Promise<SnapshotReply> {
    return this.#call<pb.SnapshotReply, SnapshotReply>(
      deadlineMs,
      (md, opts, cb) => this.#admin.snapshot({}, md, opts, cb),
      (r) => ({ ok: r.ok, index: r.index, term: r.term, error: r.error }),
    );
  }

  /** Admin.AddNode (issue 11): served by the leader. */
  addNode(id: NodeId, address: string, learner: boolean, deadlineMs: number): Promise<MembershipReply> {
    return this.#call<pb.MembershipReply, MembershipReply>(
      deadlineMs,
      (md, opts, cb) => this.#admin.addNode({ id, address, learner }, md, opts, cb),
      codec.membershipReplyFromProto,
    );
  }

  /** Admin.RemoveNode (issue 11): served by the leader. */
  removeNode(id: NodeId, deadlineMs: number): Promise<MembershipReply> {
    return this.#call<pb.MembershipReply, MembershipReply>(
      deadlineMs,
      (md, opts, cb) => this.#admin.removeNode({ id }, md, opts, cb),
      codec.membershipReplyFromProto,
    );
  }

  /** Entries from index `fromIndex` on, at most `maxEntries` (0: the node's default limit). */
  dumpLog(fromIndex: number, maxEntries: number, deadlineMs: number): Promise<DumpLogReply> {
    return this.#call<pb.DumpLogReply, DumpLogReply>(
      deadlineMs,
      (md, opts, cb) =>
        this.#admin.dumpLog(codec.dumpLogRequestToProto({ fromIndex, maxEntries }), md, opts, cb),
      codec.dumpLogReplyFromProto,
    );
  }

  /** Closes the channel; calls in flight fail with CANCELLED. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#mux?.close();
    this.#channel.close();
  }

  #frame<T>(frame: pb.ClientFrame, deadlineMs: number, convert: (answer: pb.ClientFrame) => T): Promise<T> {
    if (this.#closed) {
      return Promise.reject(new TransportError(grpc.status.CANCELLED, "the stub is closed", this.address));
    }
    return this.#mux!.call(frame, deadlineMs).then((answer) => {
      try {
        return convert(answer);
      } catch (e) {
        throw new TransportError(grpc.status.INTERNAL, `bad reply: ${String(e)}`, this.address, { cause: e });
      }
    });
  }

  #call<P, T>(
    deadlineMs: number,
    start: (md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: Callback<P>) => void,
    convert: (reply: P) => T,
  ): Promise<T> {
    if (this.#closed) {
      return Promise.reject(new TransportError(grpc.status.CANCELLED, "the stub is closed", this.address));
    }
    return new Promise<T>((resolve, reject) => {
      start(new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err, res) => {
        if (err) return reject(toTransportError(err, this.address));
        try {
          resolve(convert(res));
        } catch (e) {
          reject(
            new TransportError(grpc.status.INTERNAL, `bad reply: ${String(e)}`, this.address, { cause: e }),
          );
        }
      });
    });
  }
}
