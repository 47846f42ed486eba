/**
 * Reading and rendering every node's status (for `admin status`, `admin transfer-leader` and `cluster`).
 *
 * @module
 */
import type { NodeAddress } from "../config/cluster_config.ts";
import { describeTransportError } from "../client/mod.ts";
import { ClusterStub, type NodeStatus, TransportError } from "../transport/mod.ts";
import type { CertificateStore } from "../security/mod.ts";
import { EXPIRY_WARNING_DAYS, wholeDays } from "../security/expiry.ts";
import { errorLine } from "./common.ts";
import { formatTable } from "./table.ts";

/** One node's answer, or why there was none. */
export interface StatusRow {
  readonly node: NodeAddress;
  readonly status?: NodeStatus;
  /** Why the node did not answer (unreachable, …). */
  readonly error?: string;
}

/** Asks nodes for their status over channels it keeps open between reads (for polling). */
export class StatusReader {
  #nodes: readonly NodeAddress[];
  readonly #stubs: Map<string, ClusterStub>;

  readonly #tls: CertificateStore | undefined;

  constructor(nodes: readonly NodeAddress[], tls?: CertificateStore) {
    this.#nodes = nodes;
    this.#tls = tls;
    this.#stubs = new Map(nodes.map((n) => [n.address, new ClusterStub(n.address, {}, { tls })]));
  }

  /** The nodes asked: those given, then the members `readMembers` found. */
  get nodes(): readonly NodeAddress[] {
    return this.#nodes;
  }

  /** Every node's status, asked in parallel, in the order of `nodes`. */
  read(timeoutMs: number): Promise<StatusRow[]> {
    return this.#read(this.#nodes, timeoutMs);
  }

  /**
   * `read`, then the members the answers report that `nodes` lacks (added after bootstrap, issue 11), asked too
   * and kept for the next reads: a member added later and not yet in cluster.json is found, also when it leads.
   */
  async readMembers(timeoutMs: number): Promise<StatusRow[]> {
    const rows = await this.read(timeoutMs);
    const extra = unlistedMembers(rows);
    if (extra.length === 0) return rows;
    this.#nodes = [...this.#nodes, ...extra];
    return [...rows, ...await this.#read(extra, timeoutMs)];
  }

  #read(nodes: readonly NodeAddress[], timeoutMs: number): Promise<StatusRow[]> {
    return Promise.all(nodes.map(async (node): Promise<StatusRow> => {
      try {
        return { node, status: await this.stub(node.address).status(timeoutMs) };
      } catch (e) {
        return {
          node,
          error: e instanceof TransportError ? describeTransportError(e, timeoutMs) : errorLine(e),
        };
      }
    }));
  }

