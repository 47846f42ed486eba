/**
 * The cluster configuration file (`cluster.json`): who the nodes are and the timings they share.
 *
 * ```json
 * { "clusterId": "demo", "nodes": [{ "id": 1, "address": "127.0.0.1:7101" }, …],
 *   "heartbeatIntervalMs": 100, "electionTimeoutMsMin": 1000, "electionTimeoutMsMax": 2000,
 *   "leaseDurationMs": 800, "maxClockDrift": 0.01 }
 * ```
 * Every field but `nodes` is optional. Errors name the field (and, for timings, both values and units).
 *
 * @module
 */
import {
  ConfigError,
  DEFAULT_LIMITS,
  DEFAULT_SNAPSHOT_POLICY,
  DEFAULT_TIMINGS,
  validateLimits,
  validateSnapshotPolicy,
  validateTimings,
} from "../raft/config.ts";
import type { RaftLimits, RaftTimings, SnapshotPolicy } from "../raft/config.ts";

export { ConfigError };

export interface NodeAddress {
  readonly id: number;
  /** host:port the node listens on and peers dial. */
  readonly address: string;
  /** host:port of this node's HTTP listener for /metrics, /healthz, /readyz (off when absent). */
  readonly metricsAddress?: string;
}

export interface ClusterConfig extends RaftTimings, RaftLimits, SnapshotPolicy {
  /** Names the cluster; a node refuses a data dir or a peer of another cluster. */
  readonly clusterId: string;
  readonly nodes: readonly NodeAddress[];
  /** Largest key and value accepted, in UTF-8 bytes. */
  readonly maxKeyBytes: number;
  readonly maxValueBytes: number;
  /** Deadline of one peer RPC. */
  readonly rpcTimeoutMs: number;
  readonly preVote: boolean;
  /** dump.txt is rotated to dump.txt.1 (… up to dumpMaxFiles) when it reaches this size. */
  readonly dumpMaxBytes: number;
  /** Rotated dump files kept besides dump.txt (the oldest is deleted). */
  readonly dumpMaxFiles: number;
  /** Keys and values longer than this (UTF-8 bytes) are cut in dump lines, with their length shown. */
  readonly dumpFieldMaxBytes: number;
  /**
   * The nodes' TLS files (`{id}` stands for the node's id; relative paths are from the config's folder).
   * Absent: each node needs `--cacert/--cert/--key` or `--insecure`.
   */
  readonly tls?: TlsConfigFiles;
  /**
   * Transport limits (src/transport/server.ts `TransportLimits`: maxConnections, maxConcurrentStreams,
   * maxInFlightFrames, handshakeTimeoutMs, maxMessageBytes, maxSessionMemoryMb, peerWindowBytes,
   * maxWidePeerConnections); defaults when absent.
   */
  readonly transportLimits?: Readonly<Record<string, number>>;
  /**
   * Node-to-node (Peer) traffic: "raw" (absent: the default): length-prefixed frames on one TCP/TLS connection
   * per peer (src/transport/raw/), listening on each node's port + `rawPeerPortOffset`, with a per-peer
   * fallback to the gRPC Peer stream while a peer serves no raw port (a node of the previous release); or
   * "grpc": dial the gRPC Peer service only. Every node serves the gRPC Peer service either way. Clients and
   * admin calls always use gRPC.
   */
  readonly peerTransport?: "grpc" | "raw";
  /**
   * The raw peer port is the node's port plus this (default 1000). With `peerTransport` "grpc", a node serves
   * the raw transport only when this is given explicitly (while it still dials gRPC).
   */
  readonly rawPeerPortOffset?: number;
}

/** The raw peer port's default distance from a node's gRPC port. */
export const DEFAULT_RAW_PEER_PORT_OFFSET = 1000;

