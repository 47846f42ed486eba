/**
 * The simulated disk: one node's folder (metadata.txt, metadata.txt.tmp, logs.txt) as bytes, written by the
 * file store's own logic (src/storage/file_log.ts: the file operations of a save, the recovery of a folder),
 * with the faults a real disk has:
 *
 * - a write reaches the page cache at once and becomes durable only when its fsync completes, after a
 *   latency drawn per save, at simulated time (the driver is told "done" by an event);
 * - a crash while a save is under way keeps, per file, its unsynced change or not (the metadata rewrite is
 *   atomic, tmp then rename; the log write may be torn: any prefix of the appended bytes survives), in the
 *   order the store issues them (metadata durable before the log write starts);
 * - an fsync that fails, a write that fails with ENOSPC (the node must stop: fail-stop, never acknowledge);
 * - a bit flipped in a committed record of logs.txt while the node is down: it must refuse to start.
 *
 * @module
 */
import { FileLogState, recoverFolder, type SavePlan } from "../../src/storage/file_log.ts";
import type { LoadedState, SaveRequest } from "../../src/storage/log_store.ts";
import type { DriverStore } from "../../src/driver/mod.ts";
import { StorageError } from "../../src/storage/errors.ts";
import type { Prng } from "./prng.ts";

export interface DiskOptions {
  /** fsync latency range, ms of real (simulated) time. */
  readonly latencyMsMin: number;
  readonly latencyMsMax: number;
  /** Chance that a save's fsync fails (EIO). */
  readonly fsyncFailChance: number;
  /** Chance that a save's log write fails with ENOSPC after writing part of its bytes. */
  readonly enospcChance: number;
  /** Bit flips in committed records, at random times of the fault phase (the node is restarted on them). */
  readonly bitFlips: number;
}

/** What the disk needs from the simulator. */
export interface DiskHost {
  readonly nowMs: number;
  /** False in the healed, fault-free end of a run: no fsync failure, no ENOSPC then. */
  readonly faultsOn: boolean;
  /** Runs `run` at real time `atMs`, unless the node's incarnation changed meanwhile. */
  schedule(atMs: number, run: () => void): void;
}

/** A file's bytes: `len` of `buf` is what reads see; the first `durableLen` survive a crash. */
class SimFile {
  buf = new Uint8Array(256);
  len = 0;
  durableLen = 0;
  /** Durable bytes overwritten by an unsynced truncate-then-append, restored if the crash drops it. */
  savedTail: { at: number; bytes: Uint8Array } | undefined;
  /** The truncation point of the unsynced change (Infinity: none). */
  unsyncedFrom = Infinity;

  bytes(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }

  truncate(size: number): void {
    if (size >= this.len) return;
    if (size < this.durableLen && this.savedTail === undefined) {
      this.savedTail = { at: size, bytes: this.buf.slice(size, this.durableLen) };
    }
    this.unsyncedFrom = Math.min(this.unsyncedFrom, size);
    this.len = size;
  }

  append(bytes: Uint8Array): void {
    if (this.len + bytes.length > this.buf.length) {
      const grown = new Uint8Array(Math.max(this.buf.length * 2, this.len + bytes.length));
      grown.set(this.buf.subarray(0, this.len));
      this.buf = grown;
    }
    this.unsyncedFrom = Math.min(this.unsyncedFrom, this.len);
    this.buf.set(bytes, this.len);
    this.len += bytes.length;
  }

  sync(): void {
    this.durableLen = this.len;
    this.savedTail = undefined;
    this.unsyncedFrom = Infinity;
  }

  /** A crash: the unsynced change is kept whole, dropped, or torn (a prefix of it survives). */
  crash(rng: Prng): "kept" | "lost" | "torn" {
    if (this.unsyncedFrom === Infinity) return "kept";
    const r = rng.int(0, 2);
    if (r === 0) {
      this.sync();
      return "kept";
    }
    if (r === 1) return this.drop();
    this.len = this.unsyncedFrom + rng.int(0, Math.max(0, this.len - this.unsyncedFrom));
    this.sync();
    return "torn";
  }

