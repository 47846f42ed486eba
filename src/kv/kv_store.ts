/**
 * The replicated state machine: a map from string keys to string values, plus the exactly-once session
 * table (SPEC §3; README.md in this folder): a write (SET, DELETE, CAS) carries (clientId, seq); a session
 * remembers its last applied seq, a fingerprint of that write, and what it did (its outcome), so a retry is
 * answered as the first time (a CAS is never evaluated twice). Below, "SET" stands for any of the three.
 *
 * Every key has a version: the log index of its last change (etcd's mod_revision); 0 when absent. A CAS
 * compares either the value or the version (version 0: the key must be absent).
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
import type { CasExpect, Entry, Refusal, WriteOutcome } from "../raft/types.ts";
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
  /** What that write did (answers its retries). */
  readonly outcome: WriteOutcome;
}

/** One applied change (SET, DELETE of an existing key, or a CAS that held), for watchers. */
export interface KvChange {
  readonly index: number;
  readonly op: "set" | "del" | "cas";
  readonly key: string;
  /** The new value; "" for a DELETE. */
  readonly value: string;
}

/** A page of a prefix listing (see {@linkcode KvStore.list}). */
export interface KvListPage {
  readonly items: readonly { readonly key: string; readonly value: string; readonly version: number }[];
  /** True when more keys under the prefix follow the last one returned (ask again with `after` = it). */
  readonly more: boolean;
}

export interface KvListRequest {
  readonly prefix: string;
  /** Only keys strictly after this one (the continuation token: the last key of the previous page). */
  readonly after: string;
  /** At most this many keys (≥ 1). */
  readonly limit: number;
  /** Stop before the keys and values returned exceed this many UTF-16 code units (at least one item). */
  readonly maxChars: number;
  readonly withValues: boolean;
}

