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

export interface KvLimits {
  /** Sessions remembered at most; the least recently used expires first (deterministic: by apply order). */
  readonly sessionsMax: number;
  /** A session expires once more than this many log entries were applied since its last SET. */
  readonly sessionIdleEntriesMax: number;
}

export const DEFAULT_KV_LIMITS: KvLimits = { sessionsMax: 100_000, sessionIdleEntriesMax: 10_000_000 };

interface Session {
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
  readonly #data = new Map<string, string>();
  /** clientId → session. A Map keeps insertion order: re-inserting on use makes it an LRU. */
  readonly #sessions = new Map<string, Session>();
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
}
