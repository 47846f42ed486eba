/**
 * The dialling side of the raw peer transport: one long-lived TCP (or mutual TLS) connection per peer,
 * carrying the same PeerFrames and with the same surface and semantics as `PeerClients` (peer_client.ts).
 *
 * - `post`: a one-way frame (call id 0); dropped (false, counted in `dropped`) when `framesQueuedMax` frames
 *   wait in the connection's write buffer, or while no connection is up (reconnecting).
 * - `send`: a request frame with a call id (from 1, per connection); its answer frame carries it back. Deadlines
 *   are per call and checked by one sweep timer that runs only while calls wait; a connection on which a call
 *   expired with nothing heard since it was sent is reset.
 * - The answers the peer sends back on the connection as one-way frames (its Raft responses) go to `onMessage`
 *   after the cluster id check.
 * - A connection that was up for a while and ended is dialled again at once; a failed dial is retried after
 *   20 ms, doubling up to 100 ms while it keeps failing.
 * - `onError` on the first failure of a streak, `onRecovered` on the first success after it.
 *
 * @module
 */

import net from "node:net";
import tls from "node:tls";
import { status } from "@grpc/grpc-js";
import * as pb from "../../gen/raftkv.ts";
import type {
  AppendEntries,
  AppendEntriesResponse,
  Message,
  NodeId,
  RequestVote,
  RequestVoteResponse,
  TimeoutNow,
} from "../../raft/types.ts";
import * as codec from "../codec.ts";
import { TransportError } from "../errors.ts";
import {
  isPeerRequest,
  type PeerClientsOptions,
  type PeerRequest,
  peerToSend,
  type SendOptions,
} from "../peer_client.ts";
import { MAX_MESSAGE_BYTES } from "../server.ts";
import { type CertificateStore, serverIdentityCheck, TLS_SERVER_NAME } from "../../security/tls.ts";
import {
  decodeFrame,
  encodeFrame,
  encodeHello,
  FrameReader,
  parseReply,
  RawFrameError,
  Status,
} from "./frames.ts";
import { rawPeerAddress } from "./address.ts";

/** Reconnect backoff: the first retry after this, doubling while the peer stays unreachable… */
export const RECONNECT_BACKOFF_MIN_MS = 20;
/** …up to this (as the gRPC peer channels: a restarted peer is found again within ~0.1 s). */
export const RECONNECT_BACKOFF_MAX_MS = 100;
/** How often waiting calls are checked for their deadline (as call_mux.ts). */
const SWEEP_INTERVAL_MS = 25;
/** TCP keepalive probes start after this much silence (as the gRPC channels' keepalive time). */
const KEEPALIVE_MS = 10_000;

export interface RawPeerClientsOptions extends Omit<PeerClientsOptions, "channelOptions" | "streams"> {
  /** Largest frame sent or received (default MAX_MESSAGE_BYTES, as gRPC's message limit). */
  readonly maxFrameBytes?: number;
  /** A connection must be accepted (TCP, TLS, hello and reply) within this (default 10 s). */
  readonly handshakeTimeoutMs?: number;
  /**
   * `peers` (and `setPeers`) name the nodes' gRPC addresses; each is dialled at its port plus this
   * (cluster.json `rawPeerPortOffset`, see address.ts). Default 0: the addresses are the raw ports.
   */
  readonly portOffset?: number;
  /**
   * A dial failed before the listener accepted it in a way that says the address may serve no raw peer
   * transport: "refused" (no TCP connection: ECONNREFUSED, nothing listens there or the peer is down; the port
   * unreachable; or no TCP connection within `handshakeTimeoutMs`, a firewall dropping it) or "notRaw"
   * (something answered that is not a raw peer listener, e.g. a gRPC port's HTTP/2, or refused our hello's
   * version).
   * `PeerLinks` (../peer_links.ts) falls back to gRPC on it.
   */
  readonly onDialRefused?: (peerId: NodeId, err: TransportError, kind: DialRefusal) => void;
  /** A connection to `peerId` was accepted (its listener replied to the hello). */
  readonly onAccepted?: (peerId: NodeId) => void;
}

