/**
 * The deterministic cluster simulator (after TigerBeetle's VOPR): one seed drives a whole raftkv cluster —
 * pure Raft cores, their disks, their drifting clocks, a lossy reordering network, crashes, pauses,
 * partitions, and clients — over a real (oracle) time line kept in a priority queue. The same seed replays
 * exactly. Checkers (checkers.ts) watch every event; the client history is checked for linearizability at
 * the end.
 *
 * Time: each node's local monotonic clock is `offset + rate·t` of real time `t`; a node's timers fire at the
 * real time when its local clock reaches `core.nextWakeMs()`, re-read after every call into the core.
 *
 * Each node runs the production driver (src/driver/): the same loop that drains the core's Ready in the
 * contract's order, batches inputs while its disk is busy, owns in-flight SETs and answers them. Around it:
 *
 * Disk (disk.ts): each node's folder as bytes, written by the file store's own logic (src/storage/
 * file_log.ts); an fsync completes after a drawn latency, as an event; a crash keeps, loses or tears the
 * unsynced writes; fsync failures and ENOSPC stop the node (fail-stop); a bit flip in a committed record
 * makes the node refuse to start (it then stays down). A node restarted after a crash recovers from those
 * bytes, with a fresh KvStore.
 *
 * @module
 */
import type { RaftCore } from "../../src/raft/core.ts";
import {
  fingerprintMismatch,
  peerFingerprint,
  type RaftConfig,
  type RaftTimings,
} from "../../src/raft/config.ts";
import { describeEvent, describeMessage } from "../../src/raft/describe.ts";
import type { SessionVerdict, SetCommand, StateMachine } from "../../src/raft/state_machine.ts";
import type {
  Command,
  Entry,
  Message,
  PersistedState,
  Ready,
  Refusal,
  WriteOutcome,
} from "../../src/raft/types.ts";
import type { ChangeResult, Membership, MembershipChange } from "../../src/raft/membership.ts";
import { KvStore } from "../../src/kv/kv_store.ts";
import { Driver, type ProposalOutcome } from "../../src/driver/mod.ts";
import { SimDisk, type SimDiskStore } from "./disk.ts";
import { StorageError } from "../../src/storage/errors.ts";
import { encodeSnapshot, parseSnapshot } from "../../src/storage/snapshot_file.ts";
import { Checker, type LeaseInterval, type Violation, type ViolationName } from "./checkers.ts";
import {
  type ClientHost,
  type ClientReply,
  type ClientRequest,
  type ClientResponse,
  type ClientTimer,
  History,
  SimClient,
} from "./clients.ts";
import { drawClocks, type SimClock } from "./clock.ts";
import { ClockSanity } from "../../src/clock/mod.ts";
import { WaitRule } from "./lease_rules.ts";
import { EventQueue } from "./heap.ts";
import { checkLinearizable, type LinearizabilityResult } from "./linearizability.ts";
import { Network } from "./network.ts";
import type { SimOptions } from "./options.ts";
import { Prng } from "./prng.ts";
import { Director } from "./scenarios.ts";

type SimEvent =
  | { readonly kind: "tick"; readonly node: number; readonly token: number; readonly wakeLocalMs: number }
  | { readonly kind: "message"; readonly msg: Message; readonly fromInc: number; readonly toInc: number }
  | {
    readonly kind: "clientRequest";
    readonly node: number;
    readonly toInc: number;
    readonly req: ClientRequest;
  }
  | { readonly kind: "clientResponse"; readonly fromInc: number; readonly resp: ClientResponse }
  | {
    readonly kind: "clientTimer";
    readonly client: number;
    readonly what: ClientTimer;
    readonly opId: number;
    readonly attempt: number;
  }
  | { readonly kind: "action"; readonly run: () => void }
  | { readonly kind: "resume"; readonly node: number; readonly token: number }
  | { readonly kind: "disk"; readonly node: number; readonly inc: number; readonly run: () => void }
  | { readonly kind: "check" };

/**
 * Called after a Ready was persisted and before its messages leave; returning true crashes the node there
 * (so the messages are lost). The scenarios use it to crash a node at a precise point.
 */
export type CrashHook = (node: SimNode, ready: Ready) => boolean;

export class SimNode {
  /** The production driver of the current incarnation (undefined while down). */
  driver: Driver | undefined;
  /** The node's folder: outlives incarnations. Set by the simulation. */
  disk!: SimDisk;
  /** Bumped at every crash and restart: messages stamped with an older incarnation are dropped. */
  incarnation = 0;
  restarts = 0;
  paused = false;
  pauseToken = 0;
  /** Deliveries that arrived while paused, processed at resume. */
  deferred: SimEvent[] = [];
  tickToken = 0;
  scheduledWakeMs = NaN;
  lastLocalMs = -Infinity;
  /** The commit index the checkers last saw. */
  commitSeen = 0;
  crashHook: CrashHook | undefined;
  /**
   * Consulted first, for a Ready whose AppendEntries may leave before it is persisted (a leader's): a number
   * N lets them leave, holds the node's log write for N+1 ms and crashes it at N ms, the write not durable:
   * a leader dying during its fsync, its appends delivered meanwhile. `false`: carry on.
   */
  crashMidPersistHook: ((node: SimNode, ready: Ready) => number | false) | undefined;
  /** Between a crashMidPersistHook firing and the crash: a Ready drained and not persisted. */
  stuckInWrite = false;
  /** The state machine of the current incarnation. */
  machine: RecordingMachine | undefined;
  /** Clock sanity of the current incarnation (src/clock/), fed like the node loop feeds it. */
  sanity: ClockSanity | undefined;
  sameInstantTicks = 0;
  lastTickAtMs = -1;

