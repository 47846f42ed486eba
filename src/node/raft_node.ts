/**
 * The node runtime: the driver (src/driver/) with a FileLogStore, gRPC peers (one-way messages) and the
 * process's monotonic clock. The simulator runs the same driver with a simulated disk, network and clock.
 *
 * Everything that touches the core goes through the driver's loop: a batch of inputs (peer messages,
 * proposals, ticks) is fed to the core, then the core's `Ready` is handled in the contract's order — persist
 * with one fsync for the whole batch (group commit), then send, then answer clients. Inputs that arrive while
 * the disk is busy wait for the next batch. Peer messages are one way both ways: a response is the
 * responder's own message on its own stream, so there is nothing to match a reply to.
 *
 * @module
 */
import type { ClusterConfig } from "../config/cluster_config.ts";
import { DEFAULT_RAW_PEER_PORT_OFFSET, parseAddress } from "../config/cluster_config.ts";
import { Driver, type ProposalOutcome } from "../driver/mod.ts";
import type { RaftCore } from "../raft/core.ts";
import type { BrokenRule } from "../raft/state_machine.ts";
import { peerFingerprint } from "../raft/config.ts";
import { type ChangeResult, Configuration, type MembershipChange } from "../raft/membership.ts";
import { commandName, describeEvent } from "../raft/describe.ts";
import type {
  CasExpect,
  Command,
  Message,
  NodeId,
  ReadResult,
  Refusal,
  SnapshotChunk,
  WriteOutcome,
} from "../raft/types.ts";
import { KvStore } from "../kv/kv_store.ts";
import { WatchFeed, WatchHub } from "../watch/mod.ts";
import { ClockSanity } from "../clock/mod.ts";
import { FileLogStore, type LoadedState } from "../storage/mod.ts";
import {
  readSnapshotFile,
  SnapshotParser,
  type SnapshotSink,
  writeSnapshotFile,
} from "../storage/snapshot_file.ts";
import { snapshotPath } from "../storage/snapshot_file.ts";
import type { KvRestore } from "../kv/kv_store.ts";
import { type Dump, openDump } from "../storage/mod.ts";
import { PeerClients, PeerLinks } from "../transport/mod.ts";
import { type RunningServer, startServer, type TransportLimits } from "../transport/mod.ts";
import {
  rawPeerAddress,
  RawPeerClients,
  type RunningRawPeerServer,
  startRawPeerServer,
} from "../transport/mod.ts";
import type { CertificateStore } from "../security/mod.ts";
// Not mod.ts: it loads certs.ts (@peculiar/x509), which a node does not need.
import { CertificateExpiryWatch, tlsNotAfterMs } from "../security/expiry.ts";
import type {
  Answer,
  CasReply,
  DeleteReply,
  DumpLogReply,
  GetReply,
  GetRequest,
  ListReply,
  ListRequest,
  MembershipReply,
  NodeStatus,
  SetReply,
  SnapshotReply,
  TransferLeaderReply,
  WatchReply,
  WatchRequest,
} from "../transport/mod.ts";
import { refusalToReply, RpcError, type TransportError } from "../transport/mod.ts";
import { VERSION } from "../version.ts";
import { type MetricsSnapshot, type NodeMetrics, SetTracer } from "../metrics/mod.ts";

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
  /** Clock sanity (src/clock/) with an injected `clock` too (tests of a clock running at another rate). */
  readonly clockSanity?: boolean;
  readonly random?: () => number;
  /** Listen here instead of the config's address for this id (a node not in cluster.json must say). */
  readonly address?: string;
  /**
   * Issue 11: a new node not in cluster.json's bootstrap configuration. It serves, waits to be added with
   * `raftkv admin add-node`, receives the log as a learner and votes once promoted.
   */
  readonly join?: boolean;
  /** Mutual TLS on every connection, in and out, with this node's certificate; plain text if absent. */
  readonly tls?: CertificateStore;
  /** Transport limits (connections, streams, frames, handshake timeout, message size); defaults if absent. */
  readonly limits?: Partial<TransportLimits>;
  /** Changes kept for watchers to resume from (default: src/watch's DEFAULT_HISTORY_MAX). */
  readonly watchHistoryMax?: number;
  /** metrics: Prometheus metrics to feed (src/metrics/); none when absent. */
  readonly metrics?: NodeMetrics;
  /**
   * Negative controls only (the chaos harness's broken-follower-read control): switch one core safety rule
   * off. Never set in production; `raftkv node` takes it from RAFTKV_NEGATIVE_CONTROL and says so loudly.
   */
  readonly brokenRule?: BrokenRule;
}

/** A write's answer: the SET reply fields, plus what the state machine did (DELETE, CAS). */
type WriteAnswer = Answer<SetReply> & { readonly outcome?: WriteOutcome };

/** LIST: keys per reply by default and at most, and the size a reply stays under (keys + values). */
export const LIST_LIMIT_DEFAULT = 100;
export const LIST_LIMIT_MAX = 1000;
export const LIST_REPLY_CHARS_MAX = 1 << 20;

