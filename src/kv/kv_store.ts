/**
 * The replicated state machine: a map from string keys to string values, plus the exactly-once session
 * table (SPEC §3; README.md in this folder): a SET carries (clientId, seq); a session remembers its last
 * applied seq and a fingerprint of that SET.
 *
 * - `seq > last`: applied (a new session must start at seq 1).
 * - `seq == last` with the same key and value: a retry of the applied SET, answered ok, not applied again.
 * - `seq < last`, or `seq == last` with another key or value: **stale sequence**, refused, nothing applied.
 * - a session that is not in the table and `seq > 1`: **session expired**, refused, nothing applied.
 *
 * Sessions expire deterministically, by log position only: when more than `sessionIdleEntriesMax` entries
 * were applied since the session's last SET, or, when more than `sessionsMax` sessions are open, the least
 * recently used first. Every replica applying the same entries holds the same map and the same sessions.
 *
 * @module
 */
import type { Entry, Refusal } from "../raft/types.ts";
import type { SessionVerdict, SetCommand, StateMachine } from "../raft/state_machine.ts";
import { FrozenMap, type FrozenView } from "./frozen_map.ts";

export interface KvLimits {
  /** Sessions remembered at most; the least recently used expires first (deterministic: by apply order). */
  readonly sessionsMax: number;
  /** A session expires once more than this many log entries were applied since its last SET. */
  readonly sessionIdleEntriesMax: number;
}

export const DEFAULT_KV_LIMITS: KvLimits = { sessionsMax: 100_000, sessionIdleEntriesMax: 10_000_000 };

/** A session as the state machine keeps it (and a snapshot carries it). */
export interface Session {
  /** The last applied seq. */
  readonly seq: number;
  /** Fingerprint of that SET's key and value: a retry must be the same write. */
  readonly fingerprint: number;
  /** Log index of the session's last SET (applied or retried): its idle time is counted from here. */
  readonly lastIndex: number;
}

