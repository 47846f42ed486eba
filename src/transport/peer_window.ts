/**
 * Wider HTTP/2 flow-control windows on the connections that carry Peer streams (snapshot chunks, AppendEntries
 * batches), and only on those.
 *
 * HTTP/2 lets a sender have at most the receiver's window unacknowledged: 64 KiB per stream and per connection
 * by default (grpc-js's server takes no `grpc-node.flow_control_window`). A follower receiving a snapshot
 * parses a 1 MiB chunk for ~30–50 ms; with 64 KiB windows the leader could send only 64 KiB meanwhile, and the
 * rest of the next chunk crossed in 64 KiB steps, each waiting for the follower's event loop to send a
 * WINDOW_UPDATE and the leader's to answer it (measured in docs/benchmarks.md, "HTTP/2 windows on gRPC peer
 * links"). With a window as large as the chunks the Raft core keeps in flight, the next chunks are already in
 * the follower's socket when it finishes one.
 *
 * The bound: a wider window is memory a peer may make this node buffer before it reads. It is granted only to
 * a Peer stream the guard admitted (under TLS: a node certificate), and to at most `maxSessions` connections
 * at once (a cluster member has one connection to each other member, plus one while a replaced connection
 * drains): `maxSessions` × `windowBytes` in all. Client and Admin connections keep the 64 KiB defaults.
 *
 * Deno's `node:http2` (nghttp2 underneath) honours both calls: `settings({ initialWindowSize })` raises the
 * window of every stream of the session, open ones included, and `setLocalWindowSize` the connection's
 * (peer_window_test.ts checks both, and that bytes beyond 64 KiB cross before the receiver reads).
 *
 * @module
 */

import type http2 from "node:http2";

/** Window per Peer stream and per peer connection: 4 chunks of 1 MiB in flight, with room for framing. */
export const PEER_WINDOW_BYTES = 8 << 20;

/** Peer connections widened at once, at most. */
export const PEER_WINDOW_SESSIONS_MAX = 16;

/** The HTTP/2 session under a grpc-js server call (the pinned grpc-js keeps it at call → nextCall… → stream). */
export function sessionOf(call: unknown): http2.Http2Session | undefined {
  // deno-lint-ignore no-explicit-any
  let c: any = (call as any)?.call;
  for (let i = 0; c && !c.stream && i < 8; i++) c = c.nextCall;
  const session = c?.stream?.session;
  return session && typeof session.setLocalWindowSize === "function" ? session : undefined;
}

/** Widens the windows of up to `maxSessions` HTTP/2 sessions at once. */
export class PeerWindows {
  readonly #windowBytes: number;
  readonly #maxSessions: number;
  readonly #widened = new Set<http2.Http2Session>();
  /** Sessions left at the defaults because `maxSessions` were already widened. */
  refused = 0;

  constructor(windowBytes = PEER_WINDOW_BYTES, maxSessions = PEER_WINDOW_SESSIONS_MAX) {
    if (!Number.isInteger(windowBytes) || windowBytes < 65_535 || windowBytes > 2 ** 31 - 1) {
      throw new RangeError(`windowBytes (${windowBytes}) must be an integer from 65535 to 2^31-1 bytes`);
    }
    this.#windowBytes = windowBytes;
    this.#maxSessions = maxSessions;
  }

  /** Sessions widened now. */
  get size(): number {
    return this.#widened.size;
  }

  /**
   * Raises `session`'s stream and connection windows (once per session); false when it is already at the
   * limit of widened sessions, closed, or the HTTP/2 layer refused (the session then keeps its defaults).
   */
  widen(session: http2.Http2Session | undefined): boolean {
    if (session === undefined || session.closed || session.destroyed) return false;
    if (this.#widened.has(session)) return true;
    if (this.#widened.size >= this.#maxSessions) {
      this.refused++;
      return false;
    }
    try {
      session.settings({ initialWindowSize: this.#windowBytes });
      session.setLocalWindowSize(this.#windowBytes);
    } catch {
      return false; // a session closing meanwhile: it keeps the defaults, which work, only slower
    }
    this.#widened.add(session);
    session.once("close", () => this.#widened.delete(session));
    return true;
  }
}
