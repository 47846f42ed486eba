/**
 * Timing and sizing parameters of the core, with the checks that make the lease safe and failover quick
 * (SPEC rule 9). Every field names its unit.
 *
 * @module
 */

export interface RaftTimings {
  /** How often the leader sends AppendEntries to every follower (renewing its lease). */
  readonly heartbeatIntervalMs: number;
  /** Followers and candidates time out after a random duration in [min, max]. */
  readonly electionTimeoutMsMin: number;
  readonly electionTimeoutMsMax: number;
  /** The lease a leader claims from the send time of a heartbeat that a majority acknowledged. */
  readonly leaseDurationMs: number;
  /** ε: the largest relative clock-rate difference between any two nodes (0.01 = 1 %). */
  readonly maxClockDrift: number;
}

export interface RaftLimits {
  /** At most this many entries in one AppendEntries. */
  readonly entriesPerAppendMax: number;
  /** At most about this many bytes of keys and values in one AppendEntries (one entry may exceed it alone). */
  readonly bytesPerAppendMax: number;
  /** At most this many AppendEntries carrying entries in flight to one follower. */
  readonly appendsInFlightMax: number;
}

export interface RaftConfig extends RaftTimings, RaftLimits, Partial<SnapshotPolicy> {
  /** This node's id. */
  readonly id: number;
  /** Every voter's id, this node's included. */
  readonly voterIds: readonly number[];
  /** Use PreVote (Raft thesis §9.6) so a node rejoining from a partition does not depose a healthy leader. */
  readonly preVote: boolean;
  /**
   * The bootstrap configuration's addresses (cluster.json), by id; used until the log holds a configuration.
   * Absent: the voters without addresses.
   */
  readonly addresses?: ReadonlyMap<number, string>;
  /**
   * Started with `--join`: this node is not in the bootstrap configuration; it waits to be added (as a learner)
   * and receives the log, campaigning only once a configuration in its log makes it a voter.
   */
  readonly join?: boolean;
  /** A learner added to be promoted becomes a voter once it is within this many entries of the leader's log. */
  readonly promoteLagEntriesMax?: number;
}

/** Default of `promoteLagEntriesMax`. */
export const PROMOTE_LAG_ENTRIES_MAX = 100;

/** SPEC §2 defaults for one region (RTT ≤ 2 ms). */
export const DEFAULT_TIMINGS: RaftTimings = {
  heartbeatIntervalMs: 100,
  electionTimeoutMsMin: 1000,
  electionTimeoutMsMax: 2000,
  leaseDurationMs: 800,
  maxClockDrift: 0.01,
};

export const DEFAULT_LIMITS: RaftLimits = {
  entriesPerAppendMax: 1024,
  bytesPerAppendMax: 1 << 20,
  appendsInFlightMax: 8,
};

/** Thrown for parameters that make no sense or are unsafe; the message names the values and their units. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** Checks timings; returns them unchanged or throws a `ConfigError` naming both values and their units. */
export function validateTimings(t: RaftTimings): RaftTimings {
  const positive: (keyof RaftTimings)[] = [
    "heartbeatIntervalMs",
    "electionTimeoutMsMin",
    "electionTimeoutMsMax",
    "leaseDurationMs",
  ];
  for (const name of positive) {
    const v = t[name];
    if (!Number.isFinite(v) || v <= 0) {
      throw new ConfigError(`${name} (${v}) must be a positive number of ms`);
    }
  }
  if (!Number.isFinite(t.maxClockDrift) || t.maxClockDrift < 0 || t.maxClockDrift >= 0.5) {
    throw new ConfigError(
      `maxClockDrift (${t.maxClockDrift}) must be a fraction in [0, 0.5), e.g. 0.01 for 1 %`,
    );
  }
  if (t.electionTimeoutMsMax < t.electionTimeoutMsMin) {
    throw new ConfigError(
      `electionTimeoutMsMax (${t.electionTimeoutMsMax} ms) must be at least electionTimeoutMsMin (${t.electionTimeoutMsMin} ms)`,
    );
  }
  const promiseMs = t.leaseDurationMs * (1 + t.maxClockDrift);
  if (promiseMs >= t.electionTimeoutMsMin) {
    throw new ConfigError(
      `leaseDurationMs (${t.leaseDurationMs} ms) × (1 + maxClockDrift ${t.maxClockDrift}) = ${promiseMs} ms ` +
        `must be less than electionTimeoutMsMin (${t.electionTimeoutMsMin} ms), so that an ordinary failover needs no lease wait`,
    );
  }
  if (t.heartbeatIntervalMs * 2 > t.leaseDurationMs) {
    throw new ConfigError(
      `heartbeatIntervalMs (${t.heartbeatIntervalMs} ms) must be at most half of leaseDurationMs (${t.leaseDurationMs} ms), ` +
        `so a lost heartbeat does not cost the lease`,
    );
  }
  return t;
}

export function validateLimits(l: RaftLimits): RaftLimits {
  for (const name of ["entriesPerAppendMax", "bytesPerAppendMax", "appendsInFlightMax"] as const) {
    const v = l[name];
    if (!Number.isInteger(v) || v < 1) throw new ConfigError(`${name} (${v}) must be a positive integer`);
  }
  return l;
}