export class RaftNode {
  readonly id: NodeId;
  readonly address: string;
  readonly #cfg: ClusterConfig;
  readonly #driver: Driver;
  readonly #store: FileLogStore;
  readonly #dump: Dump;
  readonly #peers: PeerClients | RawPeerClients | PeerLinks;
  #server: RunningServer | undefined;
  /** The raw peer listener (`"peerTransport": "raw"`, src/transport/raw/), besides the gRPC server. */
  #rawServer: RunningRawPeerServer | undefined;
  readonly #clock: () => number;
  /** metrics: fed from events, sends and client answers; gauges read status() at scrape time. */
  readonly #metrics: NodeMetrics | undefined;
  /** Per-stage SET traces (issue 16): only with RAFTKV_TRACE_FILE set, else undefined. */
  readonly #tracer: SetTracer | undefined;
  /** Clock sanity (src/clock/); undefined with an injected test clock. */
  readonly #sanity: ClockSanity | undefined;
  /** A peer-rate finding for the next driver turn's clock check (it drops the lease); peers warned about. */
  #peerClockFinding: string | undefined;
  readonly #peerClockWarned = new Set<NodeId>();
  #lastStepDownReason = "";
  /** The configuration the peer channels were last set up for. */
  #peerMembership: unknown;
  /** TLS: the node's certificates (as last reloaded), and the warning before they expire. */
  readonly #tls: CertificateStore | undefined;
  #certWatch: CertificateExpiryWatch | undefined;

  #stopped = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** When `#timer` fires (local clock, ms). */
  #timerAtMs = Infinity;
  readonly #conditionWaiters = new Set<() => boolean>();
  readonly #kv: KvStore;
  readonly #watch: WatchFeed;
  /** Per peer: sends a one-way message back on the stream that peer's messages last came by. */
  readonly #backPaths = new Map<NodeId, (m: Message) => boolean>();
  /** The Peer streams whose end is watched (one listener each): a peer's stream ending is a lost connection. */
  readonly #watchedStreams = new WeakSet<AbortSignal>();
  #fatal: ((e: Error) => void) | undefined;
  /** Rejects when the node hits an error it cannot continue from (e.g. the disk failing). */
  readonly failed: Promise<never>;

