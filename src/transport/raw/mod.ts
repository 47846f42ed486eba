/**
 * The raw peer transport (the default; `"peerTransport": "raw"` in cluster.json): node-to-node Raft traffic as
 * length-prefixed PeerFrames on one long-lived TCP (or mutual TLS) connection per peer, instead of a grpc-js
 * Peer stream over HTTP/2. Same messages, codec and semantics; see README.md for its rules.
 *
 * - {@linkcode RawPeerClients}: the dialling side, with the surface of `PeerClients`.
 * - {@linkcode startRawPeerServer}: the listening side, serving the node's Peer handlers.
 * - `frames.ts`: the wire format (handshake, frames), pure.
 *
 * @module
 */

export {
  type DialRefusal,
  RawPeerClients,
  type RawPeerClientsOptions,
  RECONNECT_BACKOFF_MAX_MS,
  RECONNECT_BACKOFF_MIN_MS,
} from "./client.ts";
export {
  type RawPeerServerOptions,
  type RunningRawPeerServer,
  startRawPeerServer,
  WRITE_BUFFER_MAX_BYTES,
} from "./server.ts";
export {
  decodeFrame,
  encodeFrame,
  encodeHello,
  encodeReply,
  FrameReader,
  MAGIC,
  parseReply,
  RawFrameError,
  type RawFrameErrorKind,
  Status as RawStatus,
  VERSION as RAW_PEER_VERSION,
} from "./frames.ts";
export { freePortsWithRawPorts, freeRawPortOffset, peerTransportFields, rawPeerAddress } from "./address.ts";