/**
 * `"tls": {"cacert": "certs/ca.crt", "cert": "certs/node-{id}.crt", "key": "certs/node-{id}.key"}`, plus, for a
 * local cluster's convenience, the client and admin certificates the commands use by default
 * (`clientCert`/`clientKey`, `adminCert`/`adminKey`).
 */
export interface TlsConfigFiles {
  readonly cacert: string;
  readonly cert: string;
  readonly key: string;
  readonly clientCert?: string;
  readonly clientKey?: string;
  readonly adminCert?: string;
  readonly adminKey?: string;
}

const TLS_FIELDS = ["cacert", "cert", "key", "clientCert", "clientKey", "adminCert", "adminKey"] as const;

export const DEFAULT_REQUEST_LIMITS = { maxKeyBytes: 1024, maxValueBytes: 64 * 1024 } as const;

/** dump.txt bounds: at most (1 + dumpMaxFiles) × dumpMaxBytes on disk per node (60 MiB by default). */
export const DEFAULT_DUMP_LIMITS = {
  dumpMaxBytes: 10 * 1024 * 1024,
  dumpMaxFiles: 5,
  dumpFieldMaxBytes: 128,
} as const;

const KNOWN_FIELDS = new Set([
  "clusterId",
  "nodes",
  "heartbeatIntervalMs",
  "electionTimeoutMsMin",
  "electionTimeoutMsMax",
  "leaseDurationMs",
  "maxClockDrift",
  "entriesPerAppendMax",
  "bytesPerAppendMax",
  "appendsInFlightMax",
  "maxKeyBytes",
  "maxValueBytes",
  "rpcTimeoutMs",
  "preVote",
  "dumpMaxBytes",
  "dumpMaxFiles",
  "dumpFieldMaxBytes",
  "snapshotThresholdEntries",
  "snapshotTrailingEntries",
  "snapshotChunkBytes",
  "tls",
  "transportLimits",
  "peerTransport",
  "rawPeerPortOffset",
]);

function fail(source: string, msg: string): never {
  throw new ConfigError(`${source}: ${msg}`);
}