/** FNV-1a over key, NUL, value: tells a retry from another write that reuses the seq. */
function fingerprint(c: SetCommand): number {
  let h = 0x811c9dc5;
  const s = `${c.key}\u0000${c.value}`;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

export class KvStore implements StateMachine {
  /** A FrozenMap: a snapshot is written from a frozen view while the map keeps changing. */
  #data = new FrozenMap<string, string>();
  /** clientId → session. A Map keeps insertion order: re-inserting on use makes it an LRU. */
  #sessions = new FrozenMap<string, Session>();
  readonly #limits: KvLimits;
  #appliedIndex = 0;
  #duplicatesSkipped = 0;
  #staleRefused = 0;
  #expiredRefused = 0;
  #sessionsExpired = 0;

  constructor(limits: Partial<KvLimits> = {}) {
    this.#limits = { ...DEFAULT_KV_LIMITS, ...limits };
  }

  /** Applies one committed entry; returns the refusal when the session table refuses a SET (else undefined). */
  apply(entry: Entry): Refusal | undefined {
    if (entry.index !== this.#appliedIndex + 1) {
      throw new Error(
        `KvStore: applied index ${entry.index} after ${this.#appliedIndex} (entries must be in order)`,
      );
    }
    this.#appliedIndex = entry.index;
    this.#expireIdle();
    const c = entry.command;
    if (c.op !== "set") return undefined;
    if (c.clientId !== "") {
      const verdict = this.checkSession(c);
      switch (verdict.kind) {
        case "stale":
          this.#staleRefused++;
          return { kind: "staleSequence", lastSeq: verdict.lastSeq };
        case "expired":
          this.#expiredRefused++;
          return { kind: "sessionExpired" };
        case "retry": {
          this.#duplicatesSkipped++;
          const s = this.#sessions.get(c.clientId)!;
          this.#touch(c.clientId, { ...s, lastIndex: entry.index });
          return undefined;
        }
        case "new":
          this.#touch(c.clientId, { seq: c.seq, fingerprint: fingerprint(c), lastIndex: entry.index });
          break;
      }
    }
    this.#data.set(c.key, c.value);
    return undefined;
  }

  /** What the session table, as applied so far, says about `c` (see the module doc). */
  checkSession(c: SetCommand): SessionVerdict {
    if (c.clientId === "") return { kind: "new" };
    const s = this.#sessions.get(c.clientId);
    if (s === undefined) return c.seq > 1 ? { kind: "expired" } : { kind: "new" };
    if (c.seq > s.seq) return { kind: "new" };
    if (c.seq === s.seq && fingerprint(c) === s.fingerprint) return { kind: "retry" };
    return { kind: "stale", lastSeq: s.seq };
  }

  get(key: string): string | undefined {
    return this.#data.get(key);
  }

  /** True when session `clientId` has applied `seq` or a later SET (false for an unknown session). */
  isApplied(clientId: string, seq: number): boolean {
    if (clientId === "") return false;
    const s = this.#sessions.get(clientId);
    return s !== undefined && seq <= s.seq;
  }

  get appliedIndex(): number {
    return this.#appliedIndex;
  }

  /** How many SETs were skipped as retries of an already applied one. */
  get duplicatesSkipped(): number {
    return this.#duplicatesSkipped;
  }

  /** How many SETs were refused at apply as stale sequence / for an expired session. */
  get refused(): { staleSequence: number; sessionExpired: number } {
    return { staleSequence: this.#staleRefused, sessionExpired: this.#expiredRefused };
  }

  /** Open sessions, and how many expired so far. */
  get sessions(): { open: number; expired: number } {
    return { open: this.#sessions.size, expired: this.#sessionsExpired };
  }

  get size(): number {
    return this.#data.size;
  }

  /** All pairs, sorted by key (for comparisons in tests and the dump tool). */
  entries(): [string, string][] {
    return [...this.#data.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /** Moves the session to the most recently used end; expires the least recently used beyond the cap. */
  #touch(clientId: string, s: Session): void {
    this.#sessions.delete(clientId);
    this.#sessions.set(clientId, s);
    while (this.#sessions.size > this.#limits.sessionsMax) {
      this.#sessions.delete(this.#sessions.keys().next().value as string);
      this.#sessionsExpired++;
    }
  }

  /** Expires the sessions idle for more than `sessionIdleEntriesMax` entries (the oldest are first). */
  #expireIdle(): void {
    for (const [id, s] of this.#sessions) {
      if (this.#appliedIndex - s.lastIndex <= this.#limits.sessionIdleEntriesMax) return;
      this.#sessions.delete(id);
      this.#sessionsExpired++;
    }
  }
  // -------------------------------------------------------------------------------------------------------
  // Snapshots (issue 10): everything the state machine holds, as of `appliedIndex`.

  /**
   * A frozen view of the whole state as of now (`appliedIndex`), readable in chunks while entries keep being
   * applied (see frozen_map.ts: the only pause is copying the key list). Close it when done; one at a time.
   */
  snapshot(): KvSnapshot {
    const data = this.#data.freeze();
    let sessions: FrozenView<string, Session>;
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
    const sessions = new FrozenMap<string, Session>();
    let done = false;
    return {
      session: (clientId, s) =>
        void sessions.set(clientId, { seq: s.seq, fingerprint: s.fingerprint, lastIndex: s.lastIndex }),
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
  sessionEntries(): [string, Session][];
  /** The next up to `max` pairs; empty once all were returned. */
  nextPairs(max: number): [string, string][];
  /** Releases the view. */
  close(): void;
}

/** A restore in progress (see {@link KvStore.beginRestore}). */
export interface KvRestore {
  session(clientId: string, session: Session): void;
  pair(key: string, value: string): void;
  /** Replaces the store's state by what was fed, at once. */
  commit(): void;
}