  /** A crash that drops the unsynced change whole (its write had not started). */
  drop(): "lost" {
    this.len = this.durableLen;
    if (this.savedTail) this.buf.set(this.savedTail.bytes, this.savedTail.at);
    this.sync();
    return "lost";
  }

  /** Cuts the durable file (recovery's repair of a torn tail). */
  cut(size: number): void {
    this.len = Math.min(this.len, size);
    this.sync();
  }
}

/** One node's folder. It outlives the node's incarnations. */
export class SimDisk {
  /** metadata.txt (null: missing). Rewritten atomically: the rename is the commit point. */
  metadata: Uint8Array | null = null;
  /** A leftover metadata.txt.tmp (recovery ignores it). */
  metadataTmp: Uint8Array | null = null;
  readonly logs = new SimFile();
  /** The store of the current incarnation, if open. */
  store: SimDiskStore | undefined;
  /** Set when a committed record was damaged: the node must refuse every start from now on. */
  corruptedAt: string | undefined;
  /** Set once the node refused to start on this disk. */
  refused: string | undefined;
  /** The next save's fsync latency instead of a drawn one (the crash-mid-write fault). */
  forceLatencyMs: number | undefined;

  constructor(
    readonly nodeId: number,
    readonly options: DiskOptions,
    readonly rng: Prng,
    readonly trace: (line: string) => void,
  ) {}

  /**
   * Opens the folder as the file store does: recovers (a torn tail is cut off and reported; damage to a
   * committed record or a metadata inconsistency throws a `corrupt` StorageError), writes metadata.txt when
   * missing.
   */
  open(host: DiskHost, incarnation: () => number): { store: SimDiskStore; loaded: LoadedState } {
    this.metadataTmp = null; // an unfinished rewrite: the old metadata.txt stands
    const id = {
      folder: `n${this.nodeId}`,
      metadataPath: `n${this.nodeId}/metadata.txt`,
      logsPath: `n${this.nodeId}/logs.txt`,
      nodeId: this.nodeId,
      clusterId: "sim",
    };
    const recovered = recoverFolder(this.metadata, this.logs.len > 0 ? this.logs.bytes() : null, id);
    if (recovered.log.keepBytes !== undefined) this.logs.cut(recovered.log.keepBytes);
    const state = new FileLogState(this.nodeId, "sim", recovered);
    if (recovered.metadata === null) this.metadata = state.metadataBytes(0);
    const store = new SimDiskStore(this, state, host, incarnation);
    this.store = store;
    return {
      store,
      loaded: {
        hardState: state.hardState,
        entries: state.entries.slice(),
        commitIndex: Math.min(state.commit, state.lastIndex),
        warnings: recovered.warnings,
      },
    };
  }

  /** The process died: what a save under way had not made durable is kept, lost or torn. */
  crash(): string {
    const store = this.store;
    this.store = undefined;
    if (store === undefined) return "";
    store.closed = true;
    const inflight = store.inflight;
    if (inflight === undefined) return "";
    let metaOutcome = "none";
    if (inflight.plan.metadata !== undefined && !inflight.metadataDurable) {
      if (this.rng.chance(0.5)) {
        this.metadata = inflight.plan.metadata.bytes;
        metaOutcome = "renamed";
      } else {
        const b = inflight.plan.metadata.bytes;
        this.metadataTmp = b.slice(0, this.rng.int(0, b.length));
        metaOutcome = "lost (tmp left)";
      }
    }
    // The log write starts only once the metadata rewrite is durable.
    const logOutcome = metaOutcome === "lost (tmp left)" ? this.logs.drop() : this.logs.crash(this.rng);
    return `unsynced metadata ${metaOutcome}, log ${logOutcome}`;
  }

  /** How many records metadata.txt says are committed (0 without metadata). */
  committedRecords(): number {
    if (this.metadata === null) return 0;
    const m = /commitLength: (\d+)/.exec(new TextDecoder().decode(this.metadata));
    return m ? Number(m[1]) : 0;
  }