/** How a raw dial was refused (see `RawPeerClientsOptions.onDialRefused`). */
export type DialRefusal = "refused" | "notRaw";

interface PendingCall {
  readonly sentAtMs: number;
  readonly expiresAtMs: number;
  readonly resolve: (frame: pb.PeerFrame) => void;
  readonly reject: (err: TransportError) => void;
}

/** One connection to a peer, from dialling to closing. */
interface Conn {
  readonly socket: net.Socket;
  /** Until the listener's reply arrived: its bytes so far. */
  reply: Uint8Array | undefined;
  readonly reader: FrameReader;
  readonly pending: Map<number, PendingCall>;
  nextCallId: number;
  /** Frames handed to the socket whose write has not completed yet. */
  unflushed: number;
  readonly openedMs: number;
  lastHeardMs: number;
  accepted: boolean;
  /** TCP connected (a dial failing before that never reached a listener: refused, unreachable, dropped). */
  tcpConnected: boolean;
  /** When the listener accepted it (its reply arrived). */
  acceptedMs: number;
  closed: boolean;
  handshakeTimer: ReturnType<typeof setTimeout> | undefined;
}

interface RawPeer {
  readonly id: NodeId;
  /** The address `peers` named (the node's gRPC address when `portOffset` is set). */
  readonly given: string;
  /** The raw peer address dialled. */
  readonly address: string;
  readonly host: string;
  readonly port: number;
  failures: number;
  lastError: TransportError | undefined;
  conn: Conn | undefined;
  backoffMs: number;
  retryTimer: ReturnType<typeof setTimeout> | undefined;
  /** When the first message posted since the peer was last heard from left (undefined: none since). */
  unheardSinceMs: number | undefined;
  removed: boolean;
  /** Failed dials are retried after this rather than the backoff (`retryEvery`); undefined: the backoff. */
  retryEveryMs: number | undefined;
}

/** The raw-transport counterpart of `PeerClients` (same methods, same semantics). */
export class RawPeerClients {
  readonly #clusterId: string;
  readonly #deadlineMs: number;
  readonly #onError: PeerClientsOptions["onError"];
  readonly #onRecovered: PeerClientsOptions["onRecovered"];
  readonly #onMessage: PeerClientsOptions["onMessage"];
  readonly #tls: CertificateStore | undefined;
  readonly #framesQueuedMax: number;
  readonly #maxFrameBytes: number;
  readonly #handshakeTimeoutMs: number;
  readonly #portOffset: number;
  readonly #onDialRefused: RawPeerClientsOptions["onDialRefused"];
  readonly #onAccepted: RawPeerClientsOptions["onAccepted"];
  readonly #peers = new Map<NodeId, RawPeer>();
  /** Peers with calls waiting for their answer (swept by `#sweepTimer`). */
  readonly #waiting = new Set<RawPeer>();
  #sweepTimer: ReturnType<typeof setInterval> | undefined;
  #rpcCount = 0;
  #closed = false;
  /** One-way messages dropped because a peer's write buffer was full or no connection was up. */
  dropped = 0;

  constructor(options: RawPeerClientsOptions) {
    this.#clusterId = options.clusterId;
    this.#deadlineMs = options.deadlineMs ?? 1000;
    this.#onError = options.onError;
    this.#onRecovered = options.onRecovered;
    this.#onMessage = options.onMessage;
    this.#tls = options.tls;
    this.#framesQueuedMax = options.framesQueuedMax ?? 1000;
    this.#maxFrameBytes = options.maxFrameBytes ?? MAX_MESSAGE_BYTES;
    this.#handshakeTimeoutMs = options.handshakeTimeoutMs ?? 10_000;
    this.#portOffset = options.portOffset ?? 0;
    this.#onDialRefused = options.onDialRefused;
    this.#onAccepted = options.onAccepted;
    const entries = options.peers instanceof Map
      ? [...options.peers.entries()]
      : Object.entries(options.peers).map(([id, address]): [NodeId, string] => [Number(id), address]);
    for (const [id, address] of entries) this.#add(id, address);
  }

