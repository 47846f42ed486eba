/**
 * The run settings of one seed, drawn "swarm" style (TigerBeetle's VOPR): cluster size, Raft timings and
 * limits, network quality, client load and which fault episodes happen how often all vary per seed, so
 * that seeds explore different corners instead of one fixed mix.
 *
 * @module
 */
import type { RaftLimits, RaftTimings, SnapshotPolicy } from "../../src/raft/config.ts";
import { validateLimits, validateTimings } from "../../src/raft/config.ts";
import type { BrokenRule } from "../../src/raft/state_machine.ts";
import type { ClientOptions } from "./clients.ts";
import type { DiskOptions } from "./disk.ts";
import type { NetworkOptions } from "./network.ts";
import { Prng } from "./prng.ts";

/**
 * A core rule switched off, or one of the simulator's own controls: `drift` (clock rates outside the budget)
 * and `clock-check` (the node loop does not run the clock-sanity detector, src/clock/).
 */
export type BreakRule = BrokenRule | "drift" | "clock-check";

export const BREAK_RULES: readonly BreakRule[] = [
  "lease-wait",
  "lease-anchor",
  "restart-promise",
  "commit-term",
  "promise-margin",
  "wait-margin",
  "transfer-revoke",
  "timing-mismatch",
  "config-quorum",
  "read-index",
  "snapshot-index",
  "drift",
  "clock-check",
];

export const EPISODES = [
  /** Random independent faults: crashes, pauses, cuts, partitions, loss bursts, slow links, transfers. */
  "chaos",
  /** Cut the leader off from the other nodes (clients still reach it). */
  "isolateLeader",
  /**
   * A follower that lost the leader campaigns while the leader, still holding its lease, is cut off; with
   * variants that slow the acks to the leader and crash+restart the voters that had just acked it.
   */
  "takeover",
  /** Raft Figure 8: leaders crash after partially replicating. */
  "figure8",
  "pauseLeader",
  "crashLeader",
  "transfer",
  /** Crash and quickly restart followers that had just acked the leader. */
  "crashFollowers",
  /**
   * The margins: clocks put at the ends of the drift budget (leader slowest, the others fastest), then a
   * takeover whose candidate campaigns long after its voters last promised (the promise margin, rule 4) or
   * whose candidate runs fastest of all (the wait margin, rule 5).
   */
  "driftTakeover",
  /** A transfer after which the old leader hears from no one (its lease must be revoked, rule 8). */
  "transferCutOff",
  /** The leader's clock stops while it is frozen (a paused VM); it must not trust its lease on resuming. */
  "stoppedClock",
  /**
   * Membership changes (issue 11) interleaved with random faults: spare nodes join as learners and are
   * promoted, voters are removed (the leader too) or replaced by a caught-up learner in one joint change.
   */
  "membership",
  /**
   * A voter is replaced by a caught-up learner in one joint change while the leader and the learner are cut
   * off with a majority of the new voters but not of the old (only the old configuration's quorum keeps the
   * leader from committing and leasing: `--break config-quorum`).
   */
  "jointCutOff",
  "calm",
] as const;
export type Episode = typeof EPISODES[number];

export interface SimOptions {
  readonly seed: number;
  readonly nodeCount: number;
  /** Nodes started with --join (ids after the voters), for the membership episode to add. */
  readonly spareCount: number;
  readonly timings: RaftTimings;
  readonly limits: RaftLimits;
  readonly preVote: boolean;
  readonly network: NetworkOptions;
  readonly clientCount: number;
  readonly client: ClientOptions;
  /** Real time during which episodes run, ms. */
  readonly faultPhaseMs: number;
  /** Healed, fault-free time at the end (a leader must exist by then), ms. */
  readonly quietMs: number;
  readonly episodeWeights: Readonly<Record<Episode, number>>;
  /** Mean time between faults inside a chaos episode, ms. */
  readonly chaosMeanGapMs: number;
  readonly breakRule?: BreakRule;
  /** The simulated disk: fsync latency and faults (disk.ts). */
  readonly disk: DiskOptions;
  /** Snapshots and compaction (issue 10): small thresholds so they happen many times per seed. */
  readonly snapshots: SimSnapshotOptions;
}

