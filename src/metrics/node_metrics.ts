/**
 * A node's Prometheus metrics (prom-client), behind the small {@link NodeMetrics} interface the node loop calls.
 *
 * Two kinds of input, so the loop needs few hooks:
 * - gauges are read at scrape time from a status snapshot the node hands over once ({@link NodeMetrics.setStatusSource});
 * - counters and histograms are fed from what the loop already produces: the core's `RaftEvent`s, the fsync
 *   timings of the logs folder, the AppendEntries it sends, client GET/SET answers and peer RPC failures.
 *
 * @module
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { NodeId, RaftEvent, Role } from "../raft/types.ts";

/** One follower as the leader sees it. */
export interface FollowerSnapshot {
  readonly id: NodeId;
  readonly matchIndex: number;
  /** Round trip of its newest acknowledged AppendEntries (heartbeat or not), in ms; undefined before one. */
  readonly roundTripMs: number | undefined;
}

/** What the gauges show; read at every scrape. */
export interface MetricsSnapshot {
  readonly role: Role;
  readonly term: number;
  readonly leaderId: NodeId;
  readonly commitIndex: number;
  /** The core applies what it commits in the same step, so this equals commitIndex today. */
  readonly appliedIndex: number;
  readonly lastLogIndex: number;
  readonly leaseRemainingMs: number;
  readonly leaseWaitRemainingMs: number;
  readonly servingReads: boolean;
  readonly proposalsInFlight: number;
  /** Leader only; empty otherwise. */
  readonly followers: readonly FollowerSnapshot[];
  /** Size of logs.txt, when known. */
  readonly logBytes?: number;
  /** Clock sanity: per peer, its clock's rate over ours as last measured from its traffic (1: the same). */
  readonly peerClockRates?: ReadonlyMap<NodeId, number>;
  /** Which transport each peer link uses ("raw", or "grpc": configured, or a fallback). */
  readonly peerTransports?: ReadonlyMap<NodeId, "raw" | "grpc">;
  /** The fair admission of client requests (src/transport/fair.ts), when the server runs. */
  readonly clientAdmission?: { readonly inFlight: number; readonly queued: number; readonly refused: number };
  /**
   * With TLS: when the node's certificate and its CA stop being valid (notAfter, ms since the epoch; the CA's:
   * the first of its file to expire), as loaded at start or by the last reload. Absent in plain text.
   */
  readonly tlsNotAfterMs?: { readonly node: number; readonly ca: number };
}

export type ClientOp = "get" | "set";

/** Why a GET was not served from the lease. */
export type LeaseReadRefusal = "not_leader" | "lease_wait" | "no_lease" | "not_committed" | "transferring";

/** What the node loop calls. Every method is cheap and never throws. */
export interface NodeMetrics {
  /** A core event (counts elections, step-downs by cause, lease waits, heartbeats, commits). */
  onEvent(ev: RaftEvent, nowMs: number): void;
  /** One fsync of the logs folder (logs.txt or metadata.txt). */
  observeFsyncSeconds(seconds: number): void;
  /** One AppendEntries sent, with this many entries (0: a heartbeat). */
  observeAppendBatch(entries: number): void;
  /** A client GET or SET answered (`outcome`: ok, or the error kind such as notLeader). */
  observeClientOp(op: ClientOp, outcome: string, seconds: number): void;
  /** A GET at this node: served under the lease, or refused and why. */
  observeLeaseRead(result: "served" | LeaseReadRefusal): void;
  /** A peer RPC failed. */
  peerRpcError(peer: NodeId): void;
  /** Where the gauges come from (called at each scrape). */
  setStatusSource(source: () => MetricsSnapshot): void;
  /** The exposition text. */
  render(): Promise<string>;
  readonly contentType: string;
}

const ROLES: readonly Role[] = ["follower", "candidate", "leader"];

