/**
 * The node driver: the one loop around the pure Raft core, shared by the real node (src/node/), the
 * simulator (tests/sim/) and the tests. See README.md in this folder for the rules it keeps.
 *
 * It owns the core and everything in flight: the inbox of inputs (peer messages, proposals, reads, transfers,
 * views), the pending proposals with their deadlines, the one disk write under way. It depends on three small
 * interfaces only: a {@link DriverStore} (persist a Ready's state, told "done" or "failed" later), a
 * {@link PeerSender} (one-way messages) and a {@link DriverClock} (local monotonic time and one wake-up).
 *
 * It is synchronous: every call runs the loop as far as it can go at once and returns; the store's completion
 * callback resumes it. In the simulator the disk calls that callback from an event at simulated time, so the
 * run stays deterministic; in production FileLogStore's promise calls it.
 *
 * @module
 */
import { RaftCore, sendableBeforePersist } from "../raft/core.ts";
import type { CoreOptions } from "../raft/core.ts";
import type { RaftConfig } from "../raft/config.ts";
import type { ChangeResult, MembershipChange } from "../raft/membership.ts";
import type { Random, StateMachine } from "../raft/state_machine.ts";
import type {
  Command,
  Entry,
  InstallSnapshot,
  Message,
  NodeId,
  PersistedState,
  RaftEvent,
  ReadResult,
  Ready,
  Refusal,
  SnapshotConfig,
  SnapshotInfo,
  Status,
  WriteOutcome,
} from "../raft/types.ts";
import type { SaveRequest } from "../storage/log_store.ts";

/** Persists a Ready's state. The driver has at most one `save` outstanding. */
export interface DriverStore {
  /**
   * Starts making `request` durable (fsync) and calls `done` exactly once: without an argument when it is
   * durable, with the error when it failed (the driver then stops: fail-stop, nothing more is acknowledged).
   * `done` may be called synchronously.
   */
  save(request: SaveRequest, done: (error?: Error) => void): void;
  /** The commit index advanced with nothing else to persist: record it lazily (a restart hint). */
  noteCommit(commitIndex: number): void;
}

/**
 * Snapshots (issue 10): when the log holds `thresholdEntries` entries beyond the last snapshot, the driver asks
 * the host to write one (the host freezes its state machine at once, at the core's commit index, and writes it
 * in the background); once durable, the core compacts its log and the next save compacts the stored one.
 */
export interface DriverSnapshots {
  readonly thresholdEntries: number;
  /**
   * Freezes the state machine now (it holds exactly the entries up to `index`, of `term`: the core's applied
   * index) and writes it as the
   * node's next snapshot file (not yet in place: the save that compacts the log renames it), with `config`, the
   * configuration in force at `index` (its CONFIG line). Calls `done` with the file's size, or with an error
   * (the driver then tries again at the next threshold crossing).
   */
  take(
    index: number,
    term: number,
    config: SnapshotConfig,
    done: (sizeBytes: number | undefined, error?: Error) => void,
  ): void;
  /** The bytes of an InstallSnapshot chunk, undefined when that snapshot is gone (the message is dropped). */
  chunk(m: InstallSnapshot): Uint8Array | undefined;
}

export type SnapshotOutcome = { ok: true; index: number; term: number } | { ok: false; reason: string };

/** Sends one-way peer messages. Delivery is best effort: Raft tolerates loss, duplication and reordering. */
export interface PeerSender {
  send(msg: Message): void;
}

/** The local monotonic clock and one wake-up. */
export interface DriverClock {
  /** Local monotonic time in ms. */
  now(): number;
  /**
   * Asks for `Driver.wake()` at local time `atMs` (Infinity: no wake-up needed). Replaces the previous
   * request; a wake-up that comes early is harmless.
   */
  wakeAt(atMs: number): void;
}

/** Bounds on what the driver holds. Every one has a typed refusal (`overloaded`). */
export interface DriverLimits {
  /** Inputs waiting for the next turn (group commit batch). Peer messages beyond it are dropped. */
  readonly inboxMax: number;
  /** Proposals accepted and not yet answered. */
  readonly pendingProposalsMax: number;
  /** Follower (ReadIndex) reads waiting for their read index or for this node to apply it (issue 16). */
  readonly readIndexPendingMax: number;
}

export const DEFAULT_DRIVER_LIMITS: DriverLimits = {
  inboxMax: 10_000,
  pendingProposalsMax: 10_000,
  readIndexPendingMax: 10_000,
};

