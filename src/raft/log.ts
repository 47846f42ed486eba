/**
 * The in-memory Raft log: entries 1..n, with the lowest index changed since the caller last persisted
 * (`unstableFrom`), so one `Ready` can say "truncate to here, append these".
 *
 * @module
 */
import type { Entry } from "./types.ts";

export class RaftLog {
  readonly #entries: Entry[];
  /** Lowest index appended or replaced since `takeUnstable`; Infinity when the disk matches memory. */
  #unstableFrom = Infinity;

  constructor(entries: readonly Entry[]) {
    entries.forEach((e, i) => {
      if (e.index !== i + 1) {
        throw new Error(`log entry at position ${i} has index ${e.index}, expected ${i + 1}`);
      }
      if (i > 0 && e.term < entries[i - 1].term) {
        throw new Error(
          `log entry ${e.index} has term ${e.term} below the previous entry's ${entries[i - 1].term}`,
        );
      }
    });
    this.#entries = [...entries];
  }

  get lastIndex(): number {
    return this.#entries.length;
  }

  get lastTerm(): number {
    return this.#entries.length === 0 ? 0 : this.#entries[this.#entries.length - 1].term;
  }

  /** The term at `index`: 0 for index 0, undefined beyond the end. */
  term(index: number): number | undefined {
    if (index === 0) return 0;
    return this.#entries[index - 1]?.term;
  }

  entry(index: number): Entry {
    const e = this.#entries[index - 1];
    if (e === undefined) throw new Error(`no log entry at index ${index} (last is ${this.lastIndex})`);
    return e;
  }

  /** Entries [from, to] inclusive. */
  slice(from: number, to: number): Entry[] {
    return this.#entries.slice(from - 1, to);
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
    this.#entries.length = index - 1;
    this.#unstableFrom = Math.min(this.#unstableFrom, index);
  }

  /** Is a log ending at (lastIndex, lastTerm) at least as up to date as this one? (Raft §5.4.1) */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    return lastTerm > this.lastTerm || (lastTerm === this.lastTerm && lastIndex >= this.lastIndex);
  }

  /** First index of the run of `term` that contains `index` (for the conflict hint). */
  firstIndexOfTermAt(index: number): number {
    const term = this.term(index);
    let i = index;
    while (i > 1 && this.term(i - 1) === term) i--;
    return i;
  }

  /** Last index holding `term`, 0 when the log has none. */
  lastIndexOfTerm(term: number): number {
    for (let i = this.lastIndex; i >= 1; i--) {
      const t = this.#entries[i - 1].term;
      if (t === term) return i;
      if (t < term) return 0;
    }
    return 0;
  }

  /** Returns and clears the part of the log that changed since the last call. */
  takeUnstable(): { appendFrom: number; entries: Entry[] } | undefined {
    if (this.#unstableFrom === Infinity) return undefined;
    const from = this.#unstableFrom;
    this.#unstableFrom = Infinity;
    return { appendFrom: from, entries: this.slice(from, this.lastIndex) };
  }

  get hasUnstable(): boolean {
    return this.#unstableFrom !== Infinity;
  }
}
