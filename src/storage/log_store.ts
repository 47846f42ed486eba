/**
 * The durability contract shared by the file store and the in-memory store.
 *
 * @module
 */

import type { Entry, HardState, LogPosition, PersistedState, SnapshotChunk } from "../raft/types.ts";
import { StorageError } from "./errors.ts";

/**
 * The persistence part of one `Ready` (a `Ready` itself is accepted as is): truncate the stored log to
 * `appendFrom - 1`, append `entries`, record `hardState`; `commitIndex` is a restart hint.
 */
export interface SaveRequest {
  /** The term and vote, when they changed (or not: an unchanged one is not rewritten). */
  readonly hardState?: HardState;
  /** First index of `entries`; stored entries at or after it are replaced. Undefined: no log change. */
  readonly appendFrom?: number;
  /** The entries to store at `appendFrom`, `appendFrom + 1`, ... */
  readonly entries: readonly Entry[];
  /** The commit index, when it advanced (a restart hint, written lazily). */
  readonly commitIndex?: number;
  /** A chunk of a snapshot received from the leader, written first (see `Ready.snapshotChunk`). */
  readonly snapshotChunk?: SnapshotChunk;
  /** The received snapshot is complete: make it the snapshot and reset the log to start at it (§7). */
  readonly installSnapshot?: LogPosition;
  /**
   * This node took a snapshot (written to `snapshot.txt.tmp`): make it the snapshot, then compact the log up
   * to `compactTo` (see `Ready.compactLog`).
   */
  readonly compactLog?: { readonly snapshot: LogPosition; readonly compactTo: LogPosition };
}

/** What a store found on disk, plus what it repaired on the way (e.g. a torn last line it dropped). */
export interface LoadedState extends PersistedState {
  /** Human-readable notes for the node's log (dump.txt); empty when the folder was clean. */
  readonly warnings: readonly string[];
}

/** A node's durable state: used from one async loop (calls are also serialized internally). */
export interface LogStore {
  /** The state found when the store was opened, with everything saved since. */
  load(): LoadedState;
  /**
   * Makes one Ready's persistence durable before resolving: the hard state and the log change. The commit
   * index may be recorded lazily. Rejects with `StorageError` (`invalid`) for a request the log cannot take
   * (a gap, an index that does not follow, a decreasing term, truncating committed entries).
   */
  save(request: SaveRequest): Promise<void>;
  /** Records the latest commit index now (it is otherwise written lazily). */
  flush(): Promise<void>;
  /** Flushes and releases the folder. Further calls fail with `StorageError` (`closed`). */
  close(): Promise<void>;
  /** Index of the last stored entry (0 when the log is empty). */
  readonly lastIndex: number;
}

/**
 * The hard state to record when `next` is saved over `prev`: term and vote from `next`; the largest lease
 * ever promised never shrinks (field left out while none was promised, as in files written before it).
 */
export function nextHardState(prev: HardState, next: HardState): HardState {
  const promised = Math.max(prev.promisedLeaseMs ?? 0, next.promisedLeaseMs ?? 0);
  return promised > 0
    ? { term: next.term, votedFor: next.votedFor, promisedLeaseMs: promised }
    : { term: next.term, votedFor: next.votedFor };
}

function isUint(n: unknown): n is number {
  return typeof n === "number" && Number.isSafeInteger(n) && n >= 0;
}

/**
 * Checks `request` against the stored log and returns the index from which the stored log is replaced
 * (`lastIndex + 1` when nothing is truncated). Throws `StorageError` (`invalid`).
 *
 * @param termAt term of the stored entry at an index in `1..lastIndex` (0 for index 0)
 * @param committed entries at or below this index must never be truncated
 */
export function validateSave(
  request: SaveRequest,
  lastIndex: number,
  termAt: (index: number) => number,
  committed: number,
  hardState: HardState,
): number {
  const bad = (why: string): never => {
    throw new StorageError("invalid", `invalid save: ${why}`);
  };
  const hs = request.hardState;
  if (hs !== undefined) {
    if (!isUint(hs.term) || !isUint(hs.votedFor)) bad(`malformed hard state ${JSON.stringify(hs)}`);
    if (hs.term < hardState.term) bad(`term would go back from ${hardState.term} to ${hs.term}`);
    const promised = hs.promisedLeaseMs;
    if (promised !== undefined && (!Number.isFinite(promised) || promised < 0)) {
      bad(`malformed promisedLeaseMs ${promised}`);
    }
  }
  if (request.commitIndex !== undefined && !isUint(request.commitIndex)) {
    bad(`malformed commit index ${request.commitIndex}`);
  }
  const entries = request.entries;
  const from = request.appendFrom;
  if (from === undefined) {
    if (entries.length > 0) bad("entries without appendFrom");
    return lastIndex + 1;
  }
  if (!Number.isSafeInteger(from) || from < 1) bad(`appendFrom ${from} is not a positive integer`);
  if (from > lastIndex + 1) bad(`appendFrom ${from} leaves a gap after the last index ${lastIndex}`);
  if (from <= committed) {
    // Rewriting committed entries is fine only as identical copies (same index and term: Log Matching).
    const upTo = from + entries.length - 1;
    if (upTo < committed) {
      bad(`appendFrom ${from} would remove committed entries (commit index ${committed})`);
    }
    for (let i = from; i <= committed; i++) {
      const e = entries[i - from];
      if (e.term !== termAt(i)) {
        bad(`entry ${i} would replace a committed entry of term ${termAt(i)} with term ${e.term}`);
      }
    }
  }
  let prevTerm = termAt(from - 1);
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    if (e.index !== from + i) bad(`entry ${i} has index ${e.index}, expected ${from + i}`);
    if (!isUint(e.term) || e.term < 1) bad(`entry ${e.index} has malformed term ${e.term}`);
    if (e.term < prevTerm) bad(`entry ${e.index} has term ${e.term} after term ${prevTerm}`);
    prevTerm = e.term;
    const c = e.command;
    if (c.op === "set") {
      if (typeof c.key !== "string" || typeof c.value !== "string" || typeof c.clientId !== "string") {
        bad(`entry ${e.index} has a malformed SET command`);
      }
      if (!isUint(c.seq)) bad(`entry ${e.index} has malformed seq ${c.seq}`);
    } else if (c.op === "config") {
      if (typeof c.membership !== "object" || !Array.isArray(c.membership?.members)) {
        bad(`entry ${e.index} has a malformed configuration`);
      }
    } else if (c.op === "del" || c.op === "cas") {
      const expectOk = c.op === "del" ||
        ("version" in c.expect ? isUint(c.expect.version) : typeof c.expect.value === "string");
      if (
        typeof c.key !== "string" || typeof c.clientId !== "string" || !expectOk ||
        (c.op === "cas" && typeof c.value !== "string")
      ) {
        bad(`entry ${e.index} has a malformed ${c.op.toUpperCase()} command`);
      }
      if (!isUint(c.seq)) bad(`entry ${e.index} has malformed seq ${c.seq}`);
    } else if (c.op !== "noop") {
      bad(`entry ${e.index} has unknown op ${(c as { op: unknown }).op}`);
    }
  }
  return from;
}
