/**
 * The Raft core with a leader lease: a synchronous, deterministic state machine.
 *
 * It does no I/O and reads no clock: every call takes `nowMs`, a reading of the caller's local monotonic
 * clock, and randomness comes from the injected `random`. The caller feeds it ticks, messages, proposals and
 * reads, then drains `ready()` and must, in this order, persist (fsync), send, deliver (see `Ready`).
 *
 * Section references are to the Raft paper (Ongaro & Ousterhout 2014) and thesis; "rule N" to SPEC §2.
 *
 * @module
 */
import { findViolations, type InvariantView } from "./invariants.ts";
import { LeaseTracker } from "./lease.ts";
import { RaftLog } from "./log.ts";
import { LeasePromise, LeaseWait } from "./promise.ts";
import { ProgressTracker } from "./progress.ts";
import { Proposals } from "./proposals.ts";
import {
  type ChangeResult,
  Configuration,
  leaveJoint,
  type Membership,
  type MembershipChange,
  planChange,
} from "./membership.ts";
import type { Transfer, TransferResult } from "./transfer.ts";
import type { RaftConfig } from "./config.ts";
import {
  DEFAULT_SNAPSHOT_POLICY,
  PROMOTE_LAG_ENTRIES_MAX,
  SNAPSHOT_WINDOW_CHUNKS,
  validateConfig,
} from "./config.ts";
import type { BrokenRule, Random, StateMachine } from "./state_machine.ts";
import type {
  AppendEntries,
  AppendEntriesResponse,
  Command,
  Entry,
  HardState,
  InstallSnapshot,
  InstallSnapshotResponse,
  LogPosition,
  Message,
  NodeId,
  PersistedState,
  ProposeResult,
  RaftEvent,
  ReadIndex,
  ReadIndexResponse,
  ReadIndexResult,
  ReadResult,
  Ready,
  Refusal,
  RequestVote,
  RequestVoteResponse,
  Role,
  SnapshotChunk,
  SnapshotConfig,
  SnapshotInfo,
  Status,
  TimeoutNow,
  WriteResult,
} from "./types.ts";

const EMPTY_BYTES = new Uint8Array(0);

/** A ReadIndex the leader answers once a majority has acknowledged a heartbeat sent at or after `sinceMs`. */
interface ConfirmingRead {
  readonly from: NodeId;
  readonly id: number;
  readonly tag: number;
  readonly index: number;
  readonly sinceMs: number;
}

/** Follower: ReadIndex requests sent and not answered, at most (more are refused `notReady`). */
export const READ_INDEX_IN_FLIGHT_MAX = 1024;
/** Leader: ReadIndex requests waiting for a heartbeat round to confirm its leadership, at most. */
export const READ_INDEX_CONFIRMING_MAX = 4096;
/** Follower: ack send times remembered for bounded-staleness reads (by AppendEntries seq), at most. */
const ACK_TIMES_MAX = 256;
/**
 * Campaign rounds after a connection reset that retry quickly (see `#fastRounds`): a PreVote round and its
 * campaign take one each, so this is three attempts at an election.
 */
const FAST_ROUNDS_MAX = 6;

export interface CoreOptions {
  /** Negative control for the simulator: switch one safety rule off. Never set in production. */
  readonly brokenRule?: BrokenRule;
  /**
   * Test builds: check the invariants of invariants.ts after every call and throw on the first violation.
   * The simulator and the unit tests turn it on; it costs a scan of the followers' progress per call.
   */
  readonly checkInvariants?: boolean;
}

/**
 * The messages of `rd` that may be sent while `rd` is being persisted rather than after: a leader's
 * AppendEntries, when the Ready changes no term or vote (thesis §10.2.1: the leader writes its log in parallel
 * with replicating it, which takes its own fsync off every write's latency).
 *
 * Safe because nothing these messages carry depends on the unpersisted entries being on the leader's disk: the
 * entries are the leader's own (it is their only source), and their `leaderCommit` can only cover entries
 * acknowledged in an earlier round, so already durable here. The condition on the caller: step no input into
 * the core (above all, no acknowledgement of these very entries) until the persist has finished, so that the
 * leader's own copy counts towards a commit only once it is durable. If the leader crashes before its fsync,
 * followers may hold entries it lost; none was committed (none could be without the leader's copy), and the
 * next leader keeps or overwrites them like any uncommitted entries.
 */
/** True when `c` is the write `w` itself (same session, seq, op and arguments): a retry joins its entry. */
function sameWrite(c: Command, w: Command): boolean {
  if (c.op === "noop" || w.op === "noop" || c.op === "config" || w.op === "config" || c.op !== w.op) {
    return false;
  }
  if (c.clientId !== w.clientId || c.seq !== w.seq || c.key !== w.key) return false;
  if (c.op === "del") return true;
  if (c.value !== (w as typeof c).value) return false;
  if (c.op === "set") return true;
  const we = (w as typeof c).expect;
  return "version" in c.expect
    ? "version" in we && we.version === c.expect.version
    : "value" in we && we.value === c.expect.value;
}

export function sendableBeforePersist(rd: Ready): readonly Message[] {
  if (rd.hardState !== undefined || rd.entries.length === 0) return [];
  return rd.messages.filter((m) => m.type === "AppendEntries");
}

export class RaftCore {
  readonly #cfg: RaftConfig;
  readonly #sm: StateMachine;
  readonly #random: Random;
  readonly #broken: BrokenRule | undefined;
  readonly #checking: boolean;
  #lastView: InvariantView | undefined;
  readonly #inflightTimeoutMs: number;

  // Membership (membership.ts): the latest configuration in the log, or the bootstrap one.
  readonly #bootstrap: Membership;
  #conf: Configuration;
  /** Log index of `#conf` (0: bootstrap). */
  #confIndex = 0;
  /** Everyone who receives the log, this node excepted (voters of every set in force, and learners). */
  #peers: readonly NodeId[] = [];

  // Persistent state (Raft Figure 2).
  #term: number;
  #votedFor: NodeId;
  /** The largest lease duration this node ever promised (persisted with the hard state, rule 6). */
  #promisedLeaseMs: number;
  readonly #log: RaftLog;

  // Volatile state.
  #role: Role = "follower";
  #leaderId: NodeId = 0;
  #commitIndex = 0;
  /** The last entry applied to the state machine (the commit index, but while a snapshot is being restored). */
  #appliedIndex = 0;
  /**
   * A snapshot was installed: "pending" until the Ready announcing it is handed out, "handedOut" until the next
   * input (by then the caller has restored the state machine from it). Nothing is applied meanwhile.
   */
  #restore: "pending" | "handedOut" | undefined;
  #nowMs: number;
  #electionDeadlineMs = 0;
  /** Local time this node last heard from the leader it follows (for PreVote's leader stickiness). */
  #leaderContactMs = -Infinity;
  /**
   * Rounds (PreVote or campaign) left that retry after one to three heartbeat intervals instead of a full
   * election timeout: set when the leader's connection was reset (`leaderConnectionLost`), so that a split vote
   * among the followers that all noticed at once costs a few heartbeats, not an election timeout. Cleared on
   * hearing a leader.
   */
  #fastRounds = 0;

  /** Rules 4/6: until when (local time) this node may have promised some leader a lease, and that leader's term. */
  readonly #promise: LeasePromise;

  // Candidate state.
  #preCandidate = false;
  #votes = new Set<NodeId>();
  /** Rule 5: the wait the candidate would have to serve if it wins (local time). */
  readonly #wait: LeaseWait;

  // Leader state.
  #progress = new ProgressTracker([], 0);
  #lease: LeaseTracker;
  #leaderSinceMs = 0;
  /** Local time of the last `dropLease` in this term: the leader gets a fresh grace period from there. */
  #leaseDroppedAtMs = -Infinity;
  #heartbeatDueMs = 0;
  /** Index of this leader's NO-OP: nothing is client-visible until it is committed (rule 7). */
  #termStartIndex = 0;
  #waitAnnounced = true;
  /** Callers waiting for their entries, and committed results held back until the leader is ready (rule 7). */
  readonly #proposals = new Proposals();
  #transfer: Transfer | undefined;
  /** Lease revoked for the rest of this term (planned transfer, rule 8). */
  #leaseRevoked = false;
  #flushNeeded = false;

  // ReadIndex (issue 16, thesis §6.4).
  /** Follower: tags of reads to ask the leader about in the next ReadIndex message (sent at the flush). */
  #readBatch: number[] = [];
  /** Follower: ReadIndex requests sent and not answered: id → the reads' tags, the leader asked, send time. */
  readonly #readsSent = new Map<number, { tags: number[]; leader: NodeId; sentMs: number }>();
  #nextReadId = 1;
  /** Leader: requests waiting for acks of a heartbeat sent at or after `sinceMs` (leadership confirmed). */
  #readsConfirming: ConfirmingRead[] = [];
  /** Leader: a heartbeat round must go out at the next flush to confirm leadership for waiting reads. */
  #confirmNeeded = false;
  #readIndexes: ReadIndexResult[] = [];

  // Bounded-staleness reads (issue 16).
  /** Follower: local time at which each AppendEntries `seq` of `#ackTimesOf` (term/leader) was acknowledged. */
  readonly #ackTimes = new Map<number, number>();
  #ackTimesOf = "";
  /** Local time as of which the applied state is known current (see `staleReadRefusal`); -Infinity: never. */
  #freshAsOfMs = -Infinity;
  /**
   * The highest term whose leader this node knows was ready (rule 7: old leases waited out, an entry of its
   * term committed). Entries a newer leader committed before it was ready are not visible yet (their writes
   * are held, the old leader may still serve reads without them), so a follower serves no read while its
   * applied state holds an entry of a term above this one.
   */
  #readyTerm = 0;

  // Snapshots (§7).
  /** The newest snapshot this node holds (taken or installed); undefined when none. */
  #snapshot: SnapshotInfo | undefined;
  /** A snapshot being received from the leader: how many bytes of it in a row are persisted or pending. */
  #receiving: { index: number; term: number; leader: NodeId; offset: number } | undefined;
  readonly #trailingEntries: number;
  readonly #chunkBytes: number;

  // Output, drained by ready().
  #hardStateDirty = false;
  #commitDirty = false;
  #snapshotChunk: SnapshotChunk | undefined;
  #installed: LogPosition | undefined;
  #compactLog: Ready["compactLog"];
  #messages: Message[] = [];
  #results: WriteResult[] = [];
  #events: RaftEvent[] = [];