/** How long a ReadIndex read waits for its index and its apply before it is refused (local clock). */
export const READ_INDEX_TIMEOUT_MS_DEFAULT = 3_000;

/** The fate of a SET, as the driver reports it. Exactly one of these reaches every proposer. */
export type ProposalOutcome =
  /** Committed and applied; visible to reads. `outcome`: what the state machine did (DELETE, CAS). */
  | { readonly kind: "ok"; readonly index: number; readonly outcome?: WriteOutcome }
  /**
   * Refused: nothing was done (refused before anything was appended, or by the state machine at apply:
   * stale sequence, session expired; final).
   */
  | { readonly kind: "refused"; readonly refusal: Refusal }
  /** A limit was reached: nothing was done, back off and retry. */
  | { readonly kind: "overloaded"; readonly reason: string }
  /**
   * Appended but its fate cannot be known here (leader stepped down, node stopping, disk failed, deadline
   * passed): it may or may not apply. Retry with the same (clientId, seq).
   */
  | { readonly kind: "outcomeUnknown"; readonly reason: string; readonly refusal?: Refusal };

export type ReadOutcome = ReadResult | { readonly ok: false; readonly overloaded: string };

export type TransferOutcome = { ok: true; to: NodeId } | { ok: false; reason: string };

/** The answer to a membership change (issue 11): appended at `index`, or refused with the reason. */
export type MembershipOutcome = ChangeResult;

/** Things the host may observe or inject (the simulator's checkers and fault hooks; the node's dump). */
export interface DriverHooks {
  /** Each event the core reported (dump.txt lines). */
  onEvent?(event: RaftEvent): void;
  /**
   * A Ready was taken from the core, before anything of it is persisted or sent: the node follows the
   * configuration in force here (issue 11: peer channels for members added, closed for members removed), so
   * the Ready's messages to a new member find its address.
   */
  onReady?(ready: Ready): void;
  /**
   * A Ready whose persistence is needed is about to be saved; `early` are the AppendEntries that leave before
   * it is durable (`sendableBeforePersist`). The simulator's crash-mid-write fault hooks in here.
   */
  beforePersist?(ready: Ready, early: readonly Message[]): void;
  /** A Ready's persistence is durable (or none was needed), before its messages leave. */
  afterPersist?(ready: Ready): void;
  /** Each message, just before it is handed to the sender (after persistence). */
  beforeSend?(msg: Message): void;
  /** A proposal was appended to the core's log at `index` (per-stage SET traces, issue 16). */
  onProposed?(index: number): void;
  /** The driver stopped on an error it cannot continue from (a failed save). */
  onFatal?(error: Error): void;
  /** After every loop run (the core may have changed). */
  afterRun?(): void;
}

export interface DriverOptions {
  readonly config: RaftConfig;
  readonly persisted: PersistedState;
  readonly stateMachine: StateMachine;
  readonly random: Random;
  readonly store: DriverStore;
  readonly sender: PeerSender;
  readonly clock: DriverClock;
  readonly limits?: Partial<DriverLimits>;
  readonly hooks?: DriverHooks;
  readonly coreOptions?: CoreOptions;
  /** Snapshots and log compaction; none when absent (the log then grows without end). */
  readonly snapshots?: DriverSnapshots;
  /**
   * How an input's run is scheduled. Unset: at once, inside the call (the simulator, the tests). The node
   * passes `queueMicrotask`: inputs that arrive in one event-loop task (the frames of one socket read) then
   * form one batch, so a leader answers a burst of acks with one AppendEntries round instead of one each.
   */
  readonly defer?: (run: () => void) => void;
  /**
   * Clock sanity (src/clock/), asked at the start of every turn and before every lease read with the local
   * time: a reason (a loop stall, a clock jump) makes the core drop its lease until acks renew it.
   */
  readonly clockCheck?: (nowMs: number) => string | undefined;
}

/** A proposal's handle: `cancel()` forgets it (its answer is no longer wanted). */
export interface ProposalHandle {
  cancel(): void;
}

