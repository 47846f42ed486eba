/**
 * The node runtime: the one loop that does I/O around the pure core.
 *
 * Everything that touches the core goes through `#loop`: a batch of inputs (peer messages, proposals,
 * ticks) is fed to the core, then the core's `Ready` is handled in the contract's order — persist with one
 * fsync for the whole batch (group commit), then send messages (peer requests in parallel, each with a
 * deadline; replies to incoming RPCs returned to their callers), then answer clients. A leader's
 * AppendEntries leave while its own write is under way (`sendableBeforePersist`). Inputs that arrive while
 * the disk is busy wait for the next batch, which is what batches writes under load, and is also what makes
 * the early appends safe: their acks are stepped in only after the write.
 *
 * @module
 */
import type { ClusterConfig } from "../config/cluster_config.ts";
import { RaftCore, sendableBeforePersist } from "../raft/core.ts";
import { peerFingerprint } from "../raft/config.ts";
import { type ChangeResult, Configuration, type MembershipChange } from "../raft/membership.ts";
import { commandName, describeEvent } from "../raft/describe.ts";
import type {
  CasExpect,
  Command,
  Message,
  NodeId,
  ReadResult,
  Ready,
  Refusal,
  WriteOutcome,
} from "../raft/types.ts";
import { KvStore } from "../kv/kv_store.ts";
import { WatchFeed, WatchHub } from "../watch/mod.ts";
import { ClockSanity } from "../clock/mod.ts";
import { FileLogStore } from "../storage/mod.ts";
import { type Dump, openDump } from "../storage/mod.ts";
import { PeerClients } from "../transport/mod.ts";
import { type RunningServer, startServer } from "../transport/mod.ts";
import type {
  Answer,
  CasReply,
  DeleteReply,
  DumpLogReply,
  GetReply,
  ListReply,
  ListRequest,
  MembershipReply,
  NodeStatus,
  SetReply,
  TransferLeaderReply,
  WatchReply,
  WatchRequest,
} from "../transport/mod.ts";
import { refusalToReply } from "../transport/mod.ts";
import { VERSION } from "../version.ts";
import type { MetricsSnapshot, NodeMetrics } from "../metrics/mod.ts";

export interface NodeOptions {
  readonly config: ClusterConfig;
  readonly id: NodeId;
  /** The logs folder is `dataDir/logs_node_<id>/`. */
  readonly dataDir: string;
  /** Echo dump lines to stdout. */
  readonly echo?: boolean;
  /** The echo's format (`--log-format`): text as dump.txt, or JSON lines. */
  readonly logFormat?: "text" | "json";
  /** Local monotonic clock in ms (default: performance.now). */
  readonly clock?: () => number;
  readonly random?: () => number;
  /** Listen here instead of the config's address for this id (a node not in cluster.json must say). */
  readonly address?: string;
  /**
   * Issue 11: a new node not in cluster.json's bootstrap configuration. It serves, waits to be added with
   * `raftkv admin add-node`, receives the log as a learner and votes once promoted.
   */
  readonly join?: boolean;
  /** Changes kept for watchers to resume from (default: src/watch's DEFAULT_HISTORY_MAX). */
  readonly watchHistoryMax?: number;
  /** metrics: Prometheus metrics to feed (src/metrics/); none when absent. */
  readonly metrics?: NodeMetrics;
}

/** A write's answer: the SET reply fields, plus what the state machine did (DELETE, CAS). */
type WriteAnswer = Answer<SetReply> & { readonly outcome?: WriteOutcome };

/** LIST: keys per reply by default and at most, and the size a reply stays under (keys + values). */
export const LIST_LIMIT_DEFAULT = 100;
export const LIST_LIMIT_MAX = 1000;
export const LIST_REPLY_CHARS_MAX = 1 << 20;

type Work =
  | { kind: "step"; msg: Message; reply?: Waiter<Message> }
  | { kind: "propose"; command: Command; resolve: (a: WriteAnswer) => void; signal?: AbortSignal }
  | { kind: "read"; key: string; resolve: (r: ReadResult & { version?: number }) => void }
  | { kind: "list"; req: ListRequest; resolve: (r: Answer<ListReply>) => void }
  | { kind: "transfer"; to: NodeId; resolve: (r: { ok: boolean; reason: string; to: NodeId }) => void }
  | { kind: "membership"; change: MembershipChange; resolve: (r: ChangeResult) => void };

interface Waiter<T> {
  resolve(v: T): void;
  reject(e: Error): void;
  done: boolean;
}