export function validateConfig(c: RaftConfig): RaftConfig {
  validateTimings(c);
  validateLimits(c);
  validateSnapshotPolicy({ ...DEFAULT_SNAPSHOT_POLICY, ...definedOnly(c) });
  if (!Number.isInteger(c.id) || c.id < 1) throw new ConfigError(`id (${c.id}) must be a positive integer`);
  if (new Set(c.voterIds).size !== c.voterIds.length) {
    throw new ConfigError(`voterIds (${c.voterIds.join(", ")}) must not repeat an id`);
  }
  if (!c.voterIds.includes(c.id) && !c.join) {
    throw new ConfigError(
      `id (${c.id}) is not one of the voters (${c.voterIds.join(", ")}): a new node starts with --join`,
    );
  }
  const lag = c.promoteLagEntriesMax;
  if (lag !== undefined && (!Number.isInteger(lag) || lag < 0)) {
    throw new ConfigError(`promoteLagEntriesMax (${lag}) must be a non-negative integer number of entries`);
  }
  return c;
}

/** When to snapshot and compact the log, and how a snapshot travels (issue 10). */
export interface SnapshotPolicy {
  /** A snapshot is taken once the log holds this many entries beyond the last snapshot. */
  readonly snapshotThresholdEntries: number;
  /**
   * Entries kept in the log behind a snapshot, so that a briefly lagging follower catches up from the log
   * rather than receiving a whole snapshot.
   */
  readonly snapshotTrailingEntries: number;
  /** Largest piece of snapshot.txt in one InstallSnapshot message, in bytes. */
  readonly snapshotChunkBytes: number;
}

export const DEFAULT_SNAPSHOT_POLICY: SnapshotPolicy = {
  // etcd's defaults since v3.6 (--snapshot-count 10,000, lowered from 100,000 for memory: etcd-io/etcd#15408;
  // 5,000 catch-up entries). The log in memory costs ~300 bytes per entry beyond its key and value (the core's
  // entry, the watch history's change): at 50,000 a node held up to 55,000 entries, 12 MiB more V8 heap after a
  // burst than at 10,000 (docs/benchmarks.md). The price: a snapshot every 10,000 writes, which for a large
  // state (a snapshot of 1,000,000 keys is 131 MB, ~10 s to write) is worth raising in cluster.json.
  snapshotThresholdEntries: 10_000,
  snapshotTrailingEntries: 5_000,
  // 1 MiB, with SNAPSHOT_WINDOW_CHUNKS of them in flight: 4 MiB chunks were slower through grpc-js on Deno
  // (a 12.9 MB snapshot in 1.55 s against ~1.0 s; bench_snapshot.ts --only rebuild, docs/benchmarks.md).
  snapshotChunkBytes: 1 << 20,
};

/**
 * InstallSnapshot chunks a leader keeps in flight to one follower (flow control: at most this many
 * `snapshotChunkBytes` unacknowledged), so a snapshot streams instead of paying a round trip per chunk.
 */
export const SNAPSHOT_WINDOW_CHUNKS = 4;

/** The largest `snapshotChunkBytes` accepted: well under the transport's 16 MiB message limit. */
export const SNAPSHOT_CHUNK_BYTES_MAX = 8 << 20;

/** Checks a snapshot policy; returns it unchanged or throws a `ConfigError` naming the value and its unit. */
export function validateSnapshotPolicy(p: SnapshotPolicy): SnapshotPolicy {
  const t = p.snapshotThresholdEntries;
  if (!Number.isInteger(t) || t < 1) {
    throw new ConfigError(`snapshotThresholdEntries (${t}) must be a positive integer (entries)`);
  }
  const k = p.snapshotTrailingEntries;
  if (!Number.isInteger(k) || k < 0) {
    throw new ConfigError(`snapshotTrailingEntries (${k}) must be a non-negative integer (entries)`);
  }
  const c = p.snapshotChunkBytes;
  if (!Number.isInteger(c) || c < 64 || c > SNAPSHOT_CHUNK_BYTES_MAX) {
    throw new ConfigError(
      `snapshotChunkBytes (${c} bytes) must be an integer from 64 to ${SNAPSHOT_CHUNK_BYTES_MAX} bytes`,
    );
  }
  return p;
}

function definedOnly(c: Partial<SnapshotPolicy>): Partial<SnapshotPolicy> {
  const out: { -readonly [K in keyof SnapshotPolicy]?: number } = {};
  if (c.snapshotThresholdEntries !== undefined) out.snapshotThresholdEntries = c.snapshotThresholdEntries;
  if (c.snapshotTrailingEntries !== undefined) out.snapshotTrailingEntries = c.snapshotTrailingEntries;
  if (c.snapshotChunkBytes !== undefined) out.snapshotChunkBytes = c.snapshotChunkBytes;
  return out;
}

/**
 * What two peers must agree on, as one short readable string: the cluster id and the timings that the lease
 * and elections rest on. Every peer request carries it and a node refuses a request whose fingerprint differs
 * from its own (the transport's cluster check), naming both, so a node restarted with other timings cannot
 * take part until it is configured like the others.
 */
export function peerFingerprint(clusterId: string, t: RaftTimings): string {
  return `${clusterId} heartbeat=${t.heartbeatIntervalMs}ms election=${t.electionTimeoutMsMin}-${t.electionTimeoutMsMax}ms ` +
    `lease=${t.leaseDurationMs}ms drift=${t.maxClockDrift}`;
}

/** The refusal for a peer whose fingerprint differs from ours (undefined when they agree). */
export function fingerprintMismatch(ours: string, theirs: string): string | undefined {
  if (ours === theirs) return undefined;
  return `cluster id or timings mismatch: the peer runs "${theirs}", this node runs "${ours}" ` +
    `(every node of a cluster needs the same clusterId, heartbeatIntervalMs, electionTimeoutMs, leaseDurationMs and maxClockDrift)`;
}