function num(source: string, raw: Record<string, unknown>, field: string, dflt: number): number {
  const v = raw[field];
  if (v === undefined) return dflt;
  if (typeof v !== "number" || !Number.isFinite(v)) {
    fail(source, `${field} must be a number, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** Checks "host:port" with a port in 1..65535 (IPv6 as "[::1]:7101"). */
export function parseAddress(address: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(address);
  if (!m) throw new ConfigError(`address "${address}" must look like host:port, e.g. 127.0.0.1:7101`);
  const port = Number(m[2]);
  if (port < 1 || port > 65535) {
    throw new ConfigError(`address "${address}" has port ${port} outside 1..65535`);
  }
  return { host: m[1], port };
}

/** Parses and validates a configuration object; `source` names it in errors (e.g. the file path). */
export function parseClusterConfig(raw: unknown, source = "config"): ClusterConfig {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) fail(source, "must be a JSON object");
  const r = raw as Record<string, unknown>;
  for (const k of Object.keys(r)) {
    if (!KNOWN_FIELDS.has(k)) fail(source, `unknown field "${k}" (known: ${[...KNOWN_FIELDS].join(", ")})`);
  }
  if (!Array.isArray(r.nodes) || r.nodes.length === 0) {
    fail(source, `nodes must be a non-empty array of {"id": 1, "address": "127.0.0.1:7101"}`);
  }
  const nodes: NodeAddress[] = r.nodes.map((n: unknown, i: number) => {
    if (typeof n !== "object" || n === null) fail(source, `nodes[${i}] must be an object`);
    const { id, address, metricsAddress } = n as Record<string, unknown>;
    if (typeof id !== "number" || !Number.isInteger(id) || id < 1) {
      fail(source, `nodes[${i}].id must be a positive integer, got ${JSON.stringify(id)}`);
    }
    if (typeof address !== "string") fail(source, `nodes[${i}].address must be a "host:port" string`);
    try {
      parseAddress(address);
    } catch (e) {
      fail(source, `nodes[${i}].${(e as Error).message}`);
    }
    if (metricsAddress === undefined) return { id, address };
    if (typeof metricsAddress !== "string") {
      fail(source, `nodes[${i}].metricsAddress must be a "host:port" string`);
    }
    try {
      parseAddress(metricsAddress);
    } catch (e) {
      fail(source, `nodes[${i}].metricsAddress: ${(e as Error).message}`);
    }
    if (metricsAddress === address) {
      fail(source, `nodes[${i}].metricsAddress must differ from its gRPC address ${address}`);
    }
    return { id, address, metricsAddress };
  });
  const ids = new Set<number>(), addrs = new Set<string>();
  for (const n of nodes) {
    if (ids.has(n.id)) fail(source, `nodes: id ${n.id} appears twice`);
    if (addrs.has(n.address)) fail(source, `nodes: address ${n.address} appears twice`);
    ids.add(n.id);
    addrs.add(n.address);
  }
  const clusterId = r.clusterId ?? `raftkv-${[...ids].sort((a, b) => a - b).join("-")}`;
  if (typeof clusterId !== "string" || !/^[A-Za-z0-9._-]{1,64}$/.test(clusterId)) {
    fail(
      source,
      `clusterId must be 1-64 characters of A-Z a-z 0-9 . _ -, got ${JSON.stringify(r.clusterId)}`,
    );
  }
  const timings: RaftTimings = {
    heartbeatIntervalMs: num(source, r, "heartbeatIntervalMs", DEFAULT_TIMINGS.heartbeatIntervalMs),
    electionTimeoutMsMin: num(source, r, "electionTimeoutMsMin", DEFAULT_TIMINGS.electionTimeoutMsMin),
    electionTimeoutMsMax: num(source, r, "electionTimeoutMsMax", DEFAULT_TIMINGS.electionTimeoutMsMax),
    leaseDurationMs: num(source, r, "leaseDurationMs", DEFAULT_TIMINGS.leaseDurationMs),
    maxClockDrift: num(source, r, "maxClockDrift", DEFAULT_TIMINGS.maxClockDrift),
  };
  const limits: RaftLimits = {
    entriesPerAppendMax: num(source, r, "entriesPerAppendMax", DEFAULT_LIMITS.entriesPerAppendMax),
    bytesPerAppendMax: num(source, r, "bytesPerAppendMax", DEFAULT_LIMITS.bytesPerAppendMax),
    appendsInFlightMax: num(source, r, "appendsInFlightMax", DEFAULT_LIMITS.appendsInFlightMax),
  };
  try {
    validateTimings(timings);
    validateLimits(limits);
  } catch (e) {
    fail(source, (e as Error).message);
  }
  const maxKeyBytes = num(source, r, "maxKeyBytes", DEFAULT_REQUEST_LIMITS.maxKeyBytes);
  const maxValueBytes = num(source, r, "maxValueBytes", DEFAULT_REQUEST_LIMITS.maxValueBytes);
  if (!Number.isInteger(maxKeyBytes) || maxKeyBytes < 1) {
    fail(source, `maxKeyBytes (${maxKeyBytes}) must be ≥ 1`);
  }
  if (!Number.isInteger(maxValueBytes) || maxValueBytes < 0) {
    fail(source, `maxValueBytes (${maxValueBytes}) must be ≥ 0`);
  }
  const rpcTimeoutMs = num(source, r, "rpcTimeoutMs", Math.max(4 * timings.heartbeatIntervalMs, 200));
  if (rpcTimeoutMs <= 0) fail(source, `rpcTimeoutMs (${rpcTimeoutMs} ms) must be positive`);
  const preVote = r.preVote ?? true;
  if (typeof preVote !== "boolean") fail(source, `preVote must be true or false`);
  const dump = {
    dumpMaxBytes: num(source, r, "dumpMaxBytes", DEFAULT_DUMP_LIMITS.dumpMaxBytes),
    dumpMaxFiles: num(source, r, "dumpMaxFiles", DEFAULT_DUMP_LIMITS.dumpMaxFiles),
    dumpFieldMaxBytes: num(source, r, "dumpFieldMaxBytes", DEFAULT_DUMP_LIMITS.dumpFieldMaxBytes),
  };
  // ≥ 16 KiB: a dump line is at most 2048 characters (≤ 8 KiB), so every file stays within the bound.
  if (!Number.isInteger(dump.dumpMaxBytes) || dump.dumpMaxBytes < 16384) {
    fail(source, `dumpMaxBytes (${dump.dumpMaxBytes} bytes) must be an integer ≥ 16384`);
  }
  if (!Number.isInteger(dump.dumpMaxFiles) || dump.dumpMaxFiles < 1 || dump.dumpMaxFiles > 1000) {
    fail(source, `dumpMaxFiles (${dump.dumpMaxFiles}) must be an integer in 1..1000`);
  }
  if (!Number.isInteger(dump.dumpFieldMaxBytes) || dump.dumpFieldMaxBytes < 8) {
    fail(source, `dumpFieldMaxBytes (${dump.dumpFieldMaxBytes} bytes) must be an integer ≥ 8`);
  }
  const snapshots = parseSnapshotPolicy(source, r);
  const tls = parseTlsField(source, r.tls);
  const transportLimits = parseTransportLimits(source, r.transportLimits);
  const peer = parsePeerTransport(source, r, nodes);
  return {
    clusterId,
    nodes,
    ...timings,
    ...limits,
    maxKeyBytes,
    maxValueBytes,
    rpcTimeoutMs,
    preVote,
    ...dump,
    ...snapshots,
    ...(tls ? { tls } : {}),
    ...(transportLimits ? { transportLimits } : {}),
    ...peer,
  };
}

/**
 * `peerTransport` and `rawPeerPortOffset`: when raw ports are served (absent or "raw", or an explicit offset), the raw
 * port of every node must be a valid port that no node uses for gRPC or metrics on the same host.
 */
function parsePeerTransport(
  source: string,
  r: Record<string, unknown>,
  nodes: readonly NodeAddress[],
): { peerTransport?: "grpc" | "raw"; rawPeerPortOffset?: number } {
  const kind = r.peerTransport;
  if (kind !== undefined && kind !== "grpc" && kind !== "raw") {
    fail(source, `peerTransport must be "grpc" or "raw", got ${JSON.stringify(kind)}`);
  }
  const offset = num(source, r, "rawPeerPortOffset", DEFAULT_RAW_PEER_PORT_OFFSET);
  if (!Number.isInteger(offset) || offset === 0) {
    fail(source, `rawPeerPortOffset (${offset}) must be a non-zero integer`);
  }
  if (kind !== "grpc" || r.rawPeerPortOffset !== undefined) {
    const taken = new Set<string>();
    for (const n of nodes) {
      taken.add(n.address);
      if (n.metricsAddress !== undefined) taken.add(n.metricsAddress);
    }
    for (const n of nodes) {
      const { host, port } = parseAddress(n.address);
      const raw = port + offset;
      if (raw < 1 || raw > 65535) {
        fail(
          source,
          `node ${n.id}'s raw peer port would be ${raw} (${port} + rawPeerPortOffset ${offset}), outside 1..65535`,
        );
      }
      if (taken.has(`${host}:${raw}`)) {
        fail(
          source,
          `node ${n.id}'s raw peer port ${host}:${raw} (its port + rawPeerPortOffset ${offset}) is another ` +
            `listener's address in nodes: choose another rawPeerPortOffset`,
        );
      }
    }
  }
  return {
    ...(kind !== undefined ? { peerTransport: kind } : {}),
    ...(r.rawPeerPortOffset !== undefined ? { rawPeerPortOffset: offset } : {}),
  };
}