  /**
   * The timings this incarnation runs with when they differ from the cluster's (an operator restarted it
   * with another config: the `timingRestart` variant of the takeover episode); undefined: the cluster's.
   */
  timings: RaftTimings | undefined;
  /** Started with --join: not in the bootstrap configuration (a spare for the membership episode). */
  joins = false;
  /** Removed from the cluster and shut down for good (its id is never reused). */
  retired = false;

  constructor(readonly id: number, readonly clock: SimClock) {}

  /** The core inside the driver (for the checkers and scenarios: observation only). */
  get core(): RaftCore | undefined {
    return this.driver?.core;
  }

  get alive(): boolean {
    return this.driver !== undefined;
  }

  /** The local clock at real time `realMs` (never going back). */
  local(realMs: number): number {
    const t = this.clock.local(realMs);
    if (t > this.lastLocalMs) this.lastLocalMs = t;
    return this.lastLocalMs;
  }
}

/** Wraps the KvStore so the checkers see every applied entry. */
class RecordingMachine implements StateMachine {
  readonly kv = new KvStore();
  constructor(private readonly sim: Simulation, private readonly node: number) {}
  apply(entry: Entry): Refusal | undefined {
    this.sim.checker.onApply(this.sim.nowMs, this.node, entry);
    if (entry.command.op === "config") this.sim.noteCommittedConfig(entry.index);
    return this.kv.apply(entry);
  }
  lastOutcome(): WriteOutcome | undefined {
    return this.kv.lastOutcome();
  }
  outcomeOf(clientId: string, seq: number): WriteOutcome | undefined {
    return this.kv.outcomeOf(clientId, seq);
  }
  checkSession(c: SetCommand): SessionVerdict {
    return this.kv.checkSession(c);
  }
  get(key: string): string | undefined {
    return this.kv.get(key);
  }
  isApplied(clientId: string, seq: number): boolean {
    return this.kv.isApplied(clientId, seq);
  }
}

export interface RunOptions {
  /** Print one line per event. */
  readonly verbose?: boolean;
  /** Where lines go (default: nowhere unless verbose, then console.log). */
  readonly out?: (line: string) => void;
  /** Stop the run at the first violation (the sweep does; a replay does not). */
  readonly stopAtFirstViolation?: boolean;
}

export interface SimResult {
  readonly options: SimOptions;
  readonly violations: readonly Violation[];
  readonly counts: ReadonlyMap<ViolationName, number>;
  readonly linearizability: LinearizabilityResult | undefined;
  readonly stats: {
    readonly simulatedMs: number;
    readonly events: number;
    readonly messages: number;
    readonly opsOk: number;
    readonly opsInfo: number;
    readonly opsFail: number;
    readonly leadersElected: number;
    readonly committed: number;
    readonly crashes: number;
    /** Disk faults met: fail-stops (fsync/ENOSPC), torn tails cut at restart, starts refused on corruption. */
    readonly disk: { readonly failStops: number; readonly tornTails: number; readonly refusals: number };
    readonly episodes: readonly string[];
  };
}

const TIMER_STORM_TICKS = 500;
const EVENTS_MAX = 20_000_000;

export class Simulation implements ClientHost {
  nowMs = 0;
  readonly queue = new EventQueue<SimEvent>();
  readonly nodes: SimNode[] = [];
  readonly ids: number[] = [];
  /** The voters of the bootstrap configuration (cluster.json); the other ids are spares. */
  readonly bootstrapIds: number[] = [];
  readonly checker = new Checker();
  readonly waitRule = new WaitRule(this.checker);
  readonly net: Network;
  readonly history = new History();
  readonly clients: SimClient[] = [];
  readonly rng: Prng;
  readonly #faultRng: Prng;
  readonly #director: Director;
  readonly #verbose: boolean;
  readonly #out: (line: string) => void;
  readonly #stopAtFirst: boolean;
  #aborted = false;
  #directorSeq = 0;
  events = 0;
  messages = 0;
  crashes = 0;
  readonly diskStats = { failStops: 0, tornTails: 0, refusals: 0 };

  constructor(readonly options: SimOptions, run: RunOptions = {}) {
    this.rng = new Prng(options.seed);
    this.#faultRng = this.rng.fork("faults");
    this.#verbose = run.verbose ?? false;
    this.#out = run.out ?? ((line) => console.log(line));
    this.#stopAtFirst = run.stopAtFirstViolation ?? false;
    const total = options.nodeCount + options.spareCount;
    this.net = new Network(total, options.network, this.rng.fork("network"));
    const clocks = drawClocks(
      this.rng.fork("clocks"),
      total,
      options.timings.maxClockDrift,
      options.breakRule === "drift",
      options.faultPhaseMs + options.quietMs + 10_000,
    );
    this.nodes.push(undefined as unknown as SimNode); // ids are 1-based
    for (let id = 1; id <= total; id++) {
      const node = new SimNode(id, clocks[id - 1]);
      node.disk = new SimDisk(id, options.disk, this.rng.fork(`disk${id}`), (line) => this.trace(line));
      this.nodes.push(node);
      this.ids.push(id);
      if (id > options.nodeCount) node.joins = true;
      else this.bootstrapIds.push(id);
    }
    for (let c = 1; c <= options.clientCount; c++) {
      this.clients.push(new SimClient(c, this, this.history, options.client, this.rng.fork(`client${c}`)));
    }
    this.#director = new Director(this, this.rng.fork("director"));
  }

  /** Every node clients may try (the voters and the spares). */
  get nodeCount(): number {
    return this.ids.length;
  }

  get quorum(): number {
    return Math.floor(this.options.nodeCount / 2) + 1;
  }

  get verbose(): boolean {
    return this.#verbose;
  }

  /** A fault-schedule random stream (for the scenarios). */
  get faultRng(): Prng {
    return this.#faultRng;
  }