type Input =
  | { readonly kind: "step"; readonly msg: Message }
  | {
    readonly kind: "propose";
    readonly command: Command;
    readonly answer: (o: ProposalOutcome) => void;
    readonly deadlineMs: number;
    cancelled: boolean;
    /** Cancels the proposal like `cancel()` once aborted (checked, never listened to: no listener per SET). */
    readonly signal: { readonly aborted: boolean } | undefined;
  }
  | { readonly kind: "read"; readonly run: (nowMs: number) => void; readonly refuse: () => void }
  | { readonly kind: "transfer"; readonly to: NodeId; readonly answer: (r: TransferOutcome) => void }
  | {
    readonly kind: "membership";
    readonly change: MembershipChange;
    readonly answer: (r: MembershipOutcome) => void;
  }
  | { readonly kind: "view"; readonly run: () => void }
  | { readonly kind: "snapshotTaken"; readonly info: SnapshotInfo }
  | { readonly kind: "readIndex"; readonly read: IndexRead }
  | { readonly kind: "connectionLost"; readonly peer: NodeId };

/** A ReadIndex read (issue 16): asked of the core, then waiting for its index to be applied. */
interface IndexRead {
  /** Serves the read from the applied state (local time). */
  readonly serve: (nowMs: number) => void;
  /** Refuses it: the core's refusal, or a limit/timeout/stop (`overloaded`/`timedOut`). */
  readonly refuse: (refusal: Refusal) => void;
  readonly overloaded: (why: string) => void;
  readonly deadlineMs: number;
  /** The read index once the core answered (undefined until then). */
  index?: number;
}

interface Pending {
  readonly answer: (o: ProposalOutcome) => void;
  /** Local time after which the outcome is reported unknown (Infinity: none). */
  readonly deadlineMs: number;
}

/** See the module doc and README.md. */
export class Driver {
  readonly core: RaftCore;
  readonly #store: DriverStore;
  readonly #sender: PeerSender;
  readonly #clock: DriverClock;
  readonly #limits: DriverLimits;
  readonly #hooks: DriverHooks;
  readonly #snapshots: DriverSnapshots | undefined;
  /** A snapshot being written (its index), undefined when none. */
  #snapshotting: number | undefined;
  /** Callers of `snapshot()` waiting for the one being written. */
  #snapshotWaiters: ((o: SnapshotOutcome) => void)[] = [];
  #snapshotForced = false;
  readonly #defer: ((run: () => void) => void) | undefined;
  readonly #clockCheck: ((nowMs: number) => string | undefined) | undefined;
  #kickScheduled = false;

  #inbox: Input[] = [];
  /** How many `view` inputs the inbox holds (most runs have none: `#runViews` then scans nothing). */
  #viewsQueued = 0;
  readonly #pending = new Map<number, Pending>();
  /** How many pending proposals have a finite deadline (most have none: the scans below are skipped). */
  #deadlines = 0;
  #nextTag = 1;
  /** Set while a save is under way: no input is stepped into the core until it is done. */
  #saving = false;
  #running = false;
  #again = false;
  #stopped = false;
  #wakeFloorMs = -Infinity;
  #wakeRequestedMs = NaN;
  /** Peer messages dropped because the inbox was full. */
  droppedMessages = 0;
  /** ReadIndex reads by core tag: asked, or answered and waiting for the apply (issue 16). */
  readonly #indexReads = new Map<number, IndexRead>();

  constructor(opts: DriverOptions) {
    this.#store = opts.store;
    this.#sender = opts.sender;
    this.#clock = opts.clock;
    this.#limits = { ...DEFAULT_DRIVER_LIMITS, ...opts.limits };
    this.#hooks = opts.hooks ?? {};
    this.#snapshots = opts.snapshots;
    this.#defer = opts.defer;
    this.#clockCheck = opts.clockCheck;
    this.core = new RaftCore(
      opts.config,
      opts.persisted,
      opts.stateMachine,
      opts.random,
      opts.clock.now(),
      opts.coreOptions,
    );
  }

  // ------------------------------------------------------------------------------------------------------
  // Inputs.