  /** Peer RPCs attempted since construction (successful or not). */
  get rpcCount(): number {
    return this.#rpcCount;
  }

  /** Consecutive failures towards `peerId` (0 after a success). */
  failureStreak(peerId: NodeId): number {
    return this.#peers.get(peerId)?.failures ?? 0;
  }

  /** The most recent failure towards `peerId`, if any. */
  lastError(peerId: NodeId): TransportError | undefined {
    return this.#peers.get(peerId)?.lastError;
  }

  /** True if `id` is a peer this node can send to. */
  has(id: NodeId): boolean {
    return this.#peers.has(id);
  }

  /** The raw address `id` is dialled at (undefined for an unknown peer). */
  rawAddress(id: NodeId): string | undefined {
    return this.#peers.get(id)?.address;
  }

  /**
   * Failed dials to `id` are retried every `ms` from now on instead of after the 20-100 ms backoff (a peer that
   * answers on gRPC but serves no raw port: probed now and then, not ten times a second); undefined restores
   * the backoff. A pending retry is rescheduled; a connection that is up is left alone.
   */
  retryEvery(id: NodeId, ms: number | undefined): void {
    const peer = this.#peers.get(id);
    if (peer === undefined || peer.retryEveryMs === ms) return;
    peer.retryEveryMs = ms;
    if (peer.retryTimer === undefined) return;
    clearTimeout(peer.retryTimer);
    peer.retryTimer = undefined;
    this.#scheduleRetry(peer, ms ?? peer.backoffMs);
  }

  /** True while a connection to `id` is up and accepted (tests, status). */
  connected(id: NodeId): boolean {
    return this.#peers.get(id)?.conn?.accepted === true;
  }

  /**
   * Sends a request and resolves with its response message; `undefined` when the call failed (see `onError`,
   * `lastError`) and always for TimeoutNow. Never rejects for a transport failure; rejects with a TypeError for
   * a programming error (a response message, an unknown peer, or after `close()`).
   */
  send(msg: RequestVote, options?: SendOptions): Promise<RequestVoteResponse | undefined>;
  send(msg: AppendEntries, options?: SendOptions): Promise<AppendEntriesResponse | undefined>;
  send(msg: TimeoutNow, options?: SendOptions): Promise<undefined>;
  send(msg: Message, options?: SendOptions): Promise<Message | undefined>;
  send(msg: Message, options: SendOptions = {}): Promise<Message | undefined> {
    let peer;
    try {
      peer = peerToSend(this.#peers, msg, { closed: this.#closed, client: "RawPeerClients", request: true });
    } catch (e) {
      return Promise.reject(e);
    }
    const request = msg as PeerRequest; // peerToSend refused any other message
    this.#rpcCount++;
    const deadlineMs = options.deadlineMs ?? this.#deadlineMs;
    return this.#call(peer, requestFrame(request, this.#clusterId), deadlineMs).then(
      (answer) => {
        let out: Message | undefined;
        try {
          out = answerOf(request, answer);
        } catch (e) {
          this.#failed(peer, new TransportError(status.INTERNAL, `bad reply: ${String(e)}`, peer.address));
          return undefined;
        }
        this.#succeeded(peer);
        return out;
      },
      (err: TransportError) => {
        this.#failed(peer, err);
        return undefined;
      },
    );
  }