  constructor(
    config: RaftConfig,
    persisted: PersistedState,
    stateMachine: StateMachine,
    random: Random,
    nowMs: number,
    options: CoreOptions = {},
  ) {
    this.#cfg = validateConfig(config);
    this.#sm = stateMachine;
    this.#random = random;
    this.#broken = options.brokenRule;
    this.#checking = options.checkInvariants ?? false;
    this.#bootstrap = config.join ? { members: [] } : {
      members: config.voterIds.map((id) => ({ id, address: config.addresses?.get(id) ?? "", voter: true })),
    };
    this.#conf = new Configuration(this.#bootstrap);
    this.#promise = new LeasePromise(config.maxClockDrift, this.#broken === "promise-margin");
    this.#wait = new LeaseWait(config.maxClockDrift, this.#broken === "wait-margin");
    this.#inflightTimeoutMs = 2 * config.heartbeatIntervalMs;
    this.#nowMs = nowMs;
    this.#term = persisted.hardState.term;
    this.#votedFor = persisted.hardState.votedFor;
    this.#trailingEntries = config.snapshotTrailingEntries ?? DEFAULT_SNAPSHOT_POLICY.snapshotTrailingEntries;
    this.#chunkBytes = config.snapshotChunkBytes ?? DEFAULT_SNAPSHOT_POLICY.snapshotChunkBytes;
    this.#log = new RaftLog(persisted.entries, persisted.logStart);
    const snap = persisted.snapshot;
    const start = this.#log.start;
    if (start.index > 0 && (snap === undefined || snap.index < start.index)) {
      throw new Error(`log compacted up to ${start.index} without a snapshot covering it`);
    }
    if (snap !== undefined && this.#log.term(snap.index) !== snap.term) {
      throw new Error(
        `snapshot at ${snap.index}/t${snap.term} does not match the log (${start.index}..${this.#log.lastIndex})`,
      );
    }
    this.#snapshot = snap;
    this.#promisedLeaseMs = persisted.hardState.promisedLeaseMs ?? 0;
    this.#refreshConfig(false);
    this.#lease = this.#newLease();
    // The caller restored the snapshot into the state machine; replay what is known committed after it, so
    // the state machine matches the log (commit index is a hint).
    const applied = snap?.index ?? 0;
    const commit = Math.max(applied, Math.min(persisted.commitIndex, this.#log.lastIndex));
    for (let i = applied + 1; i <= commit; i++) this.#sm.apply(this.#log.entry(i));
    this.#commitIndex = commit;
    this.#appliedIndex = commit;
    // Rule 6: a restarted node may have promised a lease just before it stopped and has forgotten it;
    // assume a full promise from now. A node that never saw a term cannot have promised anything.
    // It may have promised a longer lease than its own configured one (a leader's, or its own before an
    // operator shortened it): assume the largest it ever promised.
    if (this.#term > 0 && this.#broken !== "restart-promise") {
      const assumedMs = this.#broken === "timing-mismatch"
        ? config.leaseDurationMs
        : Math.max(config.leaseDurationMs, this.#promisedLeaseMs);
      this.#promise.assumeAfterRestart(nowMs, assumedMs, this.#term);
    }
    this.#resetElectionTimer(nowMs);
    if (this.#checking) this.#check("start");
  }

  // ------------------------------------------------------------------------------------------------------
  // Inputs.

  /** Fires whatever timers are due at local time `nowMs`. */
  tick(nowMs: number): void {
    this.#tickUnchecked(nowMs);
    if (this.#checking) this.#check("tick");
  }

  #tickUnchecked(nowMs: number): void {
    this.#beginInput(nowMs);
    if (this.#role === "leader") {
      this.#tickLeader(nowMs);
    } else if (nowMs >= this.#electionDeadlineMs && !this.#conf.isVoter(this.#cfg.id)) {
      // A learner, a joining node or a removed one never campaigns (it waits for the leader's log).
      this.#resetElectionTimer(nowMs);
    } else if (nowMs >= this.#electionDeadlineMs) {
      this.#events.push({ kind: "electionTimeout", term: this.#term });
      if (this.#cfg.preVote) this.#campaignPreVote(nowMs);
      else this.#campaign(nowMs, 0);
    }
  }

  /** The local time at which `tick` must be called next. */
  nextWakeMs(): number {
    if (this.#role !== "leader") return this.#electionDeadlineMs;
    let wake = Math.min(this.#heartbeatDueMs, this.#stepDownDeadlineMs());
    if (!this.#waitAnnounced) wake = Math.min(wake, this.#wait.untilMs);
    if (this.#transfer) wake = Math.min(wake, this.#transfer.deadlineMs);
    return wake;
  }

  step(nowMs: number, msg: Message): void {
    this.#stepUnchecked(nowMs, msg);
    if (this.#checking) this.#check(`step(${msg.type} from ${msg.from})`);
  }

  #stepUnchecked(nowMs: number, msg: Message): void {
    this.#beginInput(nowMs);
    // Any node may talk to us (a leader we do not know of yet, a learner); votes count only from voters.
    if (msg.to !== this.#cfg.id) return;
    switch (msg.type) {
      case "RequestVote":
        return this.#onRequestVote(nowMs, msg);
      case "RequestVoteResponse":
        return this.#onRequestVoteResponse(nowMs, msg);
      case "AppendEntries":
        return this.#onAppendEntries(nowMs, msg);
      case "AppendEntriesResponse":
        return this.#onAppendEntriesResponse(nowMs, msg);
      case "TimeoutNow":
        return this.#onTimeoutNow(nowMs, msg);
      case "InstallSnapshot":
        return this.#onInstallSnapshot(nowMs, msg);
      case "InstallSnapshotResponse":
        return this.#onInstallSnapshotResponse(nowMs, msg);
      case "ReadIndex":
        return this.#onReadIndex(nowMs, msg);
      case "ReadIndexResponse":
        return this.#onReadIndexResponse(nowMs, msg);
    }
  }

  /**
   * The caller has made a snapshot of the state machine at `info.index` durable (it must be applied here:
   * at most the commit index, and of the log's term there). The log is compacted up to `info.index` minus
   * the trailing entries kept for lagging followers; returns the index compacted to, which the caller then
   * compacts its stored log to. Followers that need compacted entries are sent this snapshot.
   */
  snapshotTaken(info: SnapshotInfo): number {
    if (info.index > this.#appliedIndex) {
      throw new Error(`snapshot at ${info.index} beyond the applied index ${this.#appliedIndex}`);
    }
    if (this.#snapshot !== undefined && info.index < this.#snapshot.index) return this.#log.start.index;
    const term = this.#log.term(info.index);
    if (term !== info.term) {
      throw new Error(`snapshot at ${info.index}/t${info.term}, but the log has term ${term} there`);
    }
    this.#snapshot = {
      index: info.index,
      term: info.term,
      sizeBytes: info.sizeBytes,
      config: this.configAt(info.index),
    };
    const compactedTo = this.#log.compactTo(info.index - this.#trailingEntries);
    this.#compactLog = {
      snapshot: { index: info.index, term: info.term },
      compactTo: this.#log.start,
    };
    this.#events.push({ kind: "snapshotTaken", index: info.index, term: info.term, compactedTo });
    return compactedTo;
  }

  /**
   * The configuration in force at `index` (at least the snapshot's index, at most the last index): the latest
   * configuration entry up to it in the retained log, else the snapshot's, else the bootstrap one. What a
   * snapshot at `index` carries.
   */
  configAt(index: number): SnapshotConfig {
    const snapConf = this.#snapshot?.config;
    const everUsed = new Set<NodeId>(this.#bootstrap.members.map((m) => m.id));
    for (const id of snapConf?.everUsed ?? []) everUsed.add(id);
    let found: { index: number; membership: Membership } | undefined;
    const last = Math.min(index, this.#log.lastIndex);
    for (let i = last; i > this.#log.start.index; i--) {
      const c = this.#log.entry(i).command;
      if (c.op !== "config") continue;
      found ??= { index: i, membership: c.membership };
      for (const m of c.membership.members) everUsed.add(m.id);
      for (const id of c.membership.outgoingVoters ?? []) everUsed.add(id);
    }
    const at = found ??
      (snapConf !== undefined && snapConf.index <= index
        ? { index: snapConf.index, membership: snapConf.membership }
        : { index: 0, membership: this.#bootstrap });
    for (const m of at.membership.members) everUsed.add(m.id);
    return { ...at, everUsed: [...everUsed].sort((a, b) => a - b) };
  }

  /** The last entry applied to the state machine (what a snapshot taken now would include). */
  get appliedIndex(): number {
    return this.#appliedIndex;
  }

  /** The term of the entry at `index` (its compacted start's included), undefined when not held. */
  termAt(index: number): number | undefined {
    return this.#log.term(index);
  }

  /** The newest snapshot this node holds, undefined when none. */
  get snapshot(): SnapshotInfo | undefined {
    return this.#snapshot;
  }

  /** The last compacted entry (index 0 when nothing was compacted). */
  get logStart(): LogPosition {
    return this.#log.start;
  }

  /** Entries in the log beyond the snapshot (what the snapshot threshold counts). */
  get entriesSinceSnapshot(): number {
    return this.#log.lastIndex - (this.#snapshot?.index ?? 0);
  }

  /** Proposes a SET. The answer comes in `Ready.results` with `tag` once it is committed and visible. */
  propose(nowMs: number, command: Command, tag: number): ProposeResult {
    const out = this.#proposeUnchecked(nowMs, command, tag);
    if (this.#checking) this.#check("propose");
    return out;
  }

  #proposeUnchecked(nowMs: number, command: Command, tag: number): ProposeResult {
    this.#beginInput(nowMs);
    const refusal = this.#leaderRefusal();
    if (refusal) return { ok: false, refusal };
    if (command.op !== "noop" && command.op !== "config" && command.clientId !== "") {
      const verdict = this.#sm.checkSession(command);
      // Exactly-once: a retry of an applied write is answered (with its first outcome), not appended again.
      if (verdict.kind === "retry") {
        if (!this.#isReady(nowMs)) return { ok: false, refusal: this.#notReady(nowMs) };
        const outcome = this.#sm.outcomeOf?.(command.clientId, command.seq);
        this.#results.push({ tag, index: this.#commitIndex, ok: true, ...(outcome ? { outcome } : {}) });
        return { ok: true, index: this.#commitIndex };
      }
      // Below the applied seq: final whatever the uncommitted tail holds (a session's seq only grows).
      if (verdict.kind === "stale") {
        return { ok: false, refusal: { kind: "staleSequence", lastSeq: verdict.lastSeq } };
      }
      // "expired" is decided at apply: an entry of the uncommitted tail may still open the session.
      // A retry of a SET still in the uncommitted tail joins the original entry (the same write only: another
      // write with that seq is appended and refused as stale when applied).
      for (let i = this.#log.lastIndex; i > this.#commitIndex; i--) {
        const c = this.#log.entry(i).command;
        if (sameWrite(c, command)) {
          // Even an earlier term's copy: a leader never drops its own log, so it commits with the next entry
          // of this term (or, if this node steps down first, the caller is told to retry).
          this.#proposals.add(i, tag);
          return { ok: true, index: i };
        }
      }
    }
    const index = this.#appendOwn(command);
    this.#proposals.add(index, tag);
    return { ok: true, index };
  }

  /** A GET: answered from applied state iff this node is the leader holding a ready lease (no message sent). */
  read(nowMs: number, key: string): ReadResult {
    const out = this.#readUnchecked(nowMs, key);
    if (this.#checking) this.#check("read");
    return out;
  }

  #readUnchecked(nowMs: number, key: string): ReadResult {
    this.#beginInput(nowMs); // entries held back by an installed snapshot are applied before the read
    const refusal = this.#leaseReadRefusal(nowMs);
    if (refusal) return { ok: false, refusal };
    const value = this.#sm.get(key);
    return { ok: true, value: value ?? "", found: value !== undefined };
  }

  /**
   * Why a lease read (GET, LIST, any read of applied state) cannot be served at `nowMs`; undefined when this
   * node is the leader holding a ready lease, so the caller may read the state machine right now.
   */
  leaseReadRefusal(nowMs: number): Refusal | undefined {
    this.#beginInput(nowMs);
    const out = this.#leaseReadRefusal(nowMs);
    if (this.#checking) this.#check("read");
    return out;
  }

  /**
   * The lease-read rule, written once (GET, LIST, `leaseHeldUntilMs` and the status all ask it): the leader,
   * not transferring (its lease is revoked for the term), ready (rule 7) and inside its lease. Reads nothing
   * but state, so the checkers may ask it at any instant.
   */
  #leaseReadRefusal(nowMs: number): Refusal | undefined {
    const refusal = this.#leaderRefusal();
    if (refusal) return refusal;
    if (!this.#isReady(nowMs)) return this.#notReady(nowMs);
    if (nowMs >= this.#lease.leaseEndMs) {
      return { kind: "notReady", retryAfterMs: this.#cfg.heartbeatIntervalMs };
    }
    return undefined;
  }

  // ------------------------------------------------------------------------------------------------------
  // Follower reads (issue 16).

  /**
   * A linearizable read served by any node (ReadIndex, Raft thesis §6.4). The answer comes in
   * `Ready.readIndexes` under `tag`: an index, meaning "serve the read from the state machine once this node
   * has applied it", or a refusal. Returns a refusal at once when there is no leader to ask or too many
   * requests are in flight. A follower batches the reads of one turn into one ReadIndex message to its
   * leader; the leader answers with its commit index when it holds its lease, or once a heartbeat round sent
   * after the request arrived is acknowledged by a majority, and never before it has committed an entry of
   * its term (rule 7). The leader answers its own reads the same way, with no message.
   */
  requestReadIndex(nowMs: number, tag: number): Refusal | undefined {
    const out = this.#requestReadIndexUnchecked(nowMs, tag);
    if (this.#checking) this.#check("requestReadIndex");
    return out;
  }

  #requestReadIndexUnchecked(nowMs: number, tag: number): Refusal | undefined {
    this.#beginInput(nowMs);
    this.#expireReadsSent(nowMs);
    if (this.#role === "leader") return this.#leaderReadIndex(nowMs, this.#cfg.id, 0, tag);
    if (this.#role !== "follower" || this.#leaderId === 0) return { kind: "notLeader", leaderId: 0 };
    if (this.#readsSent.size >= READ_INDEX_IN_FLIGHT_MAX) {
      return { kind: "notReady", retryAfterMs: this.#cfg.heartbeatIntervalMs };
    }
    this.#readBatch.push(tag);
    return undefined;
  }

  /**
   * A read that may be stale by at most `maxStalenessMs` (issue 16, `--max-staleness`): undefined when this
   * node may answer it from its applied state right now. The leader under its lease is current. A follower
   * is current as of the moment it acknowledged an AppendEntries that its leader then answered with a
   * message sent while holding a ready lease (`ackedSeq`, `leaseCommitIndex`), once it has applied that
   * message's `leaseCommitIndex`: every write visible anywhere then is at or below that index. The age of
   * that moment, on this node's clock stretched by the drift budget, must be within the bound; else the
   * refusal `tooStale` says how old the state may be.
   */
  staleReadRefusal(nowMs: number, maxStalenessMs: number): Refusal | undefined {
    this.#beginInput(nowMs);
    if (this.#leaseReadRefusal(nowMs) === undefined) return undefined;
    if (!this.#appliedVisible()) {
      return { kind: "tooStale", stalenessMs: Infinity, maxStalenessMs, leaderId: this.#leaderId };
    }
    const ageMs = (nowMs - this.#freshAsOfMs) * (1 + this.#cfg.maxClockDrift);
    if (ageMs <= maxStalenessMs) return undefined;
    return { kind: "tooStale", stalenessMs: ageMs, maxStalenessMs, leaderId: this.#leaderId };
  }

  /**
   * The connection to peer `peer` was reset (its process went away: a reset or close, not a timeout). When
   * that peer is this follower's leader, a PreVote round starts within a random fraction of the heartbeat
   * interval instead of after the election timeout, and this node stops counting the leader as heard from
   * (it grants the others' PreVotes). Safety does not depend on it: the new leader still waits out every
   * promise its voters report (rule 5). Nothing happens without PreVote, off a follower, or for another peer;
   * a silent leader (partition, stopped process) still relies on the election timer.
   */
  leaderConnectionLost(nowMs: number, peer: NodeId): void {
    this.#beginInput(nowMs);
    if (
      this.#cfg.preVote && this.#role === "follower" && peer !== 0 && peer === this.#leaderId &&
      this.#conf.isVoter(this.#cfg.id)
    ) {
      this.#events.push({ kind: "leaderConnectionLost", leader: peer, term: this.#term });
      this.#leaderId = 0;
      this.#leaderContactMs = -Infinity;
      this.#failReadsSent({ kind: "notLeader", leaderId: 0 });
      const soonMs = nowMs + this.#random() * this.#cfg.heartbeatIntervalMs;
      this.#electionDeadlineMs = Math.min(this.#electionDeadlineMs, soonMs);
      this.#fastRounds = FAST_ROUNDS_MAX;
    }
    if (this.#checking) this.#check("leaderConnectionLost");
  }

  /**
   * True when a read answered by `requestReadIndex` with `index` may be served from this node's applied
   * state now: it has applied `index`, and every entry it applied is visible (`#readyTerm`; a leader is
   * ready). The caller waits (with a deadline) while false.
   */
  readIndexServable(index: number): boolean {
    if (this.#broken === "read-index") return true; // negative control: serve without waiting to apply
    if (this.#restore !== undefined || this.#appliedIndex < index) return false;
    return this.#appliedVisible();
  }

  /** Every applied entry is visible: its term's leader (or a newer one) is known to have been ready. */
  #appliedVisible(): boolean {
    if (this.#role === "leader" && this.#isReady(this.#nowMs)) return true;
    return (this.#log.term(this.#appliedIndex) ?? Infinity) <= this.#readyTerm;
  }

  /** The leader's read index for a read that arrived now, or why not, or "confirm" (a heartbeat round first). */
  #readIndexNow(nowMs: number): number | Refusal | "confirm" {
    const refusal = this.#leaderRefusal();
    if (refusal) return refusal;
    if (!this.#isReady(nowMs)) return this.#notReady(nowMs);
    if (nowMs < this.#lease.leaseEndMs) return this.#commitIndex;
    return "confirm";
  }

  /** Leader: answers (or queues) a ReadIndex from `from` (itself: `tag`, a remote: its request `id`). */
  #leaderReadIndex(nowMs: number, from: NodeId, id: number, tag: number): Refusal | undefined {
    const a = this.#readIndexNow(nowMs);
    if (a === "confirm") {
      if (this.#readsConfirming.length >= READ_INDEX_CONFIRMING_MAX) {
        const refusal: Refusal = { kind: "notReady", retryAfterMs: this.#cfg.heartbeatIntervalMs };
        if (from === this.#cfg.id) return refusal;
        this.#answerReadIndex(from, id, tag, refusal);
        return undefined;
      }
      this.#readsConfirming.push({ from, id, tag, index: this.#commitIndex, sinceMs: nowMs });
      this.#confirmNeeded = true;
      return undefined;
    }
    if (typeof a !== "number" && from === this.#cfg.id) return a;
    this.#answerReadIndex(from, id, tag, a);
    return undefined;
  }

  #answerReadIndex(to: NodeId, id: number, tag: number, a: number | Refusal): void {
    if (to === this.#cfg.id) {
      this.#readIndexes.push(typeof a === "number" ? { tag, index: a } : { tag, refusal: a });
      return;
    }
    const leaderId = typeof a === "number"
      ? this.#cfg.id
      : a.kind === "notLeader" || a.kind === "transferring" || a.kind === "tooStale"
      ? a.leaderId
      : this.#cfg.id;
    this.#send({
      type: "ReadIndexResponse",
      from: this.#cfg.id,
      to,
      term: this.#term,
      id,
      readIndex: typeof a === "number" ? Math.max(a, 1) : 0,
      leaderId,
      retryAfterMs: typeof a !== "number" && a.kind === "notReady" ? Math.max(1, a.retryAfterMs) : 0,
    });
  }

  /** Leader: answers the reads whose confirming heartbeat round a majority has acknowledged. */
  #answerConfirmed(): void {
    if (this.#readsConfirming.length === 0) return;
    const confirmedSinceMs = this.#lease.leaseEndMs - this.#cfg.leaseDurationMs;
    const waiting: ConfirmingRead[] = [];
    for (const r of this.#readsConfirming) {
      if (r.sinceMs <= confirmedSinceMs) this.#answerReadIndex(r.from, r.id, r.tag, r.index);
      else waiting.push(r);
    }
    this.#readsConfirming = waiting;
  }

  #onReadIndex(nowMs: number, m: ReadIndex): void {
    // A ReadIndex changes no term (it is not a Raft RPC): a leader answers whatever term the asker is in, as
    // long as it is not newer than its own (then this node is the stale one).
    if (this.#role !== "leader" || m.term > this.#term) {
      this.#answerReadIndex(m.from, m.id, 0, { kind: "notLeader", leaderId: this.#leaderId });
      return;
    }
    this.#leaderReadIndex(nowMs, m.from, m.id, 0);
  }

  #onReadIndexResponse(nowMs: number, m: ReadIndexResponse): void {
    this.#expireReadsSent(nowMs);
    const sent = this.#readsSent.get(m.id);
    if (sent === undefined || sent.leader !== m.from) return;
    this.#readsSent.delete(m.id);
    if (m.readIndex > 0 && m.term > this.#readyTerm) this.#readyTerm = m.term; // it answers only when ready
    for (const tag of sent.tags) {
      this.#readIndexes.push(
        m.readIndex > 0 ? { tag, index: m.readIndex } : {
          tag,
          refusal: m.retryAfterMs > 0
            ? { kind: "notReady", retryAfterMs: m.retryAfterMs }
            : { kind: "notLeader", leaderId: m.leaderId },
        },
      );
    }
  }

  /** Follower: sends the reads of this turn as one ReadIndex (at the flush). */
  #sendReadBatch(): void {
    const tags = this.#readBatch;
    this.#readBatch = [];
    if (this.#role === "leader") {
      for (const tag of tags) {
        const refusal = this.#leaderReadIndex(this.#nowMs, this.#cfg.id, 0, tag);
        if (refusal) this.#readIndexes.push({ tag, refusal });
      }
      return;
    }
    if (this.#role !== "follower" || this.#leaderId === 0) {
      for (const tag of tags) this.#readIndexes.push({ tag, refusal: { kind: "notLeader", leaderId: 0 } });
      return;
    }
    // One request in flight at a time (or per heartbeat interval, should one be lost): the reads arriving
    // meanwhile wait for its answer and go together in the next one, so a busy follower sends one ReadIndex
    // per round trip however many reads it serves.
    let newestMs = -Infinity;
    for (const r of this.#readsSent.values()) if (r.leader === this.#leaderId) newestMs = r.sentMs;
    if (this.#nowMs - newestMs < this.#cfg.heartbeatIntervalMs) {
      this.#readBatch = tags;
      return;
    }
    const id = this.#nextReadId++;
    this.#readsSent.set(id, { tags, leader: this.#leaderId, sentMs: this.#nowMs });
    this.#send({ type: "ReadIndex", from: this.#cfg.id, to: this.#leaderId, term: this.#term, id });
  }

  /** Follower: requests unanswered for longer than the maximum election timeout are given up (lost). */
  #expireReadsSent(nowMs: number): void {
    for (const [id, r] of this.#readsSent) {
      if (nowMs - r.sentMs < this.#cfg.electionTimeoutMsMax) break;
      this.#readsSent.delete(id);
      for (const tag of r.tags) {
        this.#readIndexes.push({ tag, refusal: { kind: "notLeader", leaderId: this.#leaderId } });
      }
    }
  }

  /** Follower: the leader changed or is gone; the reads asked of it are refused (the caller retries). */
  #failReadsSent(refusal: Refusal): void {
    for (const r of this.#readsSent.values()) {
      for (const tag of r.tags) this.#readIndexes.push({ tag, refusal });
    }
    this.#readsSent.clear();
  }

  /** Leader stepping down: the reads waiting for confirmation are refused. */
  #failReadsConfirming(leaderId: NodeId): void {
    const waiting = this.#readsConfirming;
    this.#readsConfirming = [];
    this.#confirmNeeded = false;
    for (const r of waiting) this.#answerReadIndex(r.from, r.id, r.tag, { kind: "notLeader", leaderId });
  }

  /**
   * Hands leadership to `to` (0: the most up-to-date follower). The lease is revoked first, so the new leader
   * need not wait for it and no two nodes serve at once (rule 8). Aborts by stepping down if the target has
   * not taken over within the minimum election timeout.
   */
  transferLeadership(nowMs: number, to: NodeId): TransferResult {
    const out = this.#transferLeadershipUnchecked(nowMs, to);
    if (this.#checking) this.#check("transferLeadership");
    return out;
  }

  #transferLeadershipUnchecked(nowMs: number, to: NodeId): TransferResult {
    this.#beginInput(nowMs);
    if (this.#role !== "leader") return { ok: false, reason: `node ${this.#cfg.id} is not the leader` };
    if (this.#transfer) return { ok: false, reason: `a transfer to node ${this.#transfer.to} is under way` };
    if (!this.#isReady(nowMs)) {
      return { ok: false, reason: "the leader is not ready yet (lease wait or no commit)" };
    }
    const voterPeers = this.#peers.filter((p) => this.#conf.voters.includes(p));
    if (voterPeers.length === 0) {
      return { ok: false, reason: "a single-voter cluster has no one to transfer to" };
    }
    let target = to;
    if (target === 0) target = this.#progress.mostUpToDate(voterPeers, (id) => this.#lease.ackedSendMs(id));
    if (!voterPeers.includes(target)) {
      return { ok: false, reason: `node ${target} is not a voter of this cluster` };
    }
    this.#leaseRevoked = this.#broken !== "transfer-revoke";
    this.#transfer = {
      to: target,
      deadlineMs: nowMs + this.#cfg.electionTimeoutMsMin,
      timeoutNowSent: false,
    };
    this.#events.push({ kind: "transferStarted", to: target, term: this.#term });
    this.#maybeSendTimeoutNow();
    if (!this.#transfer.timeoutNowSent) this.#sendAppend(target, nowMs, false);
    return { ok: true, to: target };
  }

  /**
   * Clock sanity (src/clock/): the caller saw its clock stall, jump, or disagree with a peer's, so the
   * lease this leader computed may outlast the followers' promises in real time. Drop it: no lease reads until
   * acks of heartbeats sent from now on renew it (writes still commit through a majority); a heartbeat goes out at
   * once, and the leader gets a fresh grace period `D` before it steps down for want of renewal. A no-op on
   * a follower or candidate (their promises and waits only get longer when their clock is slow).
   */
  dropLease(nowMs: number, reason: string): void {
    this.#advanceClock(nowMs);
    if (this.#role === "leader") {
      this.#lease.drop();
      this.#leaseDroppedAtMs = nowMs;
      this.#events.push({ kind: "leaseDropped", term: this.#term, reason });
      this.#heartbeatDueMs = nowMs + this.#cfg.heartbeatIntervalMs;
      this.#broadcastAppend(nowMs, true);
    }
    if (this.#checking) this.#check("dropLease");
  }

  // ------------------------------------------------------------------------------------------------------
  // Outputs.

  hasReady(): boolean {
    this.#flush();
    return this.#hardStateDirty || this.#log.hasUnstable || this.#commitDirty || this.#messages.length > 0 ||
      this.#results.length > 0 || this.#events.length > 0 || this.#snapshotChunk !== undefined ||
      this.#compactLog !== undefined || this.#readIndexes.length > 0;
  }

  /** Drains what the caller must persist, send and deliver (in that order). */
  ready(): Ready {
    this.#flush();
    if (this.#checking) this.#check("ready");
    const unstable = this.#log.takeUnstable();
    const hardState: HardState | undefined = this.#hardStateDirty
      ? this.#promisedLeaseMs > 0
        ? { term: this.#term, votedFor: this.#votedFor, promisedLeaseMs: this.#promisedLeaseMs }
        : { term: this.#term, votedFor: this.#votedFor }
      : undefined;
    const r: Ready = {
      hardState,
      appendFrom: unstable?.appendFrom,
      entries: unstable?.entries ?? [],
      commitIndex: this.#commitDirty ? this.#commitIndex : undefined,
      snapshotChunk: this.#snapshotChunk,
      installSnapshot: this.#installed,
      compactLog: this.#compactLog,
      messages: this.#messages,
      results: this.#results,
      events: this.#events,
      ...(this.#readIndexes.length > 0 ? { readIndexes: this.#readIndexes } : {}),
    };
    this.#readIndexes = [];
    this.#hardStateDirty = false;
    this.#commitDirty = false;
    if (this.#installed !== undefined) this.#restore = "handedOut";
    this.#snapshotChunk = undefined;
    this.#installed = undefined;
    this.#compactLog = undefined;
    this.#messages = [];
    this.#results = [];
    this.#events = [];
    return r;
  }

  status(nowMs: number): Status {
    const leader = this.#role === "leader";
    return {
      id: this.#cfg.id,
      role: this.#role,
      term: this.#term,
      votedFor: this.#votedFor,
      leaderId: this.#leaderId,
      commitIndex: this.#commitIndex,
      lastLogIndex: this.#log.lastIndex,
      lastLogTerm: this.#log.lastTerm,
      snapshotIndex: this.#snapshot?.index ?? 0,
      logEntries: this.#log.length,
      leaseRemainingMs: leader && !this.#leaseRevoked ? Math.max(0, this.#lease.leaseEndMs - nowMs) : 0,
      leaseWaitRemainingMs: leader ? Math.max(0, this.#wait.untilMs - nowMs) : 0,
      servingReads: this.leaseHeldUntilMs(nowMs) > nowMs,
      promiseRemainingMs: this.#promise.remainingMs(nowMs),
      membership: this.#conf.membership,
      membershipIndex: this.#confIndex,
    };
  }

  /** Local time until which this node serves lease reads without any further event; -Infinity if not now. */
  leaseHeldUntilMs(nowMs: number): number {
    return this.#leaseReadRefusal(nowMs) === undefined ? this.#lease.leaseEndMs : -Infinity;
  }

  /**
   * Leader only (empty otherwise): each follower's match index and the round trip of its newest acknowledged
   * AppendEntries in this term. Read-only, for metrics; nothing here changes the core's behaviour.
   */
  followers(): { id: NodeId; matchIndex: number; roundTripMs: number | undefined }[] {
    if (this.#role !== "leader") return [];
    return this.#peers.map((id) => ({
      id,
      matchIndex: this.#progress.get(id)?.match ?? 0,
      roundTripMs: this.#lease.roundTripMs(id),
    }));
  }

  log(): readonly Entry[] {
    return this.#log.all();
  }

  get commitIndex(): number {
    return this.#commitIndex;
  }

  get id(): NodeId {
    return this.#cfg.id;
  }

  get role(): Role {
    return this.#role;
  }

  get term(): number {
    return this.#term;
  }

  get leaderId(): NodeId {
    return this.#leaderId;
  }

  // ------------------------------------------------------------------------------------------------------
  // Elections (§5.2, thesis §9.6 PreVote).

  #campaignPreVote(nowMs: number): void {
    this.#failReadsSent({ kind: "notLeader", leaderId: 0 });
    this.#role = "candidate";
    this.#preCandidate = true;
    this.#leaderId = 0;
    this.#votes = new Set([this.#cfg.id]);
    this.#resetElectionTimer(nowMs);
    this.#fastRetry(nowMs);
    if (this.#won()) return this.#campaign(nowMs, 0);
    for (const peer of this.#voterPeers()) {
      this.#send({
        type: "RequestVote",
        from: this.#cfg.id,
        to: peer,
        term: this.#term + 1,
        lastLogIndex: this.#log.lastIndex,
        lastLogTerm: this.#log.lastTerm,
        preVote: true,
        revokedLeaseTerm: 0,
      });
    }
  }

  #campaign(nowMs: number, revokedLeaseTerm: number): void {
    this.#failReadsSent({ kind: "notLeader", leaderId: 0 });
    this.#role = "candidate";
    this.#preCandidate = false;
    this.#term += 1;
    this.#votedFor = this.#cfg.id;
    this.#hardStateDirty = true;
    this.#leaderId = 0;
    this.#votes = new Set([this.#cfg.id]);
    // Rule 5: the candidate's own knowledge counts too.
    this.#wait.start(this.#promise, revokedLeaseTerm);
    this.#resetElectionTimer(nowMs);
    this.#fastRetry(nowMs);
    if (this.#won()) return this.#becomeLeader(nowMs);
    for (const peer of this.#voterPeers()) {
      this.#send({
        type: "RequestVote",
        from: this.#cfg.id,
        to: peer,
        term: this.#term,
        lastLogIndex: this.#log.lastIndex,
        lastLogTerm: this.#log.lastTerm,
        preVote: false,
        revokedLeaseTerm,
      });
    }
  }

  #onRequestVote(nowMs: number, m: RequestVote): void {
    if (m.preVote) {
      // Grant only if a real vote could be granted in m.term and no leader has been heard from recently
      // (leader stickiness: a healthy leader is not deposed by a node that was cut off).
      // "Recently" is the minimum election timeout (thesis §9.6), not this node's own randomized deadline:
      // waiting for a majority of randomized deadlines would slow every failover.
      const heardFromLeader = this.#role === "leader" ||
        (this.#leaderId !== 0 && nowMs - this.#leaderContactMs < this.#cfg.electionTimeoutMsMin);
      const grant = m.term > this.#term && this.#log.isUpToDate(m.lastLogIndex, m.lastLogTerm) &&
        !heardFromLeader;
      this.#send(this.#voteResponse(nowMs, m, grant ? m.term : this.#term, grant, true));
      return;
    }
    // Thesis §4.2.3: a node outside our configuration (a removed server that never learnt it was removed)
    // must not depose a leader we heard from within the minimum election timeout. A transfer's campaign
    // (revokedLeaseTerm > 0) is the leader's own wish.
    if (
      m.term > this.#term && !this.#conf.isVoter(m.from) && m.revokedLeaseTerm === 0 &&
      this.#broken !== "removed-disrupt" &&
      (this.#role === "leader" ||
        (this.#leaderId !== 0 && nowMs - this.#leaderContactMs < this.#cfg.electionTimeoutMsMin))
    ) {
      this.#events.push({
        kind: "voteDenied",
        candidate: m.from,
        term: m.term,
        reason: `node ${m.from} is not a voter here and the leader is alive`,
      });
      return;
    }
    if (m.term > this.#term) this.#becomeFollower(nowMs, m.term, 0, "saw a higher term in a vote request");
    let reason = "";
    if (m.term < this.#term) reason = `its term ${m.term} is older than ${this.#term}`;
    else if (this.#votedFor !== 0 && this.#votedFor !== m.from) {
      reason = `already voted for ${this.#votedFor}`;
    } else if (!this.#log.isUpToDate(m.lastLogIndex, m.lastLogTerm)) reason = "its log is behind";
    const grant = reason === "";
    if (grant) {
      if (this.#votedFor !== m.from) {
        this.#votedFor = m.from;
        this.#hardStateDirty = true; // persisted before the reply leaves (Ready contract)
      }
      this.#resetElectionTimer(nowMs);
      this.#events.push({ kind: "voteGranted", candidate: m.from, term: m.term });
    } else {
      this.#events.push({ kind: "voteDenied", candidate: m.from, term: m.term, reason });
    }
    this.#send(this.#voteResponse(nowMs, m, this.#term, grant, false));
  }

  #voteResponse(
    nowMs: number,
    m: RequestVote,
    term: number,
    grant: boolean,
    preVote: boolean,
  ): RequestVoteResponse {
    return {
      type: "RequestVoteResponse",
      from: this.#cfg.id,
      to: m.from,
      term,
      preVote,
      voteGranted: grant,
      ...this.#promise.report(nowMs, grant),
    };
  }

  #onRequestVoteResponse(nowMs: number, m: RequestVoteResponse): void {
    if (m.term > this.#term && !(m.preVote && m.voteGranted)) {
      this.#becomeFollower(nowMs, m.term, 0, "saw a higher term in a vote reply");
      return;
    }
    if (this.#role !== "candidate" || !m.voteGranted) return;
    if (m.preVote) {
      if (!this.#preCandidate || m.term !== this.#term + 1) return;
      this.#votes.add(m.from);
      if (this.#won()) this.#campaign(nowMs, 0);
      return;
    }
    if (this.#preCandidate || m.term !== this.#term) return;
    this.#votes.add(m.from);
    // Rule 5: wait out the voter's remaining promise, measured from receipt and scaled for clock drift.
    // Every grant counts, a non-voter's too: a longer wait is never unsafe.
    this.#wait.onGrant(nowMs, m.leaseRemainingMs, m.leaseTerm);
    if (this.#won()) this.#becomeLeader(nowMs);
  }

  #onTimeoutNow(nowMs: number, m: TimeoutNow): void {
    if (m.term < this.#term || this.#role === "leader" || !this.#conf.isVoter(this.#cfg.id)) return;
    if (m.term > this.#term) this.#becomeFollower(nowMs, m.term, m.from, "leadership transfer");
    this.#events.push({ kind: "transferElection", from: m.from, term: this.#term });
    this.#campaign(nowMs, m.term);
  }

  /** After a connection reset: this campaign, if it fails, is retried within one to three heartbeats. */
  #fastRetry(nowMs: number): void {
    if (this.#fastRounds <= 0) return;
    this.#fastRounds--;
    const h = this.#cfg.heartbeatIntervalMs;
    this.#electionDeadlineMs = Math.min(this.#electionDeadlineMs, nowMs + h + this.#random() * 2 * h);
  }

  #becomeLeader(nowMs: number): void {
    this.#fastRounds = 0;
    this.#role = "leader";
    this.#preCandidate = false;
    this.#leaderId = this.#cfg.id;
    this.#leaderSinceMs = nowMs;
    this.#leaseDroppedAtMs = -Infinity;
    this.#heartbeatDueMs = nowMs + this.#cfg.heartbeatIntervalMs;
    this.#lease = this.#newLease();
    this.#leaseRevoked = false;
    this.#transfer = undefined;
    this.#proposals.clear();
    this.#progress = new ProgressTracker(this.#peers, this.#log.lastIndex);
    this.#lease.setConfiguration(this.#conf);
    if (this.#broken === "lease-wait") this.#wait.clear();
    this.#events.push({ kind: "becameLeader", term: this.#term });
    this.#waitAnnounced = this.#wait.untilMs <= nowMs;
    if (!this.#waitAnnounced) {
      this.#events.push({ kind: "leaseWaitStarted", term: this.#term, waitMs: this.#wait.untilMs - nowMs });
    }
    // Append the NO-OP now (§8): replicating during the wait is fine (rule 7), it only speeds readiness.
    this.#termStartIndex = this.#appendOwn({ op: "noop" });
    this.#broadcastAppend(nowMs, true);
  }

  #becomeFollower(nowMs: number, term: number, leaderId: NodeId, reason: string): void {
    const wasLeader = this.#role === "leader";
    if (term > this.#term || leaderId !== this.#leaderId) {
      this.#failReadsSent({ kind: "notLeader", leaderId });
    }
    if (term > this.#term) {
      this.#term = term;
      this.#votedFor = 0;
      this.#hardStateDirty = true;
    }
    this.#role = "follower";
    this.#preCandidate = false;
    this.#leaderId = leaderId;
    if (wasLeader) {
      // Rule 3: the lease belongs to the term; it is gone the moment this node stops leading.
      this.#lease = this.#newLease();
      this.#leaseRevoked = false;
      this.#wait.clear();
      if (this.#transfer) this.#transfer = undefined;
      const refusal: Refusal = { kind: "notLeader", leaderId };
      this.#results.push(...this.#proposals.failAll(refusal));
      this.#failReadsConfirming(leaderId);
      this.#events.push({ kind: "steppedDown", term: this.#term, reason });
    }
    // Raft §5.2 resets the timer on hearing from a leader or granting a vote, not on merely seeing a higher
    // term: a node with a stale log that keeps campaigning must not keep everyone else from timing out.
    if (wasLeader || leaderId !== 0) this.#resetElectionTimer(nowMs);
  }

  // ------------------------------------------------------------------------------------------------------
  // Replication (§5.3).

  #onAppendEntries(nowMs: number, m: AppendEntries): void {
    if (m.term < this.#term) {
      this.#events.push({
        kind: "appendRejected",
        leader: m.from,
        reason: `stale term ${m.term} < ${this.#term}`,
      });
      this.#send(this.#appendResponse(m, false, 0, 0, 0));
      return;
    }
    if (m.term > this.#term || this.#role !== "follower" || this.#leaderId !== m.from) {
      if (this.#role === "leader" && m.term === this.#term) return; // impossible under election safety
      this.#becomeFollower(nowMs, m.term, m.from, `heard from leader ${m.from}`);
    }
    this.#resetElectionTimer(nowMs);
    this.#leaderContactMs = nowMs;
    this.#fastRounds = 0;
    // Rule 4: promise the leader its lease, stretched for drift, before replying; never shrink a promise.
    this.#promise.promise(nowMs, m.leaseDurationMs, m.term);
    // Rule 6: a longer lease than ever before is made durable before the ack leaves (the Ready contract).
    if (m.leaseDurationMs > this.#promisedLeaseMs) {
      this.#promisedLeaseMs = m.leaseDurationMs;
      this.#hardStateDirty = true;
    }

    if (m.prevLogIndex < this.#log.start.index) {
      // Behind this node's compacted start: those entries are committed, so they are the leader's too (Leader
      // Completeness). Confirm the match up to the start; the leader continues from there.
      this.#events.push({ kind: "appendAccepted", leader: m.from });
      this.#send(this.#appendResponse(m, true, this.#log.start.index, 0, 0));
      return;
    }
    const prevTerm = this.#log.term(m.prevLogIndex);
    if (prevTerm === undefined) {
      this.#events.push({ kind: "appendRejected", leader: m.from, reason: `no entry at ${m.prevLogIndex}` });
      this.#send(this.#appendResponse(m, false, 0, this.#log.lastIndex + 1, 0));
      return;
    }
    if (prevTerm !== m.prevLogTerm) {
      const conflictIndex = Math.max(this.#commitIndex + 1, this.#log.firstIndexOfTermAt(m.prevLogIndex));
      this.#events.push({
        kind: "appendRejected",
        leader: m.from,
        reason: `term ${prevTerm} at ${m.prevLogIndex}, leader has ${m.prevLogTerm}`,
      });
      this.#send(this.#appendResponse(m, false, 0, conflictIndex, prevTerm));
      return;
    }
    let confChanged = false;
    for (const e of m.entries) {
      const have = this.#log.term(e.index);
      if (have === e.term) continue;
      if (have !== undefined) {
        if (e.index <= this.#commitIndex && this.#broken === undefined) {
          throw new Error(`invariant: leader ${m.from} overwrites committed index ${e.index}`);
        }
        this.#log.truncateFrom(e.index);
        if (e.index <= this.#confIndex) confChanged = true;
      }
      this.#log.append(e);
      if (e.command.op === "config") confChanged = true;
    }
    // Thesis §4.1: the latest configuration in the log is in force at once, committed or not.
    if (confChanged) this.#refreshConfig(true);
    const matchIndex = m.prevLogIndex + m.entries.length;
    const commit = Math.min(m.leaderCommit, matchIndex);
    if (commit > this.#commitIndex) this.#commitTo(commit);
    this.#noteFreshness(m);
    this.#events.push({ kind: "appendAccepted", leader: m.from });
    this.#send(this.#appendResponse(m, true, matchIndex, 0, 0));
  }

  /**
   * Bounded-staleness reads: an AppendEntries the leader sent under a ready lease, whose commit index this
   * node has applied, makes the state current as of the ack it echoes (sent before it, on this clock).
   */
  #noteFreshness(m: AppendEntries): void {
    const leaseCommit = m.leaseCommitIndex ?? 0;
    if (leaseCommit > 0 && m.term > this.#readyTerm) this.#readyTerm = m.term;
    if (leaseCommit <= 0 || this.#appliedIndex < leaseCommit || m.term !== this.#term) return;
    if (this.#ackTimesOf !== `${m.term}/${m.from}`) return;
    const ackedMs = this.#ackTimes.get(m.ackedSeq ?? 0);
    if (ackedMs !== undefined && ackedMs > this.#freshAsOfMs) this.#freshAsOfMs = ackedMs;
  }

  /** Remembers when this node acknowledged `m` (any reply of the current term), for `#noteFreshness`. */
  #noteAck(m: AppendEntries): void {
    const of = `${m.term}/${m.from}`;
    if (this.#ackTimesOf !== of) {
      this.#ackTimes.clear();
      this.#ackTimesOf = of;
    }
    if (!this.#ackTimes.has(m.seq)) this.#ackTimes.set(m.seq, this.#nowMs);
    const acked = m.ackedSeq ?? 0;
    for (const seq of this.#ackTimes.keys()) {
      if (seq >= acked && this.#ackTimes.size <= ACK_TIMES_MAX) break;
      this.#ackTimes.delete(seq);
    }
  }

  #appendResponse(
    m: AppendEntries,
    success: boolean,
    matchIndex: number,
    conflictIndex: number,
    conflictTerm: number,
  ): AppendEntriesResponse {
    if (m.term === this.#term && this.#role === "follower") this.#noteAck(m);
    return {
      type: "AppendEntriesResponse",
      from: this.#cfg.id,
      to: m.from,
      term: this.#term,
      success,
      matchIndex,
      conflictIndex,
      conflictTerm,
      seq: m.seq,
    };
  }

  #onAppendEntriesResponse(nowMs: number, m: AppendEntriesResponse): void {
    if (m.term > this.#term) {
      this.#becomeFollower(nowMs, m.term, 0, `node ${m.from} has a higher term`);
      return;
    }
    if (m.term < this.#term || this.#role !== "leader") return;
    const pr = this.#progress.get(m.from);
    if (!pr) return;
    // Rules 2 and 3: any same-term reply acknowledges the send it echoes; the lease runs from that send.
    this.#lease.recordAck(m.from, m.seq, nowMs);
    this.#answerConfirmed();
    if (m.success) {
      pr.matchSeq = Math.max(pr.matchSeq ?? 0, m.seq);
      this.#progress.onSuccess(pr, m.matchIndex);
      this.#maybeCommit();
      this.#maybeSendTimeoutNow();
    } else {
      if (pr.mode === "snapshot") return; // a stale rejection: the snapshot under way answers it
      if (m.conflictIndex <= pr.match && m.conflictTerm === 0 && m.seq > (pr.matchSeq ?? 0)) {
        // Not a reordered old rejection (it answers a send newer than the last success) yet the follower's log
        // ends before what it acknowledged: its folder was wiped. Start again from what it holds now.
        pr.match = m.conflictIndex - 1;
      }
      let next = m.conflictIndex;
      if (m.conflictTerm > 0) {
        const last = this.#log.lastIndexOfTerm(m.conflictTerm);
        if (last > 0) next = last + 1;
      }
      // False: a stale rejection of a message sent before a success.
      if (!this.#progress.onRejection(pr, m.conflictIndex, Math.min(next, this.#log.lastIndex + 1))) return;
    }
    this.#flushNeeded = true;
  }

  /** Appends a command of this leader's term; returns its index. */
  #appendOwn(command: Command): number {
    const index = this.#log.lastIndex + 1;
    this.#log.append({ index, term: this.#term, command });
    this.#flushNeeded = true;
    if (command.op === "config") this.#refreshConfig(true);
    return index;
  }

  #broadcastAppend(nowMs: number, heartbeat: boolean): void {
    for (const peer of this.#peers) this.#sendAppend(peer, nowMs, heartbeat);
    this.#lease.renewAlone(nowMs);
  }

  /**
   * Sends what `peer` needs. Probe mode: one message at a time (resent on heartbeats). Replicate mode: full
   * batches as far as the in-flight window allows, a partial one only when nothing is in flight; a heartbeat
   * with nothing to send is an empty AppendEntries at the follower's match index, which cannot be rejected
   * by reordering.
   */
  #sendAppend(peer: NodeId, nowMs: number, heartbeat: boolean): void {
    const pr = this.#progress.get(peer)!;
    const last = this.#log.lastIndex;
    // §7: the entry before `next` was compacted, so its term (and what follows) can only come as a snapshot.
    if (pr.mode === "snapshot" || pr.next - 1 < this.#log.start.index) {
      return this.#sendSnapshot(peer, nowMs, heartbeat);
    }
    if (this.#broken === "snapshot-index" && pr.mode === "probe" && this.#snapshot !== undefined) {
      // Negative control: the snapshot goes to every follower being probed, needed or not, and (below) a
      // follower installs it even when it is older than its commit index.
      return this.#sendSnapshot(peer, nowMs, heartbeat);
    }
    if (pr.mode === "probe") {
      if (pr.probeSent && !heartbeat) return;
      this.#sendAppendFrom(peer, pr.next, nowMs);
      pr.probeSent = true;
      return;
    }
    let sent = false;
    let cutShort = false; // the batch just sent stopped at a limit, not at the end of the log
    while (pr.next <= last && pr.inflight.length < this.#cfg.appendsInFlightMax) {
      // Pipelining pays for full batches (a follower catching up). Entries that do not fill a batch wait for
      // the acks of the batches in flight, so that what arrives meanwhile travels in one message: under
      // moderate load that is fewer AppendEntries, follower fsyncs and answers per SET (docs/benchmarks.md).
      if (pr.inflight.length > 0 && !cutShort && last - pr.next + 1 < this.#cfg.entriesPerAppendMax) break;
      const lastSent = this.#sendAppendFrom(peer, pr.next, nowMs);
      pr.inflight.push({ lastIndex: lastSent, sentAtMs: nowMs });
      pr.next = lastSent + 1;
      sent = true;
      cutShort = lastSent < last;
    }
    if (heartbeat && !sent) this.#sendEmptyAppend(peer, Math.max(pr.match, this.#log.start.index), nowMs);
  }

  /**
   * Sends `peer` the next chunks of the snapshot (§7), up to {@link SNAPSHOT_WINDOW_CHUNKS} in flight (flow
   * control: a chunk leaves when the window has room, as acknowledgements come back; the follower takes them
   * only in order). When nothing has progressed for the in-flight timeout, a heartbeat goes back to the last
   * offset the follower confirmed and sends from there (a lost chunk: the ones after it were refused).
   */
  #sendSnapshot(peer: NodeId, nowMs: number, heartbeat: boolean): void {
    const pr = this.#progress.get(peer)!;
    const snap = this.#snapshot;
    if (snap === undefined) {
      throw new Error(`invariant: log compacted to ${this.#log.start.index} without a snapshot`);
    }
    let st = pr.snapshot;
    if (pr.mode !== "snapshot" || st === undefined || st.index !== snap.index) {
      pr.mode = "snapshot";
      pr.probeSent = false;
      pr.inflight = [];
      st = pr.snapshot = {
        index: snap.index,
        term: snap.term,
        sizeBytes: snap.sizeBytes,
        offset: 0,
        sent: 0,
        sentAtMs: -Infinity,
      };
      this.#events.push({ kind: "snapshotSending", to: peer, index: snap.index, sizeBytes: snap.sizeBytes });
    }
    if (st.sent > st.offset && heartbeat && nowMs - st.sentAtMs >= this.#inflightTimeoutMs) {
      st.sent = st.offset;
    }
    const windowBytes = SNAPSHOT_WINDOW_CHUNKS * this.#chunkBytes;
    // At least one send when nothing is confirmed yet and nothing is in flight (a snapshot of 0 bytes: none).
    while (st.sent < st.sizeBytes && st.sent - st.offset < windowBytes) {
      const length = Math.min(this.#chunkBytes, st.sizeBytes - st.sent);
      st.sentAtMs = nowMs;
      this.#send({
        type: "InstallSnapshot",
        from: this.#cfg.id,
        to: peer,
        term: this.#term,
        lastIncludedIndex: st.index,
        lastIncludedTerm: st.term,
        offset: st.sent,
        length,
        sizeBytes: st.sizeBytes,
        data: EMPTY_BYTES,
        ...(snap.config === undefined ? {} : { config: snap.config }),
      });
      st.sent += length;
    }
  }

  #onInstallSnapshotResponse(nowMs: number, m: InstallSnapshotResponse): void {
    if (m.term > this.#term) {
      this.#becomeFollower(nowMs, m.term, 0, `node ${m.from} has a higher term`);
      return;
    }
    if (m.term < this.#term || this.#role !== "leader") return;
    const pr = this.#progress.get(m.from);
    if (!pr) return;
    // No lease ack: an InstallSnapshot carries no lease and its reply renews none (README.md).
    if (m.matchIndex > 0) {
      // Installed (or not needed): replicate from the snapshot on, through the log. A late or repeated reply
      // that finds the follower replicating already only raises its match.
      if (pr.mode === "snapshot") {
        pr.snapshot = undefined;
        pr.mode = "probe";
        pr.probeSent = false;
        pr.inflight = [];
        pr.next = Math.max(pr.match, m.matchIndex) + 1;
      }
      this.#progress.onSuccess(pr, m.matchIndex);
      this.#maybeCommit();
      this.#maybeSendTimeoutNow();
    } else {
      const st = pr.snapshot;
      if (pr.mode !== "snapshot" || st === undefined || st.index !== m.lastIncludedIndex) return;
      const offset = Math.min(m.offset, st.sizeBytes);
      if (offset > st.offset) {
        // Progress: the window slides (chunks the follower already holds are not sent again).
        st.offset = offset;
        st.sent = Math.max(st.sent, offset);
        st.sentAtMs = nowMs;
      } else if (offset < st.offset) {
        // The follower holds less than it confirmed (it restarted, or another snapshot reset it; or this is a
        // reordered old answer, which the follower's next refusal corrects): send from where it stands.
        st.offset = offset;
        st.sent = offset;
      }
      // Equal: a chunk refused because an earlier one was lost; the in-flight timeout goes back for it.
    }
    this.#flushNeeded = true;
  }

  /** §7 on the follower: the same term checks as AppendEntries, then one chunk at the expected offset. */
  #onInstallSnapshot(nowMs: number, m: InstallSnapshot): void {
    const reply = (offset: number, matchIndex: number) =>
      this.#send({
        type: "InstallSnapshotResponse",
        from: this.#cfg.id,
        to: m.from,
        term: this.#term,
        lastIncludedIndex: m.lastIncludedIndex,
        offset,
        matchIndex,
      });
    if (m.term < this.#term) return reply(0, 0);
    if (m.term > this.#term || this.#role !== "follower" || this.#leaderId !== m.from) {
      if (this.#role === "leader" && m.term === this.#term) return; // impossible under election safety
      this.#becomeFollower(nowMs, m.term, m.from, `heard from leader ${m.from}`);
    }
    // Liveness only: the leader is alive. No lease promise is made (rule 4 is for AppendEntries).
    this.#resetElectionTimer(nowMs);
    this.#leaderContactMs = nowMs;
    const index = m.lastIncludedIndex;
    if (index <= this.#commitIndex && this.#broken !== "snapshot-index") {
      // Everything it holds is applied here already; installing it would roll the state machine back. The
      // committed prefix is the leader's too (Leader Completeness), so the logs match up to the commit index.
      this.#receiving = undefined;
      return reply(m.sizeBytes, this.#commitIndex);
    }
    let r = this.#receiving;
    // A chunk that continues the one waiting to be persisted (several arrive in one batch when the leader
    // has a window of them in flight) joins it: one write of both.
    const pending = this.#snapshotChunk;
    const joins = pending !== undefined && !pending.done && pending.index === index &&
      pending.term === m.lastIncludedTerm && pending.offset + pending.data.length === m.offset;
    // A first chunk restarts the receive, unless it is a repeat of the one under way from the same leader (its
    // window resent after a quiet spell while the chunks were still on their way): restarting then threw away
    // what had arrived, and under load the next resend did it again, so the install never finished.
    const repeatOfFirst = m.offset === 0 && r !== undefined && r.offset > 0 && r.index === index &&
      r.term === m.lastIncludedTerm && r.leader === m.from;
    if (m.offset === 0 && !repeatOfFirst) {
      r = this.#receiving = { index, term: m.lastIncludedTerm, leader: m.from, offset: 0 };
    } else if (
      r === undefined || r.index !== index || r.term !== m.lastIncludedTerm || r.offset !== m.offset ||
      (pending !== undefined && !joins)
    ) {
      // A lost or repeated chunk, or one of another snapshot: tell the leader where to continue (0: restart).
      const same = r !== undefined && r.index === index && r.term === m.lastIncludedTerm;
      return reply(same ? r!.offset : 0, 0);
    }
    if (
      (pending !== undefined && !joins) || m.data.length !== m.length || m.offset + m.length > m.sizeBytes
    ) {
      return reply(r.offset, 0);
    }
    const done = m.offset + m.length === m.sizeBytes;
    if (joins) {
      const data = new Uint8Array(pending!.data.length + m.data.length);
      data.set(pending!.data);
      data.set(m.data, pending!.data.length);
      this.#snapshotChunk = { index, term: m.lastIncludedTerm, offset: pending!.offset, data, done };
    } else {
      this.#snapshotChunk = { index, term: m.lastIncludedTerm, offset: m.offset, data: m.data, done };
    }
    r.offset += m.length;
    if (!done) return reply(r.offset, 0);
    this.#receiving = undefined;
    this.#installSnapshot({
      index,
      term: m.lastIncludedTerm,
      sizeBytes: m.sizeBytes,
      ...(m.config === undefined ? {} : { config: m.config }),
    }, m.from);
    reply(r.offset, index);
  }

  /** Replaces this follower's state by a received snapshot: the log starts at it, everything in it is applied. */
  #installSnapshot(snap: SnapshotInfo, leader: NodeId): void {
    this.#log.resetTo(snap);
    this.#snapshot = snap;
    this.#commitIndex = snap.index; // above the old commit index (unless the snapshot-index rule is broken)
    this.#appliedIndex = snap.index;
    this.#restore = "pending";
    this.#commitDirty = true;
    this.#installed = { index: snap.index, term: snap.term };
    // The log is gone: the configuration is the snapshot's (never the bootstrap one again).
    this.#refreshConfig(true);
    this.#events.push({ kind: "snapshotInstalled", leader, index: snap.index, term: snap.term });
  }

  /** Sends entries from `from` (bounded by count and bytes); returns the last index sent (from-1 if none). */
  #sendAppendFrom(peer: NodeId, from: number, nowMs: number): number {
    const last = Math.min(this.#log.lastIndex, from + this.#cfg.entriesPerAppendMax - 1);
    const entries: Entry[] = [];
    let bytes = 0;
    for (let i = from; i <= last; i++) {
      const e = this.#log.entry(i);
      const c = e.command;
      const size = c.op === "noop"
        ? 16
        : c.op === "config"
        ? 64 * c.membership.members.length
        : c.key.length + (c.op === "del" ? 0 : c.value.length) +
          (c.op === "cas" && "value" in c.expect ? c.expect.value.length : 0) + 48;
      if (entries.length > 0 && bytes + size > this.#cfg.bytesPerAppendMax) break;
      entries.push(e);
      bytes += size;
    }
    this.#sendAppendMessage(peer, from - 1, entries, nowMs);
    return from - 1 + entries.length;
  }

  #sendEmptyAppend(peer: NodeId, prevIndex: number, nowMs: number): void {
    this.#sendAppendMessage(peer, prevIndex, [], nowMs);
  }

  #sendAppendMessage(peer: NodeId, prevLogIndex: number, entries: Entry[], nowMs: number): void {
    this.#send({
      type: "AppendEntries",
      from: this.#cfg.id,
      to: peer,
      term: this.#term,
      prevLogIndex,
      prevLogTerm: this.#log.term(prevLogIndex)!,
      entries,
      leaderCommit: this.#commitIndex,
      leaseDurationMs: this.#cfg.leaseDurationMs,
      seq: this.#lease.recordSend(nowMs),
      ackedSeq: this.#lease.ackedSeq(peer),
      leaseCommitIndex: this.#leaseReadRefusal(nowMs) === undefined ? this.#commitIndex : 0,
    });
  }

  /** §5.3/§5.4.2: commit the highest index on a majority, only if it is of this leader's term. */
  #maybeCommit(): void {
    // A majority of every voter set in force (both during a joint phase); the leader counts where it votes.
    const self = this.#cfg.id, last = this.#log.lastIndex;
    const n = this.#conf.quorumValue((id) => (id === self ? last : this.#progress.get(id)?.match ?? 0));
    if (n <= this.#commitIndex) return;
    if (this.#log.term(n) !== this.#term && this.#broken !== "commit-term") return;
    this.#commitTo(n);
  }

  #commitTo(index: number): void {
    this.#commitIndex = index;
    this.#commitDirty = true;
    // After a snapshot is installed, nothing is applied until the caller has restored the state machine.
    if (this.#restore === undefined) this.#applyUpTo(index);
    this.#releaseHeld(this.#nowMs);
    if (this.#role === "leader" && this.#confIndex > 0 && this.#confIndex <= index) this.#advanceConfig();
  }

  #applyUpTo(index: number): void {
    for (let i = this.#appliedIndex + 1; i <= index; i++) {
      const entry = this.#log.entry(i);
      const refusal = this.#sm.apply(entry);
      const outcome = refusal === undefined ? this.#sm.lastOutcome?.() : undefined;
      this.#events.push({ kind: "committed", entry, role: this.#role });
      this.#proposals.committed(i, refusal, outcome);
    }
    if (index > this.#appliedIndex) this.#appliedIndex = index;
  }

  // ------------------------------------------------------------------------------------------------------
  // Leader timers and readiness.

  #tickLeader(nowMs: number): void {
    if (this.#transfer && nowMs >= this.#transfer.deadlineMs) {
      const to = this.#transfer.to;
      this.#events.push({ kind: "transferAborted", to, term: this.#term });
      // The lease was revoked for this term and may not come back: step down, let an election decide.
      this.#becomeFollower(nowMs, this.#term, 0, `transfer to node ${to} timed out`);
      return;
    }
    if (nowMs >= this.#stepDownDeadlineMs()) {
      this.#events.push({ kind: "leaseRenewalFailed", term: this.#term });
      this.#becomeFollower(nowMs, this.#term, 0, "lease renewal failed");
      return;
    }
    if (!this.#waitAnnounced && nowMs >= this.#wait.untilMs) {
      this.#waitAnnounced = true;
      this.#events.push({ kind: "leaseWaitEnded", term: this.#term });
    }
    this.#releaseHeld(nowMs);
    if (nowMs >= this.#heartbeatDueMs) {
      this.#heartbeatDueMs = nowMs + this.#cfg.heartbeatIntervalMs;
      this.#lease.prune(nowMs);
      this.#progress.expireInflight(nowMs, this.#inflightTimeoutMs);
      this.#events.push({ kind: "heartbeat", term: this.#term });
      this.#broadcastAppend(nowMs, true);
      this.#maybePromote(nowMs);
    }
  }

  /** The leader steps down once its lease (or, before the first one, its grace period) has run out. */
  #stepDownDeadlineMs(): number {
    return Math.max(
      this.#lease.leaseEndMs,
      this.#leaderSinceMs + this.#cfg.leaseDurationMs,
      this.#leaseDroppedAtMs + this.#cfg.leaseDurationMs,
    );
  }

  /** Rule 7: old leases waited out and an entry of this term committed. */
  #isReady(nowMs: number): boolean {
    return this.#role === "leader" && nowMs >= this.#wait.untilMs &&
      this.#commitIndex >= this.#termStartIndex;
  }

  #releaseHeld(nowMs: number): void {
    if (!this.#proposals.hasHeld || !this.#isReady(nowMs)) return;
    this.#results.push(...this.#proposals.release());
  }

  #leaderRefusal(): Refusal | undefined {
    if (this.#role !== "leader") return { kind: "notLeader", leaderId: this.#leaderId };
    if (this.#leaseRevoked || (this.#transfer && this.#broken !== "transfer-revoke")) {
      return { kind: "transferring", leaderId: this.#transfer?.to ?? 0 };
    }
    return undefined;
  }

  #notReady(nowMs: number): Refusal {
    const waitMs = Math.max(this.#wait.untilMs - nowMs, 0);
    return { kind: "notReady", retryAfterMs: Math.max(1, Math.ceil(waitMs), waitMs > 0 ? 0 : 10) };
  }

  #maybeSendTimeoutNow(): void {
    const t = this.#transfer;
    if (!t || t.timeoutNowSent) return;
    if (this.#progress.get(t.to)!.match !== this.#log.lastIndex) return;
    t.timeoutNowSent = true;
    this.#send({ type: "TimeoutNow", from: this.#cfg.id, to: t.to, term: this.#term });
  }

  // ------------------------------------------------------------------------------------------------------
  // Membership (issue 11, membership.ts).

  /**
   * Asks the leader to change the configuration: add a learner, remove a member, promote a learner. Refused
   * (with the reason) unless this node is the leader, has committed an entry of its own term (thesis §4.1's
   * fix: a new leader may not start a change before that), and no other change is in progress (a configuration
   * entry not yet committed, or a joint phase not yet left). A voter change goes through joint consensus; the
   * leader leaves the joint phase by itself once it commits.
   */
  changeMembership(nowMs: number, change: MembershipChange): ChangeResult {
    const out = this.#changeMembershipUnchecked(nowMs, change);
    if (this.#checking) this.#check("changeMembership");
    return out;
  }

  #changeMembershipUnchecked(nowMs: number, change: MembershipChange): ChangeResult {
    this.#advanceClock(nowMs);
    const refuse = (reason: string): ChangeResult => ({ ok: false, reason });
    if (this.#role !== "leader") {
      return refuse(`node ${this.#cfg.id} is not the leader (leader: ${this.#leaderId || "unknown"})`);
    }
    if (this.#transfer) return refuse(`a leadership transfer to node ${this.#transfer.to} is under way`);
    if (this.#commitIndex < this.#termStartIndex) {
      return refuse("the leader has not committed an entry of its term yet: retry shortly");
    }
    if (this.#confIndex > this.#commitIndex || this.#conf.isJoint) {
      return refuse(
        `a configuration change is in progress (index ${this.#confIndex}: ${this.#conf.describe()}): retry when it commits`,
      );
    }
    // Ids of every member ever, the snapshot's record of the compacted log's included.
    const everUsed = new Set<NodeId>(this.configAt(this.#log.lastIndex).everUsed);
    const alive = new Set<NodeId>([this.#cfg.id]);
    for (const p of this.#peers) {
      if (this.#lease.ackedSendMs(p) >= nowMs - this.#cfg.electionTimeoutMsMin) alive.add(p);
    }
    // A learner becomes a voter only once it is close to the leader's log (issue 11 part 3): a voter far
    // behind would stall every commit that needs it.
    if (change.kind === "promote" || change.kind === "replace") {
      const lagMax = this.#cfg.promoteLagEntriesMax ?? PROMOTE_LAG_ENTRIES_MAX;
      const lag = this.#log.lastIndex - (this.#progress.get(change.id)?.match ?? 0);
      if (this.#conf.member(change.id) && lag > lagMax) {
        return refuse(
          `node ${change.id} is ${lag} entries behind the leader (at most ${lagMax}): wait until it catches up`,
        );
      }
    }
    const plan = planChange(this.#conf, change, everUsed, alive);
    if (typeof plan === "string") return refuse(plan);
    const index = this.#appendOwn({ op: "config", membership: plan });
    this.#events.push({ kind: "configAppended", index, term: this.#term, describe: this.#conf.describe() });
    return { ok: true, index, membership: plan };
  }

  /** The configuration this node uses now. */
  get membership(): Membership {
    return this.#conf.membership;
  }

  /** Log index of the configuration this node uses (0: the bootstrap one). */
  get membershipIndex(): number {
    return this.#confIndex;
  }

  /** A majority of every voter set in force granted (this node must be a voter to win). */
  #won(): boolean {
    return this.#conf.isVoter(this.#cfg.id) && this.#conf.hasQuorum(this.#votes);
  }

  #voterPeers(): NodeId[] {
    return this.#peers.filter((p) => this.#conf.isVoter(p));
  }

  /**
   * Makes the latest configuration in the log the one in force (thesis §4.1), after an append or a truncation
   * that touched one. A leader tracks the new members' progress and recomputes its lease under it.
   */
  #refreshConfig(running: boolean): void {
    // The latest configuration entry in the retained log; behind the compacted start, the snapshot's.
    let index = 0;
    let membership = this.#bootstrap;
    let i = this.#log.lastIndex;
    for (; i > this.#log.start.index; i--) {
      const c = this.#log.entry(i).command;
      if (c.op === "config") {
        index = i;
        membership = c.membership;
        break;
      }
    }
    const snapConf = this.#snapshot?.config;
    if (i <= this.#log.start.index && snapConf !== undefined) {
      index = snapConf.index;
      membership = snapConf.membership;
    }
    if (running && index === this.#confIndex && membership === this.#conf.membership) return;
    this.#confIndex = index;
    this.#conf = new Configuration(membership, this.#broken === "config-quorum");
    this.#peers = this.#conf.everyone.filter((id) => id !== this.#cfg.id);
    if (!running) return;
    if (this.#role === "leader") {
      for (const p of this.#peers) if (!this.#progress.get(p)) this.#progress.add(p, this.#log.lastIndex);
      this.#progress.retain(this.#peers);
      this.#lease.setConfiguration(this.#conf);
      if (this.#transfer && !this.#conf.voters.includes(this.#transfer.to)) {
        this.#events.push({ kind: "transferAborted", to: this.#transfer.to, term: this.#term });
        this.#becomeFollower(this.#nowMs, this.#term, 0, "the transfer target left the configuration");
      }
    }
  }

  /**
   * A configuration entry committed at the leader: a joint one is followed by its incoming configuration
   * alone; a final one that leaves this leader out makes it step down (thesis §4.2.2), and it stops serving.
   */
  #advanceConfig(): void {
    if (this.#confIndex > this.#commitIndex) return;
    if (this.#conf.isJoint) {
      this.#appendOwn({ op: "config", membership: leaveJoint(this.#conf.membership) });
      this.#events.push({
        kind: "configAppended",
        index: this.#confIndex,
        term: this.#term,
        describe: this.#conf.describe(),
      });
      return;
    }
    if (!this.#conf.voters.includes(this.#cfg.id)) {
      this.#becomeFollower(this.#nowMs, this.#term, 0, "removed from the configuration");
    }
  }

  /** A learner added to be promoted, now within `promoteLagEntriesMax` of the leader's log, becomes a voter. */
  #maybePromote(nowMs: number): void {
    if (this.#confIndex > this.#commitIndex || this.#conf.isJoint) {
      if (this.#confIndex <= this.#commitIndex) this.#advanceConfig(); // a new leader finishing a joint phase
      return;
    }
    if (this.#commitIndex < this.#termStartIndex) return;
    const lagMax = this.#cfg.promoteLagEntriesMax ?? PROMOTE_LAG_ENTRIES_MAX;
    for (const m of this.#conf.membership.members) {
      if (m.voter || !m.promote) continue;
      const pr = this.#progress.get(m.id);
      if (!pr || this.#log.lastIndex - pr.match > lagMax) continue;
      this.#changeMembershipUnchecked(nowMs, { kind: "promote", id: m.id });
      return;
    }
  }

  // ------------------------------------------------------------------------------------------------------
  // Helpers.

  /** Test builds: throws if an invariant of invariants.ts does not hold after `where`. */
  #check(where: string): void {
    const leader = this.#role === "leader";
    const proposals = this.#proposals.indexes();
    const view: InvariantView = {
      id: this.#cfg.id,
      role: this.#role,
      preCandidate: this.#preCandidate,
      term: this.#term,
      votedFor: this.#votedFor,
      leaderId: this.#leaderId,
      commitIndex: this.#commitIndex,
      lastIndex: this.#log.lastIndex,
      lastTerm: this.#log.lastTerm,
      nowMs: this.#nowMs,
      leaseDurationMs: this.#cfg.leaseDurationMs,
      leaseEndMs: this.#lease.leaseEndMs,
      leaseRevoked: this.#leaseRevoked,
      // The transfer-revoke negative control keeps the lease during a transfer on purpose.
      transferring: this.#transfer !== undefined && this.#broken !== "transfer-revoke",
      termStartIndex: this.#termStartIndex,
      // A NO-OP compacted into a snapshot was checked while it was held.
      termStartTerm: !leader
        ? undefined
        : this.#termStartIndex < this.#log.start.index
        ? this.#term
        : this.#log.term(this.#termStartIndex),
      progress: leader
        ? this.#peers.map((peer) => {
          const pr = this.#progress.get(peer)!;
          return { peer, match: pr.match, next: pr.next, inflight: pr.inflight.map((f) => f.lastIndex) };
        })
        : [],
      pendingIndexes: proposals.pending,
      heldIndexes: proposals.held,
    };
    const problems = findViolations(view, this.#lastView);
    this.#lastView = view;
    if (problems.length > 0) {
      throw new Error(`invariant: node ${this.#cfg.id} after ${where}: ${problems.join("; ")}`);
    }
  }

  #flush(): void {
    if (this.#readBatch.length > 0) this.#sendReadBatch();
    if (this.#confirmNeeded && this.#role === "leader") {
      // One heartbeat round confirms leadership for every read that arrived before it (thesis §6.4).
      this.#confirmNeeded = false;
      this.#flushNeeded = false;
      this.#heartbeatDueMs = this.#nowMs + this.#cfg.heartbeatIntervalMs;
      this.#broadcastAppend(this.#nowMs, true);
      this.#maybeCommit();
      this.#answerConfirmed(); // a single voter confirms alone
      return;
    }
    if (!this.#flushNeeded) return;
    this.#flushNeeded = false;
    if (this.#role !== "leader") return;
    this.#broadcastAppend(this.#nowMs, false);
    this.#maybeCommit(); // where the leader alone is a majority (one voter), its own append commits
  }

  #send(m: Message): void {
    this.#messages.push(m);
  }

  #newLease(): LeaseTracker {
    return new LeaseTracker(
      this.#cfg.leaseDurationMs,
      this.#conf,
      this.#cfg.id,
      this.#broken === "lease-anchor",
    );
  }

  #resetElectionTimer(nowMs: number): void {
    const span = this.#cfg.electionTimeoutMsMax - this.#cfg.electionTimeoutMsMin;
    this.#electionDeadlineMs = nowMs + this.#cfg.electionTimeoutMsMin + this.#random() * span;
  }

  /** Every input starts here: the clock moves on, and entries held back by an installed snapshot are applied. */
  #beginInput(nowMs: number): void {
    this.#advanceClock(nowMs);
    if (this.#restore === "handedOut") {
      // The caller restored the state machine from the snapshot (it does so while persisting the Ready that
      // announced it, before stepping anything else in): apply what was committed after the snapshot since.
      this.#restore = undefined;
      this.#applyUpTo(this.#commitIndex);
    }
  }

  #advanceClock(nowMs: number): void {
    // A monotonic clock never goes back; guard against a caller that passes a stale reading.
    if (nowMs > this.#nowMs) this.#nowMs = nowMs;
  }
}
