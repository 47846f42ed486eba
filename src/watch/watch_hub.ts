/**
 * The node-side fan-out of committed changes to watchers (see README.md).
 *
 * The hub keeps a bounded history of recent changes (SET, DELETE, successful CAS) in index order and a set
 * of watchers. A watcher starts at a log index: while behind it reads from the history (catching up, no copy
 * per watcher), then it is live and `publish` queues matching changes into its own bounded buffer. A watcher
 * whose buffer overflows is cut off with a reason (it never grows the node's memory); one whose start or
 * catch-up position has left the history gets `compacted` with the oldest index still available.
 *
 * The hub only ever sees changes the node publishes after they are committed and durable, so a watcher never
 * sees an entry that is later lost.
 *
 * @module
 */
import type { KvChange } from "../kv/kv_store.ts";

export interface WatchHubOptions {
  /** The first log index whose change the hub will be given (1, or a snapshot's index + 1). */
  readonly firstIndex: number;
  /** Changes kept for catching up and resuming (the oldest are dropped first). */
  readonly historyMax?: number;
  /** Events queued for one live watcher before it is cut off as too slow. */
  readonly bufferMax?: number;
  /** Watchers at most (one more is refused as overloaded). */
  readonly watchersMax?: number;
}

export const DEFAULT_HISTORY_MAX = 100_000;
export const DEFAULT_BUFFER_MAX = 10_000;
export const DEFAULT_WATCHERS_MAX = 1_000;
/** Events handed out by one `next` call at most. */
export const BATCH_MAX = 256;

export interface WatchSpec {
  /** A key, or a prefix when `prefix` ("" with prefix: every key). */
  readonly key: string;
  readonly prefix: boolean;
  /** First log index wanted; 0 = from now (changes published after the call). */
  readonly fromIndex: number;
}

/** Why a watch ended (or could not start). */
export type WatchEnd =
  | { readonly kind: "compacted"; readonly oldestIndex: number; readonly message: string }
  | { readonly kind: "overloaded"; readonly message: string }
  | { readonly kind: "closed"; readonly message: string };

export type WatchNext =
  | { readonly events: readonly KvChange[] }
  | { readonly end: WatchEnd };

/** One watcher: pull batches with `next` until it ends; `close` when the caller goes away. */
export class Watcher {
  /** The next log index this watcher wants. */
  nextIndex: number;
  #live = false;
  #queue: KvChange[] = [];
  #end: WatchEnd | undefined;
  #wake: (() => void) | undefined;

  constructor(readonly spec: WatchSpec, private readonly hub: WatchHub, startIndex: number) {
    this.nextIndex = startIndex;
  }

  matches(key: string): boolean {
    return this.spec.prefix ? key.startsWith(this.spec.key) : key === this.spec.key;
  }