export interface SimSnapshotOptions extends SnapshotPolicy {
  /** Time to write a snapshot file (a crash meanwhile loses it), ms. */
  readonly writeMsMax: number;
}

/** The snapshot policy of one seed, from its own stream (so adding it moved no other setting). */
export function drawSnapshotOptions(seed: number): SimSnapshotOptions {
  const rng = new Prng(seed).fork("snapshot-options");
  return {
    snapshotThresholdEntries: rng.pick([10, 30, 100, 400]),
    snapshotTrailingEntries: rng.pick([0, 0, 5, 50]),
    snapshotChunkBytes: rng.pick([64, 256, 4096]),
    writeMsMax: rng.pick([1, 20, 200]),
  };
}

/**
 * The share of GETs sent as follower (ReadIndex) reads to any node (issue 16), from its own stream (so adding
 * it moved no other setting); at least half with `--break read-index`, which only they can expose.
 */
export function drawFollowerReadChance(seed: number, breakRule?: BreakRule): number {
  const chance = new Prng(seed).fork("read-options").pick([0, 0.3, 0.6]);
  return breakRule === "read-index" ? Math.max(chance, 0.6) : chance;
}

/**
 * The disk of one seed, drawn from its own stream (so adding it moved no other setting): fsync latency, and
 * in some seeds fsync failures, ENOSPC and a bit flip in a committed record.
 */
export function drawDiskOptions(seed: number): DiskOptions {
  const rng = new Prng(seed).fork("disk-options");
  const latencyMsMin = rng.pick([0.05, 0.2, 1]);
  return {
    latencyMsMin,
    latencyMsMax: latencyMsMin * rng.pick([1.5, 3, 10]),
    fsyncFailChance: rng.pick([0, 0, 0.0001, 0.0005]),
    enospcChance: rng.pick([0, 0, 0.0002]),
    bitFlips: rng.pick([0, 0, 1]),
  };
}

export interface OptionOverrides {
  readonly nodes?: number;
  readonly breakRule?: BreakRule;
  /** Scales the fault phase (tests use < 1 for speed). */
  readonly durationScale?: number;
  /** Run only these episodes (equal weights), e.g. a targeted scenario for one rule. */
  readonly episodes?: readonly Episode[];
  readonly preVote?: boolean;
}

