/**
 * Outgoing Raft RPCs: one grpc-js channel per peer, calls that never throw on transport failures.
 *
 * By default every request travels as a frame on one long-lived Peer `Stream` per peer (`call_mux.ts`: call
 * ids, per-call deadlines checked by one sweep timer, a silent stream reset) instead of a unary call each.
 * `streams: false` sends unary calls instead (kept for comparison and as a fallback).
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
import { CallMux } from "./call_mux.ts";
import * as codec from "./codec.ts";
import { toTransportError, TransportError } from "./errors.ts";
import { MAX_MESSAGE_BYTES } from "./server.ts";
import { type CertificateStore, channelCredentials } from "../security/tls.ts";

/** The messages that travel as Peer requests (the responses come back as their replies). */
export type PeerRequest = RequestVote | AppendEntries | TimeoutNow;

/** True for the messages `PeerClients.send` accepts. */
export function isPeerRequest(msg: Message): msg is PeerRequest {
  return msg.type === "RequestVote" || msg.type === "AppendEntries" || msg.type === "TimeoutNow";
}

/**
 * The checks both peer clients (gRPC and raw) make before sending `msg`: a TypeError for a reply handed to
 * `send` (`request`), a closed client, or a peer it does not know; otherwise the peer's record.
 */
export function peerToSend<P>(
  peers: ReadonlyMap<NodeId, P>,
  msg: Message,
  opts: { readonly closed: boolean; readonly client: string; readonly request: boolean },
): P {
  if (opts.request && !isPeerRequest(msg)) {
    throw new TypeError(`${msg.type} is a reply, not a request: it cannot be sent`);
  }
  if (opts.closed) throw new TypeError(`${opts.client} is closed`);
  const peer = peers.get(msg.to);
  if (peer === undefined) throw new TypeError(`unknown peer ${msg.to}`);
  return peer;
}

/** A peer channel that falls idle again and again (its peer is down) is asked to connect at most this often. */
export const WARM_INTERVAL_MS = 1000;

/** Channel options for talking to other nodes: fast reconnects, keepalive, no proxy, no transparent retries. */
export const PEER_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  // A restarted peer is found again within ~0.1 s: with a 1 s cap, a follower back from a restart waited up
  // to a second before its leader reconnected and began catching it up. A refused connect costs nothing.
  "grpc.initial_reconnect_backoff_ms": 20,
  "grpc.max_reconnect_backoff_ms": 100,
  "grpc.keepalive_time_ms": 10_000,
  "grpc.keepalive_timeout_ms": 5_000,
  "grpc.keepalive_permit_without_calls": 1,
  "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
  "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
  "grpc.enable_retries": 0,
  "grpc.enable_http_proxy": 0,
  // One connection per PeerClients channel, not shared with other channels of the process (tests run
  // several nodes in one process, and closing one must not disturb another).
  "grpc.use_local_subchannel_pool": 1,
};

export interface PeerClientsOptions {
  /** Sent in every request; a peer of another cluster refuses the call. */
  readonly clusterId: string;
  /** Peer id → "host:port". The local node may be included; it is simply never called. */
  readonly peers: ReadonlyMap<NodeId, string> | Readonly<Record<NodeId, string>>;
  /** Per-call deadline in ms unless `send` is given another. Default 1000. */
  readonly deadlineMs?: number;
  /**
   * Called on the first failure of each failure streak towards a peer (a streak ends with a successful
   * call): log `Error occurred while sending RPC to Node {id}.` here.
   */
  readonly onError?: (peerId: NodeId, err: TransportError) => void;
  /** Called on the first success after a failure streak, with the number of failures in the streak. */
  readonly onRecovered?: (peerId: NodeId, failures: number) => void;
  /**
   * One-way messages a peer sends back on this node's stream to it (its responses): decoded, checked for the
   * cluster id (another cluster's are dropped), and handed here.
   */
  readonly onMessage?: (msg: Message) => void;
  /** Extra or overriding grpc-js channel options. */
  readonly channelOptions?: grpc.ChannelOptions;
  /** Requests as frames on one Peer stream per peer (default true), or one unary call each (false). */
  readonly streams?: boolean;
  /** Mutual TLS with this node's certificate, expecting each peer's node certificate; plain text if absent. */
  readonly tls?: CertificateStore;
  /**
   * One-way messages (`post`) waiting in a peer stream's write buffer at most (default 1000): beyond it a
   * message is dropped (counted in `dropped`), so a frozen peer or a stalled connection holds no more.
   */
  readonly framesQueuedMax?: number;
  /** The channel to `peerId` connected (became READY), at start or again after losing its connection. */
  readonly onReady?: (peerId: NodeId) => void;
}