  /** A peer message. Dropped (counted) when the inbox is full: Raft recovers from a lost message. */
  deliver(msg: Message): void {
    if (this.#stopped) return;
    if (this.#inbox.length >= this.#limits.inboxMax) {
      this.droppedMessages++;
      return;
    }
    this.#inbox.push({ kind: "step", msg });
    this.#kick();
  }

  /**
   * Proposes a SET; `answer` is called exactly once with its outcome (possibly synchronously).
   * `timeoutMs` (local clock): past it, the outcome is reported unknown. `signal`: once aborted, the proposal
   * is forgotten as by `cancel()` (not proposed if not yet taken, never answered).
   */
  propose(
    command: Command,
    answer: (o: ProposalOutcome) => void,
    timeoutMs = Infinity,
    signal?: { readonly aborted: boolean },
  ): ProposalHandle {
    const input = {
      kind: "propose" as const,
      command,
      answer,
      deadlineMs: timeoutMs === Infinity ? Infinity : this.#clock.now() + timeoutMs,
      cancelled: false,
      signal,
    };
    const handle = { cancel: () => (input.cancelled = true) };
    if (this.#stopped) {
      answer({ kind: "refused", refusal: { kind: "notLeader", leaderId: 0 } });
      return handle;
    }
    if (this.#inbox.length >= this.#limits.inboxMax) {
      answer({ kind: "overloaded", reason: `the node's inbox is full (${this.#limits.inboxMax} inputs)` });
      return handle;
    }
    this.#inbox.push(input);
    this.#kick();
    return handle;
  }

  /**
   * A lease read (the rule is the core's `read`). With more than one voter it is answered at once, even while
   * a disk write is under way: the applied state only holds entries committed by acks stepped in after this
   * leader's own copy was durable, and a read steps nothing in. A single voter commits its own entries in the
   * turn that appends them, before their fsync, so its reads queue behind the write.
   */
  read(key: string, answer: (r: ReadOutcome) => void): void {
    if (this.#stopped) {
      answer({ ok: false, refusal: { kind: "notLeader", leaderId: 0 } });
      return;
    }
    this.leaseRead(
      (now) => this.core.read(now, key),
      answer,
      (why): ReadOutcome => ({ ok: false, overloaded: why }),
    );
  }

  /**
   * Any read of applied state under the lease (GET, LIST), by the same rule as `read`: `serve` runs with the
   * local time, at once (more than one voter) or behind the write under way (a single voter); `refused`
   * makes the answer when the driver is stopped (undefined: not leader) or its inbox full.
   */
  leaseRead<T>(serve: (nowMs: number) => T, answer: (r: T) => void, overloaded: (why: string) => T): void {
    if (this.#stopped) {
      answer(overloaded("the node is stopping"));
      return;
    }
    if (!this.#singleVoter()) {
      const now = this.#clock.now();
      if (this.#checkClock(now)) this.#kick(); // the heartbeat dropLease queued goes out with a turn
      answer(serve(now));
      return;
    }
    if (this.#inbox.length >= this.#limits.inboxMax) {
      answer(overloaded(`the node's inbox is full (${this.#limits.inboxMax} inputs)`));
      return;
    }
    this.#inbox.push({
      kind: "read",
      run: (now) => answer(serve(now)),
      refuse: () => answer(overloaded("the node is stopping")),
    });
    this.#kick();
  }

