/**
 * An in-memory {@link LogStore} for tests and the simulator, with the same validation as the file store.
 *
 * A {@link MemoryDisk} stands for a node's folder: it outlives a store, so a "restart" is opening a new store
 * on the same disk. {@link MemoryDisk.crash} models `kill -9` (the open store is cut off without closing).
 *
 * @module
 */

import type { Entry, HardState } from "../raft/types.ts";
import { StorageError } from "./errors.ts";
import {
  type LoadedState,
  type LogStore,
  nextHardState,
  type SaveRequest,
  validateSave,
} from "./log_store.ts";

/** The durable state of one simulated node. Everything a resolved `save` wrote is here. */
export class MemoryDisk {
  /** The stored term and vote. */
  hardState: HardState = { term: 0, votedFor: 0 };
  /** The stored log, indexes 1..n. */
  readonly entries: Entry[] = [];
  /** The stored commit hint. */
  commitIndex = 0;
  /** Bumped on every open and crash: a store whose generation is stale is cut off. */
  generation = 0;
  /** True while a store holds the disk. */
  inUse = false;

  /** Models a crash of the process holding the disk: its store stops working, the disk stays as saved. */
  crash(): void {
    this.generation++;
    this.inUse = false;
  }
}

/** An in-memory log store. Saves complete at once; the commit index is written eagerly. */
export class MemoryLogStore implements LogStore {
  readonly #disk: MemoryDisk;
  readonly #generation: number;
  #closed = false;

  private constructor(disk: MemoryDisk) {
    this.#disk = disk;
    this.#generation = disk.generation;
  }

  /** Opens a store on `disk` (a fresh one by default). Fails (`locked`) while another store holds it. */
  static open(disk: MemoryDisk = new MemoryDisk()): MemoryLogStore {
    if (disk.inUse) throw new StorageError("locked", "memory disk is in use by another open store");
    disk.inUse = true;
    disk.generation++;
    return new MemoryLogStore(disk);
  }

  /** The disk this store writes to. */
  get disk(): MemoryDisk {
    return this.#disk;
  }

  /** Index of the last stored entry (0 when the log is empty). */
  get lastIndex(): number {
    return this.#disk.entries.length;
  }

  #check(): void {
    if (this.#closed) throw new StorageError("closed", "memory store is closed");
    if (this.#disk.generation !== this.#generation) {
      throw new StorageError("closed", "memory store was cut off by a simulated crash");
    }
  }

  /** The disk's state (never any warnings). */
  load(): LoadedState {
    this.#check();
    const d = this.#disk;
    return { hardState: d.hardState, entries: d.entries.slice(), commitIndex: d.commitIndex, warnings: [] };
  }

  /** Validates like the file store, then applies at once. */
  save(request: SaveRequest): Promise<void> {
    try {
      this.#check();
      const d = this.#disk;
      const from = validateSave(
        request,
        d.entries.length,
        (i) => (i === 0 ? 0 : d.entries[i - 1].term),
        d.commitIndex,
        d.hardState,
      );
      if (request.hardState !== undefined) {
        d.hardState = nextHardState(d.hardState, request.hardState);
      }
      if (request.appendFrom !== undefined) {
        d.entries.length = from - 1;
        for (const e of request.entries) d.entries.push(e);
      }
      if (request.commitIndex !== undefined) {
        d.commitIndex = Math.max(d.commitIndex, Math.min(request.commitIndex, d.entries.length));
      }
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Nothing to do: the commit index is written eagerly. */
  flush(): Promise<void> {
    try {
      this.#check();
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Releases the disk. Idempotent; a no-op for a store cut off by {@link MemoryDisk.crash}. */
  close(): Promise<void> {
    if (!this.#closed && this.#disk.generation === this.#generation) this.#disk.inUse = false;
    this.#closed = true;
    return Promise.resolve();
  }
}