interface PeerState {
  readonly id: NodeId;
  readonly address: string;
  readonly client: pb.PeerClient;
  failures: number;
  lastError: TransportError | undefined;
  /** Frames on one Peer stream (when `streams` is on). */
  readonly mux: CallMux<pb.PeerFrame>;
  /** When the first message posted since the peer was last heard from left (undefined: none since). */
  unheardSinceMs: number | undefined;
  /** When its channel was last asked to connect (performance.now()), and the timer of a paced ask. */
  warmedAtMs: number;
  warmTimer: ReturnType<typeof setTimeout> | undefined;
}

/** The Peer service clients of one node, one channel per peer. */
export class PeerClients {
  readonly #clusterId: string;
  readonly #deadlineMs: number;
  readonly #onError: PeerClientsOptions["onError"];
  readonly #onRecovered: PeerClientsOptions["onRecovered"];
  readonly #peers = new Map<NodeId, PeerState>();
  readonly #streams: boolean;
  readonly #framesQueuedMax: number;
  #rpcCount = 0;
  #closed = false;
  readonly #channelOptions: grpc.ChannelOptions;
  readonly #onMessage: PeerClientsOptions["onMessage"];
  readonly #tls: CertificateStore | undefined;
  readonly #onReady: PeerClientsOptions["onReady"];
  /** One-way messages dropped because a peer's stream buffer was full (or the write failed). */
  dropped = 0;

  constructor(options: PeerClientsOptions) {
    this.#clusterId = options.clusterId;
    this.#deadlineMs = options.deadlineMs ?? 1000;
    this.#onError = options.onError;
    this.#onRecovered = options.onRecovered;
    this.#streams = options.streams ?? true;
    this.#framesQueuedMax = options.framesQueuedMax ?? 1000;
    const entries = options.peers instanceof Map
      ? [...options.peers.entries()]
      : Object.entries(options.peers).map(([id, address]): [NodeId, string] => [Number(id), address]);
    this.#channelOptions = { ...PEER_CHANNEL_OPTIONS, ...options.channelOptions };
    this.#onMessage = options.onMessage;
    this.#tls = options.tls;
    this.#onReady = options.onReady;
    for (const [id, address] of entries) this.#open(id, address);
  }

