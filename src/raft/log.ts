/**
 * The in-memory Raft log: entries `start.index + 1 .. lastIndex`, behind a compacted prefix whose last entry
 * (`start`: index and term) is remembered, with the lowest index changed since the caller last persisted
 * (`unstableFrom`), so one `Ready` can say "truncate to here, append these".
 *
 * This is the node's one copy of the log tail: the storage layer keeps only byte offsets and terms.
 *
 * @module
 */
import type { Entry, LogPosition } from "./types.ts";

export class RaftLog {
  #entries: Entry[];
  /** The last compacted entry: entries at or before `#start.index` are in the snapshot, not here. */
  #start: LogPosition;
  /** Lowest index appended or replaced since `takeUnstable`; Infinity when the disk matches memory. */
  #unstableFrom = Infinity;

  constructor(entries: readonly Entry[], start: LogPosition = { index: 0, term: 0 }) {
    let prevTerm = start.term;
    entries.forEach((e, i) => {
      if (e.index !== start.index + i + 1) {
        throw new Error(`log entry at position ${i} has index ${e.index}, expected ${start.index + i + 1}`);
      }
      if (e.term < prevTerm) {
        throw new Error(`log entry ${e.index} has term ${e.term} below the previous entry's ${prevTerm}`);
      }
      prevTerm = e.term;
    });
    this.#entries = [...entries];
    this.#start = { index: start.index, term: start.term };
  }

  /** The last compacted entry (index 0, term 0 when nothing was compacted). */
  get start(): LogPosition {
    return this.#start;
  }

  /** Index of the first entry held (`start.index + 1`; beyond `lastIndex` when none is held). */
  get firstIndex(): number {
    return this.#start.index + 1;
  }

  get lastIndex(): number {
    return this.#start.index + this.#entries.length;
  }

  get lastTerm(): number {
    return this.#entries.length === 0 ? this.#start.term : this.#entries[this.#entries.length - 1].term;
  }

  /** Entries held in memory. */
  get length(): number {
    return this.#entries.length;
  }

  /** The term at `index`: the compacted start's at `start.index`, undefined beyond the end or before it. */
  term(index: number): number | undefined {
    if (index === this.#start.index) return this.#start.term;
    if (index < this.#start.index) return undefined;
    return this.#entries[index - this.#start.index - 1]?.term;
  }

  entry(index: number): Entry {
    const e = index > this.#start.index ? this.#entries[index - this.#start.index - 1] : undefined;
    if (e === undefined) {
      throw new Error(`no log entry at index ${index} (held: ${this.firstIndex}..${this.lastIndex})`);
    }
    return e;
  }

  /** Entries [from, to] inclusive (`from` must not be compacted). */
  slice(from: number, to: number): Entry[] {
    if (from <= this.#start.index) {
      throw new Error(`slice from ${from}: compacted up to ${this.#start.index}`);
    }
    return this.#entries.slice(from - this.#start.index - 1, to - this.#start.index);
  }

  all(): readonly Entry[] {
    return this.#entries;
  }

  append(entry: Entry): void {
    if (entry.index !== this.lastIndex + 1) {
      throw new Error(`append of index ${entry.index} after last index ${this.lastIndex}`);
    }
    this.#entries.push(entry);
    this.#unstableFrom = Math.min(this.#unstableFrom, entry.index);
  }

  /** Drops entries at `index` and after (a follower's conflict truncation, Raft §5.3). */
  truncateFrom(index: number): void {
    if (index > this.lastIndex) return;
    if (index <= this.#start.index) {
      throw new Error(`truncate from ${index}: compacted up to ${this.#start.index}`);
    }
    this.#entries.length = index - this.#start.index - 1;
    this.#unstableFrom = Math.min(this.#unstableFrom, index);
  }

  /**
   * Forgets the entries up to `index` (they are in a snapshot); `index` must be held (or the start).
   * Entries not yet handed to the caller are never compacted (the caller must persist them first): returns
   * the index compacted to.
   */
  compactTo(wanted: number): number {
    const index = Math.min(wanted, this.#unstableFrom - 1);
    if (index <= this.#start.index) return this.#start.index;
    if (index > this.lastIndex) {
      throw new Error(`compact to ${index} beyond the last index ${this.lastIndex}`);
    }
    const term = this.term(index)!;
    this.#entries = this.#entries.slice(index - this.#start.index);
    this.#start = { index, term };
    return index;
  }

  /**
   * Makes the log start at a snapshot's position `at` (Raft §7): if this log holds `at.index` with `at.term`,
   * the entries after it are kept (they match the leader's); otherwise the whole log is discarded. Returns
   * true when the entries after `at` were kept.
   */
  resetTo(at: LogPosition): boolean {
    const keep = this.term(at.index) === at.term && at.index <= this.lastIndex;
    this.#entries = keep ? this.#entries.slice(at.index - this.#start.index) : [];
    this.#start = { index: at.index, term: at.term };
    // What is unstable after the reset is what was unstable beyond it (the caller persists the reset itself).
    if (this.#unstableFrom <= at.index) {
      this.#unstableFrom = keep && this.lastIndex > at.index ? at.index + 1 : Infinity;
    }
    if (this.#unstableFrom > this.lastIndex) this.#unstableFrom = Infinity;
    return keep;
  }

  /** Is a log ending at (lastIndex, lastTerm) at least as up to date as this one? (Raft §5.4.1) */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    return lastTerm > this.lastTerm || (lastTerm === this.lastTerm && lastIndex >= this.lastIndex);
  }

  /** First index of the run of `term` that contains `index` (for the conflict hint; never below the start). */
  firstIndexOfTermAt(index: number): number {
    const term = this.term(index);
    let i = index;
    while (i > this.#start.index + 1 && this.term(i - 1) === term) i--;
    return i;
  }

  /** Last index holding `term`, 0 when the held log has none. */
  lastIndexOfTerm(term: number): number {
    for (let i = this.lastIndex; i > this.#start.index; i--) {
      const t = this.#entries[i - this.#start.index - 1].term;
      if (t === term) return i;
      if (t < term) return 0;
    }
    return this.#start.term === term && this.#start.index > 0 ? this.#start.index : 0;
  }

  /** Returns and clears the part of the log that changed since the last call. */
  takeUnstable(): { appendFrom: number; entries: Entry[] } | undefined {
    if (this.#unstableFrom === Infinity) return undefined;
    const from = Math.max(this.#unstableFrom, this.firstIndex);
    this.#unstableFrom = Infinity;
    return { appendFrom: from, entries: this.slice(from, this.lastIndex) };
  }

  get hasUnstable(): boolean {
    return this.#unstableFrom !== Infinity;
  }
}