  trace(line: string): void {
    if (this.#verbose) this.#out(`${this.nowMs.toFixed(3).padStart(11)}  ${line}`);
  }

  // ------------------------------------------------------------------------------------------------------
  // The run.

  run(): SimResult {
    const o = this.options;
    for (const id of this.ids) this.restart(id, "starts");
    for (const c of this.clients) c.begin();
    this.#director.start(o.faultPhaseMs);
    this.#scheduleBitFlips();
    this.queue.push(1000, { kind: "check" });
    const endMs = o.faultPhaseMs + o.quietMs;
    while (!this.#aborted && this.queue.peekMs() <= endMs) {
      const { atMs, item } = this.queue.pop()!;
      this.nowMs = atMs;
      this.events++;
      if (this.events > EVENTS_MAX) {
        this.checker.report("timer storm", atMs, `more than ${EVENTS_MAX} events`);
        break;
      }
      this.#dispatch(item);
      this.#checkLeases();
      if (this.#stopAtFirst && !this.checker.ok) break;
    }
    if (!this.#aborted) this.nowMs = Math.max(this.nowMs, endMs);
    let lin: LinearizabilityResult | undefined;
    const stopped = this.#aborted || (this.#stopAtFirst && !this.checker.ok);
    if (!stopped) {
      this.#periodicChecks();
      if (!this.live().some((n) => n.core!.role === "leader")) {
        this.checker.report(
          "liveness",
          this.nowMs,
          `no leader after ${o.quietMs} ms of healed network with every node up (roles: ${
            this.live().map((n) => `${n.id}:${n.core!.role}/t${n.core!.term}`).join(" ")
          })`,
        );
      }
    }
    const history = this.history.finish();
    if (!this.#aborted) {
      lin = checkLinearizable(history);
      if (lin.ok === false) this.checker.report("linearizability", this.nowMs, lin.explanation);
    }
    return {
      options: o,
      violations: this.checker.violations,
      counts: this.checker.counts,
      linearizability: lin,
      stats: {
        simulatedMs: this.nowMs,
        events: this.events,
        messages: this.messages,
        opsOk: history.filter((h) => h.outcome === "ok").length,
        opsInfo: history.filter((h) => h.outcome === "info").length,
        opsFail: history.filter((h) => h.outcome === "fail").length,
        leadersElected: this.checker.leadersElected,
        committed: this.checker.committedLength,
        crashes: this.crashes,
        disk: { ...this.diskStats },
        episodes: this.#director.episodesRun,
      },
    };
  }

  /**
   * Bit flips in committed records, at random times of the fault phase, on nodes chosen so that the nodes
   * kept down for a damaged disk never cost the cluster its quorum.
   */
  #scheduleBitFlips(): void {
    const rng = this.rng.fork("bitflips");
    for (let i = 0; i < this.options.disk.bitFlips; i++) {
      const atMs = rng.range(2000, Math.max(2000, this.options.faultPhaseMs));
      const id = rng.pick(this.ids);
      this.at(atMs, () => {
        const down = this.ids.filter((x) => this.nodes[x].disk.corruptedAt !== undefined).length;
        // The bootstrap cluster's tolerance (spares and membership changes never widen it); a retired node
        // never starts again (a spare not yet started has no committed record: flipBit skips it).
        if (
          down + 1 > this.options.nodeCount - this.quorum || this.nodes[id].disk.corruptedAt !== undefined
        ) {
          return;
        }
        if (this.nodes[id].retired) return;
        this.flipBit(id);
      });
    }
  }

  #dispatch(ev: SimEvent): void {
    switch (ev.kind) {
      case "tick": {
        const n = this.nodes[ev.node];
        if (!n.driver || ev.token !== n.tickToken || n.paused) return;
        n.scheduledWakeMs = NaN;
        if (n.lastTickAtMs === this.nowMs) {
          if (++n.sameInstantTicks > TIMER_STORM_TICKS) {
            this.checker.report(
              "timer storm",
              this.nowMs,
              `node ${n.id} asked to be woken ${TIMER_STORM_TICKS} times at the same instant (nextWakeMs ${ev.wakeLocalMs})`,
            );
            this.#aborted = true;
            return;
          }
        } else {
          n.lastTickAtMs = this.nowMs;
          n.sameInstantTicks = 0;
        }
        this.#guard(n, (d) => d.wake(ev.wakeLocalMs));
        return;
      }
      case "message": {
        const m = ev.msg;
        const to = this.nodes[m.to], from = this.nodes[m.from];
        if (from.incarnation !== ev.fromInc || to.incarnation !== ev.toInc || !to.driver) {
          this.trace(`n${m.to} drops ${describeMessage(m)} (crash)`);
          return;
        }
        if (to.paused) {
          to.deferred.push(ev);
          return;
        }
        // The transport's fingerprint check: a peer running other timings is refused (timing-mismatch: not).
        if (this.options.breakRule !== "timing-mismatch" && (from.timings || to.timings)) {
          const refusal = fingerprintMismatch(this.fingerprint(to), this.fingerprint(from));
          if (refusal !== undefined) {
            if (this.#verbose) this.trace(`n${m.to} refuses ${describeMessage(m)}: ${refusal}`);
            return;
          }
        }
        if (this.#verbose) this.trace(`n${m.to} <- ${describeMessage(m)}`);
        this.waitRule.onDelivered(m);
        this.#guard(to, (d) => d.deliver(m));
        return;
      }
      case "clientRequest": {
        const n = this.nodes[ev.node];
        if (n.incarnation !== ev.toInc || !n.driver) return;
        if (n.paused) {
          n.deferred.push(ev);
          return;
        }
        this.#handleClientRequest(n, ev.req);
        return;
      }
      case "clientResponse": {
        const n = this.nodes[ev.resp.node];
        if (n.incarnation !== ev.fromInc) return;
        this.clients[ev.resp.client - 1].onResponse(ev.resp);
        return;
      }
      case "clientTimer":
        this.clients[ev.client - 1].onTimer(ev.what, ev.opId, ev.attempt);
        return;
      case "action":
        ev.run();
        return;
      case "resume":
        this.#resume(ev.node, ev.token);
        return;
      case "disk": {
        const n = this.nodes[ev.node];
        if (n.incarnation !== ev.inc || !n.driver) return;
        if (n.paused) {
          n.deferred.push(ev);
          return;
        }
        try {
          ev.run();
        } catch (e) {
          this.#coreThrew(n, e);
        }
        return;
      }
      case "check":
        this.#periodicChecks();
        this.queue.push(this.nowMs + 1000, { kind: "check" });
        return;
    }
  }

  /** Calls into a node's driver; an exception out of the core is a violation. */
  #guard(n: SimNode, f: (driver: Driver) => void): void {
    const driver = n.driver;
    if (!driver) return;
    try {
      f(driver);
    } catch (e) {
      this.#coreThrew(n, e);
    }
  }

  #coreThrew(n: SimNode, e: unknown): void {
    const msg = e instanceof Error
      ? `${e.message}\n${e.stack?.split("\n").slice(1, 4).join("\n")}`
      : String(e);
    this.checker.report("core threw", this.nowMs, `node ${n.id}: ${msg}`);
    this.#aborted = true;
  }

  /** The driver of a node's new incarnation, wired to the simulated disk, network and clock. */
  #makeDriver(n: SimNode, cfg: RaftConfig, persisted: PersistedState, store: SimDiskStore): Driver {
    const b = this.options.breakRule;
    const brokenRule = b === "drift" || b === "clock-check" ? undefined : b;
    const machine = n.machine ??= new RecordingMachine(this, n.id);
    const incarnation = n.incarnation;
    store.onInstalled = (bytes) => {
      // The received snapshot is in place: the state machine becomes it (the checker sees the jump).
      let r: ReturnType<KvStore["beginRestore"]> | undefined;
      const h = parseSnapshot(bytes, `n${n.id}/snapshot.txt`, {
        header: (h) => (r = machine.kv.beginRestore(h.index)),
        session: (c, s) => r!.session(c, s),
        pair: (k, v, version) => r!.pair(k, v, version),
      });
      this.checker.onRestore(this.nowMs, n.id, h.index, machine.kv.appliedIndex);
      r!.commit();
    };
    const snaps = this.options.snapshots;
    const sanity = new ClockSanity(n.timings ?? this.options.timings);
    n.sanity = sanity;
    return new Driver({
      config: cfg,
      persisted,
      stateMachine: n.machine,
      random: this.rng.fork(`core${n.id}/${n.restarts++}`).asRandom(),
      store,
      sender: { send: (m) => this.#sendNodeMessage(n, m) },
      clock: {
        now: () => n.local(this.nowMs),
        wakeAt: (atMs) => this.#scheduleTick(n, atMs),
      },
      coreOptions: { brokenRule, checkInvariants: true },
      // What the node does every turn and before every lease read (issue 14 part 8): feed the clock-sanity
      // detector the node's monotonic clock and its wall clock (real time: chrony keeps it in step). The
      // `clock-check` negative control skips it.
      clockCheck: b === "clock-check" ? undefined : (local) => {
        const finding = sanity.observe(local, this.nowMs);
        if (finding !== undefined) this.trace(`n${n.id} clock sanity: ${finding.reason}`);
        return finding?.reason;
      },
      snapshots: {
        thresholdEntries: snaps.snapshotThresholdEntries,
        take: (index, term, config, done) => {
          const view = machine.kv.snapshot();
          const bytes = encodeSnapshot({
            header: { index, term, keys: view.keys, sessions: view.sessions, config },
            sessions: () => view.sessionEntries(),
            nextPairs: (max) => view.nextPairs(max),
          });
          view.close();
          // Written over simulated time: a crash meanwhile loses it (the old snapshot stands).
          this.queue.push(this.nowMs + this.rng.fork(`snap${n.id}/${index}`).range(0, snaps.writeMsMax), {
            kind: "disk",
            node: n.id,
            inc: incarnation,
            run: () => {
              if (n.incarnation !== incarnation) return;
              n.disk.snapshotTmp.set(index, { bytes, at: { index, term } });
              this.trace(`n${n.id} wrote a snapshot at ${index}/t${term} (${bytes.length} bytes)`);
              done(bytes.length);
            },
          });
        },
        chunk: (m) => {
          const snap = n.disk.snapshot;
          if (snap === null || snap.at.index !== m.lastIncludedIndex) return undefined;
          return snap.bytes.slice(m.offset, m.offset + m.length);
        },
      },
      hooks: {
        onEvent: (ev) => {
          if (this.#verbose && ev.kind !== "appendAccepted") {
            this.trace(`n${n.id} ${describeEvent(n.id, ev)}`);
          }
        },
        beforePersist: (r, early) => {
          if (this.#verbose) this.#tracePersist(n, r);
          if (early.length === 0 || !n.crashMidPersistHook) return;
          const stuckMs = n.crashMidPersistHook(n, r);
          if (stuckMs === false) return;
          n.crashMidPersistHook = undefined;
          n.stuckInWrite = true;
          n.disk.forceLatencyMs = stuckMs + 1;
          const incarnation = n.incarnation;
          this.at(this.nowMs + stuckMs, () => {
            if (n.incarnation !== incarnation) return;
            this.crash(
              n.id,
              `${
                stuckMs.toFixed(0)
              }ms after sending ${early.length} AppendEntries, its log write not durable`,
            );
          });
        },
        afterPersist: (r) => {
          this.#observe(n);
          if (n.crashHook && n.crashHook(n, r)) this.crash(n.id, "after persisting, before sending");
        },
        beforeSend: (m) => {
          if (n.driver?.saving) return; // an early AppendEntries (sendableBeforePersist): checked by the rule
          const st = store.state;
          this.checker.checkPersistedBeforeSent(this.nowMs, m, {
            term: st.hardState.term,
            votedFor: st.hardState.votedFor,
            lastIndex: st.lastIndex,
          });
        },
        onFatal: (err) => {
          // A save the store refused as invalid is a bug of the caller, not a disk fault.
          if (err instanceof StorageError && err.code === "invalid") {
            this.checker.report("core threw", this.nowMs, `node ${n.id}: a save was refused: ${err.message}`);
          }
          // Fail-stop: the driver stopped and answered nothing more; the process exits, and comes back later.
          const down = this.#faultRng.range(50, 1000);
          this.diskStats.failStops++;
          this.crash(n.id, `(fail-stop: ${err.message})`);
          this.at(this.nowMs + down, () => this.restart(n.id));
        },
        afterRun: () => this.#observe(n),
      },
    });
  }

  #tracePersist(n: SimNode, r: Ready): void {
    if (r.hardState) {
      this.trace(`n${n.id} persists term ${r.hardState.term} votedFor ${r.hardState.votedFor}`);
    }
    if (r.appendFrom !== undefined) {
      this.trace(`n${n.id} persists log from ${r.appendFrom}: ${r.entries.length} entries`);
    }
  }

  #sendNodeMessage(n: SimNode, m: Message): void {
    const to = this.nodes[m.to];
    if (!to) return;
    this.waitRule.onSend(m, (ms) => n.clock.real(n.local(this.nowMs) + ms));
    const delays = this.net.nodeDelays(m.from, m.to);
    this.messages++;
    if (delays.length === 0 && this.#verbose) {
      this.trace(
        `n${m.from} -> ${describeMessage(m)} (${this.net.isBlocked(m.from, m.to) ? "cut" : "lost"})`,
      );
    }
    for (const delay of delays) {
      this.queue.push(this.nowMs + delay, {
        kind: "message",
        msg: m,
        fromInc: n.incarnation,
        toInc: to.incarnation,
      });
    }
  }