  /**
   * Keeps a connection open to every peer, talked to or not. Followers send nothing to each other until an
   * election, so without this the first PreVote of a failover paid for a TCP connect and an HTTP/2 handshake
   * (tens of ms under load) before the vote it carries could even start.
   *
   * Driven by the channel's state changes, not a polling timer (one wake-up a second in every idle node): an
   * idle channel is asked to connect at once, then watched until its state changes again (a connected channel
   * costs nothing); one that falls idle again within `WARM_INTERVAL_MS` (its peer is down) is asked again
   * when the interval is up.
   */
  #warm(peer: PeerState): void {
    if (this.#closed || peer.warmTimer !== undefined) return;
    const channel = peer.client.getChannel();
    let state = channel.getConnectivityState(false);
    if (state === grpc.connectivityState.SHUTDOWN) return;
    if (state === grpc.connectivityState.READY) this.#onReady?.(peer.id);
    if (state === grpc.connectivityState.IDLE) {
      const waitMs = peer.warmedAtMs + WARM_INTERVAL_MS - performance.now();
      if (waitMs > 0) {
        peer.warmTimer = setTimeout(() => {
          peer.warmTimer = undefined;
          this.#warm(peer);
        }, waitMs);
        Deno.unrefTimer(peer.warmTimer);
        return;
      }
      peer.warmedAtMs = performance.now();
      channel.getConnectivityState(true); // connects
      state = channel.getConnectivityState(false);
    }
    channel.watchConnectivityState(state, Infinity, () => this.#warm(peer));
  }

  /** Peer RPCs attempted since construction (successful or not). */
  get rpcCount(): number {
    return this.#rpcCount;
  }

  /** Consecutive failed calls to `peerId` (0 after a success). */
  failureStreak(peerId: NodeId): number {
    return this.#peers.get(peerId)?.failures ?? 0;
  }

  /** The most recent failure towards `peerId`, if any. */
  lastError(peerId: NodeId): TransportError | undefined {
    return this.#peers.get(peerId)?.lastError;
  }

  /**
   * Sends a request to `msg.to` and resolves with its response message; `undefined` when the call failed
   * (unreachable, deadline, refused: see `onError`, `lastError`) and always for TimeoutNow. Never rejects for
   * a transport failure; rejects with a TypeError for a programming error (a response message, an unknown
   * peer, or after `close()`).
   */
  send(msg: RequestVote, options?: SendOptions): Promise<RequestVoteResponse | undefined>;
  send(msg: AppendEntries, options?: SendOptions): Promise<AppendEntriesResponse | undefined>;
  send(msg: TimeoutNow, options?: SendOptions): Promise<undefined>;
  send(msg: Message, options?: SendOptions): Promise<Message | undefined>;
  send(msg: Message, options: SendOptions = {}): Promise<Message | undefined> {
    let peer;
    try {
      peer = peerToSend(this.#peers, msg, { closed: this.#closed, client: "PeerClients", request: true });
    } catch (e) {
      return Promise.reject(e);
    }
    const request = msg as PeerRequest; // peerToSend refused any other message
    this.#rpcCount++;
    const deadlineMs = options.deadlineMs ?? this.#deadlineMs;
    return new Promise<Message | undefined>((resolve) => {
      const finish = (out: Message | undefined, failure: TransportError | undefined) => {
        try {
          if (failure) this.#failed(msg.to, peer, failure);
          else this.#succeeded(msg.to, peer);
        } finally {
          resolve(failure ? undefined : out);
        }
      };
      if (this.#streams) this.#sendOnStream(peer, request, deadlineMs, finish);
      else this.#sendUnary(peer, request, deadlineMs, finish);
    });
  }

  /**
   * Sends `msg` (any of the five Raft messages) one way on the peer's stream: nothing comes back on this
   * call; a response is the peer's own one-way message, which its server hands to `deliver`. Best effort:
   * returns false when the message was dropped (stream buffer full, write failed; see `onError`). Throws a
   * TypeError for an unknown peer or after `close()`.
   */
  post(msg: Message): boolean {
    const peer = peerToSend(this.#peers, msg, {
      closed: this.#closed,
      client: "PeerClients",
      request: false,
    });
    if (isPeerRequest(msg)) this.#rpcCount++; // a response is not an RPC of its own
    // One-way messages get no answer on this stream, so a connection that silently swallows them (a
    // black-holed link, a half-open connection) is noticed by the peer going quiet: nothing heard from it
    // (see `heardFrom`) for the deadline while posting to it resets the stream, as a call's deadline would.
    const now = Date.now();
    if (peer.unheardSinceMs === undefined) peer.unheardSinceMs = now;
    else if (now - peer.unheardSinceMs > this.#deadlineMs) {
      const quietMs = now - peer.unheardSinceMs;
      peer.unheardSinceMs = now;
      peer.mux.reset(
        new TransportError(
          grpc.status.DEADLINE_EXCEEDED,
          `nothing heard from ${peer.address} for ${quietMs} ms while sending to it`,
          peer.address,
        ),
      );
    }
    const sent = peer.mux.post(codec.messageToPeerFrame(msg, this.#clusterId), this.#framesQueuedMax);
    if (!sent) {
      this.dropped++;
      return false;
    }
    if (
      peer.failures > 0 &&
      peer.client.getChannel().getConnectivityState(false) === grpc.connectivityState.READY
    ) {
      this.#succeeded(msg.to, peer);
    }
    return true;
  }

  /** The node heard from `peerId` (any message): its stream to that peer is not silently dead. */
  heardFrom(peerId: NodeId): void {
    const peer = this.#peers.get(peerId);
    if (peer !== undefined) peer.unheardSinceMs = undefined;
  }

  #sendOnStream(
    peer: PeerState,
    msg: PeerRequest,
    deadlineMs: number,
    finish: Finish,
  ): void {
    const frame: pb.PeerFrame = { callId: 0 };
    switch (msg.type) {
      case "RequestVote":
        frame.requestVote = codec.requestVoteToProto(msg, this.#clusterId);
        break;
      case "AppendEntries":
        frame.appendEntries = codec.appendEntriesToProto(msg, this.#clusterId);
        break;
      case "TimeoutNow":
        frame.timeoutNow = codec.timeoutNowToProto(msg, this.#clusterId);
        break;
    }
    peer.mux.call(frame, deadlineMs).then(
      (answer) => finishConverted(finish, peer.address, () => answerOf(msg, answer)),
      (err: unknown) => finish(undefined, toTransportError(err, peer.address)),
    );
  }

  #sendUnary(
    peer: PeerState,
    msg: PeerRequest,
    deadlineMs: number,
    finish: Finish,
  ): void {
    const callOptions: Partial<grpc.CallOptions> = { deadline: Date.now() + deadlineMs };
    const done = <T>(err: grpc.ServiceError | null, res: T, convert: (res: T) => Message | undefined) => {
      if (err) finish(undefined, toTransportError(err, peer.address));
      else finishConverted(finish, peer.address, () => convert(res));
    };
    const md = new grpc.Metadata();
    switch (msg.type) {
      case "RequestVote":
        peer.client.requestVote(
          codec.requestVoteToProto(msg, this.#clusterId),
          md,
          callOptions,
          (err, res) => done(err, res, codec.requestVoteResponseFromProto),
        );
        break;
      case "AppendEntries":
        peer.client.appendEntries(
          codec.appendEntriesToProto(msg, this.#clusterId),
          md,
          callOptions,
          (err, res) => done(err, res, codec.appendEntriesResponseFromProto),
        );
        break;
      case "TimeoutNow":
        peer.client.timeoutNow(
          codec.timeoutNowToProto(msg, this.#clusterId),
          md,
          callOptions,
          (err, res) => done(err, res, () => undefined),
        );
        break;
    }
  }

  #open(id: NodeId, address: string): void {
    const channelOptions = this.#channelOptions;
    const secure = this.#tls && channelCredentials(this.#tls, address, { role: "node", nodeId: id });
    const client = secure
      ? new pb.PeerClient(address, secure.credentials, { ...channelOptions, ...secure.options })
      : new pb.PeerClient(address, grpc.credentials.createInsecure(), channelOptions);
    const mux = new CallMux<pb.PeerFrame>(
      address,
      () => client.stream(new grpc.Metadata()),
      client.getChannel() as grpc.Channel,
    );
    const peer: PeerState = {
      id,
      address,
      client,
      failures: 0,
      lastError: undefined,
      mux,
      unheardSinceMs: undefined,
      warmedAtMs: -Infinity,
      warmTimer: undefined,
    };
    mux.onStreamFailure = (failure) => this.#failed(id, peer, failure);
    const onMessage = this.#onMessage;
    if (onMessage !== undefined) {
      mux.onMessage = (frame) => {
        const { msg, clusterId } = codec.messageFromPeerFrame(frame);
        if (clusterId !== this.#clusterId) return;
        peer.unheardSinceMs = undefined;
        onMessage(msg);
      };
    }
    this.#peers.set(id, peer);
    this.#warm(peer);
  }

  /**
   * Membership changes (issue 11): talk to exactly `peers` (id → address) from now on. New peers get a
   * channel, peers whose address changed get a new one, peers no longer listed are closed.
   */
  setPeers(peers: ReadonlyMap<NodeId, string>): void {
    if (this.#closed) return;
    for (const [id, state] of [...this.#peers]) {
      if (peers.get(id) === state.address) continue;
      clearTimeout(state.warmTimer);
      state.mux.close();
      state.client.close();
      this.#peers.delete(id);
    }
    for (const [id, address] of peers) if (!this.#peers.has(id)) this.#open(id, address);
  }

  /** True if `id` is a peer this node can send to. */
  has(id: NodeId): boolean {
    return this.#peers.has(id);
  }

  /** True while the channel to `id` is connected (READY). */
  ready(id: NodeId): boolean {
    const peer = this.#peers.get(id);
    return peer !== undefined &&
      peer.client.getChannel().getConnectivityState(false) === grpc.connectivityState.READY;
  }

  /** Closes every channel; calls in flight fail with CANCELLED (and resolve `undefined`). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const peer of this.#peers.values()) {
      clearTimeout(peer.warmTimer);
      peer.mux.close();
      peer.client.close();
    }
  }

  #failed(peerId: NodeId, peer: PeerState, err: TransportError): void {
    peer.failures++;
    peer.lastError = err;
    if (peer.failures === 1 && !this.#closed) this.#onError?.(peerId, err);
  }

  #succeeded(peerId: NodeId, peer: PeerState): void {
    const failures = peer.failures;
    peer.failures = 0;
    if (failures > 0) this.#onRecovered?.(peerId, failures);
  }
}

type Finish = (out: Message | undefined, failure: TransportError | undefined) => void;

/** Finishes a call with the message `convert` makes of its reply, or with INTERNAL if the reply is malformed. */
function finishConverted(finish: Finish, address: string, convert: () => Message | undefined): void {
  let out: Message | undefined;
  try {
    out = convert();
  } catch (e) {
    finish(
      undefined,
      new TransportError(grpc.status.INTERNAL, `bad reply: ${String(e)}`, address, { cause: e }),
    );
    return;
  }
  finish(out, undefined);
}

/** The response message in an answer frame to `msg`; throws if the frame answers something else. */
function answerOf(msg: PeerRequest, frame: pb.PeerFrame): Message | undefined {
  switch (msg.type) {
    case "RequestVote":
      if (!frame.requestVoteResponse) throw new Error("expected a RequestVoteResponse frame");
      return codec.requestVoteResponseFromProto(frame.requestVoteResponse);
    case "AppendEntries":
      if (!frame.appendEntriesResponse) throw new Error("expected an AppendEntriesResponse frame");
      return codec.appendEntriesResponseFromProto(frame.appendEntriesResponse);
    case "TimeoutNow":
      if (!frame.timeoutNowResponse) throw new Error("expected a TimeoutNowResponse frame");
      return undefined;
  }
}

export interface SendOptions {
  /** This call's deadline in ms (default: the `PeerClients` deadline). */
  readonly deadlineMs?: number;
}
