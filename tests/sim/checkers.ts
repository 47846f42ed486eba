/**
 * The simulator's safety checkers. The simulator feeds them what it observes with the oracle's real clock;
 * each violation is named after the property it breaks (Raft Figure 3 and SPEC §2):
 *
 * - `election safety`: at most one leader per term, over the whole run;
 * - `log matching`: two logs with an entry of the same index and term are identical up to it;
 * - `leader completeness`: a leader's log holds every entry known committed before it was elected;
 * - `committed entry lost or changed`: no node commits a different entry at an index known committed;
 * - `state machine safety`: every node applies the same command at each index;
 * - `two lease holders`: at most one node holds a serving lease at any real instant;
 * - `visible during another lease`: no read answered or write acknowledged while another node's lease is
 *   still open (a new leader's first client-visible action comes after every earlier lease expired);
 * - `linearizability`: checked on the client history at the end (see linearizability.ts);
 * - `persisted before sent`: a vote or an ack left before what it promises was on disk (the Ready contract);
 *   `ready contract`: a malformed Ready (a log change with a hole, a term going backwards, disk ≠ memory).
 *
 * @module
 */
import type { Entry, Message } from "../../src/raft/types.ts";
import { describeEntry } from "../../src/raft/describe.ts";

export type ViolationName =
  | "election safety"
  | "log matching"
  | "leader completeness"
  | "committed entry lost or changed"
  | "snapshot rolled back"
  | "state machine safety"
  | "two lease holders"
  | "visible during another lease"
  | "wait shorter than a promise"
  | "linearizability"
  | "persisted before sent"
  | "ready contract"
  | "commit index went backwards"
  /** A node uses an older configuration than one committed at or below its commit index (issue 11 with 10). */
  | "stale configuration"
  | "core threw"
  | "timer storm"
  | "liveness"
  /** A node started on a disk with a damaged committed record instead of refusing. */
  | "corruption served";

export interface Violation {
  readonly name: ViolationName;
  /** Real (oracle) time of detection, ms. */
  readonly atMs: number;
  readonly detail: string;
}

/** A node's serving-lease interval as the oracle sees it: it holds until `untilMs` (real time). */
export interface LeaseInterval {
  readonly node: number;
  readonly untilMs: number;
}

/** Real-time slack for float rounding when comparing intervals (ms). */
export const LEASE_TOLERANCE_MS = 1e-6;

export function sameEntry(a: Entry, b: Entry): boolean {
  if (a === b) return true;
  if (a.index !== b.index || a.term !== b.term || a.command.op !== b.command.op) return false;
  if (a.command.op === "noop" || b.command.op === "noop") return true;
  return JSON.stringify(a.command) === JSON.stringify(b.command);
}

/**
 * The Log Matching property for two logs: the highest index where both have an entry of the same term
 * must be preceded by identical entries. Returns a description of the first difference, or undefined.
 */
export function logMismatch(
  a: readonly Entry[],
  b: readonly Entry[],
  aStart = 0,
  bStart = 0,
): string | undefined {
  // Logs compacted behind a snapshot hold entries from start + 1: compare where both hold entries.
  const lo = Math.max(aStart, bStart);
  const at = (l: readonly Entry[], start: number, index: number) => l[index - start - 1];
  let i = Math.min(aStart + a.length, bStart + b.length);
  while (i > lo && at(a, aStart, i).term !== at(b, bStart, i).term) i--;
  for (let j = lo + 1; j <= i; j++) {
    const x = at(a, aStart, j), y = at(b, bStart, j);
    if (!sameEntry(x, y)) {
      return `both have term ${at(a, aStart, i).term} at index ${i}, but index ${j} differs: ` +
        `${describeEntry(x)} vs ${describeEntry(y)}`;
    }
  }
  return undefined;
}

export class Checker {
  readonly violations: Violation[] = [];
  /** How many violations of each name were seen (only the first few are kept in full). */
  readonly counts = new Map<ViolationName, number>();
  /** term → the node that led it. */
  readonly #leaders = new Map<number, number>();
  /** index → the entry known committed there (index 1 at position 0). */
  readonly #chosen: Entry[] = [];
  /**
   * index → the lowest term in which some node knew that entry committed: leaders of *higher* terms must
   * hold it (Raft §5.4; a leader of a lower term can still be elected later in real time, from votes
   * granted earlier).
   */
  readonly #chosenTerm: number[] = [];
  /** index → the entry some node applied there. */
  readonly #applied: Entry[] = [];
  leadersElected = 0;

  report(name: ViolationName, atMs: number, detail: string): void {
    const n = (this.counts.get(name) ?? 0) + 1;
    this.counts.set(name, n);
    if (n <= 3) this.violations.push({ name, atMs, detail });
  }

  get ok(): boolean {
    return this.counts.size === 0;
  }

  /** Highest index known committed. */
  get committedLength(): number {
    return this.#chosen.length;
  }