  /** Checker bookkeeping after any change of a node: leadership, commit index. */
  #observe(n: SimNode): void {
    const core = n.core;
    if (!core) return;
    const start = core.logStart.index;
    if (core.role === "leader") {
      this.checker.onLeader(this.nowMs, n.id, core.term, core.log(), start);
      const local = n.local(this.nowMs);
      const readyFrom = n.clock.real(local + core.status(local).leaseWaitRemainingMs);
      this.waitRule.onLeader(this.nowMs, n.id, core.term, readyFrom);
    }
    // A node whose commit index is past a committed configuration entry uses it or a newer one, also once its
    // log is compacted past it, after a restart or an InstallSnapshot (the snapshot carries it).
    const stale = this.#committedConfigAtOrBelow(core.commitIndex);
    if (core.membershipIndex < stale) {
      this.checker.report(
        "stale configuration",
        this.nowMs,
        `node ${n.id} (commit ${core.commitIndex}, log from ${start}) uses the configuration at ${core.membershipIndex}, ` +
          `but the one at ${stale} is committed`,
      );
    }
    if (core.commitIndex !== n.commitSeen) {
      this.checker.onCommit(this.nowMs, n.id, core.term, core.log(), n.commitSeen, core.commitIndex, start);
      n.commitSeen = core.commitIndex;
    }
  }

  #scheduleTick(n: SimNode, wake: number): void {
    if (!n.driver) return;
    if (wake === n.scheduledWakeMs) return;
    if (Number.isNaN(wake) || wake === -Infinity) {
      this.checker.report("timer storm", this.nowMs, `node ${n.id} nextWakeMs() = ${wake}`);
      this.#aborted = true;
      return;
    }
    n.scheduledWakeMs = wake;
    const token = ++n.tickToken;
    if (wake === Infinity) return;
    const atMs = Math.max(this.nowMs, n.clock.real(wake));
    this.queue.push(atMs, { kind: "tick", node: n.id, token, wakeLocalMs: wake });
  }

  // ------------------------------------------------------------------------------------------------------
  // Clients.

  send(req: ClientRequest, node: number): void {
    const delay = this.net.clientDelay(node);
    if (delay === undefined) {
      this.trace(`c${req.client} -> n${node} request lost`);
      return;
    }
    this.queue.push(this.nowMs + delay, {
      kind: "clientRequest",
      node,
      toInc: this.nodes[node].incarnation,
      req,
    });
  }

  setTimer(client: number, atMs: number, what: ClientTimer, opId: number, attempt: number): void {
    this.queue.push(atMs, { kind: "clientTimer", client, what, opId, attempt });
  }

  #reply(n: SimNode, req: ClientRequest, reply: ClientReply): void {
    const delay = this.net.clientDelay(n.id);
    if (delay === undefined) return;
    this.queue.push(this.nowMs + delay, {
      kind: "clientResponse",
      fromInc: n.incarnation,
      resp: { client: req.client, opId: req.opId, attempt: req.attempt, node: n.id, reply },
    });
  }

  #handleClientRequest(n: SimNode, req: ClientRequest): void {
    if (req.kind === "get" && req.readMode === "follower") {
      // A follower (ReadIndex) read, issue 16: any node serves it once it has applied the leader's read
      // index; no lease is involved, so only the linearizability checker judges it.
      const refuse = (refusal: Refusal) => {
        this.trace(`n${n.id} refuses follower GET ${req.key} of c${req.client}: ${JSON.stringify(refusal)}`);
        this.#reply(n, req, { kind: "refused", refusal, beforeAppend: true });
      };
      this.#guard(n, (d) =>
        d.indexRead(
          () => {
            const value = n.machine?.get(req.key);
            this.trace(
              `n${n.id} answers follower GET ${req.key} → ${JSON.stringify(value ?? "")} to c${req.client}`,
            );
            this.#reply(n, req, { kind: "read", value: value ?? "", found: value !== undefined });
          },
          () => {},
          refuse,
          () => refuse({ kind: "notReady", retryAfterMs: 10 }),
        ));
      return;
    }
    if (req.kind === "get") {
      this.#guard(n, (d) =>
        d.read(req.key, (result) => {
          if (!n.driver) return;
          if (result.ok) {
            const value = result.found ? result.value : "";
            this.checker.checkVisibleAction(
              this.nowMs,
              n.id,
              `answers GET ${req.key}`,
              this.leaseIntervals(),
            );
            this.trace(`n${n.id} answers GET ${req.key} → ${JSON.stringify(value)} to c${req.client}`);
            this.#reply(n, req, { kind: "read", value: result.value, found: result.found });
          } else {
            const refusal = "refusal" in result
              ? result.refusal
              : { kind: "notReady" as const, retryAfterMs: 10 };
            this.trace(`n${n.id} refuses GET ${req.key} of c${req.client}: ${JSON.stringify(refusal)}`);
            this.#reply(n, req, { kind: "refused", refusal, beforeAppend: true });
          }
        }));
      return;
    }
    const command: Command = req.kind === "delete"
      ? { op: "del", key: req.key, clientId: req.clientId, seq: req.seq }
      : req.kind === "cas"
      ? {
        op: "cas",
        key: req.key,
        expect: req.expect!,
        value: req.value,
        clientId: req.clientId,
        seq: req.seq,
      }
      : { op: "set", key: req.key, value: req.value, clientId: req.clientId, seq: req.seq };
    this.#guard(n, (d) => d.propose(command, (o) => this.#answerSet(n, req, o)));
  }

  #answerSet(n: SimNode, req: ClientRequest, o: ProposalOutcome): void {
    switch (o.kind) {
      case "ok": {
        // Acknowledging a committed write is harmful only while another node serves reads that miss it (a
        // new leader acking while the old one still serves). A lease holder that has applied the write
        // (e.g. an old leader acking a retry of a SET committed long ago) cannot contradict the ack.
        const blind = this.leaseIntervals().filter((l) =>
          !this.nodes[l.node].machine?.isApplied(req.clientId, req.seq)
        );
        this.checker.checkVisibleAction(
          this.nowMs,
          n.id,
          `acknowledges SET ${req.key}=${req.value} (index ${o.index}), not yet applied by the lease holder,`,
          blind,
        );
        this.trace(`n${n.id} acknowledges SET ${req.key}=${req.value} of c${req.client} (index ${o.index})`);
        this.#reply(n, req, { kind: "written", outcome: o.outcome });
        return;
      }
      case "refused":
        this.trace(
          `n${n.id} refuses SET ${req.key}=${req.value} of c${req.client}: ${JSON.stringify(o.refusal)}`,
        );
        this.#reply(n, req, { kind: "refused", refusal: o.refusal, beforeAppend: true });
        return;
      case "overloaded":
        this.trace(`n${n.id} refuses SET ${req.key}=${req.value} of c${req.client}: overloaded`);
        this.#reply(n, req, {
          kind: "refused",
          refusal: { kind: "notReady", retryAfterMs: 10 },
          beforeAppend: true,
        });
        return;
      case "outcomeUnknown":
        this.trace(
          `n${n.id} cannot tell the fate of SET ${req.key}=${req.value} of c${req.client}: ${o.reason}`,
        );
        this.#reply(n, req, { kind: "lost", refusal: o.refusal });
        return;
    }
  }

  // ------------------------------------------------------------------------------------------------------
  // Faults and queries, for the scenarios.

  /** Runs `run` at real time `atMs`. */
  at(atMs: number, run: () => void): void {
    this.queue.push(Math.max(atMs, this.nowMs), { kind: "action", run });
  }

  live(): SimNode[] {
    const out: SimNode[] = [];
    for (const id of this.ids) if (this.nodes[id].core) out.push(this.nodes[id]);
    return out;
  }

  /** The live leader of the highest term, or 0. */
  leaderId(): number {
    let best = 0, bestTerm = -1;
    for (const n of this.live()) {
      if (n.core!.role === "leader" && n.core!.term > bestTerm) {
        best = n.id;
        bestTerm = n.core!.term;
      }
    }
    return best;
  }

  /** The live node holding a serving lease now, or 0. */
  servingLeaderId(): number {
    for (const l of this.leaseIntervals()) if (l.untilMs > this.nowMs) return l.node;
    return 0;
  }

  /** Every live leader's serving-lease end, in real time (−∞ when not serving). */
  leaseIntervals(): LeaseInterval[] {
    const out: LeaseInterval[] = [];
    for (const id of this.ids) {
      const n = this.nodes[id];
      const core = n.core;
      // A paused node serves nothing until it resumes (and then its clock check runs first).
      if (!core || core.role !== "leader" || n.paused) continue;
      const until = core.leaseHeldUntilMs(n.local(this.nowMs));
      out.push({ node: id, untilMs: n.clock.real(until) });
    }
    return out;
  }

  #checkLeases(): void {
    let leaders = 0;
    for (const id of this.ids) if (this.nodes[id].core?.role === "leader") leaders++;
    if (leaders >= 2) this.checker.checkLeaseHolders(this.nowMs, this.leaseIntervals());
  }

  /** Real time when node `id`'s core next wants a tick (Infinity if down). */
  nextWakeRealMs(id: number): number {
    const n = this.nodes[id];
    if (!n.core) return Infinity;
    return n.clock.real(n.core.nextWakeMs());
  }

  crash(id: number, why = ""): void {
    const n = this.nodes[id];
    if (!n.driver) return;
    n.driver.kill();
    n.driver = undefined;
    n.machine = undefined;
    n.sanity = undefined;
    n.incarnation++;
    n.paused = false;
    n.deferred = [];
    n.tickToken++;
    n.scheduledWakeMs = NaN;
    n.commitSeen = 0;
    n.crashHook = undefined;
    n.crashMidPersistHook = undefined;
    n.stuckInWrite = false;
    const unsynced = n.disk.crash();
    this.crashes++;
    this.trace(`FAULT n${id} crashes${why ? ` ${why}` : ""}${unsynced ? ` (${unsynced})` : ""}`);
    // Issue 16: the kernel closes a dead process's sockets, so the peers that can hear it see a reset
    // (a pause or a partition is silent). The reset travels like a message: it may be late or lost.
    for (const peer of this.nodes) {
      if (peer === undefined || peer.id === id || !peer.driver) continue;
      const delay = this.net.nodeDelays(id, peer.id)[0];
      if (delay === undefined) continue;
      const inc = peer.incarnation;
      this.queue.push(this.nowMs + delay, {
        kind: "action",
        run: () => {
          if (peer.incarnation !== inc || !peer.driver || peer.paused) return;
          if (this.#verbose) this.trace(`n${peer.id} sees its connection to n${id} reset`);
          this.#guard(peer, (d) => d.peerConnectionLost(id));
        },
      });
    }
  }

  /** What node `n` sends as its peer fingerprint (cluster id and timings). */
  fingerprint(n: SimNode): string {
    return peerFingerprint("sim", n.timings ?? this.options.timings);
  }

  /**
   * Restarts node `id` from its disk; `timings` (default: the cluster's) are the ones the operator started it
   * with this time.
   */
  restart(id: number, verb = "restarts", timings?: RaftTimings): void {
    const n = this.nodes[id];
    if (n.driver || n.retired || n.disk.refused !== undefined) return;
    n.incarnation++;
    n.timings = timings;
    const cfg: RaftConfig = {
      ...this.options.timings,
      ...timings,
      ...this.options.limits,
      id,
      voterIds: this.bootstrapIds,
      join: n.joins,
      addresses: new Map(this.ids.map((i) => [i, `n${i}:7000`])),
      preVote: this.options.preVote,
      snapshotThresholdEntries: this.options.snapshots.snapshotThresholdEntries,
      snapshotTrailingEntries: this.options.snapshots.snapshotTrailingEntries,
      snapshotChunkBytes: this.options.snapshots.snapshotChunkBytes,
    };
    // The state machine of this incarnation: restored from the snapshot while the disk is opened.
    const machine = n.machine = new RecordingMachine(this, id);
    let restoring: ReturnType<KvStore["beginRestore"]> | undefined;
    const incarnation = n.incarnation;
    let opened: ReturnType<SimDisk["open"]>;
    try {
      const nowMs = () => this.nowMs;
      const faultPhaseMs = this.options.faultPhaseMs;
      opened = n.disk.open(
        {
          get nowMs() {
            return nowMs();
          },
          get faultsOn() {
            return nowMs() < faultPhaseMs;
          },
          schedule: (atMs, run) => this.queue.push(atMs, { kind: "disk", node: id, inc: incarnation, run }),
        },
        () => n.incarnation,
        {
          header: (h) => (restoring = machine.kv.beginRestore(h.index)),
          session: (c, s) => restoring!.session(c, s),
          pair: (k, v, version) => restoring!.pair(k, v, version),
        },
      );
      restoring?.commit();
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      if (n.disk.corruptedAt === undefined) {
        this.checker.report("core threw", this.nowMs, `node ${id} cannot recover an undamaged disk: ${msg}`);
        this.#aborted = true;
        return;
      }
      // The correct answer to a damaged committed record: refuse to start, naming the file and line. The
      // node stays down (its operator would wipe it and let it catch up; the cluster keeps a quorum).
      n.disk.refused = msg;
      this.diskStats.refusals++;
      this.trace(`FAULT n${id} refuses to start: ${msg}`);
      return;
    }
    if (n.disk.corruptedAt !== undefined) {
      this.checker.report(
        "corruption served",
        this.nowMs,
        `node ${id} started on a disk with a damaged committed record (${n.disk.corruptedAt})`,
      );
    }
    const { store, loaded } = opened;
    if (loaded.warnings.some((w) => w.includes("torn"))) this.diskStats.tornTails++;
    try {
      n.driver = this.#makeDriver(n, cfg, loaded, store);
    } catch (e) {
      this.#coreThrew(n, e);
      return;
    }
    this.trace(
      `FAULT n${id} ${verb} (${n.clock.describe()}) with term ${loaded.hardState.term}, ${loaded.entries.length} entries, commit ${loaded.commitIndex}${
        loaded.warnings.length > 0 ? ` (${loaded.warnings.join("; ")})` : ""
      }` +
        (timings
          ? `, lease ${timings.leaseDurationMs}ms instead of ${this.options.timings.leaseDurationMs}ms`
          : ""),
    );
    this.#guard(n, (d) => d.wake());
  }

  /** Damages a committed record on node `id`'s disk while it is down, then restarts it (it must refuse). */
  flipBit(id: number): void {
    const n = this.nodes[id];
    // Not while paused or frozen (a restart then would run the node inside its own freeze), and only with a
    // committed record to damage.
    if (n.paused || n.disk.committedRecords() === 0) return;
    const wasUp = n.alive;
    if (wasUp) this.crash(id, "(to damage its disk)");
    if (!n.disk.flipCommittedBit()) {
      if (wasUp) this.restart(id);
      return;
    }
    this.trace(`FAULT n${id} disk: a bit flips in ${n.disk.corruptedAt}`);
    this.restart(id);
  }

  pause(id: number, durationMs: number): void {
    const n = this.nodes[id];
    if (!n.driver || n.paused) return;
    n.paused = true;
    const token = ++n.pauseToken;
    this.trace(`FAULT n${id} pauses for ${durationMs.toFixed(0)}ms`);
    this.queue.push(this.nowMs + durationMs, { kind: "resume", node: id, token });
  }

  /** A stopped clock: node `id` is frozen (paused) for `durationMs` and its monotonic clock stops meanwhile. */
  freezeClock(id: number, durationMs: number): void {
    const n = this.nodes[id];
    if (!n.core || n.paused) return;
    n.clock.freeze(this.nowMs, durationMs);
    this.trace(`FAULT n${id} clock stops for ${durationMs.toFixed(0)}ms`);
    this.pause(id, durationMs);
  }

  #resume(id: number, token: number): void {
    const n = this.nodes[id];
    if (!n.driver || !n.paused || n.pauseToken !== token) return;
    n.paused = false;
    const items = n.deferred;
    n.deferred = [];
    this.trace(`FAULT n${id} resumes with ${items.length} deferred deliveries`);
    // The timers fire at a random point among the deliveries that piled up.
    const tickAt = this.#faultRng.int(0, items.length);
    for (let i = 0; i <= items.length && n.driver && !this.#aborted; i++) {
      if (i === tickAt) this.#guard(n, (d) => d.wake());
      if (i < items.length && n.driver && !n.paused) this.#dispatch(items[i]);
    }
  }

  /** Asks node `id` (if leader) to hand leadership to `to` (0: the most up-to-date follower). */
  transfer(id: number, to: number): void {
    const n = this.nodes[id];
    this.#guard(
      n,
      (d) =>
        d.transfer(
          to,
          (result) => this.trace(`FAULT n${id} transferLeadership(${to}): ${JSON.stringify(result)}`),
        ),
    );
  }

  /**
   * Asks node `id` (if leader) for a configuration change, through its driver. The driver answers at once
   * when idle, or after the disk write under way (then `onAnswer` gets it later; never if the node crashes
   * first). Returns the answer when it came at once, else undefined (also: the node down or frozen).
   */
  changeMembership(
    id: number,
    change: MembershipChange,
    onAnswer?: (r: ChangeResult) => void,
  ): ChangeResult | undefined {
    const n = this.nodes[id];
    if (!n.driver || n.paused) return undefined; // a frozen process answers no admin call
    let result: ChangeResult | undefined;
    this.#guard(n, (d) =>
      d.changeMembership(change, (r) => {
        result = r;
        this.trace(`FAULT n${id} changeMembership(${JSON.stringify(change)}): ${JSON.stringify(r)}`);
        onAnswer?.(r);
      }));
    if (result === undefined) {
      this.trace(`FAULT n${id} changeMembership(${JSON.stringify(change)}): queued behind its disk write`);
    }
    return result;
  }

  /** The configuration of the live node with the latest one in its log (the bootstrap one if none). */
  /** Indexes of the configuration entries applied (so committed) anywhere, ascending. */
  readonly #committedConfigs: number[] = [];

  noteCommittedConfig(index: number): void {
    const c = this.#committedConfigs;
    if (c.includes(index)) return;
    c.push(index);
    c.sort((a, b) => a - b);
  }

  /** The latest committed configuration entry at or below `index` (0: none). */
  #committedConfigAtOrBelow(index: number): number {
    let best = 0;
    for (const i of this.#committedConfigs) if (i <= index) best = i;
    return best;
  }

  latestMembership(): { index: number; membership: Membership; committed: boolean } {
    let best: { index: number; membership: Membership; committed: boolean } = {
      index: 0,
      membership: { members: this.bootstrapIds.map((id) => ({ id, address: `n${id}:7000`, voter: true })) },
      committed: true,
    };
    for (const n of this.live()) {
      const st = n.core!.status(n.local(this.nowMs));
      const index = st.membershipIndex ?? 0;
      if (index > best.index) {
        best = { index, membership: st.membership!, committed: n.core!.commitIndex >= index };
      } else if (index === best.index && n.core!.commitIndex >= index) best.committed = true;
    }
    return best;
  }

  /** Shuts node `id` down for good (it was removed from the cluster). */
  retire(id: number, why: string): void {
    this.crash(id, why);
    this.nodes[id].retired = true;
  }

  /** A SET proposed by the scenario itself (on a key clients never read). False if refused at once. */
  directorPropose(id: number): boolean {
    const n = this.nodes[id];
    if (!n.driver) return false;
    const seq = ++this.#directorSeq;
    let ok = true;
    this.#guard(n, (d) =>
      d.propose(
        { op: "set", key: "director", value: `d${seq}`, clientId: "director", seq },
        (o) => {
          if (o.kind === "refused" || o.kind === "overloaded") ok = false;
        },
      ));
    return ok;
  }

  #periodicChecks(): void {
    const live = this.live();
    this.checker.checkLogMatching(
      this.nowMs,
      live.map((n) => ({ node: n.id, log: n.core!.log(), start: n.core!.logStart.index })),
    );
    for (const n of live) {
      if (n.stuckInWrite || n.driver!.saving) continue; // its last Ready is being persisted
      const core = n.core!, disk = n.disk.store!.state;
      const last = core.status(this.nowMs).lastLogIndex;
      if (last !== disk.lastIndex || (last > 0 && core.termAt(last) !== disk.termAt(last))) {
        this.checker.report(
          "ready contract",
          this.nowMs,
          `node ${n.id} has ${last} entries in memory but ${disk.lastIndex} on disk after every Ready was applied`,
        );
      }
    }
  }
}

/** Runs one seed. */
export function runSeed(options: SimOptions, run: RunOptions = {}): SimResult {
  return new Simulation(options, run).run();
}
