/**
 * The default peer transport: the raw one (raw/), with a per-peer fallback to the gRPC Peer stream for a peer
 * that serves no raw port (a node of the previous release during a rolling upgrade, or one configured with
 * another `rawPeerPortOffset`). Same surface as `PeerClients` and `RawPeerClients`.
 *
 * Per peer, the link is "raw" or "grpc":
 *
 * - It starts on raw (every peer is dialled at its raw port at start).
 * - A raw dial refused ("refused": no TCP connection: ECONNREFUSED, unreachable, or none within the handshake
 *   timeout, as behind a firewall that drops the port; "notRaw": an answer that is not a raw listener's, e.g. HTTP/2,
 *   or a refusal of our hello's version) moves the link to gRPC at once, quietly: a peer of the previous release
 *   is reachable from the first refusal, and a peer that is merely down (restarting) costs nothing more than
 *   it does today (both paths fail; one `onError` per path per outage, nothing per retry).
 * - The fallback is confirmed, and said once (`onFallback`, a WARNING), when the peer shows it is alive without
 *   a raw port: a "notRaw" answer, or raw dials still refused `fallbackConfirmMs` (1 s) after the first refusal
 *   seen while the peer was alive (heard from, or its gRPC channel connected). A restarting peer of this release
 *   opens its raw port a few ms after its gRPC port, so it is never taken for an old one. From then on its raw
 *   port is dialled every `rawRetryMs` (30 s), and at the backoff again (for `fallbackConfirmMs`) whenever its
 *   gRPC channel connects anew (the peer restarted: maybe upgraded).
 * - The first accepted raw connection moves the link (back) to raw and closes its gRPC channel (`onRaw`).
 *
 * @module
 */

import type {
  AppendEntries,
  AppendEntriesResponse,
  Message,
  NodeId,
  RequestVote,
  RequestVoteResponse,
  TimeoutNow,
} from "../raft/types.ts";
import type { TransportError } from "./errors.ts";
import { PeerClients, type PeerClientsOptions, type SendOptions } from "./peer_client.ts";
import { type DialRefusal, RawPeerClients, type RawPeerClientsOptions } from "./raw/client.ts";

/** Which transport a peer link uses. */
export type PeerLinkTransport = "raw" | "grpc";

/** A peer found alive without a raw port has it probed this often (default `rawRetryMs`). */
export const RAW_RETRY_MS = 30_000;
/** Raw dials refused this long while the peer is alive confirm the fallback (default `fallbackConfirmMs`). */
export const FALLBACK_CONFIRM_MS = 1_000;

export interface PeerLinksOptions extends Omit<RawPeerClientsOptions, "onDialRefused" | "onAccepted"> {
  /** See `RAW_RETRY_MS`. */
  readonly rawRetryMs?: number;
  /** See `FALLBACK_CONFIRM_MS`. */
  readonly fallbackConfirmMs?: number;
  /** gRPC channel options for the fallback links (tests). */
  readonly channelOptions?: PeerClientsOptions["channelOptions"];
  /**
   * The fallback to gRPC is confirmed for `peerId` (once per fallback): log a WARNING naming the peer and
   * `rawAddress` here.
   */
  readonly onFallback?: (peerId: NodeId, rawAddress: string, err: TransportError) => void;
  /** The link to `peerId` uses raw: the first time (`afterFallback` false), or again after a fallback. */
  readonly onRaw?: (peerId: NodeId, rawAddress: string, afterFallback: boolean) => void;
  /** Milliseconds of a monotonic clock (tests); default performance.now(). */
  readonly now?: () => number;
}

interface Link {
  readonly id: NodeId;
  address: string;
  transport: PeerLinkTransport;
  /** The fallback was confirmed (and said) and raw has not been accepted since. */
  fellBack: boolean;
  /** After a fallback: the raw port is being dialled at the backoff again (the peer may have been upgraded). */
  probing: boolean;
  /** Raw has been accepted at least once (its first `onRaw` said). */
  everRaw: boolean;
  /** The first raw refusal while the peer was alive, in the current streak. */
  aliveRefusedSinceMs: number | undefined;
  lastHeardMs: number;
}