/** FNV-1a over the write (op, key, expectation, value): tells a retry from another write that reuses the seq. */
function fingerprint(c: SetCommand): number {
  let h = 0x811c9dc5;
  const s = c.op === "set"
    ? `${c.key}\u0000${c.value}` // as before DELETE and CAS existed
    : c.op === "del"
    ? `del\u0000${c.key}`
    : `cas\u0000${c.key}\u0000${
      "version" in c.expect ? `v${c.expect.version}` : `=${c.expect.value}`
    }\u0000${c.value}`;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

export class KvStore implements StateMachine {
  /** FrozenMaps: a snapshot is written from a frozen view while the maps keep changing. */
  #data = new FrozenMap<string, string>();
  /** key → log index of its last change (the same keys as `#data`). */
  #versions = new FrozenMap<string, number>();
  /** The keys in order, rebuilt lazily when a key was added or removed (LIST). */
  #sortedKeys: string[] | undefined = [];
  /** What the entry applied last did (see `lastOutcome`). */
  #lastOutcome: WriteOutcome | undefined;
  /** Called with every change as it is applied (the node's watch fan-out); a restore calls nothing. */
  onChange: ((change: KvChange) => void) | undefined;
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
    this.#lastOutcome = undefined;
    this.#expireIdle();
    const c = entry.command;
    if (c.op === "noop" || c.op === "config") return undefined; // configurations are the core's (issue 11)
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
          this.#lastOutcome = s.outcome;
          return undefined;
        }
        case "new":
          break;
      }
    }
    const outcome = this.#applyWrite(entry.index, c);
    if (c.clientId !== "") {
      this.#touch(c.clientId, { seq: c.seq, fingerprint: fingerprint(c), lastIndex: entry.index, outcome });
    }
    this.#lastOutcome = outcome;
    return undefined;
  }

  /** What the entry applied last did (undefined for a NO-OP or a refused write). */
  lastOutcome(): WriteOutcome | undefined {
    return this.#lastOutcome;
  }

  /** The outcome of session `clientId`'s last applied write if it is `seq` (answers a retry of it). */
  outcomeOf(clientId: string, seq: number): WriteOutcome | undefined {
    const s = this.#sessions.get(clientId);
    return s !== undefined && s.seq === seq ? s.outcome : undefined;
  }

  /** The log index of the last change of `key`; 0 when it does not exist. */
  version(key: string): number {
    return this.#versions.get(key) ?? 0;
  }

  /** Keys under `prefix` after `after`, in key order, bounded by `limit` and `maxChars`. */
  list(req: KvListRequest): KvListPage {
    const keys = this.#keysInOrder();
    const from = req.after >= req.prefix ? req.after : req.prefix;
    // First key > after and ≥ prefix (binary search).
    let lo = 0, hi = keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const k = keys[mid];
      if (k < from || (k === req.after && req.after >= req.prefix)) lo = mid + 1;
      else hi = mid;
    }
    const items: { key: string; value: string; version: number }[] = [];
    let chars = 0;
    for (let i = lo; i < keys.length; i++) {
      const key = keys[i];
      if (!key.startsWith(req.prefix)) break;
      const value = req.withValues ? this.#data.get(key)! : "";
      chars += key.length + value.length;
      if (items.length >= req.limit || (items.length > 0 && chars > req.maxChars)) {
        return { items, more: true };
      }
      items.push({ key, value, version: this.#versions.get(key)! });
    }
    return { items, more: false };
  }

  // ------------------------------------------------------------------------------------------------------
  // The writes.

  #applyWrite(index: number, c: SetCommand): WriteOutcome {
    switch (c.op) {
      case "set":
        return this.#put(index, "set", c.key, c.value);
      case "del":
        return this.#applyDelete(index, c.key);
      case "cas":
        return this.#applyCas(index, c.key, c.expect, c.value);
    }
  }

  #applyDelete(index: number, key: string): WriteOutcome {
    if (!this.#data.has(key)) return { succeeded: false, value: "", found: false, version: 0 };
    this.#data.delete(key);
    this.#versions.delete(key);
    this.#sortedKeys = undefined;
    this.onChange?.({ index, op: "del", key, value: "" });
    return { succeeded: true, value: "", found: false, version: 0 };
  }

  #applyCas(index: number, key: string, expect: CasExpect, value: string): WriteOutcome {
    const current = this.#data.get(key);
    const holds = "version" in expect
      ? this.version(key) === expect.version
      : current !== undefined && current === expect.value;
    if (!holds) {
      return {
        succeeded: false,
        value: current ?? "",
        found: current !== undefined,
        version: this.version(key),
      };
    }
    return this.#put(index, "cas", key, value);
  }

  #put(index: number, op: "set" | "cas", key: string, value: string): WriteOutcome {
    if (!this.#data.has(key)) this.#sortedKeys = undefined;
    this.#data.set(key, value);
    this.#versions.set(key, index);
    this.onChange?.({ index, op, key, value });
    return { succeeded: true, value, found: true, version: index };
  }

  #keysInOrder(): string[] {
    this.#sortedKeys ??= [...this.#data.keys()].sort();
    return this.#sortedKeys;
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
    let versions: FrozenView<string, number> | undefined;
    let sessions: FrozenView<string, Session>;
    try {
      versions = this.#versions.freeze(false); // looked up per key of `data`: no second key list
      sessions = this.#sessions.freeze();
    } catch (e) {
      data.close();
      versions?.close();
      throw e;
    }
    const v = versions;
    return {
      index: this.#appliedIndex,
      keys: data.size,
      sessions: sessions.size,
      sessionEntries: () => sessions.all(),
      nextPairs: (max: number) =>
        data.next(max).map(([k, value]): [string, string, number] => [k, value, v.get(k)!]),
      close: () => {
        data.close();
        v.close();
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
    const versions = new FrozenMap<string, number>();
    const sessions = new FrozenMap<string, Session>();
    let done = false;
    return {
      session: (clientId, s) =>
        void sessions.set(clientId, {
          seq: s.seq,
          fingerprint: s.fingerprint,
          lastIndex: s.lastIndex,
          outcome: {
            succeeded: s.outcome.succeeded,
            value: s.outcome.value,
            found: s.outcome.found,
            version: s.outcome.version,
          },
        }),
      pair: (key, value, version) => {
        if (!Number.isSafeInteger(version) || version < 1 || version > index) {
          throw new Error(
            `KvStore: key ${JSON.stringify(key)} has version ${version}, snapshot index ${index}`,
          );
        }
        data.set(key, value);
        versions.set(key, version);
      },
      commit: () => {
        if (done) throw new Error("KvStore: restore committed twice");
        done = true;
        this.#data.clear(); // ends a snapshot view of the old state, if one is open
        this.#versions.clear();
        this.#sessions.clear();
        this.#data = data;
        this.#versions = versions;
        this.#sessions = sessions;
        this.#sortedKeys = undefined;
        this.#lastOutcome = undefined;
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
  /** The next up to `max` pairs, each with its key's version; empty once all were returned. */
  nextPairs(max: number): [string, string, number][];
  /** Releases the view. */
  close(): void;
}

/** A restore in progress (see {@link KvStore.beginRestore}). */
export interface KvRestore {
  session(clientId: string, session: Session): void;
  pair(key: string, value: string, version: number): void;
  /** Replaces the store's state by what was fed, at once. */
  commit(): void;
}