  /** Node `node` is leader of `term` (called after every step of a leader; cheap when already known). */
  onLeader(atMs: number, node: number, term: number, log: readonly Entry[], start = 0): void {
    const known = this.#leaders.get(term);
    if (known === node) return;
    if (known !== undefined) {
      this.report("election safety", atMs, `nodes ${known} and ${node} both became leader of term ${term}`);
      return;
    }
    this.#leaders.set(term, node);
    this.leadersElected++;
    // Leader completeness (Raft §5.4): every entry committed in an earlier term is in the new leader's log.
    // Entries up to `start` were compacted into the leader's snapshot (made of committed entries only).
    for (let i = start; i < this.#chosen.length; i++) {
      const c = this.#chosen[i];
      if (c === undefined || this.#chosenTerm[i] >= term) continue;
      const e = log[i - start];
      if (e === undefined || !sameEntry(e, c)) {
        this.report(
          "leader completeness",
          atMs,
          `node ${node}, leader of term ${term}, has ${e ? describeEntry(e) : "nothing"} at index ${
            i + 1
          } where ` +
            `${describeEntry(c)} was committed in term ${this.#chosenTerm[i]}`,
        );
        return;
      }
    }
  }

  /** Node `node`, in term `term`, moved its commit index from `from` to `to`; `log` is its log. */
  onCommit(
    atMs: number,
    node: number,
    term: number,
    log: readonly Entry[],
    from: number,
    to: number,
    start = 0,
  ): void {
    if (to < from) {
      this.report("commit index went backwards", atMs, `node ${node}: ${from} → ${to}`);
      return;
    }
    // Indexes up to `start` came in a snapshot (installed): their entries are not in the log.
    for (let i = Math.max(from, start) + 1; i <= to; i++) {
      const e = log[i - start - 1];
      if (e === undefined) {
        this.report(
          "committed entry lost or changed",
          atMs,
          `node ${node} commits index ${i} beyond its log (${log.length})`,
        );
        return;
      }
      const c = this.#chosen[i - 1];
      if (c === undefined) {
        this.#chosen[i - 1] = e;
        this.#chosenTerm[i - 1] = term;
      } else if (sameEntry(c, e)) {
        if (term < this.#chosenTerm[i - 1]) this.#chosenTerm[i - 1] = term;
      } else {
        this.report(
          "committed entry lost or changed",
          atMs,
          `node ${node} commits ${describeEntry(e)} at index ${i} where ${describeEntry(c)} was committed`,
        );
        return;
      }
    }
  }

  /** Node `node` applied `entry` to its state machine. */
  onApply(atMs: number, node: number, entry: Entry): void {
    const a = this.#applied[entry.index - 1];
    if (a === undefined) this.#applied[entry.index - 1] = entry;
    else if (!sameEntry(a, entry)) {
      this.report(
        "state machine safety",
        atMs,
        `node ${node} applies ${describeEntry(entry)} at index ${entry.index} where another node applied ${
          describeEntry(a)
        }`,
      );
    }
  }

  /**
   * Node `node` replaced its state machine by a snapshot at `index` while it had applied up to `applied`: a
   * snapshot may only move a state machine forward (the rest of the run checks it was the committed state).
   */
  onRestore(atMs: number, node: number, index: number, applied: number): void {
    if (index < applied) {
      this.report(
        "snapshot rolled back",
        atMs,
        `node ${node} installed a snapshot at ${index} over its applied state at ${applied}`,
      );
    }
  }

  /** Log matching over every pair of the given logs. */
  checkLogMatching(
    atMs: number,
    logs: readonly { node: number; log: readonly Entry[]; start?: number }[],
  ): void {
    for (let i = 0; i < logs.length; i++) {
      for (let j = i + 1; j < logs.length; j++) {
        const m = logMismatch(logs[i].log, logs[j].log, logs[i].start ?? 0, logs[j].start ?? 0);
        if (m !== undefined) {
          this.report("log matching", atMs, `nodes ${logs[i].node} and ${logs[j].node}: ${m}`);
          return;
        }
      }
    }
  }

  /** At most one node holds a serving lease at real time `atMs`. */
  checkLeaseHolders(atMs: number, intervals: readonly LeaseInterval[]): void {
    const holding = intervals.filter((l) => l.untilMs > atMs + LEASE_TOLERANCE_MS);
    if (holding.length >= 2) {
      this.report(
        "two lease holders",
        atMs,
        holding.map((l) => `node ${l.node} holds a lease until ${l.untilMs.toFixed(3)}`).join(", ") +
          ` (at ${atMs.toFixed(3)})`,
      );
    }
  }

  /** Node `node` makes `what` visible to a client at `atMs`: no other node may hold a lease then. */
  checkVisibleAction(atMs: number, node: number, what: string, intervals: readonly LeaseInterval[]): void {
    for (const l of intervals) {
      if (l.node !== node && l.untilMs > atMs + LEASE_TOLERANCE_MS) {
        this.report(
          "visible during another lease",
          atMs,
          `node ${node} ${what} at ${atMs.toFixed(3)} while node ${l.node} holds a lease until ${
            l.untilMs.toFixed(3)
          }`,
        );
      }
    }
  }

  /**
   * The Ready contract: a message leaves only after what it promises is on disk. A granted (real) vote needs
   * the vote and term persisted; a successful append ack needs the acknowledged prefix persisted.
   */
  checkPersistedBeforeSent(
    atMs: number,
    m: Message,
    disk: { readonly term: number; readonly votedFor: number; readonly lastIndex: number },
  ): void {
    if (m.type === "RequestVoteResponse" && m.voteGranted && !m.preVote) {
      if (disk.term < m.term || (disk.term === m.term && disk.votedFor !== m.to)) {
        this.report(
          "persisted before sent",
          atMs,
          `node ${m.from} grants its vote to ${m.to} in term ${m.term} with disk term ${disk.term} votedFor ${disk.votedFor}`,
        );
      }
    } else if (m.type === "AppendEntriesResponse" && m.success) {
      if (disk.lastIndex < m.matchIndex || disk.term < m.term) {
        this.report(
          "persisted before sent",
          atMs,
          `node ${m.from} acks match ${m.matchIndex} in term ${m.term} with ${disk.lastIndex} entries and term ${disk.term} on disk`,
        );
      }
    } else if (m.type === "RequestVote" && !m.preVote) {
      if (disk.term < m.term || (disk.term === m.term && disk.votedFor !== m.from)) {
        this.report(
          "persisted before sent",
          atMs,
          `node ${m.from} campaigns for term ${m.term} with disk term ${disk.term}`,
        );
      }
    }
  }
}