/** Raw peer links with a per-peer fallback to gRPC (see the module comment). */
export class PeerLinks {
  readonly #raw: RawPeerClients;
  readonly #grpc: PeerClients;
  readonly #links = new Map<NodeId, Link>();
  readonly #rawRetryMs: number;
  readonly #confirmMs: number;
  readonly #deadlineMs: number;
  readonly #onFallback: PeerLinksOptions["onFallback"];
  readonly #onRaw: PeerLinksOptions["onRaw"];
  readonly #now: () => number;

  constructor(options: PeerLinksOptions) {
    this.#rawRetryMs = options.rawRetryMs ?? RAW_RETRY_MS;
    this.#confirmMs = options.fallbackConfirmMs ?? FALLBACK_CONFIRM_MS;
    this.#deadlineMs = options.deadlineMs ?? 1000;
    this.#onFallback = options.onFallback;
    this.#onRaw = options.onRaw;
    this.#now = options.now ?? (() => performance.now());
    const entries = options.peers instanceof Map
      ? [...options.peers.entries()]
      : Object.entries(options.peers).map(([id, address]): [NodeId, string] => [Number(id), address]);
    for (const [id, address] of entries) this.#links.set(id, this.#newLink(id, address));
    const onError = options.onError;
    const onRecovered = options.onRecovered;
    // Each path reports only while the link uses it: a peer that is down is said once per path, not per retry.
    this.#grpc = new PeerClients({
      clusterId: options.clusterId,
      peers: new Map(),
      deadlineMs: options.deadlineMs,
      tls: options.tls,
      framesQueuedMax: options.framesQueuedMax,
      channelOptions: options.channelOptions,
      onMessage: options.onMessage,
      onError: (id, err) => {
        if (this.#links.get(id)?.transport === "grpc") onError?.(id, err);
      },
      onRecovered: (id, failures) => {
        if (this.#links.get(id)?.transport === "grpc") onRecovered?.(id, failures);
      },
      // The gRPC channel to a fallen-back peer (re)connected: it may have restarted upgraded. Probe raw now.
      onReady: (id) => this.#probe(id),
    });
    this.#raw = new RawPeerClients({
      ...options,
      onError: (id, err) => {
        if (this.#links.get(id)?.transport === "raw") onError?.(id, err);
      },
      onRecovered: (id, failures) => {
        if (this.#links.get(id)?.transport === "raw") onRecovered?.(id, failures);
      },
      onDialRefused: (id, err, kind) => this.#refused(id, err, kind),
      onAccepted: (id) => this.#accepted(id),
    });
  }