  /** The stub of one node (owned by the reader). */
  stub(address: string): ClusterStub {
    let s = this.#stubs.get(address);
    if (!s) {
      s = new ClusterStub(address, {}, { tls: this.#tls });
      this.#stubs.set(address, s);
    }
    return s;
  }

  close(): void {
    for (const s of this.#stubs.values()) s.close();
  }
}

/** The node that leads in the highest term any node reports, if any. */
export function findLeader(rows: readonly StatusRow[]): StatusRow | undefined {
  let best: StatusRow | undefined;
  for (const r of rows) {
    if (r.status?.role !== "leader") continue;
    if (!best || r.status.term > best.status!.term) best = r;
  }
  return best;
}

/**
 * Issue 11: whether the node is a voter, by the configuration of the leader (else the node's own): true, false
 * (a learner, or no longer a member), or null when nobody said.
 */
export function voterOf(rows: readonly StatusRow[], r: StatusRow): boolean | null {
  const id = idOf(r);
  const membership = findLeader(rows)?.status?.membership ?? r.status?.membership;
  if (!membership || id === 0) return null;
  const m = membership.members.find((x) => x.id === id);
  return (m?.voter ?? false) || (membership.outgoingVoters?.includes(id) ?? false);
}

/** The role to show: `learner` for a follower that is a member without a vote, `removed` for a non-member. */
export function roleOf(rows: readonly StatusRow[], r: StatusRow): string | null {
  const s = r.status;
  if (!s) return null;
  if (s.role !== "follower") return s.role;
  const membership = findLeader(rows)?.status?.membership;
  if (!membership) return s.role;
  const id = idOf(r);
  const m = membership.members.find((x) => x.id === id);
  if (m) return m.voter ? "follower" : "learner";
  return membership.outgoingVoters?.includes(id) ? "follower" : "removed";
}

/**
 * The members the leader reports that `nodes` does not list (added after bootstrap), as addresses to ask. With
 * no leader among the answers (it may be one of those members), the newest configuration a node reports.
 */
export function unlistedMembers(rows: readonly StatusRow[]): NodeAddress[] {
  let membership = findLeader(rows)?.status?.membership;
  if (!membership) {
    let newest: NodeStatus | undefined;
    for (const r of rows) {
      const s = r.status;
      if (s?.membership && (!newest || (s.membershipIndex ?? 0) > (newest.membershipIndex ?? 0))) newest = s;
    }
    membership = newest?.membership;
  }
  if (!membership) return [];
  return membership.members
    .filter((m) => m.address !== "" && !rows.some((r) => idOf(r) === m.id || r.node.address === m.address))
    .map((m) => ({ id: m.id, address: m.address }) as NodeAddress);
}

/** The row's id: the configured one, or (for `--node` addresses) the one the node reported. */
function idOf(r: StatusRow): number {
  return r.node.id > 0 ? r.node.id : r.status?.id ?? 0;
}

/** The `--json` form: one object per node, `null` fields for a node that did not answer. */
export function statusJson(rows: readonly StatusRow[]): Record<string, unknown>[] {
  return rows.map((r) => {
    const s = r.status;
    return {
      id: idOf(r) || null,
      address: r.node.address,
      reachable: s !== undefined,
      role: roleOf(rows, r),
      voter: voterOf(rows, r),
      term: s?.term ?? null,
      leaderId: s?.leaderId ?? null,
      votedFor: s?.votedFor ?? null,
      commitIndex: s?.commitIndex ?? null,
      lastLogIndex: s?.lastLogIndex ?? null,
      lastLogTerm: s?.lastLogTerm ?? null,
      leaseRemainingMs: s?.leaseRemainingMs ?? null,
      leaseWaitRemainingMs: s?.leaseWaitRemainingMs ?? null,
      promiseRemainingMs: s?.promiseRemainingMs ?? null,
      servingReads: s?.servingReads ?? null,
      peerRpcCount: s?.peerRpcCount ?? null,
      version: s?.version ?? null,
      snapshotIndex: s === undefined ? null : s.snapshotIndex ?? 0,
      logEntries: s === undefined ? null : s.logEntries ?? 0,
      // The node certificate's whole days left (rounded down); null in plain text or from an older node.
      certificateExpiresInDays: s?.certificateExpiresInMs === undefined
        ? null
        : wholeDays(s.certificateExpiresInMs),
      error: r.error ?? (s && r.node.id > 0 && s.id !== r.node.id ? `answers as node ${s.id}` : null),
    };
  });
}

/** The table's note for a node certificate that expires within 30 days (or has expired). */
export function certificateNote(expiresInMs: number): string {
  const days = wholeDays(expiresInMs);
  if (expiresInMs <= 0) return "certificate EXPIRED";
  return `certificate expires in ${days === 0 ? "less than a day" : days === 1 ? "1 day" : `${days} days`}`;
}

const ms = (v: number) => String(Math.max(0, Math.round(v)));
const voterLabel = (v: boolean | null) => (v === null ? "-" : v ? "yes" : "no");

/** The human table, followed by a one-line summary (`leader: node 3 (term 2); 5 of 5 nodes reachable`). */
export function renderStatusTable(rows: readonly StatusRow[], opts: { lag?: boolean } = {}): string {
  const leaderRow = findLeader(rows);
  const notes = rows.map((r) => {
    if (r.error) return r.error;
    const notes: string[] = [];
    if (r.status && r.node.id > 0 && r.status.id !== r.node.id) notes.push(`answers as node ${r.status.id}`);
    const certMs = r.status?.certificateExpiresInMs;
    if (certMs !== undefined && wholeDays(certMs) < EXPIRY_WARNING_DAYS) notes.push(certificateNote(certMs));
    return notes.join("; ");
  });
  const withNotes = notes.some((n) => n !== "");
  const columns = [
    { header: "ID", align: "right" as const },
    { header: "ADDRESS" },
    { header: "REACHABLE" },
    { header: "ROLE" },
    { header: "VOTER" },
    { header: "TERM", align: "right" as const },
    { header: "LEADER", align: "right" as const },
    { header: "COMMIT", align: "right" as const },
    { header: "LAST", align: "right" as const },
    ...(opts.lag ? [{ header: "LAG", align: "right" as const }] : []),
    { header: "LEASE_MS", align: "right" as const },
    { header: "LEASE_WAIT_MS", align: "right" as const },
    ...(withNotes ? [{ header: "NOTE" }] : []),
  ];
  const cells = rows.map((r, i) => {
    const s = r.status;
    const id = idOf(r);
    const base = s
      ? [
        String(id || "?"),
        r.node.address,
        "yes",
        roleOf(rows, r) ?? s.role,
        voterOf(rows, r) === null ? "-" : voterOf(rows, r) ? "yes" : "no",
        String(s.term),
        s.leaderId > 0 ? String(s.leaderId) : "-",
        String(s.commitIndex),
        String(s.lastLogIndex),
        // Replication lag: entries behind the leader's log (the watch view only).
        ...(opts.lag
          ? [leaderRow ? String(Math.max(0, leaderRow.status!.lastLogIndex - s.lastLogIndex)) : "-"]
          : []),
        ms(s.leaseRemainingMs),
        ms(s.leaseWaitRemainingMs),
      ]
      : [
        String(id || "?"),
        r.node.address,
        "no",
        "-",
        voterLabel(voterOf(rows, r)),
        "-",
        "-",
        "-",
        "-",
        ...(opts.lag ? ["-"] : []),
        "-",
        "-",
      ];
    return withNotes ? [...base, notes[i]] : base;
  });
  const reachable = rows.filter((r) => r.status).length;
  const leader = leaderRow;
  const summary = leader
    ? `leader: node ${leader.status!.id} (term ${leader.status!.term})`
    : "leader: none known";
  return `${formatTable(columns, cells)}\n${summary}; ${reachable} of ${rows.length} nodes reachable`;
}
