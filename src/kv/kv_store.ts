/**
 * The replicated state machine: a map from string keys to string values, plus the exactly-once session
 * table (SPEC §3): a SET carries (clientId, seq); a session remembers its highest applied seq, so a retried
 * SET that reaches the log twice is applied once.
 *
 * Pure and deterministic: every replica that applies the same entries in the same order holds the same map
 * and the same session table (sessions are evicted by a deterministic rule, never by time).
 *
 * @module
 */
import type { Entry } from "../raft/types.ts";
import type { StateMachine } from "../raft/state_machine.ts";

export interface KvLimits {
  /** Sessions remembered at most; the least recently used is forgotten first (deterministic: by apply order). */
  readonly sessionsMax: number;
}

export const DEFAULT_KV_LIMITS: KvLimits = { sessionsMax: 100_000 };

export class KvStore implements StateMachine {
  readonly #data = new Map<string, string>();
  /** clientId → highest applied seq. A Map keeps insertion order: re-inserting on use makes it an LRU. */
  readonly #sessions = new Map<string, number>();
  #appliedIndex = 0;
  #duplicatesSkipped = 0;

  constructor(private readonly limits: KvLimits = DEFAULT_KV_LIMITS) {}

  apply(entry: Entry): void {
    if (entry.index !== this.#appliedIndex + 1) {
      throw new Error(
        `KvStore: applied index ${entry.index} after ${this.#appliedIndex} (entries must be in order)`,
      );
    }
    this.#appliedIndex = entry.index;
    const c = entry.command;
    if (c.op !== "set") return;
    if (c.clientId !== "") {
      const last = this.#sessions.get(c.clientId);
      if (last !== undefined && c.seq <= last) {
        this.#duplicatesSkipped++;
        return;
      }
      this.#sessions.delete(c.clientId);
      this.#sessions.set(c.clientId, c.seq);
      if (this.#sessions.size > this.limits.sessionsMax) {
        const oldest = this.#sessions.keys().next().value as string;
        this.#sessions.delete(oldest);
      }
    }
    this.#data.set(c.key, c.value);
  }

  get(key: string): string | undefined {
    return this.#data.get(key);
  }

  isApplied(clientId: string, seq: number): boolean {
    if (clientId === "") return false;
    const last = this.#sessions.get(clientId);
    return last !== undefined && seq <= last;
  }

  get appliedIndex(): number {
    return this.#appliedIndex;
  }

  /** How many SETs were skipped as retries of an already applied one. */
  get duplicatesSkipped(): number {
    return this.#duplicatesSkipped;
  }

  get size(): number {
    return this.#data.size;
  }

  /** All pairs, sorted by key (for comparisons in tests and the dump tool). */
  entries(): [string, string][] {
    return [...this.#data.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }
}