  private constructor(
    opts: NodeOptions,
    kv: KvStore,
    watch: WatchFeed,
    persisted: LoadedState,
    store: FileLogStore,
    dump: Dump,
    peers: PeerClients | RawPeerClients | PeerLinks,
    clock: () => number,
  ) {
    this.id = opts.id;
    this.#cfg = opts.config;
    this.address = opts.address ?? opts.config.nodes.find((n) => n.id === opts.id)!.address;
    this.#store = store;
    this.#dump = dump;
    this.#peers = peers;
    this.#clock = clock;
    this.#kv = kv;
    this.#watch = watch;
    this.#metrics = opts.metrics;
    this.#tls = opts.tls;
    const tracer = this.#tracer = SetTracer.fromEnv(opts.id);
    // Issue 14 part 8: clock sanity, asked every driver turn and before every lease read (off with an
    // injected test clock: no wall time to compare with, unless `clockSanity`), and fed peers' send stamps.
    const sanity = this.#sanity = opts.clock && !opts.clockSanity ? undefined : new ClockSanity(opts.config);
    this.failed = new Promise<never>((_, reject) => (this.#fatal = reject));
    this.failed.catch(() => {}); // observed by whoever awaits it
    const config = opts.config, id = opts.id;
    const receiving = new StreamingRestore(kv, snapshotPath(store.folder));
    this.#driver = new Driver({
      config: {
        ...config,
        id,
        voterIds: config.nodes.map((n) => n.id),
        addresses: new Map(config.nodes.map((n) => [n.id, n.address])),
        join: opts.join,
      },
      persisted,
      stateMachine: kv,
      random: opts.random ?? Math.random,
      ...(opts.brokenRule !== undefined ? { coreOptions: { brokenRule: opts.brokenRule } } : {}),
      defer: queueMicrotask,
      clockCheck: sanity &&
        ((nowMs) => sanity.observe(nowMs, Date.now())?.reason ?? this.#takePeerClockFinding()),
      clock: { now: clock, wakeAt: (atMs) => this.#armTimer(atMs) },
      store: {
        save: (request, done) => {
          // A chunk of a snapshot from the leader is parsed into the new state as it arrives, so the install
          // only swaps it in instead of reading the file again (nor does the store, when every byte parsed).
          if (request.snapshotChunk !== undefined) receiving.push(request.snapshotChunk);
          const inst = request.installSnapshot;
          const streamed = inst !== undefined && receiving.complete(inst.index, inst.term);
          store.save(request, { snapshotChecked: streamed }).then(async () => {
            // A snapshot received from the leader is now the folder's: the state machine becomes it, before
            // the driver steps anything else in (it waits for `done`).
            if (request.installSnapshot !== undefined) {
              const { index, term } = request.installSnapshot;
              if (!streamed || !receiving.commit(index, term)) {
                await restoreKv(kv, snapshotPath(store.folder));
                this.#dump.info(`Node ${this.id} restored the snapshot at index ${index} from snapshot.txt.`);
              } else {
                this.#dump.info(
                  `Node ${this.id} restored the snapshot at index ${index} as its chunks came.`,
                );
              }
            }
          }).then(() => done(), (e) => done(e instanceof Error ? e : new Error(String(e))));
        },
        noteCommit: (commitIndex) => {
          store.save({ entries: [], commitIndex }).catch(() => {/* a failure shows at the next save */});
        },
      },
      sender: {
        send: (m) => {
          if (this.#stopped) return;
          // Clock sanity: AppendEntries and their acks carry the sender's clock reading (see #clockSample).
          if (sanity && (m.type === "AppendEntries" || m.type === "AppendEntriesResponse")) {
            m = { ...m, senderElapsedMs: clock() };
          }
          // A response travels back on the stream the peer's messages come by (as a reply would, over the
          // same connection), unmatched to any request; when that stream is gone, on this node's own.
          if (
            m.type === "AppendEntriesResponse" || m.type === "RequestVoteResponse" ||
            m.type === "ReadIndexResponse"
          ) {
            const back = this.#backPaths.get(m.to);
            if (back !== undefined && back(m)) return;
            this.#backPaths.delete(m.to);
          }
          if (!this.#peers.has(m.to)) return; // a member without a known address: nothing to send to
          this.#peers.post(m);
        },
      },
      snapshots: {
        thresholdEntries: config.snapshotThresholdEntries,
        take: (index, term, config, done) => {
          // Frozen now, at the core's applied index; written in chunks meanwhile.
          const view = kv.snapshot();
          if (view.index !== index) {
            view.close();
            done(undefined, new Error(`state machine at ${view.index}, core applied ${index}`));
            return;
          }
          const startedMs = performance.now();
          writeSnapshotFile(store.folder, {
            header: { index, term, keys: view.keys, sessions: view.sessions, config },
            sessions: () => view.sessionEntries(),
            nextPairs: (max) => view.nextPairs(max),
          }, { rename: false }).then((size) => {
            this.#dump.info(
              `Node ${this.id} wrote a snapshot at index ${index} (${view.keys} keys, ${size} bytes) in ${
                Math.round(performance.now() - startedMs)
              } ms.`,
            );
            done(size);
          }, (e) => done(undefined, e instanceof Error ? e : new Error(String(e)))).finally(() =>
            view.close()
          );
        },
        chunk: (m) => store.readSnapshotChunk(m.lastIncludedIndex, m.offset, m.length),
      },
      hooks: {
        onEvent: (ev) => {
          this.#dump.info(describeEvent(this.id, ev, this.#cfg.dumpFieldMaxBytes));
          if (ev.kind === "steppedDown") this.#lastStepDownReason = ev.reason; // for the hand-off's report
          this.#metrics?.onEvent(ev, this.#clock()); // metrics: counters from the core's events
        },
        onReady: (rd) => {
          this.#syncPeers(); // issue 11: peers follow the configuration in force
          if (tracer !== undefined && rd.commitIndex !== undefined) tracer.committed(rd.commitIndex);
        },
        beforeSend: (m) => {
          if (m.type === "AppendEntries") {
            this.#metrics?.observeAppendBatch(m.entries.length);
            if (tracer !== undefined && m.entries.length > 0) {
              tracer.sent(m.to, m.entries[0].index, m.entries[m.entries.length - 1].index);
            }
          } else if (tracer !== undefined && m.type === "AppendEntriesResponse" && m.success) {
            tracer.ackSent(m.matchIndex);
          }
        },
        onProposed: tracer && ((index) => tracer.mark(index, "leader", "turn")),
        beforePersist: tracer && ((rd) => {
          const n = rd.entries.length;
          const role = this.#core.role === "leader" ? "leader" : "follower";
          if (n > 0) tracer.fsyncStart(role, rd.entries[0].index, rd.entries[n - 1].index);
        }),
        // The entries applied so far are committed and durable here: watchers may see them. An installed
        // snapshot replaced the state machine (changes up to it are in no history here); a compacted log
        // drops the history behind it, so a watch from there is refused as compacted, naming the oldest index.
        afterPersist: (rd) => {
          if (tracer !== undefined && rd.entries.length > 0) {
            tracer.fsyncEnd(this.#core.role === "leader" ? "leader" : "follower");
          }
          if (rd.installSnapshot !== undefined) this.#watch.restored(rd.installSnapshot.index);
          else this.#watch.flush();
          if (rd.compactLog !== undefined) this.#watch.hub.compactTo(rd.compactLog.compactTo.index + 1);
        },
        afterRun: () => this.#checkConditions(),
        onFatal: (err) => {
          this.#dump.warn(`Node ${this.id} stopping on a fatal error: ${err.message}`);
          this.#stopped = true;
          if (this.#timer !== undefined) clearTimeout(this.#timer);
          this.#fatal?.(err);
        },
      },
    });
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
    // The snapshot, if the folder has one, is restored into the state machine while the folder is opened.
    const kv = new KvStore();
    let restoring: KvRestore | undefined;
    const sink: SnapshotSink = {
      header: (h) => (restoring = kv.beginRestore(h.index)),
      session: (c, s) => restoring!.session(c, s),
      pair: (k, v, version) => restoring!.pair(k, v, version),
    };
    const store = await FileLogStore.open(dir, id, config.clusterId, {
      snapshotSink: sink,
      onSyncSeconds: metrics && ((s) => metrics.observeFsyncSeconds(s)),
    });
    restoring?.commit();
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
      // Messages peers send back on this node's own streams (their responses), once the node exists.
      let deliverLater: (msg: Message) => void = () => {};
      const rawOffset = config.rawPeerPortOffset ?? DEFAULT_RAW_PEER_PORT_OFFSET;
      // The default (absent or "raw"): raw links, each falling back to gRPC while its peer serves no raw port.
      const onRaw = config.peerTransport !== "grpc";
      const peerOptions = {
        clusterId: peerFingerprint(config.clusterId, config), // cluster id and timings (rule 6)
        peers: new Map(config.nodes.filter((n) => n.id !== id).map((n) => [n.id, n.address])),
        deadlineMs: config.rpcTimeoutMs,
        onError: (peerId: NodeId, err: TransportError) => {
          metrics?.peerRpcError(peerId);
          dump!.info(`Error occurred while sending RPC to Node ${peerId}. (${err.message})`);
        },
        onRecovered: (peerId: NodeId, failures: number) =>
          dump!.info(`Node ${peerId} reachable again after ${failures} failed RPCs.`),
        tls: opts.tls,
        onMessage: (msg: Message) => deliverLater(msg),
      };
      const peers = onRaw
        ? new PeerLinks({
          ...peerOptions,
          portOffset: rawOffset, // dial each node's port + rawPeerPortOffset
          onFallback: (peerId, rawAddress, err) =>
            dump!.warn(
              `Node ${peerId} serves no raw peer port at ${rawAddress} (${err.message}): ` +
                `using gRPC peers until it serves raw: an older version, or a different rawPeerPortOffset ` +
                `(or a firewall closing the raw port).`,
            ),
          onRaw: (peerId, rawAddress, afterFallback) =>
            dump!.info(
              `Peer link to Node ${peerId} uses the raw transport at ${rawAddress}` +
                (afterFallback ? " (moved from gRPC: it serves raw now)." : "."),
            ),
        })
        : new PeerClients(peerOptions);
      // Before the core replays the log suffix: the replayed changes are the watch history, which starts
      // after the snapshot (older changes are in no log any more).
      const watch = new WatchFeed(
        kv,
        new WatchHub({ firstIndex: kv.appliedIndex + 1, historyMax: opts.watchHistoryMax }),
      );
      const node = new RaftNode(opts, kv, watch, persisted, store, dump, peers, clock);
      node.#syncPeers(); // the configuration replayed from the log (members added after bootstrap)
      watch.flush(); // the replayed entries are on disk
      metrics?.setStatusSource(() => node.#metricsSnapshot());
      deliverLater = (msg) => {
        if (node.#stopped) return;
        node.#traceDelivered(msg);
        node.#clockSample(msg);
        peers.heardFrom(msg.from);
        node.#driver.deliver(msg);
      };
      dump.info(
        `Node ${id} starting (term ${persisted.hardState.term}, snapshot at ${
          persisted.snapshot?.index ?? 0
        }, ` +
          `${persisted.entries.length} entries, ` +
          `commit ${node.#core.commitIndex}) at ${self.address}, raftkv ${VERSION}`,
      );
      node.#server = await startServer(self.address, node.#handlers(), {
        tls: opts.tls,
        limits: opts.limits,
      });
      // Served by default and with "raw"; with "grpc" only given an explicit rawPeerPortOffset.
      if (onRaw || config.rawPeerPortOffset !== undefined) {
        node.#rawServer = await startRawPeerServer(
          rawPeerAddress(self.address, rawOffset),
          node.#handlers(),
          {
            tls: opts.tls,
            limits: opts.limits,
            onRefused: (remote, why) => dump!.info(`Raw peer connection from ${remote} refused: ${why}`),
          },
        ).catch(async (e) => {
          await node.#server?.close();
          throw e;
        });
        dump.info(
          `Node ${id} serves Peer traffic on the raw transport at port ${node.#rawServer.port}.`,
        );
      }
      // Warn in dump.txt while the certificate or its CA expires within 30 days: now, after each reload, daily.
      if (opts.tls) {
        node.#certWatch = new CertificateExpiryWatch({
          store: opts.tls,
          nodeId: id,
          warn: (l) => dump!.warn(l),
        });
        node.#certWatch.start();
      }
      node.#driver.wake();
      return node;
    } catch (e) {
      await dump?.close();
      await store.close();
      throw e;
    }
  }