const RESPONSE_OF: Record<string, string> = {
  RequestVote: "RequestVoteResponse",
  AppendEntries: "AppendEntriesResponse",
};

/** Thrown into an RPC whose request the core ignored (e.g. from a node id not in the config). */
export class IgnoredRequestError extends Error {}

export class RaftNode {
  readonly id: NodeId;
  readonly address: string;
  readonly #cfg: ClusterConfig;
  readonly #core: RaftCore;
  readonly #store: FileLogStore;
  readonly #dump: Dump;
  readonly #peers: PeerClients;
  #server: RunningServer | undefined;
  readonly #clock: () => number;
  /** metrics: fed from events, sends and client answers; gauges read status() at scrape time. */
  readonly #metrics: NodeMetrics | undefined;
  /** Issue 14 part 8: clock sanity, fed every loop turn (off with an injected test clock: no wall time). */
  readonly #sanity: ClockSanity | undefined;

  #inbox: Work[] = [];
  #running = false;
  #stopped = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** When `#timer` fires (local clock, ms). */
  #timerAtMs = 0;
  #nextTag = 1;
  readonly #writeWaiters = new Map<number, (a: WriteAnswer) => void>();
  readonly #replyWaiters = new Map<string, Waiter<Message>[]>();
  readonly #conditionWaiters = new Set<() => boolean>();
  #loopIdle: Promise<void> = Promise.resolve();
  /** The configuration the peer channels were last set up for. */
  #peerMembership: unknown;
  #lastStepDownReason = "";
  #fatal: ((e: Error) => void) | undefined;
  /** Rejects when the node hits an error it cannot continue from (e.g. the disk failing). */
  readonly failed: Promise<never>;

  readonly #kv: KvStore;
  readonly #watch: WatchFeed;