/** The snapshot and compaction fields, each optional, validated together. */
function parseSnapshotPolicy(source: string, r: Record<string, unknown>): SnapshotPolicy {
  const d = DEFAULT_SNAPSHOT_POLICY;
  const policy: SnapshotPolicy = {
    snapshotThresholdEntries: num(source, r, "snapshotThresholdEntries", d.snapshotThresholdEntries),
    snapshotTrailingEntries: num(source, r, "snapshotTrailingEntries", d.snapshotTrailingEntries),
    snapshotChunkBytes: num(source, r, "snapshotChunkBytes", d.snapshotChunkBytes),
  };
  try {
    return validateSnapshotPolicy(policy);
  } catch (e) {
    return fail(source, (e as Error).message);
  }
}

const TRANSPORT_LIMIT_FIELDS = [
  "maxConnections",
  "maxConcurrentStreams",
  "maxInFlightFrames",
  "maxClientFramesInFlight",
  "maxClientFramesPerConnection",
  "maxClientFramesQueued",
  "handshakeTimeoutMs",
  "maxMessageBytes",
  "maxSessionMemoryMb",
  "peerWindowBytes",
  "maxWidePeerConnections",
];

function parseTransportLimits(source: string, raw: unknown): Record<string, number> | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    fail(source, `transportLimits must be an object of ${TRANSPORT_LIMIT_FIELDS.join(", ")}`);
  }
  for (const [k, v] of Object.entries(raw)) {
    if (!TRANSPORT_LIMIT_FIELDS.includes(k)) fail(source, `transportLimits: unknown field "${k}"`);
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1) {
      fail(source, `transportLimits.${k} must be a positive integer, got ${JSON.stringify(v)}`);
    }
    // HTTP/2's own bounds on a window (RFC 9113 §6.9.2): 64 KiB − 1 is its default, 2^31 − 1 its largest.
    if (k === "peerWindowBytes" && (v < 65_535 || v > 2 ** 31 - 1)) {
      fail(source, `transportLimits.peerWindowBytes must be from 65535 to 2147483647 bytes, got ${v}`);
    }
  }
  return raw as Record<string, number>;
}

