/**
 * The simulator's event queue: a binary min-heap ordered by (time, insertion number), so events at the same
 * instant run in the order they were scheduled and a seed replays exactly.
 *
 * @module
 */

export interface Timed {
  readonly atMs: number;
}

interface Slot<T> {
  readonly atMs: number;
  readonly order: number;
  readonly item: T;
}

export class EventQueue<T> {
  readonly #heap: Slot<T>[] = [];
  #nextOrder = 0;

  get size(): number {
    return this.#heap.length;
  }

  push(atMs: number, item: T): void {
    if (!Number.isFinite(atMs)) throw new Error(`EventQueue.push: time ${atMs} is not finite`);
    const heap = this.#heap;
    heap.push({ atMs, order: this.#nextOrder++, item });
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!less(heap[i], heap[parent])) break;
      [heap[i], heap[parent]] = [heap[parent], heap[i]];
      i = parent;
    }
  }

  /** Time of the earliest event, or Infinity when empty. */
  peekMs(): number {
    return this.#heap.length === 0 ? Infinity : this.#heap[0].atMs;
  }

  pop(): { atMs: number; item: T } | undefined {
    const heap = this.#heap;
    if (heap.length === 0) return undefined;
    const top = heap[0];
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < heap.length && less(heap[l], heap[m])) m = l;
        if (r < heap.length && less(heap[r], heap[m])) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m], heap[i]];
        i = m;
      }
    }
    return { atMs: top.atMs, item: top.item };
  }
}

function less<T>(a: Slot<T>, b: Slot<T>): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.order < b.order);
}