  private constructor(
    opts: NodeOptions,
    kv: KvStore,
    watch: WatchFeed,
    core: RaftCore,
    store: FileLogStore,
    dump: Dump,
    peers: PeerClients,
    clock: () => number,
  ) {
    this.id = opts.id;
    this.#cfg = opts.config;
    this.address = opts.address ?? opts.config.nodes.find((n) => n.id === opts.id)!.address;
    this.#kv = kv;
    this.#watch = watch;
    this.#core = core;
    this.#store = store;
    this.#dump = dump;
    this.#peers = peers;
    this.#clock = clock;
    this.#metrics = opts.metrics;
    this.#sanity = opts.clock ? undefined : new ClockSanity(opts.config);
    this.failed = new Promise<never>((_, reject) => (this.#fatal = reject));
    this.failed.catch(() => {}); // observed by whoever awaits it
  }

  /** Opens the logs folder, recovers, starts serving on the configured address. */
  static async start(opts: NodeOptions): Promise<RaftNode> {
    const { config, id } = opts;
    const configured = config.nodes.find((n) => n.id === id);
    const self = opts.address !== undefined ? { id, address: opts.address } : configured;
    if (!self) {
      throw new Error(
        `node id ${id} is not in the config (ids: ${config.nodes.map((n) => n.id).join(", ")}): ` +
          `a new node starts with --join --address HOST:PORT`,
      );
    }
    if (opts.join && configured) {
      throw new Error(`node id ${id} is in the bootstrap configuration: --join is for new nodes only`);
    }
    const clock = opts.clock ?? (() => performance.now());
    const dir = opts.dataDir; // the stores add logs_node_<id>/
    const metrics = opts.metrics; // metrics: fsync timings, peer RPC errors, status for the gauges
    const store = await FileLogStore.open(dir, id, config.clusterId, {
      onSyncSeconds: metrics && ((s) => metrics.observeFsyncSeconds(s)),
    });
    let dump: Dump | undefined;
    try {
      dump = await openDump(dir, id, {
        console: opts.echo ?? false,
        consoleFormat: opts.logFormat,
        maxBytes: config.dumpMaxBytes, // bounded dump.txt: rotated by size, a fixed number kept
        maxFiles: config.dumpMaxFiles,
      });
      const persisted = store.load();
      for (const w of persisted.warnings) dump.warn(w);
      const kv = new KvStore();
      // Before the core replays the log: the replayed changes are the watch history (until snapshots).
      const watch = new WatchFeed(kv, new WatchHub({ firstIndex: 1, historyMax: opts.watchHistoryMax }));
      const core = new RaftCore(
        {
          ...config,
          id,
          voterIds: config.nodes.map((n) => n.id),
          addresses: new Map(config.nodes.map((n) => [n.id, n.address])),
          join: opts.join,
        },
        persisted,
        kv,
        opts.random ?? Math.random,
        clock(),
      );
      const peers = new PeerClients({
        clusterId: peerFingerprint(config.clusterId, config), // cluster id and timings (rule 6)
        peers: new Map(config.nodes.filter((n) => n.id !== id).map((n) => [n.id, n.address])),
        deadlineMs: config.rpcTimeoutMs,
        onError: (peerId, err) => {
          metrics?.peerRpcError(peerId);
          dump!.info(`Error occurred while sending RPC to Node ${peerId}. (${err.message})`);
        },
        onRecovered: (peerId, failures) =>
          dump!.info(`Node ${peerId} reachable again after ${failures} failed RPCs.`),
      });
      watch.flush(); // the replayed entries are on disk
      const node = new RaftNode(opts, kv, watch, core, store, dump, peers, clock);
      metrics?.setStatusSource(() => node.#metricsSnapshot());
      dump.info(
        `Node ${id} starting (term ${persisted.hardState.term}, ${persisted.entries.length} entries, ` +
          `commit ${core.commitIndex}) at ${self.address}, raftkv ${VERSION}`,
      );
      node.#server = await startServer(self.address, node.#handlers());
      node.#armTimer();
      return node;
    } catch (e) {
      await dump?.close();
      await store.close();
      throw e;
    }
  }

  // ------------------------------------------------------------------------------------------------------
  // Public operations (also used by the gRPC handlers).

  /** A lease read: answered at once from local state (with the key's version), or refused with the reason. */
  read(key: string): Promise<ReadResult & { version?: number }> {
    if (this.#cfg.nodes.length > 1) {
      const nowMs = this.#clock();
      this.#checkClock(nowMs); // this read runs outside the loop: check the clock first
      return Promise.resolve(this.#readNow(nowMs, key));
    }
    // A single node commits in the same batch it appends, before the fsync: read behind the loop.
    return new Promise((resolve) => this.#enqueue({ kind: "read", key, resolve }));
  }

  /** LIST: keys under a prefix in key order, served under the lease like GET. */
  list(req: ListRequest): Promise<Answer<ListReply>> {
    if (this.#cfg.nodes.length > 1) {
      const nowMs = this.#clock();
      this.#checkClock(nowMs); // as for GET: this read runs outside the loop
      return Promise.resolve(this.#listNow(nowMs, req));
    }
    return new Promise((resolve) => this.#enqueue({ kind: "list", req, resolve }));
  }

  /** DELETE `key`, exactly-once per (clientId, seq) like SET. */
  async delete(
    key: string,
    clientId: string,
    seq: number,
    signal?: AbortSignal,
  ): Promise<Answer<DeleteReply>> {
    const bad = this.#validate(key, "");
    if (bad) return { ok: false, error: "invalidArgument", errorMessage: bad, nodeId: this.id };
    const { outcome, ...a } = await this.#propose({ op: "del", key, clientId, seq }, signal);
    return a.ok ? { ...a, deleted: outcome?.succeeded ?? false } : a;
  }

  /** Compare-and-set, exactly-once per (clientId, seq); the answer says whether the comparison held. */
  async cas(
    key: string,
    expect: CasExpect,
    value: string,
    clientId: string,
    seq: number,
    signal?: AbortSignal,
  ): Promise<Answer<CasReply>> {
    const bad = this.#validate(key, value) ??
      ("value" in expect ? this.#validate(key, expect.value) : undefined);
    if (bad) return { ok: false, error: "invalidArgument", errorMessage: bad, nodeId: this.id };
    const { outcome, ...a } = await this.#propose({ op: "cas", key, expect, value, clientId, seq }, signal);
    if (!a.ok) return a;
    if (!outcome) {
      // A retry answered without the outcome (the session table keeps it with the seq: should not happen):
      // say so rather than guess.
      return {
        ok: false,
        error: "sessionExpired",
        errorMessage: `the outcome of CAS seq ${seq} is no longer remembered; start a new session`,
        nodeId: this.id,
      };
    }
    return { ...a, ...outcome };
  }

  /**
   * WATCH: the replies of one watch stream (the first says where it starts; then batches of events; an
   * error reply ends it). Only committed entries, durable on this node, are ever sent.
   */
  async *watch(req: WatchRequest, signal: AbortSignal): AsyncGenerator<Partial<WatchReply>> {
    const w = this.#watch.hub.open(req);
    if ("end" in w) {
      yield {
        error: w.end.kind === "closed" ? "notReady" : w.end.kind,
        errorMessage: w.end.message,
        oldestIndex: this.#watch.hub.oldestIndex,
        nodeId: this.id,
      };
      return;
    }
    try {
      yield { startIndex: w.nextIndex, oldestIndex: this.#watch.hub.oldestIndex, nodeId: this.id };
      while (true) {
        const r = await w.next(signal);
        if ("end" in r) {
          if (signal.aborted) return;
          yield {
            error: r.end.kind === "closed" ? "notReady" : r.end.kind,
            errorMessage: r.end.message,
            oldestIndex: this.#watch.hub.oldestIndex,
            nodeId: this.id,
          };
          return;
        }
        yield { events: r.events, nodeId: this.id };
      }
    } finally {
      w.close();
    }
  }

  set(
    key: string,
    value: string,
    clientId: string,
    seq: number,
    signal?: AbortSignal,
  ): Promise<Answer<SetReply>> {
    const bad = this.#validate(key, value);
    if (bad) {
      return Promise.resolve({ ok: false, error: "invalidArgument", errorMessage: bad, nodeId: this.id });
    }
    return this.#propose({ op: "set", key, value, clientId, seq }, signal);
  }

  #propose(command: Command, signal?: AbortSignal): Promise<WriteAnswer> {
    return new Promise((resolve) => this.#enqueue({ kind: "propose", command, resolve, signal }));
  }

  status(): NodeStatus {
    return {
      ...this.#core.status(this.#clock()),
      address: this.address,
      peerRpcCount: this.#peers.rpcCount,
      version: VERSION,
    };
  }

  /** Hands leadership to `to` (0: the most up-to-date follower) and waits until this node has let go. */
  async transferLeadership(to: NodeId): Promise<TransferLeaderReply> {
    const r = await new Promise<{ ok: boolean; reason: string; to: NodeId }>((resolve) =>
      this.#enqueue({ kind: "transfer", to, resolve })
    );
    if (!r.ok) return { ok: false, newLeaderId: 0, error: r.reason };
    const letGo = await this.#waitUntil(
      () => this.#core.role !== "leader",
      this.#cfg.electionTimeoutMsMin * 2,
    );
    if (!letGo) return { ok: false, newLeaderId: 0, error: `node ${r.to} did not take over in time` };
    await this.#waitUntil(() => this.#core.leaderId !== 0, this.#cfg.electionTimeoutMsMin);
    // Only a takeover by the target is a hand-off: this node may instead have stepped down because the
    // transfer timed out or its lease ran out (the target down), and then someone else, or no one, leads.
    const leader = this.#core.leaderId;
    if (leader === r.to) return { ok: true, newLeaderId: leader, error: "" };
    const why = this.#lastStepDownReason ? ` (this node stepped down: ${this.#lastStepDownReason})` : "";
    return {
      ok: false,
      newLeaderId: leader,
      error: `node ${r.to} did not take over${why}; ` +
        (leader === 0 ? "no leader is known yet" : `node ${leader} leads after an election`),
    };
  }

  /**
   * Stops the node. With `handOff`, a leader first transfers leadership (revoking its lease) so clients see
   * a short gap instead of an election. Flushes the logs folder and the dump.
   */
  async stop(opts: { handOff?: boolean } = {}): Promise<void> {
    if (this.#stopped) return;
    if (opts.handOff && this.#core.role === "leader" && this.#cfg.nodes.length > 1) {
      const r = await this.transferLeadership(0);
      this.#dump.info(
        r.ok
          ? `Node ${this.id} handed leadership to Node ${r.newLeaderId} before stopping.`
          : `Hand-off failed: ${r.error}`,
      );
    }
    this.#stopped = true;
    this.#watch.hub.closeAll(`node ${this.id} is stopping`);
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    await this.#loopIdle;
    await this.#server?.close();
    this.#peers.close();
    for (const resolve of this.#writeWaiters.values()) {
      resolve({
        ok: false,
        error: "notLeader",
        errorMessage: `node ${this.id} is stopping`,
        nodeId: this.id,
      });
    }
    this.#writeWaiters.clear();
    this.#dump.info(`Node ${this.id} stopped.`);
    await this.#store.close();
    await this.#dump.close();
  }

  /** The log, for the admin dump. */
  dumpLog(fromIndex: number, maxEntries: number): DumpLogReply {
    const log = this.#core.log();
    const from = Math.max(1, fromIndex);
    const max = maxEntries > 0 ? maxEntries : 10_000;
    return { entries: log.slice(from - 1, from - 1 + max), commitIndex: this.#core.commitIndex };
  }

  // ------------------------------------------------------------------------------------------------------
  // The loop.

  #enqueue(w: Work): void {
    if (this.#stopped) {
      this.#refuseStopped(w);
      return;
    }
    this.#inbox.push(w);
    this.#kick();
  }

  /**
   * Issue 14 part 8 (src/clock/): a loop stall or a jump between the monotonic and the wall clock drops the
   * lease until acks renew it. One call per loop turn; at merge it moves into the shared driver's loop.
   */
  #checkClock(nowMs: number): void {
    const finding = this.#sanity?.observe(nowMs, Date.now());
    if (finding === undefined) return;
    this.#core.dropLease(nowMs, finding.reason);
    this.#kick(); // the heartbeat dropLease queued goes out with the next turn
  }

  #kick(): void {
    if (this.#running || this.#stopped) return;
    this.#running = true;
    this.#loopIdle = this.#loop();
  }

  async #loop(): Promise<void> {
    try {
      while (!this.#stopped) {
        const batch = this.#inbox;
        this.#inbox = [];
        const nowMs = this.#clock();
        this.#checkClock(nowMs);
        const replyWaiters: Waiter<Message>[] = [];
        for (const w of batch) this.#apply(w, nowMs, replyWaiters);
        if (nowMs >= this.#core.nextWakeMs()) this.#core.tick(nowMs);
        if (this.#core.hasReady()) {
          const rd = this.#core.ready();
          this.#syncPeers();
          // A leader's AppendEntries go out while its own write is under way (sendableBeforePersist); the
          // acks they bring are stepped in only after the await below, as that function requires.
          const early = sendableBeforePersist(rd);
          if (early.length === 0) {
            await this.#store.save(rd); // durable before anything that depends on it leaves
          } else {
            const saving = this.#store.save(rd);
            for (const m of early) this.#sendPeer(m);
            await saving;
          }
          this.#dispatch(rd, early.length > 0);
        }
        for (const w of replyWaiters) {
          if (!w.done) w.reject(new IgnoredRequestError("the request was ignored (unknown sender or stale)"));
        }
        this.#checkConditions();
        if (this.#inbox.length === 0) break;
      }
    } catch (e) {
      this.#stopped = true;
      const err = e instanceof Error ? e : new Error(String(e));
      this.#dump.warn(`Node ${this.id} stopping on a fatal error: ${err.message}`);
      this.#fatal?.(err);
    } finally {
      this.#running = false;
      this.#armTimer();
    }
  }

  #apply(w: Work, nowMs: number, replyWaiters: Waiter<Message>[]): void {
    switch (w.kind) {
      case "step": {
        if (w.reply) {
          const key = `${w.msg.from}:${RESPONSE_OF[w.msg.type]}`;
          const q = this.#replyWaiters.get(key) ?? [];
          q.push(w.reply);
          this.#replyWaiters.set(key, q);
          replyWaiters.push(w.reply);
        }
        this.#core.step(nowMs, w.msg);
        return;
      }
      case "propose": {
        if (w.signal?.aborted) return;
        const tag = this.#nextTag++;
        const r = this.#core.propose(nowMs, w.command, tag);
        if (!r.ok) {
          w.resolve(this.#refusal(r.refusal));
          return;
        }
        this.#dump.info(`Node ${this.id} (leader) received a ${commandName(w.command)} request.`);
        const signal = w.signal;
        if (signal === undefined) {
          this.#writeWaiters.set(tag, w.resolve);
          return;
        }
        // The signal may be a whole Client stream's, shared by every SET on it: the listener must go when the
        // answer does, or one would pile up per SET.
        const forget = () => this.#writeWaiters.delete(tag);
        signal.addEventListener("abort", forget, { once: true });
        this.#writeWaiters.set(tag, (answer) => {
          signal.removeEventListener("abort", forget);
          w.resolve(answer);
        });
        return;
      }
      case "read":
        w.resolve(this.#readNow(nowMs, w.key));
        return;
      case "list":
        w.resolve(this.#listNow(nowMs, w.req));
        return;
      case "membership":
        w.resolve(this.#core.changeMembership(nowMs, w.change));
        return;
      case "transfer": {
        const r = this.#core.transferLeadership(nowMs, w.to);
        w.resolve(r.ok ? { ok: true, reason: "", to: r.to } : { ok: false, reason: r.reason, to: 0 });
        return;
      }
    }
  }

  /** Step 2 and 3 of the Ready contract: send (but not the AppendEntries already sent early), answer. */
  #dispatch(rd: Ready, appendsSent: boolean): void {
    for (const ev of rd.events) {
      this.#dump.info(describeEvent(this.id, ev, this.#cfg.dumpFieldMaxBytes));
      if (ev.kind === "steppedDown") this.#lastStepDownReason = ev.reason; // for the hand-off's report
    }
    this.#watch.flush(); // the entries applied so far are committed and durable here: watchers may see them
    if (this.#metrics) { // metrics: counters from the core's events and the AppendEntries batch sizes
      const nowMs = this.#clock();
      for (const ev of rd.events) this.#metrics.onEvent(ev, nowMs);
      for (const m of rd.messages) {
        if (m.type === "AppendEntries") this.#metrics.observeAppendBatch(m.entries.length);
      }
    }
    for (const m of rd.messages) {
      if (m.type === "RequestVoteResponse" || m.type === "AppendEntriesResponse") {
        const q = this.#replyWaiters.get(`${m.to}:${m.type}`);
        const w = q?.shift();
        if (q && q.length === 0) this.#replyWaiters.delete(`${m.to}:${m.type}`);
        if (w) {
          w.done = true;
          w.resolve(m);
        }
        continue;
      }
      if (appendsSent && m.type === "AppendEntries") continue;
      this.#sendPeer(m);
    }
    for (const r of rd.results) {
      const resolve = this.#writeWaiters.get(r.tag);
      if (!resolve) continue;
      this.#writeWaiters.delete(r.tag);
      if (r.ok) {
        resolve({ ok: true, index: r.index, nodeId: this.id, outcome: r.outcome });
        continue;
      }
      // issue 14 part 6/7: the state machine refused the SET when applying it (final: nothing applied).
      if (r.refusal?.kind === "staleSequence" || r.refusal?.kind === "sessionExpired") {
        resolve(this.#refusal(r.refusal));
        continue;
      }
      // Appended, then leadership was lost: the entry may still commit under the next leader. Say so, so the
      // client retries with the same (clientId, seq) instead of reporting a failure that may not be one.
      resolve({
        ...this.#refusal(r.refusal!),
        error: "timeout",
        errorMessage: `node ${this.id} lost leadership before the SET committed; it may still apply (retry)`,
      });
    }
  }

  /**
   * Makes sure the loop wakes by the core's next deadline. A timer already set to fire no later is kept: the
   * core's deadline moves on every heartbeat and every batch, and replacing a timer each time cost a leader
   * ~8 % of its CPU; a timer that fires early just runs an empty loop turn, which arms the next one.
   */
  /**
   * Issue 11: the peers are the members of the configuration in force (the latest in the log) and the nodes
   * of cluster.json (a node outside the configuration is simply never sent to).
   */
  #syncPeers(): void {
    const membership = this.#core.membership;
    if (membership === this.#peerMembership) return;
    this.#peerMembership = membership;
    // This node's cluster.json wins for the ids it lists (an operator's local view, e.g. the chaos harness's
    // per-node proxies); the log's addresses reach the members added after bootstrap.
    const peers = new Map<NodeId, string>();
    for (const m of membership.members) if (m.id !== this.id && m.address !== "") peers.set(m.id, m.address);
    for (const n of this.#cfg.nodes) if (n.id !== this.id) peers.set(n.id, n.address);
    this.#peers.setPeers(peers);
    this.#dump.info(`Node ${this.id} configuration: ${new Configuration(membership).describe()}`);
  }

  /**
   * Admin.AddNode / Admin.RemoveNode: asks the core (the leader) for the change, then waits until it is
   * committed (for a voter change: the joint phase left), so the operator's command returns when it holds.
   */
  async changeMembership(change: MembershipChange): Promise<MembershipReply> {
    const r = await new Promise<ChangeResult>((resolve) =>
      this.#enqueue({ kind: "membership", change, resolve })
    );
    if (!r.ok) return { ok: false, error: r.reason, leaderId: this.#core.leaderId, index: 0 };
    const done = () => {
      const st = this.#core.status(this.#clock());
      return this.#core.commitIndex >= r.index && (st.membershipIndex ?? 0) >= r.index &&
        this.#core.commitIndex >= (st.membershipIndex ?? 0) && st.membership?.outgoingVoters === undefined;
    };
    const ok = await this.#waitUntil(done, this.#cfg.electionTimeoutMsMax * 4);
    if (!ok) {
      return {
        ok: false,
        error: `the change (index ${r.index}) was appended but not committed in time; check admin status`,
        leaderId: this.#core.leaderId,
        index: r.index,
      };
    }
    return { ok: true, error: "", leaderId: this.#core.leaderId, index: r.index };
  }

  /** Sends a Raft request; its response, if any, is stepped into the core by a later loop turn. */
  #sendPeer(m: Message): void {
    if (!this.#peers.has(m.to)) return; // a member without a known address: nothing to send to
    this.#peers.send(m).then((reply) => {
      if (reply && !this.#stopped) this.#enqueue({ kind: "step", msg: reply });
    });
  }

  #armTimer(): void {
    if (this.#stopped) {
      if (this.#timer !== undefined) clearTimeout(this.#timer);
      this.#timer = undefined;
      return;
    }
    const wakeAtMs = this.#core.nextWakeMs();
    if (this.#timer !== undefined) {
      if (this.#timerAtMs <= wakeAtMs) return;
      clearTimeout(this.#timer);
    }
    const delayMs = Math.max(0, wakeAtMs - this.#clock());
    this.#timerAtMs = wakeAtMs; // it fires at or after this: an unchanged deadline keeps the timer
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#kick();
    }, Math.ceil(delayMs));
  }

  // ------------------------------------------------------------------------------------------------------
  // Helpers.

  /** GET under the lease, with the key's version read at the same instant. */
  #readNow(nowMs: number, key: string): ReadResult & { version?: number } {
    const r = this.#core.read(nowMs, key);
    return r.ok ? { ...r, version: this.#kv.version(key) } : r;
  }

  #listNow(nowMs: number, req: ListRequest): Answer<ListReply> {
    const refusal = this.#core.leaseReadRefusal(nowMs);
    if (refusal) return this.#refusal(refusal);
    const limit = Math.min(req.limit > 0 ? req.limit : LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX);
    const page = this.#kv.list({
      prefix: req.prefix,
      after: req.after,
      limit,
      maxChars: LIST_REPLY_CHARS_MAX,
      withValues: req.withValues,
    });
    const last = page.items.at(-1)?.key ?? "";
    return {
      ok: true,
      items: page.items,
      more: page.more,
      nextAfter: page.more ? last : "",
      nodeId: this.id,
    };
  }

  #refusal(refusal: Refusal): Answer<SetReply> & Answer<GetReply> {
    const reply = refusalToReply(refusal);
    // cluster.json knows the bootstrap members; the configuration in the log those added later (issue 11).
    const leader = this.#cfg.nodes.find((n) => n.id === reply.leaderId) ??
      this.#core.membership.members.find((m) => m.id === reply.leaderId && m.address !== "");
    return { ...reply, leaderAddress: leader?.address ?? "", nodeId: this.id };
  }

  #refuseStopped(w: Work): void {
    const msg = `node ${this.id} is stopping`;
    if (w.kind === "step") w.reply?.reject(new Error(msg));
    else if (w.kind === "propose") {
      w.resolve({ ok: false, error: "notLeader", errorMessage: msg, nodeId: this.id });
    } else if (w.kind === "read") w.resolve({ ok: false, refusal: { kind: "notLeader", leaderId: 0 } });
    else w.resolve({ ok: false, reason: msg, to: 0 });
  }

  #validate(key: string, value: string): string | undefined {
    const enc = new TextEncoder();
    if (key.length === 0) return "key must not be empty";
    const keyBytes = enc.encode(key).length, valueBytes = enc.encode(value).length;
    if (keyBytes > this.#cfg.maxKeyBytes) {
      return `key is ${keyBytes} bytes; the limit is ${this.#cfg.maxKeyBytes} (maxKeyBytes)`;
    }
    if (valueBytes > this.#cfg.maxValueBytes) {
      return `value is ${valueBytes} bytes; the limit is ${this.#cfg.maxValueBytes} (maxValueBytes)`;
    }
    return undefined;
  }

  /** Resolves true when `pred` holds after some loop iteration, false after `timeoutMs`. */
  #waitUntil(pred: () => boolean, timeoutMs: number): Promise<boolean> {
    if (pred()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const check = () => {
        if (!pred()) return false;
        clearTimeout(timer);
        resolve(true);
        return true;
      };
      const timer = setTimeout(() => {
        this.#conditionWaiters.delete(check);
        resolve(pred());
      }, timeoutMs);
      this.#conditionWaiters.add(check);
    });
  }

  // ------------------------------------------------------------------------------------------------------
  // metrics: what the gauges read at scrape time, and how a GET is counted.

  #metricsSnapshot(): MetricsSnapshot {
    const s = this.#core.status(this.#clock());
    let logBytes: number | undefined;
    try {
      logBytes = Deno.statSync(this.#store.logsPath).size;
    } catch { /* not there: leave the gauge unset */ }
    return {
      ...s,
      appliedIndex: s.commitIndex, // the core applies in the step that commits
      proposalsInFlight: this.#writeWaiters.size,
      followers: this.#core.followers(),
      logBytes,
    };
  }

  #observeGet(r: ReadResult, t0: number): void {
    const m = this.#metrics;
    if (!m) return;
    m.observeClientOp("get", r.ok ? "ok" : r.refusal.kind, (performance.now() - t0) / 1000);
    if (r.ok) return m.observeLeaseRead("served");
    if (r.refusal.kind === "notLeader") return m.observeLeaseRead("not_leader");
    if (r.refusal.kind === "transferring") return m.observeLeaseRead("transferring");
    const s = this.#core.status(this.#clock());
    m.observeLeaseRead(
      s.leaseWaitRemainingMs > 0 ? "lease_wait" : s.leaseRemainingMs > 0 ? "not_committed" : "no_lease",
    );
  }

  #checkConditions(): void {
    for (const c of [...this.#conditionWaiters]) if (c()) this.#conditionWaiters.delete(c);
  }

  #handlers() {
    const stepWithReply = (msg: Message): Promise<Message> =>
      new Promise((resolve, reject) => {
        const w: Waiter<Message> = { resolve, reject, done: false };
        this.#enqueue({ kind: "step", msg, reply: w });
      });
    return {
      clusterId: peerFingerprint(this.#cfg.clusterId, this.#cfg),
      peer: {
        requestVote: (req: Message) => stepWithReply(req) as never,
        appendEntries: (req: Message) => stepWithReply(req) as never,
        timeoutNow: (req: Message) => {
          this.#enqueue({ kind: "step", msg: req });
        },
      },
      client: {
        get: async (req: { key: string }): Promise<Answer<GetReply>> => {
          if (this.#core.role === "leader") {
            this.#dump.info(`Node ${this.id} (leader) received a GET request.`);
          }
          const t0 = performance.now(); // metrics
          const r = await this.read(req.key);
          this.#observeGet(r, t0);
          if (r.ok) return { ok: true, value: r.value, found: r.found, version: r.version, nodeId: this.id };
          return this.#refusal(r.refusal);
        },
        delete: (req: { key: string; clientId: string; seq: number }, ctx: { signal: AbortSignal }) =>
          this.delete(req.key, req.clientId, req.seq, ctx.signal),
        cas: (
          req: { key: string; expect: CasExpect; value: string; clientId: string; seq: number },
          ctx: { signal: AbortSignal },
        ) => this.cas(req.key, req.expect, req.value, req.clientId, req.seq, ctx.signal),
        list: (req: ListRequest) => {
          if (this.#core.role === "leader") {
            this.#dump.info(`Node ${this.id} (leader) received a LIST request.`);
          }
          return this.list(req);
        },
        watch: (req: WatchRequest, ctx: { signal: AbortSignal }) => this.watch(req, ctx.signal),
        set: async (
          req: { key: string; value: string; clientId: string; seq: number },
          ctx: { signal: AbortSignal },
        ) => {
          const t0 = performance.now(); // metrics
          const a = await this.set(req.key, req.value, req.clientId, req.seq, ctx.signal);
          this.#metrics?.observeClientOp(
            "set",
            a.ok ? "ok" : a.error ?? "error",
            (performance.now() - t0) / 1000,
          );
          return a;
        },
      },
      admin: {
        status: () => this.status(),
        transferLeader: (toId: NodeId) => this.transferLeadership(toId),
        addNode: (req: { id: NodeId; address: string; learner: boolean }) =>
          this.changeMembership({ kind: "add", id: req.id, address: req.address, promote: !req.learner }),
        removeNode: (id: NodeId) => this.changeMembership({ kind: "remove", id }),
        dumpLog: (req: { fromIndex: number; maxEntries: number }) =>
          this.dumpLog(req.fromIndex, req.maxEntries),
      },
    };
  }
}