function parseTlsField(source: string, raw: unknown): TlsConfigFiles | undefined {
  if (raw === undefined) return undefined;
  const shape = `tls must be {"cacert": FILE, "cert": FILE, "key": FILE} ({id} stands for the node id)`;
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) fail(source, shape);
  const t = raw as Record<string, unknown>;
  for (const k of Object.keys(t)) {
    if (!(TLS_FIELDS as readonly string[]).includes(k)) fail(source, `tls: unknown field "${k}"`);
    if (typeof t[k] !== "string") fail(source, `tls.${k} must be a file path`);
  }
  if (t.cacert === undefined || t.cert === undefined || t.key === undefined) fail(source, shape);
  return t as unknown as TlsConfigFiles;
}

/** Reads and validates a config file. */
export async function loadClusterConfig(path: string): Promise<ClusterConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new ConfigError(`cannot read config file ${path}: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${path} is not valid JSON: ${(e as Error).message}`);
  }
  return parseClusterConfig(raw, path);
}

/** A config for `n` nodes on loopback from `basePort`, as the local-cluster command writes it. */
export function localClusterConfig(
  n: number,
  basePort: number,
  overrides: Partial<Omit<ClusterConfig, "nodes">> = {},
): ClusterConfig {
  const nodes = [...Array(n).keys()].map((i) => ({ id: i + 1, address: `127.0.0.1:${basePort + i}` }));
  return parseClusterConfig({ nodes, ...overrides }, "local cluster");
}

/** The config as JSON for writing to disk (defaults spelled out so a reader sees the timings in force). */
export function clusterConfigToJson(c: ClusterConfig): string {
  return JSON.stringify(c, null, 2) + "\n";
}
