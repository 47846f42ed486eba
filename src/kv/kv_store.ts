/**
 * The replicated state machine: a map from string keys to string values, plus the exactly-once session
 * table (SPEC §3): a SET, DELETE or CAS carries (clientId, seq); a session remembers its highest applied seq,
 * so a retried write that reaches the log twice is applied once, and a retry is answered with the outcome
 * of the first application (a CAS must not be re-evaluated against a newer value).
 *
 * Every key has a version: the log index of its last change (etcd's mod_revision); 0 when absent. A CAS
 * compares either the value or the version (version 0: the key must be absent).
 *
 * Pure and deterministic: every replica that applies the same entries in the same order holds the same map
 * and the same session table (sessions are evicted by a deterministic rule, never by time).
 *
 * @module
 */
import type { Entry, SessionCommand, WriteOutcome } from "../raft/types.ts";
import type { StateMachine } from "../raft/state_machine.ts";

export interface KvLimits {
  /** Sessions remembered at most; the least recently used is forgotten first (deterministic: by apply order). */
  readonly sessionsMax: number;
}

export const DEFAULT_KV_LIMITS: KvLimits = { sessionsMax: 100_000 };

/** One applied change (SET, DELETE of an existing key, or a CAS that succeeded), for watchers. */
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

export class KvStore implements StateMachine {
  readonly #data = new Map<string, string>();
  /** key → log index of its last change. */
  readonly #versions = new Map<string, number>();
  /** The keys in order, rebuilt lazily when a key was added or removed (LIST). */
  #sortedKeys: string[] | undefined = [];
  /** clientId → highest applied seq. A Map keeps insertion order: re-inserting on use makes it an LRU. */
  readonly #sessions = new Map<string, number>();
  /** clientId → the outcome of its last applied write (answers a retry); bounded like the sessions. */
  readonly #outcomes = new Map<string, { seq: number; outcome: WriteOutcome }>();
  #appliedIndex = 0;
  #duplicatesSkipped = 0;
  /** Called with every change as it is applied (the node's watch fan-out). */
  onChange: ((change: KvChange) => void) | undefined;

  constructor(private readonly limits: KvLimits = DEFAULT_KV_LIMITS) {}

  apply(entry: Entry): WriteOutcome | undefined {
    if (entry.index !== this.#appliedIndex + 1) {
      throw new Error(
        `KvStore: applied index ${entry.index} after ${this.#appliedIndex} (entries must be in order)`,
      );
    }
    this.#appliedIndex = entry.index;
    const c = entry.command;
    if (c.op === "noop") return undefined;
    if (c.clientId !== "") {
      const last = this.#sessions.get(c.clientId);
      if (last !== undefined && c.seq <= last) {
        this.#duplicatesSkipped++;
        return this.outcomeOf(c.clientId, c.seq);
      }
      this.#sessions.delete(c.clientId);
      this.#sessions.set(c.clientId, c.seq);
      if (this.#sessions.size > this.limits.sessionsMax) {
        const oldest = this.#sessions.keys().next().value as string;
        this.#sessions.delete(oldest);
      }
    }
    const outcome = this.#applyWrite(entry.index, c);
    if (c.clientId !== "") this.#rememberOutcome(c.clientId, c.seq, outcome);
    return outcome;
  }

  /** The outcome of session `clientId`'s write `seq` if it was its last applied one and is remembered. */
  outcomeOf(clientId: string, seq: number): WriteOutcome | undefined {
    const o = this.#outcomes.get(clientId);
    return o !== undefined && o.seq === seq ? o.outcome : undefined;
  }

  get(key: string): string | undefined {
    return this.#data.get(key);
  }

  /** The log index of the last change of `key`; 0 when it does not exist. */
  version(key: string): number {
    return this.#versions.get(key) ?? 0;
  }

  isApplied(clientId: string, seq: number): boolean {
    if (clientId === "") return false;
    const last = this.#sessions.get(clientId);
    return last !== undefined && seq <= last;
  }

  get appliedIndex(): number {
    return this.#appliedIndex;
  }

  /** How many writes were skipped as retries of an already applied one. */
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

  #applyWrite(index: number, c: SessionCommand): WriteOutcome {
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

  #applyCas(
    index: number,
    key: string,
    expect: { readonly value: string } | { readonly version: number },
    value: string,
  ): WriteOutcome {
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

  #rememberOutcome(clientId: string, seq: number, outcome: WriteOutcome): void {
    this.#outcomes.delete(clientId);
    this.#outcomes.set(clientId, { seq, outcome });
    if (this.#outcomes.size > this.limits.sessionsMax) {
      this.#outcomes.delete(this.#outcomes.keys().next().value as string);
    }
  }

  #keysInOrder(): string[] {
    this.#sortedKeys ??= [...this.#data.keys()].sort();
    return this.#sortedKeys;
  }
}
