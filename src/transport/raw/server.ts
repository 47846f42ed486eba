/**
 * The listening side of the raw peer transport: serves the Peer stream's frames over raw TCP (or mutual TLS),
 * with the same checks and semantics as the gRPC Peer stream (server.ts `peerStream`, call_mux.ts
 * `serveFrames`):
 *
 * - a hello with the wrong magic or version, a connection over `maxConnections`, or (TLS) a caller without a
 *   valid node certificate is refused with a typed reply saying why, then closed;
 * - a connection that has not finished its TLS handshake and hello within `handshakeTimeoutMs` is closed;
 * - request frames (call id ≠ 0) are answered with their call id (at most `maxInFlightFrames` wait per
 *   connection, the next is answered RESOURCE_EXHAUSTED); one-way frames (call id 0) go to `deliver` after the
 *   cluster id check and the check that the sender is the member the certificate names, with a `back` that
 *   sends one-way frames to the caller on the same connection;
 * - a frame over `maxMessageBytes` or one that is not a PeerFrame closes the connection, after a one-way error
 *   frame saying why;
 * - the handlers' `signal` aborts when the connection ends, however it ends (the node turns a leader's
 *   connection ending into a fast PreVote: `peerConnectionLost`).
 *
 * @module
 */

import net from "node:net";
import tls from "node:tls";
import { status } from "@grpc/grpc-js";
import type * as pb from "../../gen/raftkv.ts";
import type { Message } from "../../raft/types.ts";
import * as codec from "../codec.ts";
import { RpcError } from "../errors.ts";
import {
  answerFrame,
  type CallContext,
  checkClaim,
  checkCluster,
  DEFAULT_TRANSPORT_LIMITS,
  frameError,
  type PeerServing,
  type TransportLimits,
} from "../server.ts";
import { allowed, describeIdentity, type Identity } from "../../security/identity.ts";
import { type CertificateStore, identityOfCert, unauthenticatedReason } from "../../security/tls.ts";
import {
  checkHello,
  decodeFrame,
  encodeFrame,
  encodeReply,
  FrameReader,
  HELLO_BYTES,
  MAGIC,
  RawFrameError,
  Status,
} from "./frames.ts";

/** Bytes waiting in one connection's write buffer beyond which one-way frames back are dropped. */
export const WRITE_BUFFER_MAX_BYTES = 64 * 1024 * 1024;

export interface RawPeerServerOptions {
  /** Mutual TLS with the store's certificates: only node certificates may connect. Plain TCP when absent. */
  readonly tls?: CertificateStore;
  /** maxConnections, maxInFlightFrames, handshakeTimeoutMs, maxMessageBytes apply here. */
  readonly limits?: Partial<TransportLimits>;
  /** Bytes a connection's write buffer may hold before one-way frames back are dropped. */
  readonly writeBufferMaxBytes?: number;
  /** Told each refused or broken connection, with the reason (the node logs it). */
  readonly onRefused?: (remote: string, reason: string) => void;
}

export interface RunningRawPeerServer {
  readonly port: number;
  /** TCP connections open now. */
  readonly connections: number;
  /** Stops listening and closes every connection (their handlers' signals abort). Idempotent. */
  close(): Promise<void>;
}