  /** Which transport each peer link uses now. */
  transports(): ReadonlyMap<NodeId, PeerLinkTransport> {
    return new Map([...this.#links.values()].map((l) => [l.id, l.transport]));
  }

  /** The transport the link to `peerId` uses (undefined for an unknown peer). */
  transport(peerId: NodeId): PeerLinkTransport | undefined {
    return this.#links.get(peerId)?.transport;
  }

  /** Peer RPCs attempted since construction on either path. */
  get rpcCount(): number {
    return this.#raw.rpcCount + this.#grpc.rpcCount;
  }

  /** One-way messages dropped on either path. */
  get dropped(): number {
    return this.#raw.dropped + this.#grpc.dropped;
  }

  failureStreak(peerId: NodeId): number {
    return this.#via(peerId).failureStreak(peerId);
  }

  lastError(peerId: NodeId): TransportError | undefined {
    return this.#via(peerId).lastError(peerId);
  }

  has(id: NodeId): boolean {
    return this.#links.has(id);
  }

  /** As `PeerClients.send`, on the link's current transport. */
  send(msg: RequestVote, options?: SendOptions): Promise<RequestVoteResponse | undefined>;
  send(msg: AppendEntries, options?: SendOptions): Promise<AppendEntriesResponse | undefined>;
  send(msg: TimeoutNow, options?: SendOptions): Promise<undefined>;
  send(msg: Message, options?: SendOptions): Promise<Message | undefined>;
  send(msg: Message, options?: SendOptions): Promise<Message | undefined> {
    return this.#via(msg.to).send(msg, options);
  }

  /** As `PeerClients.post`, on the link's current transport. */
  post(msg: Message): boolean {
    return this.#via(msg.to).post(msg);
  }

  heardFrom(peerId: NodeId): void {
    const link = this.#links.get(peerId);
    if (link === undefined) return;
    link.lastHeardMs = this.#now();
    this.#raw.heardFrom(peerId);
    if (link.transport === "grpc") this.#grpc.heardFrom(peerId);
  }

  setPeers(peers: ReadonlyMap<NodeId, string>): void {
    for (const [id, link] of [...this.#links]) {
      if (peers.get(id) !== link.address) this.#links.delete(id);
    }
    for (const [id, address] of peers) {
      if (!this.#links.has(id)) this.#links.set(id, this.#newLink(id, address));
    }
    this.#raw.setPeers(peers);
    this.#syncGrpc();
  }

  close(): void {
    this.#raw.close();
    this.#grpc.close();
  }

  #newLink(id: NodeId, address: string): Link {
    return {
      id,
      address,
      transport: "raw",
      fellBack: false,
      probing: false,
      everRaw: false,
      aliveRefusedSinceMs: undefined,
      lastHeardMs: -Infinity,
    };
  }

  #via(peerId: NodeId): PeerClients | RawPeerClients {
    return this.#links.get(peerId)?.transport === "grpc" ? this.#grpc : this.#raw;
  }

  /** gRPC channels exactly for the links on gRPC (a link back on raw has its channel closed). */
  #syncGrpc(): void {
    const onGrpc = new Map<NodeId, string>();
    for (const l of this.#links.values()) if (l.transport === "grpc") onGrpc.set(l.id, l.address);
    this.#grpc.setPeers(onGrpc);
  }

  #refused(id: NodeId, err: TransportError, kind: DialRefusal): void {
    const link = this.#links.get(id);
    if (link === undefined) return;
    if (link.transport === "raw") {
      link.transport = "grpc";
      this.#syncGrpc();
    }
    if (link.fellBack && !link.probing) return;
    const now = this.#now();
    const alive = now - link.lastHeardMs <= this.#deadlineMs || this.#grpc.ready(id);
    if (kind === "refused") {
      if (!alive) {
        link.aliveRefusedSinceMs = undefined;
        return;
      }
      link.aliveRefusedSinceMs ??= now;
      if (now - link.aliveRefusedSinceMs < this.#confirmMs) return;
    }
    link.probing = false;
    this.#raw.retryEvery(id, this.#rawRetryMs);
    if (link.fellBack) return; // said once per fallback
    link.fellBack = true;
    this.#onFallback?.(id, this.#raw.rawAddress(id) ?? "", err);
  }

  /** After a fallback: dial the raw port at the backoff again until it is accepted or the fallback confirmed. */
  #probe(id: NodeId): void {
    const link = this.#links.get(id);
    if (link === undefined || !link.fellBack || link.transport !== "grpc") return;
    link.probing = true;
    link.aliveRefusedSinceMs = undefined;
    this.#raw.retryEvery(id, undefined);
  }

  #accepted(id: NodeId): void {
    const link = this.#links.get(id);
    if (link === undefined) return;
    link.aliveRefusedSinceMs = undefined;
    this.#raw.retryEvery(id, undefined);
    const afterFallback = link.fellBack;
    link.fellBack = false;
    link.probing = false;
    if (link.transport === "grpc") {
      link.transport = "raw";
      this.#syncGrpc();
    }
    if (afterFallback || !link.everRaw) this.#onRaw?.(id, this.#raw.rawAddress(id) ?? "", afterFallback);
    link.everRaw = true;
  }
}
