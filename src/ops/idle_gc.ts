/**
 * Gives memory back after a burst of writes: once the node's commit index has not moved for `quietMs` after
 * advancing by at least `burstEntriesMin`, asks V8 for one full garbage collection (`gc()`, exposed by
 * `--expose-gc` in src/ops/permissions.ts's `V8_FLAGS`). Left alone, V8 keeps its old generation at the size the burst's
 * garbage grew it to until its memory reducer runs, ~30 s into idleness (measured: docs/operations.md
 * "Memory"), and the pages it frees stay mapped some seconds more. Never runs
 * while writes flow, and no more once the live heap is over `heapLimitBytes` (64 MiB: there the memory-reducing
 * collection takes seconds; the default collector checks the live size with one plain full collection first
 * and skips the memory-reducing one above the limit). Right after it calls
 * `trim` when given: the node passes glibc's `malloc_trim` (src/ops/malloc_trim.ts), which returns the native
 * memory the burst freed (V8's collection frees the buffers, glibc keeps their pages until trimmed), then
 * releases the executable's cold pages (src/ops/file_pages.ts). With `collectAtStart` (the node) the first
 * quiet moment after start counts as the end of a burst. Does nothing when it has neither `gc()` nor `trim`.
 *
 * @module
 */
export interface IdleGcOptions {
  /** How often the commit index is looked at, ms. Default 1000. */
  readonly everyMs?: number;
  /** How long it must stay still, ms. Default 2000. */
  readonly quietMs?: number;
  /** Entries committed since the last collection that make one worth it. Default 10,000. */
  readonly burstEntriesMin?: number;
  /** The collector (default: `globalThis.gc`, present with `--expose-gc`). */
  readonly gc?: () => void;
  /** Called right after each collection (the node: glibc's `malloc_trim(0)`); none by default. */
  readonly trim?: () => void;
  /**
   * Once a collection leaves more than this much V8 heap in use (the live heap: a large state), later idle
   * times skip the collection (the trim still runs), bytes. Default 64 MiB. A memory-reducing collection repeats
   * full collections until nothing more is freed: on a 1,000,000-key state that stopped a node for 3.6 s
   * (docs/benchmarks.md, pause-node), where a client arriving would wait; the garbage of a burst is a small
   * share of such a heap, and V8's own memory reducer collects it incrementally.
   */
  readonly heapLimitBytes?: number;
  /** The V8 heap in use, bytes (default: `Deno.memoryUsage().heapUsed`). */
  readonly heapUsed?: () => number;
  /**
   * Also collect (and trim) at the first quiet moment after start, as after a burst: start-up leaves garbage
   * (module loading, the first elections) and cold pages of the executable (the node's `trim` releases them,
   * src/ops/file_pages.ts). Default false.
   */
  readonly collectAtStart?: boolean;
}

/** {@link IdleGcOptions.heapLimitBytes}'s default. */
export const IDLE_GC_HEAP_LIMIT_BYTES = 64 * 1024 * 1024;

/** Starts watching `commitIndex`; returns the function that stops it. */
export function startIdleGc(commitIndex: () => number, opts: IdleGcOptions = {}): () => void {
  const v8gc = (globalThis as { gc?: (o?: object) => void }).gc;
  const heapLimit = opts.heapLimitBytes ?? IDLE_GC_HEAP_LIMIT_BYTES;
  const heapUsed = opts.heapUsed ?? (() => Deno.memoryUsage().heapUsed);
  // "last-resort": V8's memory-reducing full collection, which also returns the freed pages to the system at
  // once (a plain gc() shrank the heap but left RSS where it was).
  // Before it, one plain full collection: what stays in use is the live heap, and above the limit the
  // memory-reducing one (several full collections) is skipped.
  const gc = opts.gc ?? (v8gc && (() => {
    v8gc({ type: "major", execution: "sync" });
    if (heapUsed() <= heapLimit) v8gc({ type: "major", execution: "sync", flavor: "last-resort" });
  }));
  const trim = opts.trim;
  if (gc === undefined && trim === undefined) return () => {};
  const everyMs = opts.everyMs ?? 1000, quietMs = opts.quietMs ?? 2000;
  const burstMin = opts.burstEntriesMin ?? 10_000;
  let last = commitIndex(), lastGc = opts.collectAtStart ? -Infinity : last, stillMs = 0, largeHeap = false;
  const timer = setInterval(() => {
    const now = commitIndex();
    if (now !== last) {
      last = now;
      stillMs = 0;
      return;
    }
    stillMs += everyMs;
    if (stillMs >= quietMs && now - lastGc >= burstMin) {
      lastGc = now;
      if (gc && !largeHeap) {
        gc();
        largeHeap = heapUsed() > heapLimit;
      }
      trim?.();
    }
  }, everyMs);
  Deno.unrefTimer(timer);
  return () => clearInterval(timer);
}