  /**
   * A linearizable read any node serves (ReadIndex, issue 16): the core asks the leader for its read index
   * (a follower sends one ReadIndex per turn for all its reads), then `serve` runs once this node has applied
   * it. `refused` gets the core's refusal (no leader, leader not ready); `overloaded` a full queue
   * (`readIndexPendingMax`), the deadline (`timeoutMs`, local clock) or a stop. Exactly one is called.
   */
  indexRead<T>(
    serve: (nowMs: number) => T,
    answer: (r: T) => void,
    refused: (refusal: Refusal) => T,
    overloaded: (why: string) => T,
    timeoutMs = READ_INDEX_TIMEOUT_MS_DEFAULT,
  ): void {
    if (this.#stopped) {
      answer(overloaded("the node is stopping"));
      return;
    }
    if (this.#inbox.length >= this.#limits.inboxMax) {
      answer(overloaded(`the node's inbox is full (${this.#limits.inboxMax} inputs)`));
      return;
    }
    let done = false;
    const once = <A>(f: (a: A) => T) => (a: A) => {
      if (done) return;
      done = true;
      answer(f(a));
    };
    const read: IndexRead = {
      serve: once(serve),
      refuse: once(refused),
      overloaded: once(overloaded),
      deadlineMs: this.#clock.now() + timeoutMs,
    };
    if (!this.#singleVoter() && this.core.role === "leader") {
      // The leader under its lease answers at once, as a lease read (its read index is its commit index, all
      // applied): no turn, no message. Without the lease it asks its core (a confirming heartbeat round).
      const now = this.#clock.now();
      if (this.#checkClock(now)) this.#kick(); // the heartbeat dropLease queued goes out with a turn
      if (this.core.leaseReadRefusal(now) === undefined) {
        read.serve(now);
        return;
      }
    }
    if (!this.#running && !this.#saving && this.#inbox.length === 0) {
      // Idle loop: ask the core now. A follower that has a ReadIndex in flight only adds the read to the next
      // batch, and then nothing needs a turn (the answer's turn serves the whole batch).
      this.#askReadIndex(read, this.#clock.now());
      if (this.core.hasReady()) this.#kick();
      return;
    }
    this.#inbox.push({ kind: "readIndex", read });
    this.#kick();
  }

  /**
   * A read that may be stale by at most `maxStalenessMs` (issue 16, `--max-staleness`), by the core's
   * `staleReadRefusal`: `serve` runs at once when this node can show its state is recent enough, else
   * `refused` gets `tooStale` (or what a leader's lease read says). Scheduled like `leaseRead`.
   */
  staleRead<T>(
    maxStalenessMs: number,
    serve: (nowMs: number) => T,
    answer: (r: T) => void,
    refused: (refusal: Refusal) => T,
    overloaded: (why: string) => T,
  ): void {
    this.leaseRead(
      (now) => {
        const refusal = this.core.staleReadRefusal(now, maxStalenessMs);
        return refusal === undefined ? serve(now) : refused(refusal);
      },
      answer,
      overloaded,
    );
  }

  /**
   * The connection to `peer` was reset or closed by the other side (its process went away), not timed out:
   * if it is this follower's leader, a PreVote round starts at once (core `leaderConnectionLost`).
   */
  peerConnectionLost(peer: NodeId): void {
    if (this.#stopped || this.#inbox.length >= this.#limits.inboxMax) return;
    this.#inbox.push({ kind: "connectionLost", peer });
    this.#kick();
  }

  get pendingIndexReads(): number {
    return this.#indexReads.size;
  }

  /** Hands leadership to `to` (0: the most up-to-date follower). */
  transfer(to: NodeId, answer: (r: TransferOutcome) => void): void {
    if (this.#stopped) {
      answer({ ok: false, reason: "the node is stopping" });
      return;
    }
    this.#inbox.push({ kind: "transfer", to, answer });
    this.#kick();
  }

  /**
   * Membership (issue 11): asks the core (the leader) for `change` (add a learner, promote, remove). The
   * answer says where the change was appended, or why it was refused; its commit is the caller's to watch.
   */
  changeMembership(change: MembershipChange, answer: (r: MembershipOutcome) => void): void {
    if (this.#stopped) {
      answer({ ok: false, reason: "the node is stopping" });
      return;
    }
    this.#inbox.push({ kind: "membership", change, answer });
    this.#kick();
  }

  /**
   * Runs `view` inside the loop, between turns (never while a Ready is half handled): status and dump views.
   * Run at once when the loop is idle.
   */
  view<T>(view: () => T, answer: (v: T) => void): void {
    if (!this.#running) {
      answer(view());
      return;
    }
    this.#inbox.push({ kind: "view", run: () => answer(view()) });
    this.#viewsQueued++;
  }

  /** Takes a snapshot now, whatever the threshold (`raftkv admin snapshot`); `answer` once it is durable. */
  snapshot(answer: (o: SnapshotOutcome) => void): void {
    if (this.#stopped || this.#snapshots === undefined) {
      answer({ ok: false, reason: this.#stopped ? "the node is stopping" : "snapshots are off" });
      return;
    }
    this.#snapshotWaiters.push(answer);
    this.#snapshotForced = true;
    this.#run();
  }

  /** The clock's wake-up: runs the due timers. `minNowMs` floors the time the timers see (simulated clocks). */
  wake(minNowMs = -Infinity): void {
    if (this.#stopped) return;
    this.#wakeFloorMs = Math.max(this.#wakeFloorMs, minNowMs);
    this.#wakeRequestedMs = NaN;
    this.#run();
  }

  /**
   * Stops: nothing more is stepped, saved or sent. Proposals accepted and unanswered get `outcomeUnknown`,
   * inputs not yet taken get a refusal (nothing was done). Idempotent.
   */
  stop(reason = "the node is stopping"): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#clock.wakeAt(Infinity);
    const inbox = this.#inbox;
    this.#inbox = [];
    for (const p of this.#pending.values()) p.answer({ kind: "outcomeUnknown", reason });
    this.#pending.clear();
    this.#deadlines = 0;
    for (const i of inbox) this.#refuseStopped(i, reason);
    const reads = [...this.#indexReads.values()];
    this.#indexReads.clear();
    for (const r of reads) r.overloaded(reason);
    this.#answerSnapshot({ ok: false, reason });
  }

  /** Stops without answering anyone (a crash, in the simulator). */
  kill(): void {
    this.#stopped = true;
    this.#inbox = [];
    this.#indexReads.clear();
    this.#pending.clear();
    this.#deadlines = 0;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** True while a save is under way. */
  get saving(): boolean {
    return this.#saving;
  }

  get pendingProposals(): number {
    return this.#pending.size;
  }

  get inboxLength(): number {
    return this.#inbox.length;
  }

  status(): Status {
    return this.core.status(this.#clock.now());
  }

  log(): readonly Entry[] {
    return this.core.log();
  }

  /**
   * True when the configuration in force has one voter (and no joint phase): it commits its own entries in
   * the turn that appends them, so its reads queue behind the write. Asked each time: membership changes.
   */
  #singleVoter(): boolean {
    const m = this.core.membership;
    return m.outgoingVoters === undefined && m.members.filter((x) => x.voter).length === 1;
  }

  // ------------------------------------------------------------------------------------------------------
  // The loop.

  /** Runs the loop for a new input: at once, or once per `defer` slot however many inputs arrive. */
  #kick(): void {
    if (this.#defer === undefined) {
      this.#run();
      return;
    }
    if (this.#kickScheduled) return;
    this.#kickScheduled = true;
    this.#defer(() => {
      this.#kickScheduled = false;
      if (!this.#stopped) this.#run();
    });
  }

  #run(): void {
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = true;
    try {
      do {
        this.#again = false;
        while (!this.#stopped && !this.#saving && this.#hasWork()) if (!this.#turn()) break;
      } while (this.#again && !this.#stopped && !this.#saving);
    } finally {
      this.#running = false;
    }
    if (!this.#stopped) {
      // Views queued during the run (there is no turn left to take them while saving).
      if (this.#saving) this.#runViews();
      else this.#serveIndexReads();
      this.#maybeSnapshot();
      this.#hooks.afterRun?.();
      this.#armWake();
    }
  }

  #hasWork(): boolean {
    if (this.#inbox.length > 0) return true;
    const now = Math.max(this.#clock.now(), this.#wakeFloorMs);
    if (now >= this.core.nextWakeMs() || now >= this.#earliestDeadline()) return true;
    return this.core.hasReady();
  }

  /**
   * One turn: feed the batch, fire due timers, handle the Ready in the contract's order. False when it found
   * nothing to do (a timer the core keeps due is then left to the next wake-up, not spun on).
   */
  #turn(): boolean {
    const batch = this.#inbox;
    this.#inbox = [];
    this.#viewsQueued = 0;
    const clockNow = this.#clock.now();
    this.#checkClock(clockNow);
    for (const input of batch) {
      if (this.#stopped) return false;
      this.#apply(input, clockNow);
    }
    const now = Math.max(clockNow, this.#wakeFloorMs);
    this.#wakeFloorMs = -Infinity;
    if (now >= this.core.nextWakeMs()) this.core.tick(now);
    const expired = this.#expireDeadlines(now);
    if (!this.core.hasReady()) return batch.length > 0 || expired;
    const rd = this.core.ready();
    for (const ev of rd.events) this.#hooks.onEvent?.(ev);
    this.#hooks.onReady?.(rd);
    if (
      rd.hardState === undefined && rd.appendFrom === undefined && rd.snapshotChunk === undefined &&
      rd.compactLog === undefined
    ) {
      if (rd.commitIndex !== undefined) this.#store.noteCommit(rd.commitIndex);
      this.#afterPersist(rd, []);
      return true;
    }
    // 1. Persist; a leader's AppendEntries leave while the write is under way (sendableBeforePersist), and
    // nothing is stepped in until it is done (#saving holds the loop).
    const early = sendableBeforePersist(rd);
    this.#saving = true;
    this.#hooks.beforePersist?.(rd, early);
    if (this.#stopped) return false;
    for (const m of early) this.#send(m);
    let sync = true;
    this.#store.save(rd, (error) => this.#saved(rd, early, error, !sync));
    sync = false;
    return true;
  }

  #saved(rd: Ready, early: readonly Message[], error: Error | undefined, resume: boolean): void {
    if (this.#stopped) return;
    this.#saving = false;
    if (error !== undefined) {
      this.stop(`the node stopped: its disk failed (${error.message})`);
      this.#hooks.onFatal?.(error);
      return;
    }
    this.#afterPersist(rd, early);
    if (resume) this.#run();
  }

  /** Steps 2 and 3 of the contract: send (except what left early), then answer. */
  #afterPersist(rd: Ready, early: readonly Message[]): void {
    this.#hooks.afterPersist?.(rd);
    if (this.#stopped) return;
    for (const m of rd.messages) {
      if (early.length > 0 && m.type === "AppendEntries") continue;
      this.#send(m);
    }
    for (const a of rd.readIndexes ?? []) {
      const r = this.#indexReads.get(a.tag);
      if (r === undefined) continue;
      if ("refusal" in a) {
        this.#indexReads.delete(a.tag);
        r.refuse(a.refusal);
      } else r.index = a.index;
    }
    // Served after the Ready that carried their index is durable (a single voter commits before its fsync).
    if (rd.readIndexes !== undefined) this.#serveIndexReads();
    for (const r of rd.results) {
      const p = this.#pending.get(r.tag);
      if (p === undefined) continue;
      this.#pending.delete(r.tag);
      if (p.deadlineMs !== Infinity) this.#deadlines--;
      if (r.ok) p.answer({ kind: "ok", index: r.index, outcome: r.outcome });
      else if (r.refusal?.kind === "staleSequence" || r.refusal?.kind === "sessionExpired") {
        // The state machine refused it at apply: final, nothing applied.
        p.answer({ kind: "refused", refusal: r.refusal });
      } else {
        p.answer({
          kind: "outcomeUnknown",
          reason: "leadership was lost before the SET committed; it may still apply",
          refusal: r.refusal,
        });
      }
    }
  }

  /** True when the clock check found something (the lease is then dropped). */
  #checkClock(now: number): boolean {
    const reason = this.#clockCheck?.(now);
    if (reason === undefined) return false;
    this.core.dropLease(now, reason);
    return true;
  }

  #send(m: Message): void {
    if (m.type === "InstallSnapshot") {
      const data = this.#snapshots?.chunk(m);
      if (data === undefined) return; // that snapshot is gone: the core sends the newer one on its next try
      m = { ...m, data };
    }
    this.#hooks.beforeSend?.(m);
    this.#sender.send(m);
  }

  /** Starts a snapshot when the log has grown past the threshold (or one was asked for) and none is under way. */
  #maybeSnapshot(): void {
    const snaps = this.#snapshots;
    if (snaps === undefined || this.#snapshotting !== undefined || this.#stopped) return;
    const core = this.core;
    const index = core.appliedIndex;
    const last = core.snapshot?.index ?? 0;
    const due = core.entriesSinceSnapshot >= snaps.thresholdEntries;
    if (!due && !this.#snapshotForced) return;
    if (index <= last) {
      // Nothing new is applied: the snapshot in place is the answer.
      if (this.#snapshotForced && core.snapshot !== undefined) {
        this.#snapshotForced = false;
        this.#answerSnapshot({ ok: true, index: last, term: core.snapshot.term });
      }
      return;
    }
    const term = core.termAt(index);
    if (term === undefined) return;
    this.#snapshotForced = false;
    this.#snapshotting = index;
    snaps.take(index, term, core.configAt(index), (sizeBytes, error) => {
      if (this.#stopped) return;
      if (error !== undefined || sizeBytes === undefined) {
        this.#snapshotting = undefined;
        this.#answerSnapshot({ ok: false, reason: `the snapshot at ${index} failed: ${error?.message}` });
        return;
      }
      this.#inbox.push({ kind: "snapshotTaken", info: { index, term, sizeBytes } });
      this.#run();
    });
  }

  #answerSnapshot(o: SnapshotOutcome): void {
    const waiters = this.#snapshotWaiters;
    this.#snapshotWaiters = [];
    for (const w of waiters) w(o);
  }

  #apply(input: Input, now: number): void {
    switch (input.kind) {
      case "step":
        this.core.step(now, input.msg);
        return;
      case "propose": {
        if (input.cancelled || input.signal?.aborted) return;
        if (this.#pending.size >= this.#limits.pendingProposalsMax) {
          input.answer({
            kind: "overloaded",
            reason: `${this.#pending.size} SETs are waiting for their commit (pendingProposalsMax)`,
          });
          return;
        }
        const tag = this.#nextTag++;
        // Registered first: a retry of an applied SET is answered in this very Ready.
        const answer = (o: ProposalOutcome) => {
          if (!input.cancelled && !input.signal?.aborted) input.answer(o);
        };
        this.#pending.set(tag, { answer, deadlineMs: input.deadlineMs });
        const finite = input.deadlineMs !== Infinity;
        if (finite) this.#deadlines++;
        const r = this.core.propose(now, input.command, tag);
        if (!r.ok) {
          if (this.#pending.delete(tag) && finite) this.#deadlines--;
          input.answer({ kind: "refused", refusal: r.refusal });
        } else this.#hooks.onProposed?.(r.index);
        return;
      }
      case "read":
        input.run(now);
        return;
      case "transfer":
        input.answer(this.core.transferLeadership(now, input.to));
        return;
      case "membership":
        input.answer(this.core.changeMembership(now, input.change));
        return;
      case "view":
        input.run();
        return;
      case "snapshotTaken":
        this.#snapshotting = undefined;
        this.core.snapshotTaken(input.info);
        this.#answerSnapshot({ ok: true, index: input.info.index, term: input.info.term });
        return;
      case "readIndex":
        this.#askReadIndex(input.read, now);
        return;
      case "connectionLost":
        this.core.leaderConnectionLost(now, input.peer);
        return;
    }
  }

  /** Registers a ReadIndex read and asks the core for its index (the answer comes in a Ready). */
  #askReadIndex(r: IndexRead, now: number): void {
    if (this.#indexReads.size >= this.#limits.readIndexPendingMax) {
      r.overloaded(`${this.#indexReads.size} follower reads are waiting (readIndexPendingMax)`);
      return;
    }
    const tag = this.#nextTag++;
    this.#indexReads.set(tag, r);
    const refusal = this.core.requestReadIndex(now, tag);
    if (refusal !== undefined) {
      this.#indexReads.delete(tag);
      r.refuse(refusal);
    }
  }

  /** Serves the ReadIndex reads whose index this node has applied (and whose entries are visible). */
  #serveIndexReads(): void {
    if (this.#indexReads.size === 0 || this.#saving) return;
    let now: number | undefined;
    for (const [tag, r] of this.#indexReads) {
      if (r.index === undefined || !this.core.readIndexServable(r.index)) continue;
      this.#indexReads.delete(tag);
      r.serve(now ??= this.#clock.now());
    }
  }

  #runViews(): void {
    if (this.#viewsQueued === 0) return;
    this.#viewsQueued = 0;
    const views = this.#inbox.filter((i) => i.kind === "view");
    if (views.length === 0) return;
    this.#inbox = this.#inbox.filter((i) => i.kind !== "view");
    for (const v of views) (v as { run: () => void }).run();
  }

  #earliestDeadline(): number {
    let min = Infinity;
    for (const r of this.#indexReads.values()) if (r.deadlineMs < min) min = r.deadlineMs;
    if (this.#deadlines === 0) return min;
    for (const p of this.#pending.values()) if (p.deadlineMs < min) min = p.deadlineMs;
    return min;
  }

  #expireDeadlines(now: number): boolean {
    let expired = false;
    for (const [tag, r] of this.#indexReads) {
      if (now < r.deadlineMs) continue;
      this.#indexReads.delete(tag);
      expired = true;
      r.overloaded(
        r.index === undefined
          ? "no read index from the leader before the read's deadline"
          : `this node did not apply the read index ${r.index} before the read's deadline`,
      );
    }
    if (this.#deadlines === 0) return expired;
    for (const [tag, p] of this.#pending) {
      if (now < p.deadlineMs) continue;
      this.#pending.delete(tag);
      this.#deadlines--;
      expired = true;
      p.answer({
        kind: "outcomeUnknown",
        reason: "the SET did not commit before its deadline; it may still apply",
      });
    }
    return expired;
  }

  #armWake(): void {
    if (this.#saving) return; // the save's completion resumes the loop
    const at = Math.min(this.core.nextWakeMs(), this.#earliestDeadline());
    if (at === this.#wakeRequestedMs) return;
    this.#wakeRequestedMs = at;
    this.#clock.wakeAt(at);
  }

  #refuseStopped(i: Input, reason: string): void {
    switch (i.kind) {
      case "propose":
        if (!i.cancelled && !i.signal?.aborted) {
          i.answer({ kind: "refused", refusal: { kind: "notLeader", leaderId: 0 } });
        }
        return;
      case "read":
        i.refuse();
        return;
      case "transfer":
      case "membership":
        i.answer({ ok: false, reason });
        return;
      case "view":
        i.run();
        return;
      case "readIndex":
        i.read.overloaded(reason);
        return;
      case "step":
      case "snapshotTaken":
      case "connectionLost":
        return;
    }
  }
}