/** Serves Peer frames on `address` ("host:port"; port 0 picks one). Rejects if it cannot be bound. */
export async function startRawPeerServer(
  address: string,
  handlers: PeerServing,
  options: RawPeerServerOptions = {},
): Promise<RunningRawPeerServer> {
  const limits = { ...DEFAULT_TRANSPORT_LIMITS, ...options.limits };
  const writeBufferMaxBytes = options.writeBufferMaxBytes ?? WRITE_BUFFER_MAX_BYTES;
  const m = /^(.*):(\d+)$/.exec(address);
  if (m === null) throw new TypeError(`raw peer address "${address}" is not host:port`);
  const host = m[1].replace(/^\[(.*)\]$/, "$1");
  const store = options.tls;
  const sockets = new Set<net.Socket>();
  let closing = false;

  const refuse = (socket: net.Socket, code: number, reason: string) => {
    options.onRefused?.(remoteOf(socket), reason);
    socket.end(encodeReply(code, reason));
    setTimeout(() => socket.destroy(), 1000).unref?.();
  };

  /** A connection whose transport (TCP, or TLS once its handshake is done) is up. */
  const serve = (socket: net.Socket, timer: ReturnType<typeof setTimeout>) => {
    let identity: Identity | undefined;
    if (socket instanceof tls.TLSSocket) {
      const cert = socket.getPeerCertificate();
      const id = socket.authorized ? identityOfCert(cert) : undefined;
      if (!socket.authorized || id === undefined || !allowed(id, "peer")) {
        clearTimeout(timer);
        const why = !socket.authorized
          ? unauthenticatedReason(socket)
          : id === undefined
          ? "the client certificate names no raftkv identity"
          : `${describeIdentity(id)} may not send Raft traffic (only node certificates may)`;
        refuse(socket, Status.UNAUTHENTICATED, `${why}: refused on the raw peer port`);
        return;
      }
      identity = id;
    }
    serveConnection(socket, timer, identity);
  };

  const serveConnection = (
    socket: net.Socket,
    timer: ReturnType<typeof setTimeout>,
    identity: Identity | undefined,
  ) => {
    const abort = new AbortController();
    const ctx: CallContext = { signal: abort.signal, deadlineMs: Infinity, peer: remoteOf(socket), identity };
    const reader = new FrameReader(limits.maxMessageBytes);
    let hello: Uint8Array | undefined = new Uint8Array(0);
    let inFlight = 0;
    let open = true;
    socket.once("close", () => {
      open = false;
      abort.abort(new RpcError("CANCELLED", "the connection closed"));
    });
    const write = (frame: pb.PeerFrame): boolean => {
      if (!open || socket.destroyed) return false;
      try {
        socket.write(encodeFrame(frame));
      } catch {
        return false;
      }
      return true;
    };
    /** Sends a one-way frame back to the caller; false once closed or while its write buffer is full. */
    const back = (msg: Message): boolean => {
      if (!open || socket.writableLength > writeBufferMaxBytes) return false;
      const frame = codec.messageToPeerFrame(msg, handlers.clusterId);
      frame.callId = 0;
      return write(frame);
    };
    /** A wire error: say why in a one-way error frame, then close. */
    const fail = (code: number, reason: string) => {
      options.onRefused?.(ctx.peer, reason);
      write({ callId: 0, error: { code, message: reason } });
      open = false;
      socket.end();
      setTimeout(() => socket.destroy(), 1000).unref?.();
    };
    const onFrame = (frame: pb.PeerFrame) => {
      const callId = frame.callId;
      if (callId === 0) {
        if (handlers.peer.deliver === undefined) return;
        try {
          const { msg, clusterId } = codec.messageFromPeerFrame(frame);
          checkCluster(handlers.clusterId, clusterId);
          checkClaim(identity, msg.from, msg.type); // a node certificate speaks only for its own member id
          handlers.peer.deliver(msg, ctx, back);
        } catch { /* a malformed or foreign one-way message is dropped: there is no one to tell */ }
        return;
      }
      if (inFlight >= limits.maxInFlightFrames) {
        write({
          callId,
          error: { code: status.RESOURCE_EXHAUSTED, message: "too many frames in flight on this connection" },
        });
        return;
      }
      inFlight++;
      answerFrame(handlers, frame, ctx).then(
        (body) => {
          inFlight--;
          write({ ...body, callId });
        },
        (err: unknown) => {
          inFlight--;
          write({ callId, error: frameError(err) });
        },
      );
    };
    socket.on("data", (chunk: Uint8Array) => {
      if (!open) return;
      try {
        if (hello !== undefined) {
          const bytes = hello.length === 0 ? chunk : join(hello, chunk);
          if (bytes.length < HELLO_BYTES) {
            // Wrong from the first bytes already (e.g. an HTTP/2 preface): no need to wait for more.
            checkPrefix(bytes);
            hello = bytes.slice();
            return;
          }
          checkHello(bytes.subarray(0, HELLO_BYTES));
          hello = undefined;
          clearTimeout(timer);
          socket.write(encodeReply(Status.ACCEPTED));
          chunk = bytes.subarray(HELLO_BYTES);
          if (chunk.length === 0) return;
        }
        for (const body of reader.push(chunk)) {
          onFrame(decodeFrame(body));
          if (!open) return;
        }
      } catch (e) {
        if (!(e instanceof RawFrameError)) throw e;
        if (hello !== undefined) {
          clearTimeout(timer);
          open = false;
          refuse(socket, Status.BAD_HELLO, e.message);
        } else {
          fail(e.kind === "frameTooLarge" ? status.RESOURCE_EXHAUSTED : status.INVALID_ARGUMENT, e.message);
        }
      }
    });
  };

  const onConnection = (socket: net.Socket) => {
    if (closing) {
      socket.destroy();
      return;
    }
    if (sockets.size >= limits.maxConnections) {
      // Refused before TLS (the reply is readable only in plain text; a TLS dialler sees the connection close).
      options.onRefused?.(remoteOf(socket), `over maxConnections (${limits.maxConnections})`);
      if (store === undefined) {
        socket.end(encodeReply(Status.BUSY, `over maxConnections (${limits.maxConnections}): try later`));
      }
      setTimeout(() => socket.destroy(), 1000).unref?.();
      if (store !== undefined) socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    socket.setNoDelay(true);
    // Closes a connection that has not finished its TLS handshake and hello in time (idle ones included).
    const timer = setTimeout(() => {
      options.onRefused?.(remoteOf(socket), `no handshake within ${limits.handshakeTimeoutMs} ms`);
      socket.destroy();
    }, limits.handshakeTimeoutMs);
    socket.once("close", () => clearTimeout(timer));
    if (store === undefined) {
      serve(socket, timer);
      return;
    }
    const key = `${socket.remoteAddress}:${socket.remotePort}`;
    handshaking.set(key, timer);
    socket.once("close", () => {
      if (handshaking.get(key) === timer) handshaking.delete(key);
    });
  };

  /** TLS: each raw socket's handshake timer by the caller's "address:port", until its TLS socket is up. */
  const handshaking = new Map<string, ReturnType<typeof setTimeout>>();
  let server: net.Server;
  if (store === undefined) {
    server = net.createServer(onConnection);
  } else {
    const material = store.material;
    const tlsServer = tls.createServer({
      ca: material.ca,
      cert: material.cert,
      key: material.key,
      // Checked here (serve) rather than by the TLS layer, so a refused caller learns why.
      requestCert: true,
      rejectUnauthorized: false,
      handshakeTimeout: limits.handshakeTimeoutMs,
    });
    tlsServer.on("connection", onConnection);
    tlsServer.on("secureConnection", (socket: tls.TLSSocket) => {
      const key = `${socket.remoteAddress}:${socket.remotePort}`;
      const timer = handshaking.get(key) ?? setTimeout(() => socket.destroy(), limits.handshakeTimeoutMs);
      handshaking.delete(key);
      socket.setNoDelay(true);
      socket.on("error", () => socket.destroy());
      serve(socket, timer);
    });
    tlsServer.on("tlsClientError", (err: Error, socket: tls.TLSSocket) => {
      const plain = /wrong version number|InvalidContentType/i.test(err.message)
        ? " (a peer without TLS (started with --insecure?) in a cluster that runs TLS)"
        : "";
      options.onRefused?.(remoteOf(socket), `TLS handshake failed: ${err.message}${plain}`);
      socket.destroy();
    });
    server = tlsServer;
  }
  const port = await new Promise<number>((resolve, reject) => {
    server.once("error", (e: Error) => reject(new Error(`cannot listen on ${address}: ${e.message}`)));
    server.listen({ host, port: Number(m[2]) }, () => resolve((server.address() as net.AddressInfo).port));
  });
  server.on("error", () => {/* after listening: per-connection errors are handled on the sockets */});
  // Certificate rotation (SIGHUP): new connections use the new certificate; open ones stay up.
  const rotate = store === undefined ? undefined : () => {
    const mat = store.material;
    try {
      (server as tls.Server).setSecureContext({ ca: mat.ca, cert: mat.cert, key: mat.key });
    } catch { /* unsupported: the node keeps its first certificate on this port until restarted */ }
  };
  if (rotate !== undefined) store!.addIdentityCertificateListener(rotate);
  let closed: Promise<void> | undefined;
  return {
    port,
    get connections() {
      return sockets.size;
    },
    close() {
      closed ??= new Promise<void>((resolve) => {
        closing = true;
        if (rotate !== undefined) store!.removeIdentityCertificateListener(rotate);
        const fallback = setTimeout(resolve, 2000);
        server.close(() => {
          clearTimeout(fallback);
          resolve();
        });
        for (const s of sockets) s.destroy();
      });
      return closed;
    },
  };
}

/** Rejects early bytes that cannot begin a hello (the magic is checked as far as it arrived). */
function checkPrefix(bytes: Uint8Array): void {
  for (let i = 0; i < Math.min(bytes.length, MAGIC.length); i++) {
    if (bytes[i] !== MAGIC[i]) {
      const padded = new Uint8Array(HELLO_BYTES);
      padded.set(bytes.subarray(0, HELLO_BYTES));
      checkHello(padded); // throws, naming what arrived
    }
  }
}

function remoteOf(socket: net.Socket): string {
  if (socket.remoteAddress === undefined) return "an unknown address (the socket closed)";
  return `${socket.remoteFamily === "IPv6" ? "ipv6" : "ipv4"}:${socket.remoteAddress}:${socket.remotePort}`;
}

function join(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