  /** Flips one bit inside a committed record of the durable logs.txt; false when there is none. */
  flipCommittedBit(): boolean {
    const committed = this.committedRecords();
    if (committed === 0) return false;
    const bytes = this.logs.buf;
    // The byte range of the first `committed` lines.
    let end = 0;
    for (let i = 0; i < committed; i++) {
      const nl = bytes.subarray(0, this.logs.len).indexOf(0x0a, end);
      if (nl < 0) return false;
      end = nl + 1;
    }
    const at = this.rng.int(0, end - 2); // never the last newline itself
    bytes[at] ^= 1 << this.rng.int(0, 7);
    this.corruptedAt = `byte ${at} of logs.txt (committed length ${committed})`;
    return true;
  }
}

interface Inflight {
  readonly request: SaveRequest;
  readonly plan: SavePlan;
  metadataDurable: boolean;
}

/** The driver's store on a simulated disk. */
export class SimDiskStore implements DriverStore {
  inflight: Inflight | undefined;
  closed = false;
  #lastMetadataWriteMs = -Infinity;

  constructor(
    readonly disk: SimDisk,
    readonly state: FileLogState,
    readonly host: DiskHost,
    readonly incarnation: () => number,
  ) {}

  save(request: SaveRequest, done: (error?: Error) => void): void {
    const disk = this.disk, rng = disk.rng, o = disk.options;
    const inc = this.incarnation();
    let plan: SavePlan;
    try {
      plan = this.state.plan(request);
    } catch (e) {
      done(e instanceof Error ? e : new Error(String(e)));
      return;
    }
    const latency = disk.forceLatencyMs ?? rng.range(o.latencyMsMin, o.latencyMsMax);
    disk.forceLatencyMs = undefined;
    const inflight: Inflight = { request, plan, metadataDurable: false };
    this.inflight = inflight;
    // The writes reach the page cache now; the log's only once the metadata rewrite is durable (as the file
    // store orders them), which the crash model accounts for.
    if (plan.truncateTo !== undefined) disk.logs.truncate(plan.truncateTo);
    let failure: Error | undefined;
    if (plan.append) {
      if (this.host.faultsOn && rng.chance(o.enospcChance)) {
        disk.logs.append(plan.append.subarray(0, rng.int(0, plan.append.length)));
        failure = new StorageError(
          "io",
          `write n${disk.nodeId}/logs.txt: No space left on device (os error 28)`,
        );
      } else {
        disk.logs.append(plan.append);
      }
    }
    if (failure === undefined && this.host.faultsOn && rng.chance(o.fsyncFailChance)) {
      failure = new StorageError("io", `fsync n${disk.nodeId}/logs.txt: Input/output error (os error 5)`);
    }
    this.host.schedule(this.host.nowMs + latency, () => {
      if (this.closed || this.incarnation() !== inc) return;
      if (failure !== undefined) {
        // The metadata rewrite (first) may have completed; the log's unsynced bytes stay in doubt until the
        // crash that follows the node's stop decides them.
        if (plan.metadata !== undefined) {
          disk.metadata = plan.metadata.bytes;
          inflight.metadataDurable = true;
        }
        disk.trace(`n${disk.nodeId} disk: ${failure.message}`);
        done(failure);
        return;
      }
      if (plan.metadata !== undefined) {
        disk.metadata = plan.metadata.bytes;
        this.#lastMetadataWriteMs = this.host.nowMs;
      }
      if (plan.syncLog) disk.logs.sync();
      this.inflight = undefined;
      this.state.applied(request, plan);
      this.#maybeWriteCommitHint();
      done();
    });
  }

  noteCommit(commitIndex: number): void {
    this.state.commit = Math.max(this.state.commit, Math.min(commitIndex, this.state.lastIndex));
    if (this.inflight === undefined) this.#maybeWriteCommitHint();
  }

  /** The lazy commit hint, at most once a second (an atomic rewrite: durable at once here). */
  #maybeWriteCommitHint(): void {
    if (!this.state.commitHintBehind || this.host.nowMs - this.#lastMetadataWriteMs < 1000) return;
    const commitLength = Math.min(this.state.commit, this.state.lastIndex);
    this.disk.metadata = this.state.metadataBytes(commitLength);
    this.state.commitWritten = commitLength;
    this.#lastMetadataWriteMs = this.host.nowMs;
  }
}