  get #core(): RaftCore {
    return this.#driver.core;
  }

  // ------------------------------------------------------------------------------------------------------
  // Public operations (also used by the gRPC handlers).

  /** A lease read, through the driver: answered at once (with the key's version), or refused with the reason. */
  read(key: string): Promise<ReadResult & { version?: number }> {
    return new Promise((resolve) =>
      this.#driver.leaseRead(
        (nowMs) => this.#readNow(nowMs, key),
        resolve,
        (): ReadResult => ({ ok: false, refusal: { kind: "notReady", retryAfterMs: 10 } }),
      )
    );
  }

  /**
   * A GET in read mode `follower` or `stale` (issue 16): served by this node whatever its role, after
   * applying the leader's read index (ReadIndex, linearizable), or when it can show its state is at most
   * `maxStalenessMs` old (bounded staleness); refused with the reason otherwise.
   */
  followerGet(key: string, mode: "follower" | "stale", maxStalenessMs = 0): Promise<Answer<GetReply>> {
    const serve = (): Answer<GetReply> => {
      const value = this.#kv.get(key);
      return {
        ok: true,
        value: value ?? "",
        found: value !== undefined,
        version: this.#kv.version(key),
        nodeId: this.id,
      };
    };
    const refused = (refusal: Refusal): Answer<GetReply> => this.#refusal(refusal);
    const overloaded = (why: string): Answer<GetReply> => ({
      ok: false,
      error: "overloaded",
      errorMessage: `node ${this.id}: ${why}`,
      nodeId: this.id,
    });
    if (mode === "stale" && !(maxStalenessMs > 0)) {
      return Promise.resolve({
        ok: false,
        error: "invalidArgument",
        errorMessage: "read mode stale needs max_staleness_ms > 0 (--max-staleness)",
        nodeId: this.id,
      });
    }
    return new Promise((resolve) => {
      if (mode === "follower") this.#driver.indexRead(serve, resolve, refused, overloaded);
      else this.#driver.staleRead(maxStalenessMs, serve, resolve, refused, overloaded);
    });
  }

  /** LIST: keys under a prefix in key order, served under the lease like GET (through the driver). */
  list(req: ListRequest): Promise<Answer<ListReply>> {
    return new Promise((resolve) =>
      this.#driver.leaseRead(
        (nowMs) => this.#listNow(nowMs, req),
        resolve,
        (why): Answer<ListReply> => ({ ok: false, error: "overloaded", errorMessage: why, nodeId: this.id }),
      )
    );
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
    timeoutMs = Infinity,
  ): Promise<Answer<SetReply>> {
    const bad = this.#validate(key, value);
    if (bad) {
      return Promise.resolve({ ok: false, error: "invalidArgument", errorMessage: bad, nodeId: this.id });
    }
    return this.#propose({ op: "set", key, value, clientId, seq }, signal, timeoutMs);
  }

  #propose(command: Command, signal?: AbortSignal, timeoutMs = Infinity): Promise<WriteAnswer> {
    if (signal?.aborted) {
      return Promise.resolve({ ok: false, error: "internal", errorMessage: "cancelled", nodeId: this.id });
    }
    if (this.#core.role === "leader") {
      this.#dump.info(`Node ${this.id} (leader) received a ${commandName(command)} request.`);
    }
    return new Promise((resolve) => {
      // The signal may be a whole Client stream's, shared by every SET on it: the driver checks it rather than
      // listening (a listener added and removed per SET was ~2 % of a loaded leader's CPU).
      this.#driver.propose(
        command,
        (o) => {
          if (this.#tracer !== undefined && o.kind === "ok") this.#tracer.mark(o.index, "leader", "answer");
          resolve(this.#writeAnswer(o));
        },
        timeoutMs,
        signal,
      );
    });
  }

  /** The status view, taken inside the driver's loop (between turns). */
  status(): NodeStatus {
    let out: NodeStatus | undefined;
    const cert = this.#tls && { certificateExpiresInMs: this.#tls.material.notAfter.getTime() - Date.now() };
    this.#driver.view(() => this.#driver.status(), (st) => {
      out = { ...st, address: this.address, peerRpcCount: this.#peers.rpcCount, version: VERSION, ...cert };
    });
    return out ?? {
      ...this.#driver.status(),
      address: this.address,
      peerRpcCount: this.#peers.rpcCount,
      version: VERSION,
      ...cert,
    };
  }

  /** Writes one line to dump.txt on behalf of the process around the node (e.g. src/ops). */
  note(message: string): void {
    this.#dump.info(message);
  }

  /** Hands leadership to `to` (0: the most up-to-date follower) and waits until this node has let go. */
  async transferLeadership(to: NodeId): Promise<TransferLeaderReply> {
    const r = await new Promise<{ ok: true; to: NodeId } | { ok: false; reason: string }>((resolve) =>
      this.#driver.transfer(to, resolve)
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
   * Admin.AddNode / Admin.RemoveNode: asks the core (the leader) for the change, then waits until it is
   * committed (for a voter change: the joint phase left), so the operator's command returns when it holds.
   */
  async changeMembership(change: MembershipChange): Promise<MembershipReply> {
    if (change.kind === "add") {
      // Every node dials the members' addresses (and their raw ports): one it cannot use must not get in.
      const why = this.#unusableAddress(change.address);
      if (why) return { ok: false, error: why, leaderId: this.#core.leaderId, index: 0 };
    }
    const r = await new Promise<ChangeResult>((resolve) => this.#driver.changeMembership(change, resolve));
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

  /** Why peers could not dial `address` (not host:port, or a raw peer port outside 1..65535), or undefined. */
  #unusableAddress(address: string): string | undefined {
    try {
      parseAddress(address);
      if (this.#cfg.peerTransport !== "grpc" || this.#cfg.rawPeerPortOffset !== undefined) {
        rawPeerAddress(address, this.#cfg.rawPeerPortOffset ?? DEFAULT_RAW_PEER_PORT_OFFSET);
      }
      return undefined;
    } catch (e) {
      return `unusable address: ${(e as Error).message}`;
    }
  }

  /**
   * Stops the node. With `handOff`, a leader first transfers leadership (revoking its lease) so clients see
   * a short gap instead of an election. SETs still waiting are answered `outcomeUnknown`. Flushes the logs
   * folder and the dump.
   */
  async stop(opts: { handOff?: boolean } = {}): Promise<void> {
    if (this.#stopped && this.#driver.stopped && this.#server === undefined) return;
    if (!this.#stopped && opts.handOff && this.#core.role === "leader" && this.#cfg.nodes.length > 1) {
      const r = await this.transferLeadership(0);
      this.#dump.info(
        r.ok
          ? `Node ${this.id} handed leadership to Node ${r.newLeaderId} before stopping.`
          : `Hand-off failed: ${r.error}`,
      );
    }
    this.#stopped = true;
    this.#certWatch?.stop();
    this.#watch.hub.closeAll(`node ${this.id} is stopping`);
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#driver.stop(`node ${this.id} is stopping`);
    const server = this.#server;
    this.#server = undefined;
    await server?.close();
    await this.#rawServer?.close();
    this.#peers.close();
    this.#tracer?.close();
    this.#dump.info(`Node ${this.id} stopped.`);
    await this.#store.close().catch(() => {/* a failed store was reported already */});
    await this.#dump.close();
  }

  /** Takes a snapshot now and compacts the log behind it (`raftkv admin snapshot`). */
  snapshot(): Promise<SnapshotReply> {
    return new Promise((resolve) =>
      this.#driver.snapshot((o) =>
        resolve(
          o.ok
            ? { ok: true, index: o.index, term: o.term, error: "" }
            : { ok: false, index: 0, term: 0, error: o.reason },
        )
      )
    );
  }

  /** The log, for the admin dump (a view taken inside the driver's loop). */
  dumpLog(fromIndex: number, maxEntries: number): DumpLogReply {
    const from = Math.max(1, fromIndex);
    const max = maxEntries > 0 ? maxEntries : 10_000;
    const take = (): DumpLogReply => ({
      // The log held starts after the compacted prefix (in the snapshot).
      entries: this.#driver.log().slice(
        Math.max(0, from - 1 - this.#core.logStart.index),
        Math.max(0, from - 1 - this.#core.logStart.index + max),
      ),
      commitIndex: this.#core.commitIndex,
    });
    let out: DumpLogReply | undefined;
    this.#driver.view(take, (r) => (out = r));
    return out ?? take();
  }

  // ------------------------------------------------------------------------------------------------------
  // The wake-up timer.

  /**
   * Makes sure the driver is woken by `atMs` (local clock). A timer already set to fire no later is kept: the
   * core's deadline moves on every heartbeat and every batch, and replacing a timer each time cost a leader
   * ~8 % of its CPU; a timer that fires early just runs an empty loop turn, which arms the next one.
   */
  #armTimer(atMs: number): void {
    if (this.#stopped || atMs === Infinity) return;
    if (this.#timer !== undefined) {
      if (this.#timerAtMs <= atMs) return;
      clearTimeout(this.#timer);
    }
    const delayMs = Math.max(0, atMs - this.#clock());
    this.#timerAtMs = atMs;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#timerAtMs = Infinity;
      // The driver asks again for its next wake-up after every wake (or, with a save under way, once the
      // save completes): no re-arming here, which would spin while an fsync is in flight.
      this.#driver.wake();
    }, Math.ceil(delayMs));
  }

  // ------------------------------------------------------------------------------------------------------
  // Helpers.

  /**
   * Issue 11: the peers are the members of the configuration in force (the latest in the log) and the nodes
   * of cluster.json (a node outside the configuration is simply never sent to). Called after each Ready is
   * taken, before its messages leave.
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

  /** Per-stage SET traces: a follower received entries, or a leader an ack (no-op when tracing is off). */
  #traceDelivered(msg: Message): void {
    const tracer = this.#tracer;
    if (tracer === undefined) return;
    if (msg.type === "AppendEntries" && msg.entries.length > 0) {
      const now = performance.now();
      for (const e of msg.entries.slice(-64)) tracer.mark(e.index, "follower", "recv", now);
    } else if (msg.type === "AppendEntriesResponse" && msg.success) tracer.acked(msg.from, msg.matchIndex);
  }

  // metrics: what the gauges read at scrape time, and how a GET is counted.

  /**
   * Clock sanity from peer traffic: a peer's send stamp against this node's receipt time. A rate outside the
   * budget drops the lease at the next driver turn (as a stall or a jump does) and is warned about once per peer
   * (dump.txt and the node's log); `raftkv_peer_clock_rate_ratio{peer}` shows the measured ratio.
   */
  #clockSample(msg: Message): void {
    if (msg.type !== "AppendEntries" && msg.type !== "AppendEntriesResponse") return;
    if (this.#sanity === undefined || msg.senderElapsedMs === undefined) return;
    const finding = this.#sanity.peerSample(msg.from, msg.senderElapsedMs, this.#clock());
    if (finding === undefined) return;
    this.#peerClockFinding = finding.reason;
    if (this.#peerClockWarned.has(msg.from)) return;
    this.#peerClockWarned.add(msg.from);
    this.#dump.warn(
      `Node ${this.id}: the clock of node ${msg.from} runs at a rate outside the drift budget: ${finding.reason}. ` +
        `The lease is dropped at each such finding; check both machines' clocks (docs/operations.md §4). ` +
        `Warned once per peer.`,
    );
  }

  #takePeerClockFinding(): string | undefined {
    const reason = this.#peerClockFinding;
    this.#peerClockFinding = undefined;
    return reason;
  }

  /** Which transport each peer link uses (all gRPC with `"peerTransport": "grpc"`). */
  #peerTransports(): ReadonlyMap<NodeId, "raw" | "grpc"> {
    const peers = this.#peers;
    if (peers instanceof PeerLinks) return peers.transports();
    const kind = peers instanceof RawPeerClients ? "raw" : "grpc";
    const ids = this.#cfg.nodes.map((n) => n.id).filter((id) => id !== this.id && peers.has(id));
    return new Map(ids.map((id) => [id, kind]));
  }

  #metricsSnapshot(): MetricsSnapshot {
    const s = this.#driver.status();
    let logBytes: number | undefined;
    try {
      logBytes = Deno.statSync(this.#store.logsPath).size;
    } catch { /* not there: leave the gauge unset */ }
    return {
      ...s,
      appliedIndex: s.commitIndex, // the core applies in the step that commits
      proposalsInFlight: this.#driver.pendingProposals,
      followers: this.#core.followers(),
      logBytes,
      peerClockRates: this.#sanity?.peerRates(),
      peerTransports: this.#peerTransports(),
      clientAdmission: this.#server?.admission,
      tlsNotAfterMs: this.#tls && tlsNotAfterMs(this.#tls.material),
    };
  }

  #observeGet(r: ReadResult, t0: number): void {
    const m = this.#metrics;
    if (!m) return;
    m.observeClientOp("get", r.ok ? "ok" : r.refusal.kind, (performance.now() - t0) / 1000);
    if (r.ok) return m.observeLeaseRead("served");
    if (r.refusal.kind === "notLeader") return m.observeLeaseRead("not_leader");
    if (r.refusal.kind === "transferring") return m.observeLeaseRead("transferring");
    const s = this.#driver.status();
    m.observeLeaseRead(
      s.leaseWaitRemainingMs > 0 ? "lease_wait" : s.leaseRemainingMs > 0 ? "not_committed" : "no_lease",
    );
  }

  #writeAnswer(o: ProposalOutcome): WriteAnswer {
    switch (o.kind) {
      case "ok":
        return { ok: true, index: o.index, nodeId: this.id, outcome: o.outcome };
      case "refused":
        return this.#refusal(o.refusal);
      case "overloaded":
        return {
          ok: false,
          error: "overloaded",
          errorMessage: `node ${this.id}: ${o.reason}`,
          nodeId: this.id,
        };
      case "outcomeUnknown": {
        const hint = o.refusal ? this.#refusal(o.refusal) : { nodeId: this.id };
        return {
          ...hint,
          ok: false,
          error: "outcomeUnknown",
          errorMessage: `node ${this.id}: ${o.reason} (retry with the same client id and seq)`,
          nodeId: this.id,
        };
      }
    }
  }

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

  #validate(key: string, value: string): string | undefined {
    if (key.length === 0) return "key must not be empty";
    // A UTF-16 code unit is at most 3 UTF-8 bytes: most writes are checked without counting (no encoding,
    // no allocation on every SET).
    const maxKey = this.#cfg.maxKeyBytes, maxValue = this.#cfg.maxValueBytes;
    if (key.length * 3 <= maxKey && value.length * 3 <= maxValue) return undefined;
    const keyBytes = utf8Length(key), valueBytes = utf8Length(value);
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

  #checkConditions(): void {
    if (this.#conditionWaiters.size === 0) return; // after every loop run: no copy when none waits
    for (const c of [...this.#conditionWaiters]) if (c()) this.#conditionWaiters.delete(c);
  }

  #handlers() {
    // Raft requests as request/response calls (unary, or numbered frames) are still delivered, but their
    // answer leaves as a one-way message: there is no reply to match it with.
    const oneWayOnly = (req: Message): never => {
      this.#driver.deliver(req);
      throw new RpcError(
        "FAILED_PRECONDITION",
        `node ${this.id} answers Raft messages as one-way Peer stream frames (call id 0), not as replies`,
      );
    };
    return {
      clusterId: peerFingerprint(this.#cfg.clusterId, this.#cfg),
      peer: {
        requestVote: (req: Message) => oneWayOnly(req),
        appendEntries: (req: Message) => oneWayOnly(req),
        timeoutNow: (req: Message) => {
          this.#driver.deliver(req);
        },
        deliver: (msg: Message, ctx: { signal: AbortSignal }, back: (m: Message) => boolean) => {
          if (this.#stopped) return;
          this.#peers.heardFrom(msg.from);
          // Issue 16: a peer's stream that ends (its process died: the kernel reset or closed the connection)
          // tells the core at once; a silent peer (partition, stopped process) keeps its stream open.
          if (!this.#watchedStreams.has(ctx.signal)) {
            this.#watchedStreams.add(ctx.signal);
            const from = msg.from;
            ctx.signal.addEventListener("abort", () => {
              if (!this.#stopped) this.#driver.peerConnectionLost(from);
            }, { once: true });
          }
          // This node's responses to the sender go back on the stream its messages come by.
          this.#backPaths.set(msg.from, back);
          this.#traceDelivered(msg);
          this.#clockSample(msg);
          this.#driver.deliver(msg);
        },
      },
      client: {
        get: async (req: GetRequest): Promise<Answer<GetReply>> => {
          if (req.readMode === "follower" || req.readMode === "stale") {
            const t0 = performance.now(); // metrics
            const a = await this.followerGet(req.key, req.readMode, req.maxStalenessMs);
            this.#metrics?.observeClientOp(
              "get",
              a.ok ? "ok" : a.error ?? "error",
              (performance.now() - t0) / 1000,
            );
            return a;
          }
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
          ctx: { signal: AbortSignal; deadlineMs: number },
        ) => {
          // metrics, traces: the clock is read only when one of them is on (an op call each under Deno).
          const t0 = this.#metrics !== undefined || this.#tracer !== undefined ? performance.now() : 0;
          const a = await this.set(req.key, req.value, req.clientId, req.seq, ctx.signal, ctx.deadlineMs);
          if (this.#tracer !== undefined && a.ok && a.index) this.#tracer.answered(a.index, t0);
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
        snapshot: () => this.snapshot(),
      },
    };
  }
}

/**
 * A snapshot from the leader restored while it arrives: each chunk (as it is handed to the store for
 * snapshot.txt.recv) is parsed into a state built beside the live one ({@link KvStore.beginRestore}); the
 * install swaps it in. Any surprise (a chunk out of order, a line that does not parse, a header that is not
 * the installed snapshot's) drops the streamed state: the store then checks the file whole and the install
 * reads it.
 */
interface Streamed {
  readonly index: number;
  readonly term: number;
  /** The offset the next chunk must have. */
  next: number;
  readonly parser: SnapshotParser;
  restore?: KvRestore;
}

class StreamingRestore {
  #at: Streamed | undefined;

  constructor(private readonly kv: KvStore, private readonly path: string) {}

  push(c: SnapshotChunk): void {
    if (c.offset === 0) {
      const at: Streamed = {
        index: c.index,
        term: c.term,
        next: 0,
        parser: new SnapshotParser(`${this.path}.recv`, {
          header: (h) => (at.restore = this.kv.beginRestore(h.index)),
          session: (clientId, session) => at.restore!.session(clientId, session),
          pair: (key, value, version) => at.restore!.pair(key, value, version),
        }),
      };
      this.#at = at;
    }
    const at = this.#at;
    if (at === undefined || at.index !== c.index || at.term !== c.term || at.next !== c.offset) {
      this.#at = undefined;
      return;
    }
    try {
      at.parser.push(c.data);
      at.next += c.data.length;
    } catch {
      this.#at = undefined; // the install's whole-file read reports it (or finds the file sound)
    }
  }

  /**
   * True when every byte of the snapshot at `index`/`term` was parsed and checked (checksums, counts, END,
   * the header's index and term): its state is ready to swap in, and the file needs no second read.
   */
  complete(index: number, term: number): boolean {
    const at = this.#at;
    if (at === undefined || at.index !== index || at.term !== term || at.restore === undefined) return false;
    try {
      const h = at.parser.finish();
      if (h.index === index && h.term === term) return true;
    } catch { /* the store's whole-file check reports it */ }
    this.#at = undefined;
    return false;
  }

  /** Swaps in the state streamed for the snapshot at `index`/`term` (after {@link complete}); false if none. */
  commit(index: number, term: number): boolean {
    const at = this.#at;
    this.#at = undefined;
    if (at === undefined || at.index !== index || at.term !== term || at.restore === undefined) return false;
    at.restore.commit();
    return true;
  }
}

/** The length of `s` in UTF-8 (as TextEncoder encodes it: a lone surrogate becomes U+FFFD, 3 bytes). */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d < 0xe000) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

/** Replaces the state machine by the snapshot file at `path` (read and checked whole first). */
async function restoreKv(kv: KvStore, path: string): Promise<void> {
  let r: KvRestore | undefined;
  const h = await readSnapshotFile(path, {
    header: (h) => (r = kv.beginRestore(h.index)),
    session: (c, s) => r!.session(c, s),
    pair: (k, v, version) => r!.pair(k, v, version),
  });
  if (h === null || r === undefined) throw new Error(`${path} vanished after it was installed`);
  r.commit();
}