  /**
   * Sends `msg` one way (call id 0): a response comes back as the peer's own one-way message (`onMessage`).
   * Best effort: false when dropped (write buffer full, no connection up). Throws a TypeError for an unknown
   * peer or after `close()`.
   */
  post(msg: Message): boolean {
    const peer = peerToSend(this.#peers, msg, {
      closed: this.#closed,
      client: "RawPeerClients",
      request: false,
    });
    if (isPeerRequest(msg)) this.#rpcCount++;
    // As PeerClients: a connection on which nothing comes back for the deadline while we post to it is reset
    // (a black-holed link or a half-open connection reports no error of its own). Only an accepted one: a
    // connection still in its TCP/TLS handshake is bounded by the handshake timeout (resetting it would start
    // the handshake over, and under load a TLS handshake can take longer than the deadline: it would never
    // finish), and its acceptance counts as hearing from the peer.
    const now = Date.now();
    if (peer.unheardSinceMs === undefined || peer.conn?.accepted !== true) peer.unheardSinceMs ??= now;
    else if (now - peer.unheardSinceMs > this.#deadlineMs) {
      const quietMs = now - peer.unheardSinceMs;
      peer.unheardSinceMs = now;
      if (peer.conn !== undefined) {
        this.#drop(
          peer,
          peer.conn,
          new TransportError(
            status.DEADLINE_EXCEEDED,
            `nothing heard from ${peer.address} for ${quietMs} ms while sending to it`,
            peer.address,
          ),
        );
      }
    }
    const conn = peer.conn ?? this.#dial(peer);
    if (conn === undefined || conn.unflushed >= this.#framesQueuedMax) {
      this.dropped++;
      return false;
    }
    if (!this.#write(peer, conn, codec.messageToPeerFrame(msg, this.#clusterId))) {
      this.dropped++;
      return false;
    }
    if (peer.failures > 0 && conn.accepted) this.#succeeded(peer);
    return true;
  }

  /** The node heard from `peerId` (any message): its connection to that peer is not silently dead. */
  heardFrom(peerId: NodeId): void {
    const peer = this.#peers.get(peerId);
    if (peer !== undefined) peer.unheardSinceMs = undefined;
  }

  /**
   * Membership changes: talk to exactly `peers` (id → address) from now on. New peers are dialled, peers whose
   * address changed are dialled again, peers no longer listed are closed.
   */
  setPeers(peers: ReadonlyMap<NodeId, string>): void {
    if (this.#closed) return;
    for (const [id, peer] of [...this.#peers]) {
      if (peers.get(id) === peer.given) continue;
      this.#remove(peer);
    }
    for (const [id, address] of peers) if (!this.#peers.has(id)) this.#add(id, address);
  }

  /** Closes every connection; calls in flight fail with CANCELLED (and resolve `undefined`). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const peer of this.#peers.values()) this.#remove(peer);
    if (this.#sweepTimer !== undefined) clearInterval(this.#sweepTimer);
    this.#sweepTimer = undefined;
  }

  #add(id: NodeId, given: string): void {
    const address = this.#portOffset === 0 ? given : rawPeerAddress(given, this.#portOffset);
    const m = /^(.*):(\d+)$/.exec(address);
    if (m === null) throw new TypeError(`peer ${id}'s raw address "${address}" is not host:port`);
    const peer: RawPeer = {
      id,
      given,
      address,
      host: m[1].replace(/^\[(.*)\]$/, "$1"),
      port: Number(m[2]),
      failures: 0,
      lastError: undefined,
      conn: undefined,
      backoffMs: RECONNECT_BACKOFF_MIN_MS,
      retryTimer: undefined,
      unheardSinceMs: undefined,
      removed: false,
      retryEveryMs: undefined,
    };
    this.#peers.set(id, peer);
    // Connected ahead of need (as PeerClients' warm-up): the first PreVote of a failover must not pay for a
    // TCP and TLS handshake.
    this.#dial(peer);
  }

  #remove(peer: RawPeer): void {
    peer.removed = true;
    if (peer.retryTimer !== undefined) clearTimeout(peer.retryTimer);
    peer.retryTimer = undefined;
    if (peer.conn !== undefined) {
      this.#drop(peer, peer.conn, new TransportError(status.CANCELLED, "closed", peer.address));
    }
    if (this.#peers.get(peer.id) === peer) this.#peers.delete(peer.id);
  }

  /** Dials `peer` now unless a retry is scheduled (then undefined: nothing is up to write to). */
  #dial(peer: RawPeer): Conn | undefined {
    if (this.#closed || peer.removed || peer.retryTimer !== undefined) return undefined;
    const store = this.#tls;
    const socket: net.Socket = store === undefined
      ? net.connect({ host: peer.host, port: peer.port })
      : tls.connect({
        host: peer.host,
        port: peer.port,
        ca: store.material.ca,
        cert: store.material.cert,
        key: store.material.key,
        servername: TLS_SERVER_NAME, // Deno refuses an IP address as server name; the host is checked below
        checkServerIdentity: serverIdentityCheck(peer.address, { role: "node", nodeId: peer.id }),
        rejectUnauthorized: true,
      });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, KEEPALIVE_MS);
    const now = Date.now();
    const conn: Conn = {
      socket,
      reply: new Uint8Array(0),
      reader: new FrameReader(this.#maxFrameBytes),
      pending: new Map(),
      nextCallId: 1,
      unflushed: 0,
      openedMs: now,
      lastHeardMs: now,
      accepted: false,
      tcpConnected: false,
      acceptedMs: 0,
      closed: false,
      handshakeTimer: undefined,
    };
    peer.conn = conn;
    conn.handshakeTimer = setTimeout(() => {
      this.#drop(
        peer,
        conn,
        new TransportError(
          status.UNAVAILABLE,
          `no raw peer handshake with ${peer.address} within ${this.#handshakeTimeoutMs} ms` +
            (conn.tcpConnected ? "" : " (no TCP connection: a firewall dropping the port?)"),
          peer.address,
        ),
        conn.tcpConnected ? undefined : "refused",
      );
    }, this.#handshakeTimeoutMs);
    socket.on("connect", () => (conn.tcpConnected = true));
    // The hello goes out at once (TLS buffers it until its handshake is done); frames may follow it before the
    // reply: the listener reads none of them unless it accepts.
    socket.write(encodeHello());
    socket.on("data", (chunk: Uint8Array) => {
      try {
        this.#received(peer, conn, chunk);
      } catch (e) {
        const err = e instanceof RawFrameError
          ? new TransportError(
            e.kind === "frameTooLarge" ? status.RESOURCE_EXHAUSTED : status.UNAVAILABLE,
            e.message,
            peer.address,
            { cause: e },
          )
          : new TransportError(status.INTERNAL, String(e), peer.address, { cause: e });
        // Before the reply: the address answered something that is not a raw peer listener.
        const notRaw = e instanceof RawFrameError && (e.kind === "badMagic" || e.kind === "badVersion");
        this.#drop(peer, conn, err, notRaw && !conn.accepted ? "notRaw" : undefined);
      }
    });
    socket.on("error", (e: Error) => {
      // Before TCP connected: ECONNREFUSED (nothing listens), or the port is unreachable.
      this.#drop(
        peer,
        conn,
        new TransportError(status.UNAVAILABLE, e.message, peer.address, { cause: e }),
        conn.tcpConnected ? undefined : "refused",
      );
    });
    socket.on("close", () => {
      this.#drop(
        peer,
        conn,
        new TransportError(status.UNAVAILABLE, `${peer.address} closed the connection`, peer.address),
      );
    });
    return conn;
  }

  #received(peer: RawPeer, conn: Conn, chunk: Uint8Array): void {
    if (conn.closed) return;
    conn.lastHeardMs = Date.now();
    if (conn.reply !== undefined) {
      const bytes = conn.reply.length === 0 ? chunk : join(conn.reply, chunk);
      const reply = parseReply(bytes, peer.address);
      if (reply === undefined) {
        conn.reply = bytes.slice();
        return;
      }
      if (reply.status !== Status.ACCEPTED) {
        const notRaw = reply.status === Status.BAD_HELLO ? "notRaw" : undefined; // e.g. another version
        this.#drop(peer, conn, refusal(reply.status, reply.message, peer.address), notRaw);
        return;
      }
      conn.reply = undefined;
      conn.accepted = true;
      conn.acceptedMs = Date.now();
      peer.unheardSinceMs = undefined; // the peer answered: the quiet-connection clock starts afresh
      clearTimeout(conn.handshakeTimer);
      peer.backoffMs = RECONNECT_BACKOFF_MIN_MS;
      this.#onAccepted?.(peer.id);
      chunk = bytes.subarray(reply.bytes);
      if (chunk.length === 0) return;
    }
    for (const body of conn.reader.push(chunk)) {
      const frame = decodeFrame(body);
      if (frame.callId === 0) {
        if (frame.error) {
          // The listener's last word before it closes the connection (a frame over its limit, a malformed one).
          this.#drop(peer, conn, new TransportError(frame.error.code, frame.error.message, peer.address));
          return;
        }
        this.#oneWay(peer, frame);
        continue;
      }
      const call = conn.pending.get(frame.callId);
      if (call === undefined) continue; // expired already
      conn.pending.delete(frame.callId);
      if (frame.error) call.reject(new TransportError(frame.error.code, frame.error.message, peer.address));
      else call.resolve(frame);
    }
  }

  /** A one-way frame from the peer (its Raft response): checked for the cluster id and handed on. */
  #oneWay(peer: RawPeer, frame: pb.PeerFrame): void {
    const onMessage = this.#onMessage;
    if (onMessage === undefined) return;
    let decoded: { msg: Message; clusterId: string };
    try {
      decoded = codec.messageFromPeerFrame(frame);
    } catch {
      return; // a malformed one-way message is dropped
    }
    if (decoded.clusterId !== this.#clusterId) return;
    peer.unheardSinceMs = undefined;
    onMessage(decoded.msg);
  }

  /** Writes a frame; false (and the connection dropped) when it is over the limit or the write throws. */
  #write(peer: RawPeer, conn: Conn, frame: pb.PeerFrame): boolean {
    const bytes = encodeFrame(frame);
    if (bytes.length - 4 > this.#maxFrameBytes) {
      // Not sent at all: the listener would close the connection on it.
      this.#failed(
        peer,
        new TransportError(
          status.RESOURCE_EXHAUSTED,
          `a frame of ${bytes.length - 4} bytes is over the limit of ${this.#maxFrameBytes} bytes`,
          peer.address,
        ),
      );
      return false;
    }
    conn.unflushed++;
    try {
      conn.socket.write(bytes, () => conn.unflushed--);
    } catch (e) {
      conn.unflushed--;
      this.#drop(peer, conn, new TransportError(status.UNAVAILABLE, String(e), peer.address, { cause: e }));
      return false;
    }
    return true;
  }

  #call(peer: RawPeer, frame: pb.PeerFrame, deadlineMs: number): Promise<pb.PeerFrame> {
    const conn = peer.conn ?? this.#dial(peer);
    if (conn === undefined) {
      return Promise.reject(
        new TransportError(
          status.UNAVAILABLE,
          `no connection to ${peer.address} (${peer.lastError?.details ?? "reconnecting"})`,
          peer.address,
        ),
      );
    }
    const callId = conn.nextCallId++;
    frame.callId = callId;
    return new Promise<pb.PeerFrame>((resolve, reject) => {
      const now = Date.now();
      conn.pending.set(callId, { sentAtMs: now, expiresAtMs: now + deadlineMs, resolve, reject });
      this.#startSweeping(peer);
      if (!this.#write(peer, conn, frame)) {
        conn.pending.delete(callId);
        reject(new TransportError(status.UNAVAILABLE, "the frame could not be written", peer.address));
      }
    });
  }

  #startSweeping(peer: RawPeer): void {
    this.#waiting.add(peer);
    if (this.#sweepTimer !== undefined) return;
    this.#sweepTimer = setInterval(() => this.#sweep(Date.now()), SWEEP_INTERVAL_MS);
    Deno.unrefTimer(this.#sweepTimer);
  }

  #sweep(now: number): void {
    for (const peer of this.#waiting) {
      const conn = peer.conn;
      if (conn === undefined || conn.pending.size === 0) {
        this.#waiting.delete(peer);
        continue;
      }
      let silent = false;
      for (const [callId, c] of conn.pending) {
        if (now < c.expiresAtMs) continue;
        conn.pending.delete(callId);
        if (conn.lastHeardMs <= c.sentAtMs) silent = true;
        const details = `Deadline exceeded after ${now - c.sentAtMs} ms` +
          (conn.accepted ? `, remote_addr=${peer.address}` : ` (no connection to ${peer.address})`);
        c.reject(new TransportError(status.DEADLINE_EXCEEDED, details, peer.address));
      }
      if (silent) {
        this.#drop(
          peer,
          conn,
          new TransportError(status.DEADLINE_EXCEEDED, "the connection went silent", peer.address),
        );
      }
      if (conn.pending.size === 0) this.#waiting.delete(peer);
    }
    if (this.#waiting.size === 0 && this.#sweepTimer !== undefined) {
      clearInterval(this.#sweepTimer);
      this.#sweepTimer = undefined;
    }
  }

  /** Ends `conn` (once), fails what waits on it, reports the failure and schedules the next dial. */
  #drop(peer: RawPeer, conn: Conn, failure: TransportError, refused?: DialRefusal): void {
    if (conn.closed) return;
    conn.closed = true;
    clearTimeout(conn.handshakeTimer);
    conn.socket.destroy();
    const calls = [...conn.pending.values()];
    conn.pending.clear();
    for (const c of calls) c.reject(failure);
    if (peer.conn !== conn) return;
    peer.conn = undefined;
    if (this.#closed || peer.removed) return;
    this.#failed(peer, failure);
    if (refused !== undefined) this.#onDialRefused?.(peer.id, failure, refused);
    if (this.#closed || peer.removed || peer.conn !== undefined || peer.retryTimer !== undefined) return;
    if (conn.accepted && Date.now() - conn.acceptedMs >= RECONNECT_BACKOFF_MAX_MS) {
      // A connection that was up a while ended (a reset, the peer restarting): dial again at once, so that the
      // frames posted meanwhile wait in the new connection instead of being dropped (a gRPC reset costs a new
      // stream on the same connection, no gap). If the peer is gone, that dial fails and the backoff starts.
      this.#dial(peer);
      return;
    }
    const wait = peer.retryEveryMs ?? peer.backoffMs;
    peer.backoffMs = Math.min(2 * peer.backoffMs, RECONNECT_BACKOFF_MAX_MS);
    this.#scheduleRetry(peer, wait);
  }

  #scheduleRetry(peer: RawPeer, waitMs: number): void {
    peer.retryTimer = setTimeout(() => {
      peer.retryTimer = undefined;
      if (peer.conn === undefined) this.#dial(peer);
    }, waitMs);
    Deno.unrefTimer(peer.retryTimer);
  }

  #failed(peer: RawPeer, err: TransportError): void {
    peer.failures++;
    peer.lastError = err;
    if (peer.failures === 1 && !this.#closed) this.#onError?.(peer.id, err);
  }

  #succeeded(peer: RawPeer): void {
    const failures = peer.failures;
    peer.failures = 0;
    if (failures > 0) this.#onRecovered?.(peer.id, failures);
  }
}

/** The transport error a refused handshake reports (typed by the listener's status). */
function refusal(code: number, message: string, address: string): TransportError {
  const grpcCode = code === Status.BUSY
    ? status.RESOURCE_EXHAUSTED
    : code === Status.UNAUTHENTICATED
    ? status.UNAUTHENTICATED
    : code === Status.CLOSING
    ? status.UNAVAILABLE
    : status.FAILED_PRECONDITION;
  return new TransportError(grpcCode, `raw peer handshake refused: ${message}`, address);
}

function join(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function requestFrame(msg: PeerRequest, clusterId: string): pb.PeerFrame {
  switch (msg.type) {
    case "RequestVote":
      return { callId: 0, requestVote: codec.requestVoteToProto(msg, clusterId) };
    case "AppendEntries":
      return { callId: 0, appendEntries: codec.appendEntriesToProto(msg, clusterId) };
    case "TimeoutNow":
      return { callId: 0, timeoutNow: codec.timeoutNowToProto(msg, clusterId) };
  }
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