  /** The next batch of events (waits for one), or how the watch ended. */
  async next(signal?: AbortSignal): Promise<WatchNext> {
    while (true) {
      if (this.#end) return { end: this.#end };
      if (signal?.aborted) return { end: { kind: "closed", message: "the watcher went away" } };
      if (!this.#live) {
        const r = this.hub.catchUp(this);
        if ("end" in r) {
          this.#end = r.end;
          this.hub.remove(this);
          continue;
        }
        if (r.caughtUp) this.#live = true;
        if (r.events.length > 0) return { events: r.events };
        if (!this.#live) continue;
      }
      if (this.#queue.length > 0) {
        const events = this.#queue.length <= BATCH_MAX ? this.#queue : this.#queue.slice(0, BATCH_MAX);
        this.#queue = this.#queue.length <= BATCH_MAX ? [] : this.#queue.slice(BATCH_MAX);
        return { events };
      }
      await new Promise<void>((resolve) => {
        const onAbort = () => resolve();
        signal?.addEventListener("abort", onAbort, { once: true });
        this.#wake = () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        };
      });
      this.#wake = undefined;
    }
  }

  /** Stops the watch (idempotent). */
  close(): void {
    this.finish({ kind: "closed", message: "closed" });
  }

  get live(): boolean {
    return this.#live;
  }

  get ended(): WatchEnd | undefined {
    return this.#end;
  }

  /** Hub side: a live watcher's matching change. */
  deliver(change: KvChange, bufferMax: number): void {
    if (this.#end) return;
    if (this.#queue.length >= bufferMax) {
      this.finish({
        kind: "overloaded",
        message: `watcher cut off: ${bufferMax} events waiting (it reads slower than changes commit); ` +
          `resume from index ${this.nextIndexAfterQueue()}`,
      });
      return;
    }
    this.#queue.push(change);
    this.nextIndex = change.index + 1;
    this.#wake?.();
  }

  /** Hub side: the published position moved (events or not): wake a waiting reader. */
  poke(): void {
    this.#wake?.();
  }

  /** Hub side: ends the watch with `end` (the first reason wins). */
  finish(end: WatchEnd): void {
    if (this.#end) return;
    this.#end = end;
    this.#queue = [];
    this.hub.remove(this);
    this.#wake?.();
  }

  /** The first index not yet handed to the reader. */
  nextIndexAfterQueue(): number {
    return this.#queue.length > 0 ? this.#queue[0].index : this.nextIndex;
  }
}

export class WatchHub {
  readonly #historyMax: number;
  readonly #bufferMax: number;
  readonly #watchersMax: number;
  /** Changes in index order; `#history[#start..]` are live. */
  #history: KvChange[] = [];
  #start = 0;
  /** Every change with index ≥ #oldestIndex and ≤ #lastIndex is in the history. */
  #oldestIndex: number;
  #lastIndex: number;
  readonly #watchers = new Set<Watcher>();

  constructor(opts: WatchHubOptions) {
    this.#oldestIndex = opts.firstIndex;
    this.#lastIndex = opts.firstIndex - 1;
    this.#historyMax = opts.historyMax ?? DEFAULT_HISTORY_MAX;
    this.#bufferMax = opts.bufferMax ?? DEFAULT_BUFFER_MAX;
    this.#watchersMax = opts.watchersMax ?? DEFAULT_WATCHERS_MAX;
    if (!(opts.firstIndex >= 1)) throw new RangeError(`firstIndex must be ≥ 1, got ${opts.firstIndex}`);
  }

  /** The oldest log index a watch may start at (older ones are refused as compacted). */
  get oldestIndex(): number {
    return this.#oldestIndex;
  }

  /** The last log index published (changes up to it are known). */
  get lastIndex(): number {
    return this.#lastIndex;
  }

  get watcherCount(): number {
    return this.#watchers.size;
  }

  /**
   * Publishes the changes of committed, durable entries up to `appliedIndex` (in order, each once). Live
   * watchers get the matching ones; watchers catching up are woken.
   */
  publish(changes: readonly KvChange[], appliedIndex: number): void {
    for (const c of changes) {
      if (c.index <= this.#lastIndex) {
        throw new Error(`WatchHub: change at index ${c.index} published after index ${this.#lastIndex}`);
      }
      this.#history.push(c);
      this.#lastIndex = c.index;
      for (const w of this.#watchers) {
        if (w.live && c.index >= w.nextIndex && w.matches(c.key)) w.deliver(c, this.#bufferMax);
      }
    }
    if (appliedIndex > this.#lastIndex) this.#lastIndex = appliedIndex;
    for (const w of this.#watchers) {
      if (w.live && w.nextIndex <= this.#lastIndex) w.nextIndex = Math.max(w.nextIndex, this.#lastIndex + 1);
      w.poke();
    }
    this.#trim();
  }

  /**
   * Forgets history before `index` (compaction, e.g. after a snapshot): watches may then start at `index` at
   * the earliest; watchers still catching up from before it end as compacted.
   */
  compactTo(index: number): void {
    while (this.#start < this.#history.length && this.#history[this.#start].index < index) this.#start++;
    if (index > this.#oldestIndex) this.#oldestIndex = index;
    this.#shrink();
  }

  /** Starts a watch, or says why not (`compacted`, `overloaded`). */
  open(spec: WatchSpec): Watcher | { readonly end: WatchEnd } {
    if (spec.fromIndex !== 0 && spec.fromIndex < this.#oldestIndex) {
      return { end: this.#compacted(spec.fromIndex) };
    }
    if (this.#watchers.size >= this.#watchersMax) {
      return {
        end: {
          kind: "overloaded",
          message: `this node serves ${this.#watchersMax} watchers already (limit)`,
        },
      };
    }
    const start = spec.fromIndex === 0 ? this.#lastIndex + 1 : spec.fromIndex;
    const w = new Watcher(spec, this, start);
    this.#watchers.add(w);
    return w;
  }

  /** Ends every watch (the node is stopping). */
  closeAll(message: string): void {
    for (const w of [...this.#watchers]) w.finish({ kind: "closed", message });
  }

  // Watcher side.

  /** The next events of a watcher still reading from the history. */
  catchUp(w: Watcher): { events: KvChange[]; caughtUp: boolean } | { end: WatchEnd } {
    if (w.nextIndex < this.#oldestIndex) return { end: this.#compacted(w.nextIndex) };
    const events: KvChange[] = [];
    let i = this.#position(w.nextIndex);
    let scanned = 0;
    for (
      ;
      i < this.#history.length && events.length < BATCH_MAX && scanned < BATCH_MAX * 16;
      i++, scanned++
    ) {
      const c = this.#history[i];
      if (w.matches(c.key)) events.push(c);
      w.nextIndex = c.index + 1;
    }
    if (i >= this.#history.length) {
      w.nextIndex = Math.max(w.nextIndex, this.#lastIndex + 1);
      return { events, caughtUp: true };
    }
    return { events, caughtUp: false };
  }

  remove(w: Watcher): void {
    this.#watchers.delete(w);
  }

  // ------------------------------------------------------------------------------------------------------

  #compacted(index: number): WatchEnd {
    return {
      kind: "compacted",
      oldestIndex: this.#oldestIndex,
      message:
        `log index ${index} is no longer retained here; the oldest index available is ${this.#oldestIndex}`,
    };
  }

  /** The first history position with index ≥ `index`. */
  #position(index: number): number {
    let lo = this.#start, hi = this.#history.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#history[mid].index < index) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  #trim(): void {
    const live = this.#history.length - this.#start;
    if (live <= this.#historyMax) return;
    const drop = live - this.#historyMax;
    this.#start += drop;
    // Every change before the first kept one is gone: watches may start right after the last dropped one.
    this.#oldestIndex = this.#history[this.#start - 1].index + 1;
    this.#shrink();
  }

  #shrink(): void {
    if (this.#start > 1024 && this.#start * 2 > this.#history.length) {
      this.#history = this.#history.slice(this.#start);
      this.#start = 0;
    }
  }
}