/** Maps a core step-down reason (core.ts `#becomeFollower`) to a small fixed set of label values. */
export function stepDownCause(reason: string, transferring: boolean): string {
  if (/transfer .*timed out/.test(reason)) return "transfer_timeout";
  if (transferring) return "transfer";
  if (/lease renewal failed/.test(reason)) return "lease_expired";
  if (/higher term/.test(reason)) return "higher_term";
  if (/heard from leader/.test(reason)) return "new_leader";
  return "other";
}

/** Lease waits and fsyncs span ~0.1 ms (this machine's cached fsync) to seconds (a lease wait). */
const FSYNC_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
const CLIENT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const WAIT_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10];
const BATCH_BUCKETS = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

/** Creates a node's metrics on its own registry (several nodes may share a process in tests). */
export function createNodeMetrics(nodeId: NodeId): NodeMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ node: String(nodeId) });
  const registers = [registry];
  let source: (() => MetricsSnapshot) | undefined;
  let snap: MetricsSnapshot | undefined;
  // One snapshot per scrape: the first gauge's collect() takes it, the others reuse it.
  const fresh = (): MetricsSnapshot | undefined => snap;

  new Gauge({
    name: "raftkv_role",
    help: "1 for this node's current role (follower, candidate, leader), 0 for the others",
    labelNames: ["role"],
    registers,
    collect() {
      snap = source?.();
      for (const r of ROLES) this.set({ role: r }, snap?.role === r ? 1 : 0);
    },
  });
  const gauge = (name: string, help: string, value: (s: MetricsSnapshot) => number | undefined) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        const s = fresh();
        const v = s ? value(s) : undefined;
        if (v !== undefined) this.set(v);
      },
    });
  gauge("raftkv_term", "current Raft term", (s) => s.term);
  // What the process's memory is made of (docs/operations.md "Memory"): RSS against V8's heap and the
  // memory outside it (ArrayBuffers, Rust-side buffers), read at scrape time.
  const memGauge = (name: string, help: string, value: (m: Deno.MemoryUsage) => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(value(Deno.memoryUsage()));
      },
    });
  memGauge("raftkv_process_rss_bytes", "resident set size of the node process", (m) => m.rss);
  memGauge(
    "raftkv_heap_used_bytes",
    "V8 heap in use (live objects and garbage not yet collected)",
    (m) => m.heapUsed,
  );
  memGauge("raftkv_heap_total_bytes", "V8 heap reserved", (m) => m.heapTotal);
  memGauge(
    "raftkv_external_bytes",
    "memory V8 objects hold outside the heap (ArrayBuffers)",
    (m) => m.external,
  );
  gauge("raftkv_leader_id", "the leader this node knows of (0: none)", (s) => s.leaderId);
  gauge("raftkv_commit_index", "highest log index known committed", (s) => s.commitIndex);
  gauge("raftkv_applied_index", "highest log index applied to the state machine", (s) => s.appliedIndex);
  gauge("raftkv_last_log_index", "index of the last entry in this node's log", (s) => s.lastLogIndex);
  gauge(
    "raftkv_proposals_in_flight",
    "SETs appended by this leader and not yet answered",
    (s) => s.proposalsInFlight,
  );
  gauge(
    "raftkv_lease_remaining_seconds",
    "leader: how long its read lease still holds (0 without one)",
    (s) => s.leaseRemainingMs / 1000,
  );
  gauge(
    "raftkv_lease_wait_remaining_seconds",
    "new leader: how long until old leaders' leases are waited out",
    (s) => s.leaseWaitRemainingMs / 1000,
  );
  gauge(
    "raftkv_serving_reads",
    "1 when a GET would be answered here from the lease right now",
    (s) => s.servingReads ? 1 : 0,
  );
  gauge("raftkv_log_size_bytes", "size of logs.txt", (s) => s.logBytes);
  new Gauge({
    name: "raftkv_follower_match_lag_entries",
    help: "leader: entries each follower is behind the leader's last log index",
    labelNames: ["peer"],
    registers,
    collect() {
      this.reset();
      const s = fresh();
      for (const f of s?.followers ?? []) this.set({ peer: String(f.id) }, s!.lastLogIndex - f.matchIndex);
    },
  });
  new Gauge({
    name: "raftkv_follower_heartbeat_rtt_seconds",
    help: "leader: round trip of each follower's newest acknowledged AppendEntries (heartbeats included)",
    labelNames: ["peer"],
    registers,
    collect() {
      this.reset();
      for (const f of fresh()?.followers ?? []) {
        if (f.roundTripMs !== undefined) this.set({ peer: String(f.id) }, f.roundTripMs / 1000);
      }
    },
  });

  new Gauge({
    name: "raftkv_peer_clock_rate_ratio",
    help:
      "each peer's clock rate over this node's, measured from its AppendEntries or acks (1: the same rate; " +
      "beyond (1+maxClockDrift)^2 either way the lease is dropped and dump.txt warns)",
    labelNames: ["peer"],
    registers,
    collect() {
      this.reset();
      for (const [peer, ratio] of fresh()?.peerClockRates ?? []) this.set({ peer: String(peer) }, ratio);
    },
  });

  new Gauge({
    name: "raftkv_peer_transport",
    help: "1 for the transport each peer link uses now (raw, or grpc: configured, or a fallback while the " +
      "peer serves no raw port), 0 for the other",
    labelNames: ["peer", "transport"],
    registers,
    collect() {
      this.reset();
      for (const [peer, transport] of fresh()?.peerTransports ?? []) {
        this.set({ peer: String(peer), transport }, 1);
        this.set({ peer: String(peer), transport: transport === "raw" ? "grpc" : "raw" }, 0);
      }
    },
  });

  gauge(
    "raftkv_client_requests_in_flight",
    "client requests admitted and not yet answered (bounded by maxClientFramesInFlight)",
    (s) => s.clientAdmission?.inFlight,
  );
  gauge(
    "raftkv_client_requests_queued",
    "client requests waiting for their connection's turn (refused past maxClientFramesQueued)",
    (s) => s.clientAdmission?.queued,
  );
  new Counter({
    name: "raftkv_client_requests_refused_total",
    help: 'client requests refused with RESOURCE_EXHAUSTED "node busy" because maxClientFramesQueued waited',
    registers,
    collect() {
      const refused = fresh()?.clientAdmission?.refused;
      if (refused === undefined) return;
      this.reset();
      this.inc(refused);
    },
  });

  new Gauge({
    name: "raftkv_tls_certificate_not_after_seconds",
    help: "when this node's TLS certificate (certificate=node) and its CA (certificate=ca, the first of " +
      "ca.crt to expire) stop being valid, in seconds since the epoch (absent without TLS)",
    labelNames: ["certificate"],
    registers,
    collect() {
      this.reset();
      const t = fresh()?.tlsNotAfterMs;
      if (t === undefined) return;
      this.set({ certificate: "node" }, t.node / 1000);
      this.set({ certificate: "ca" }, t.ca / 1000);
    },
  });

  const fsync = new Histogram({
    name: "raftkv_fsync_duration_seconds",
    help: "duration of each fsync of the logs folder (logs.txt, metadata.txt)",
    buckets: FSYNC_BUCKETS,
    registers,
  });
  const batch = new Histogram({
    name: "raftkv_append_entries_batch_entries",
    help: "entries per AppendEntries sent by this leader (0: heartbeat)",
    buckets: BATCH_BUCKETS,
    registers,
  });
  const client = new Histogram({
    name: "raftkv_client_request_duration_seconds",
    help: "client GET/SET handled by this node, by outcome (ok or the error kind)",
    labelNames: ["op", "outcome"],
    buckets: CLIENT_BUCKETS,
    registers,
  });
  const leaseReads = new Counter({
    name: "raftkv_lease_reads_total",
    help: "GETs at this node: served under the lease (result=served) or refused (result=refused, by reason)",
    labelNames: ["result", "reason"],
    registers,
  });
  const leaseWait = new Histogram({
    name: "raftkv_lease_wait_duration_seconds",
    help: "new leader: time spent waiting out old leaders' leases after winning an election (0: no wait)",
    buckets: WAIT_BUCKETS,
    registers,
  });
  const stepDowns = new Counter({
    name: "raftkv_leader_step_downs_total",
    help: "times this node stopped leading, by cause",
    labelNames: ["cause"],
    registers,
  });
  const elections = new Counter({
    name: "raftkv_elections_started_total",
    help: "elections this node started, by trigger (timeout, or a planned transfer)",
    labelNames: ["trigger"],
    registers,
  });
  const won = new Counter({
    name: "raftkv_leader_elections_won_total",
    help: "terms in which this node became the leader",
    registers,
  });
  const leaseFailures = new Counter({
    name: "raftkv_lease_renewal_failures_total",
    help: "times this leader could not renew its lease from a majority in time",
    registers,
  });
  const leaseDrops = new Counter({
    name: "raftkv_lease_drops_total",
    help:
      "times this leader dropped its lease on its own (the clock-sanity check saw a stall or a clock jump)",
    registers,
  });
  const heartbeats = new Counter({
    name: "raftkv_heartbeats_sent_total",
    help: "heartbeat rounds sent by this node as leader",
    registers,
  });
  const committed = new Counter({
    name: "raftkv_entries_committed_total",
    help: "log entries this node applied to its state machine",
    registers,
  });
  const peerErrors = new Counter({
    name: "raftkv_peer_rpc_errors_total",
    help: "failed RPCs to each peer",
    labelNames: ["peer"],
    registers,
  });
  for (const trigger of ["timeout", "transfer"]) elections.inc({ trigger }, 0);

  let leaseWaitStartMs: number | undefined;
  let transferring = false;
  let waiting = false;

  return {
    contentType: registry.contentType,
    onEvent(ev, nowMs) {
      switch (ev.kind) {
        case "electionTimeout":
          elections.inc({ trigger: "timeout" });
          return;
        case "transferElection":
          elections.inc({ trigger: "transfer" });
          return;
        case "becameLeader":
          won.inc();
          transferring = false;
          waiting = false;
          leaseWaitStartMs = nowMs;
          return;
        case "leaseWaitStarted":
          waiting = true;
          return;
        case "leaseWaitEnded":
          if (leaseWaitStartMs !== undefined) leaseWait.observe((nowMs - leaseWaitStartMs) / 1000);
          leaseWaitStartMs = undefined;
          waiting = false;
          return;
        case "heartbeat":
          // The first heartbeat of a term whose election announced no wait (leaseWaitStarted comes in the same
          // batch as becameLeader): the wait was zero.
          if (leaseWaitStartMs !== undefined && !waiting) {
            leaseWait.observe(0);
            leaseWaitStartMs = undefined;
          }
          heartbeats.inc();
          return;
        case "leaseRenewalFailed":
          leaseFailures.inc();
          return;
        case "leaseDropped":
          leaseDrops.inc();
          return;
        case "steppedDown":
          stepDowns.inc({ cause: stepDownCause(ev.reason, transferring) });
          transferring = false;
          leaseWaitStartMs = undefined;
          waiting = false;
          return;
        case "transferStarted":
          transferring = true;
          return;
        case "transferAborted":
          transferring = false;
          return;
        case "committed":
          committed.inc();
          return;
        default:
          return;
      }
    },
    observeFsyncSeconds: (s) => fsync.observe(s),
    observeAppendBatch: (n) => batch.observe(n),
    observeClientOp: (op, outcome, seconds) => client.observe({ op, outcome }, seconds),
    observeLeaseRead(result) {
      if (result === "served") leaseReads.inc({ result: "served", reason: "" });
      else leaseReads.inc({ result: "refused", reason: result });
    },
    peerRpcError: (peer) => peerErrors.inc({ peer: String(peer) }),
    setStatusSource(s) {
      source = s;
      snap = s();
    },
    async render() {
      snap = undefined;
      try {
        return await registry.metrics();
      } finally {
        snap = undefined;
      }
    },
  };
}
