/**
 * raftkv's gRPC transport: the wire between nodes, and between clients and nodes.
 *
 * - {@linkcode startServer} serves the Peer, Client and Admin services of `proto/raftkv.proto` on one port,
 *   calling plain handlers ({@linkcode ServerHandlers}) that speak the Raft core's types.
 * - {@linkcode PeerClients} sends Raft requests to the other nodes (one channel and one long-lived stream per
 *   peer carrying requests as frames, per-call deadlines, failures reported through a hook instead of
 *   exceptions, an RPC counter).
 * - {@linkcode ClusterStub} calls one node's Client and Admin services (GET/SET as frames on one Client stream);
 *   failures reject with {@linkcode TransportError}.
 * - `call_mux.ts`: the request/answer multiplexing on a stream that both use, client and server side.
 * - `fair.ts`: the server's fair admission of client requests, Client-stream frames and unary Client calls
 *   alike (round-robin between connections, a budget per connection, back-pressure on a stream that backs
 *   up), so a flood on some connections starves no other.
 * - `peer_window.ts`: the HTTP/2 windows of a connection carrying a gRPC Peer stream are raised from 64 KiB to
 *   `peerWindowBytes` (8 MiB), so snapshot chunks stream instead of crossing in 64 KiB steps; at most
 *   `maxWidePeerConnections` connections at once, client connections keep 64 KiB.
 * - `codec` converts between the core's messages and the generated protobuf messages (`src/gen/`).
 * - `raw/`: the raw peer transport, the default (`"peerTransport": "raw"` or absent): the same Peer frames on
 *   one TCP/TLS connection per peer, without HTTP/2 ({@linkcode RawPeerClients}, {@linkcode startRawPeerServer}).
 * - {@linkcode PeerLinks}: what a node on the default dials with: raw links, each falling back to the gRPC Peer
 *   stream while its peer serves no raw port (a node of the previous release), and back once it does.
 *   `"peerTransport": "grpc"` stays an explicit choice: {@linkcode PeerClients} only.
 *
 * The generated code is refreshed with `deno task gen` (scripts/gen_proto.sh); nothing outside this folder
 * should import `src/gen/` directly.
 *
 * @example Serve and call
 * ```ts
 * import { ClusterStub, startServer } from "./mod.ts";
 * const server = await startServer("127.0.0.1:0", handlers);
 * const stub = new ClusterStub(`127.0.0.1:${server.port}`);
 * const reply = await stub.get("name", 1000);
 * stub.close();
 * await server.close();
 * ```
 *
 * @module
 */

export type {
  Answer,
  CasReply,
  CasRequest,
  DeleteReply,
  DeleteRequest,
  DumpLogReply,
  DumpLogRequest,
  ErrorKind,
  GetReply,
  GetRequest,
  KeyValue,
  ListReply,
  ListRequest,
  MembershipReply,
  NodeStatus,
  ReadMode,
  ReplyCommon,
  SetReply,
  SetRequest,
  SnapshotReply,
  TransferLeaderReply,
  WatchEvent,
  WatchReply,
  WatchRequest,
} from "./api.ts";
export { CodecError, refusalFromReply, refusalToReply } from "./codec.ts";
export * as codec from "./codec.ts";
export { RpcCode, type RpcCodeName, rpcCodeName, RpcError, TransportError } from "./errors.ts";
export {
  type AdminHandlers,
  type CallContext,
  type ClientHandlers,
  DEFAULT_TRANSPORT_LIMITS,
  MAX_MESSAGE_BYTES,
  type PeerHandlers,
  type RunningServer,
  type ServerHandlers,
  type ServerOptions,
  startServer,
  type TransportLimits,
} from "./server.ts";
export {
  isPeerRequest,
  PEER_CHANNEL_OPTIONS,
  PeerClients,
  type PeerClientsOptions,
  type PeerRequest,
  type SendOptions,
} from "./peer_client.ts";
export {
  ClusterStub,
  type ClusterStubOptions,
  isRequestTooLarge,
  STUB_CHANNEL_OPTIONS,
} from "./client_stub.ts";
export { type AdmissionStats, FairAdmission, Lane } from "./fair.ts";
export {
  FALLBACK_CONFIRM_MS,
  PeerLinks,
  type PeerLinksOptions,
  type PeerLinkTransport,
  RAW_RETRY_MS,
} from "./peer_links.ts";
export {
  rawPeerAddress,
  RawPeerClients,
  type RawPeerClientsOptions,
  type RunningRawPeerServer,
  startRawPeerServer,
} from "./raw/mod.ts";
