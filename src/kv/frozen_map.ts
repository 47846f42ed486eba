/**
 * A `Map` that can hand out a frozen view of itself while it keeps changing, so a snapshot of a large state
 * machine is written in chunks without stopping the node.
 *
 * `freeze()` copies only the keys (one array: ~10 ms for a million keys, the one pause). While the view is
 * open, the first `set` or `delete` of a key that existed at the freeze saves its old value (copy-on-write, per
 * key); the view reads a key's saved value if it has one, else the live one. So the view costs one array plus
 * the old values of the keys written meanwhile, and the writer pays one `has` per write.
 *
 * @module
 */

/** A consistent, read-only view of a {@link FrozenMap} as of its `freeze()`. */
export interface FrozenView<K, V> {
  /** Entries at the freeze. */
  readonly size: number;
  /** The next up to `max` entries, in the map's order at the freeze; empty once all were returned. */
  next(max: number): [K, V][];
  /** Every entry, in order (for small maps, e.g. the session table). */
  all(): [K, V][];
  /** The value `key` had at the freeze, for a key the map held then (a key added since reads its live value). */
  get(key: K): V | undefined;
  /** Ends the view (the map stops saving old values). Idempotent. */
  close(): void;
}

export class FrozenMap<K, V> extends Map<K, V> {
  /** Old values of keys changed since the freeze; undefined when no view is open. */
  #saved: Map<K, V> | undefined;
  #keys: K[] | undefined;
  /** Bumped by every freeze, close and clear: a view of another generation is stale. */
  #generation = 0;

  /** `entries` are added with `set` (Map's own constructor would call `set` before the fields exist). */
  constructor(entries?: Iterable<readonly [K, V]>) {
    super();
    if (entries !== undefined) { for (const [k, v] of entries) this.set(k, v); }
  }

  /** True while a view is open. */
  get frozen(): boolean {
    return this.#saved !== undefined;
  }

  override set(key: K, value: V): this {
    const saved = this.#saved;
    if (saved !== undefined && !saved.has(key) && super.has(key)) saved.set(key, super.get(key)!);
    return super.set(key, value);
  }

  override delete(key: K): boolean {
    const saved = this.#saved;
    if (saved !== undefined && !saved.has(key) && super.has(key)) saved.set(key, super.get(key)!);
    return super.delete(key);
  }

  /** Empties the map; an open view becomes unusable (its reads throw). */
  override clear(): void {
    this.#end();
    super.clear();
  }

  /**
   * Opens the one view (a second one while it is open is a bug: it throws). `listKeys` false: a view for
   * `get` only (no key list is copied, so no pause; `size`, `next` and `all` see no entries).
   */
  freeze(listKeys = true): FrozenView<K, V> {
    if (this.#saved !== undefined) throw new Error("FrozenMap: a view is already open");
    this.#saved = new Map();
    const keys = listKeys ? Array.from(super.keys()) : [];
    this.#keys = keys;
    const generation = ++this.#generation;
    let pos = 0;
    const value = (k: K): V => {
      const saved = this.#saved!;
      return saved.has(k) ? saved.get(k)! : super.get(k)!;
    };
    const check = () => {
      if (this.#generation !== generation) {
        throw new Error("FrozenMap: the view was closed or the map cleared");
      }
    };
    const view: FrozenView<K, V> = {
      size: keys.length,
      next: (max: number): [K, V][] => {
        check();
        const end = Math.min(keys.length, pos + max);
        const out: [K, V][] = [];
        for (; pos < end; pos++) out.push([keys[pos], value(keys[pos])]);
        return out;
      },
      all: (): [K, V][] => {
        check();
        return keys.map((k) => [k, value(k)]);
      },
      get: (k: K): V | undefined => {
        check();
        const saved = this.#saved!;
        return saved.has(k) ? saved.get(k) : super.get(k);
      },
      close: () => {
        if (this.#generation === generation) this.#end();
      },
    };
    return view;
  }

  #end(): void {
    this.#saved = undefined;
    this.#keys = undefined;
    this.#generation++;
  }
}