export function drawOptions(seed: number, overrides: OptionOverrides = {}): SimOptions {
  const rng = new Prng(seed).fork("options");
  const nodeCount = overrides.nodes ?? rng.weighted([[3, 2], [5, 6], [7, 2]] as const);

  const maxClockDrift = rng.weighted([[0.01, 7], [0.001, 1], [0.05, 2]] as const);
  const electionTimeoutMsMin = rng.pick([500, 1000]);
  const electionTimeoutMsMax = electionTimeoutMsMin * rng.pick([1.5, 2]);
  const leaseMax = Math.min(800, Math.floor(electionTimeoutMsMin / (1 + maxClockDrift)) - 1);
  const leaseDurationMs = rng.int(400, leaseMax);
  const heartbeatIntervalMs = rng.int(50, Math.min(100, Math.floor(leaseDurationMs / 2)));
  const timings = validateTimings({
    heartbeatIntervalMs,
    electionTimeoutMsMin,
    electionTimeoutMsMax,
    leaseDurationMs,
    maxClockDrift,
  });
  const limits = validateLimits({
    entriesPerAppendMax: rng.pick([1, 1, 2, 4, 8, 64, 1024]),
    bytesPerAppendMax: rng.weighted([[64, 1], [256, 1], [1 << 20, 3]] as const),
    appendsInFlightMax: rng.int(1, 8),
  });

  const latencyMsMin = rng.range(0.3, 1.5);
  const network: NetworkOptions = {
    latencyMsMin,
    latencyMsMax: latencyMsMin + rng.range(0.5, 4),
    tailChance: rng.pick([0, 0.01, 0.03, 0.1]),
    tailMeanMs: rng.range(5, 100),
    lossChance: rng.pick([0, 0, 0.01, 0.03, 0.08]),
    duplicateChance: rng.pick([0, 0.01, 0.05]),
    clientLossChance: rng.pick([0, 0.01, 0.05]),
  };

  const client: ClientOptions = {
    keys: ["x", "y", "z"],
    thinkMsMax: rng.pick([2, 10, 30, 60]),
    attemptTimeoutMs: rng.int(50, 300),
    opDeadlineMs: rng.int(1000, 4000),
    setChance: rng.range(0.3, 0.7),
    followerReadChance: drawFollowerReadChance(seed, overrides.breakRule),
  };

  const w = (never: boolean) => (never ? rng.pick([0, 0.5, 1, 2]) : rng.pick([0.5, 1, 2, 3]));
  const episodeWeights: Record<Episode, number> = {
    chaos: w(true),
    isolateLeader: w(true),
    takeover: w(false),
    figure8: w(false),
    pauseLeader: w(true),
    crashLeader: w(true),
    transfer: w(true),
    crashFollowers: w(true),
    // Drawn last (below), so that the seeds from before these episodes existed keep their settings.
    driftTakeover: 0,
    transferCutOff: 0,
    stoppedClock: 0,
    membership: 0,
    jointCutOff: 0,
    calm: rng.pick([0, 0.3]),
  };

  const preVote = rng.chance(0.6);
  const scale = overrides.durationScale ?? 1;
  const drawn = {
    seed,
    nodeCount,
    spareCount: 0,
    timings,
    limits,
    preVote: overrides.preVote ?? preVote,
    network,
    clientCount: rng.int(3, 6),
    client,
    faultPhaseMs: Math.round(rng.range(15_000, 30_000) * scale),
    // Long enough that a correct cluster elects a leader even after a run of split or refused votes.
    quietMs: 6 * electionTimeoutMsMax + 1000,
    episodeWeights,
    chaosMeanGapMs: rng.range(100, 600),
    breakRule: overrides.breakRule,
    disk: drawDiskOptions(seed),
    snapshots: drawSnapshotOptions(seed),
  };
  episodeWeights.driftTakeover = w(true);
  episodeWeights.transferCutOff = w(true);
  episodeWeights.stoppedClock = w(true);
  episodeWeights.membership = w(false);
  episodeWeights.jointCutOff = w(true);
  if (overrides.episodes !== undefined) {
    for (const e of EPISODES) episodeWeights[e] = overrides.episodes.includes(e) ? 1 : 0;
  }
  const changes = episodeWeights.membership > 0 || episodeWeights.jointCutOff > 0;
  return { ...drawn, spareCount: changes ? 3 : 0 };
}

/** One line per setting group, printed before a seed runs. */
export function describeOptions(o: SimOptions): string[] {
  const t = o.timings, l = o.limits, n = o.network, c = o.client;
  const weights = Object.entries(o.episodeWeights).filter(([, v]) => v > 0).map(([k, v]) => `${k}=${v}`).join(
    " ",
  );
  return [
    `seed ${o.seed}: ${o.nodeCount} nodes (+${o.spareCount} spares), preVote ${o.preVote}, break ${
      o.breakRule ?? "none"
    }`,
    `timings: heartbeat ${t.heartbeatIntervalMs}ms, election ${t.electionTimeoutMsMin}-${t.electionTimeoutMsMax}ms, ` +
    `lease ${t.leaseDurationMs}ms, drift ${t.maxClockDrift}`,
    `limits: ${l.entriesPerAppendMax} entries/append, ${l.bytesPerAppendMax} bytes/append, ${l.appendsInFlightMax} in flight`,
    `network: latency ${n.latencyMsMin.toFixed(2)}-${n.latencyMsMax.toFixed(2)}ms, tail ${n.tailChance}×${
      n.tailMeanMs.toFixed(0)
    }ms, ` +
    `loss ${n.lossChance}, dup ${n.duplicateChance}, client loss ${n.clientLossChance}`,
    `clients: ${o.clientCount}, keys ${
      c.keys.join(",")
    }, think ≤${c.thinkMsMax}ms, attempt timeout ${c.attemptTimeoutMs}ms, ` +
    `deadline ${c.opDeadlineMs}ms, set ${(c.setChance * 100).toFixed(0)}%, follower reads ${
      ((c.followerReadChance ?? 0) * 100).toFixed(0)
    }%`,
    `run: faults ${o.faultPhaseMs}ms then quiet ${o.quietMs}ms; episodes ${weights}; chaos gap ${
      o.chaosMeanGapMs.toFixed(0)
    }ms`,
  ];
}
