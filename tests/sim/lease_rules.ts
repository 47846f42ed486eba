/**
 * A component check of rule 5 that the end-to-end lease checkers cannot make: a new leader's wait must end,
 * in real time, no earlier than the promise of every voter whose grant it counted (the promise as the voter
 * reported it when replying). End to end, the voter's promise margin (rule 4) already covers the candidate's
 * clock running fast within the drift budget, so dropping the candidate's own margin (`--break wait-margin`)
 * never lets two leases overlap while clocks stay in budget; this oracle check sees the wait fall short.
 *
 * The simulator calls `onSend` for every message a node sends, `onDelivered` after a node stepped one, and
 * `onLeader` when a node leads (its wait still to run, as `leaseWaitRemainingMs`).
 *
 * @module
 */
import type { Message } from "../../src/raft/types.ts";
import { type Checker, LEASE_TOLERANCE_MS } from "./checkers.ts";

export class WaitRule {
  /** Real time at which each granted vote's reported promise ends. */
  readonly #promiseEnd = new WeakMap<Message, number>();
  /** `${candidate}/${term}` → the revoked-lease term its campaign announced. */
  readonly #revoked = new Map<string, number>();
  /** `${candidate}/${term}` → the latest promise end among the grants it received, and from whom. */
  readonly #needed = new Map<string, { endMs: number; voter: number }>();
  readonly #checked = new Set<string>();

  constructor(private readonly checker: Checker) {}

  /** A node sends `m`; `promiseEndRealMs` converts a duration on the sender's clock, from now, to real time. */
  onSend(m: Message, promiseEndRealMs: (durationMs: number) => number): void {
    if (m.type === "RequestVote" && !m.preVote) this.#revoked.set(`${m.from}/${m.term}`, m.revokedLeaseTerm);
    if (m.type === "RequestVoteResponse" && m.voteGranted && !m.preVote && m.leaseRemainingMs > 0) {
      this.#promiseEnd.set(m, promiseEndRealMs(m.leaseRemainingMs));
    }
  }

  /** The candidate stepped `m` (a grant counts only if it came in its campaign's term). */
  onDelivered(m: Message): void {
    if (m.type !== "RequestVoteResponse") return;
    const end = this.#promiseEnd.get(m);
    if (end === undefined) return;
    const key = `${m.to}/${m.term}`;
    if (m.leaseTerm <= (this.#revoked.get(key) ?? 0)) return; // a lease revoked by a transfer (rule 8)
    const prev = this.#needed.get(key);
    if (prev === undefined || end > prev.endMs) this.#needed.set(key, { endMs: end, voter: m.from });
  }

  /** Node `id` leads term `term`; its wait ends at real time `readyFromMs`. Checked once per term. */
  onLeader(atMs: number, id: number, term: number, readyFromMs: number): void {
    const key = `${id}/${term}`;
    if (this.#checked.has(key)) return;
    this.#checked.add(key);
    const need = this.#needed.get(key);
    if (need !== undefined && readyFromMs + LEASE_TOLERANCE_MS < need.endMs) {
      this.checker.report(
        "wait shorter than a promise",
        atMs,
        `node ${id} leads term ${term} and may serve from ${
          readyFromMs.toFixed(3)
        }, but voter ${need.voter}` +
          ` promised a lease until ${need.endMs.toFixed(3)}`,
      );
    }
  }
}
