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
import { FrozenMap, type FrozenView } from "./frozen_map.ts";

export interface KvLimits {
  /** Sessions remembered at most; the least recently used is forgotten first (deterministic: by apply order). */
  readonly sessionsMax: number;
}

export const DEFAULT_KV_LIMITS: KvLimits = { sessionsMax: 100_000 };

export class KvStore implements StateMachine {
  /** A FrozenMap: a snapshot is written from a frozen view while the map keeps changing. */
  #data = new FrozenMap<string, string>();
  /** clientId → highest applied seq. A Map keeps insertion order: re-inserting on use makes it an LRU. */
  #sessions = new FrozenMap<string, number>();
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

  // -------------------------------------------------------------------------------------------------------
  // Snapshots (issue 10): everything the state machine holds, as of `appliedIndex`.

  /**
   * A frozen view of the whole state as of now (`appliedIndex`), readable in chunks while entries keep being
   * applied (see frozen_map.ts: the only pause is copying the key list). Close it when done; one at a time.
   */
  snapshot(): KvSnapshot {
    const data = this.#data.freeze();
    let sessions: FrozenView<string, number>;
    try {
      sessions = this.#sessions.freeze();
    } catch (e) {
      data.close();
      throw e;
    }
    return {
      index: this.#appliedIndex,
      keys: data.size,
      sessions: sessions.size,
      sessionEntries: () => sessions.all(),
      nextPairs: (max: number) => data.next(max),
      close: () => {
        data.close();
        sessions.close();
      },
    };
  }

  /**
   * Starts replacing the whole state by a snapshot's (a restart or an InstallSnapshot): feed it the sessions
   * (least recently used first) and the pairs, then `commit` swaps them in at once; until then the old state
   * stands (an abandoned restore changes nothing).
   */
  beginRestore(index: number): KvRestore {
    if (!Number.isSafeInteger(index) || index < 0) throw new Error(`KvStore: bad snapshot index ${index}`);
    const data = new FrozenMap<string, string>();
    const sessions = new FrozenMap<string, number>();
    let done = false;
    return {
      session: (clientId, seq) => void sessions.set(clientId, seq),
      pair: (key, value) => void data.set(key, value),
      commit: () => {
        if (done) throw new Error("KvStore: restore committed twice");
        done = true;
        this.#data.clear(); // ends a snapshot view of the old state, if one is open
        this.#sessions.clear();
        this.#data = data;
        this.#sessions = sessions;
        this.#appliedIndex = index;
      },
    };
  }
}

/** A frozen view of a {@link KvStore} (see {@link KvStore.snapshot}). */
export interface KvSnapshot {
  /** The last applied entry the view includes. */
  readonly index: number;
  /** Keys in the view. */
  readonly keys: number;
  /** Sessions in the view. */
  readonly sessions: number;
  /** The sessions, least recently used first. */
  sessionEntries(): [string, number][];
  /** The next up to `max` pairs; empty once all were returned. */
  nextPairs(max: number): [string, string][];
  /** Releases the view. */
  close(): void;
}

/** A restore in progress (see {@link KvStore.beginRestore}). */
export interface KvRestore {
  session(clientId: string, seq: number): void;
  pair(key: string, value: string): void;
  /** Replaces the store's state by what was fed, at once. */
  commit(): void;
}
