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
import { encodeBaseText, encodeLines } from "../../src/storage/codec.ts";
import { parseSnapshot, type SnapshotSink } from "../../src/storage/snapshot_file.ts";
import type { LogPosition } from "../../src/raft/types.ts";
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
  logs = new SimFile();
  /** The store of the current incarnation, if open. */
  store: SimDiskStore | undefined;
  /** Set when a committed record was damaged: the node must refuse every start from now on. */
  corruptedAt: string | undefined;
  /** Set once the node refused to start on this disk. */
  refused: string | undefined;
  /** The next save's fsync latency instead of a drawn one (the crash-mid-write fault). */
  forceLatencyMs: number | undefined;
  /** snapshot.txt (null: none) and the position its header names. */
  snapshot: { bytes: Uint8Array; at: LogPosition } | null = null;
  /** snapshot.txt.tmp-<index>: this node's own snapshots, written and synced, waiting for the renaming save. */
  readonly snapshotTmp = new Map<number, { bytes: Uint8Array; at: LogPosition }>();
  /** snapshot.txt.recv: the chunks received so far. */
  received: Uint8Array = new Uint8Array(0);

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
  open(
    host: DiskHost,
    incarnation: () => number,
    sink: SnapshotSink = { header() {}, session() {}, pair() {} },
  ): { store: SimDiskStore; loaded: LoadedState } {
    this.metadataTmp = null; // an unfinished rewrite: the old metadata.txt stands
    this.snapshotTmp.clear(); // leftovers of a snapshot being written or received
    this.received = new Uint8Array(0);
    const snap = this.snapshot === null
      ? null
      : parseSnapshot(this.snapshot.bytes, `n${this.nodeId}/snapshot.txt`, sink);
    const id = {
      folder: `n${this.nodeId}`,
      metadataPath: `n${this.nodeId}/metadata.txt`,
      logsPath: `n${this.nodeId}/logs.txt`,
      nodeId: this.nodeId,
      clusterId: "sim",
    };
    const recovered = recoverFolder(
      this.metadata,
      this.logs.len > 0 ? this.logs.bytes() : null,
      id,
      snap === null ? null : { index: snap.index, term: snap.term },
    );
    if (recovered.log.keepBytes !== undefined) this.logs.cut(recovered.log.keepBytes);
    if (recovered.resetLog !== undefined) {
      this.logs = fileOf(encodeLines([encodeBaseText(recovered.resetLog.index, recovered.resetLog.term)]));
    }
    const state = new FileLogState(this.nodeId, "sim", recovered);
    if (recovered.metadata === null) this.metadata = state.metadataBytes(0);
    const store = new SimDiskStore(this, state, host, incarnation);
    this.store = store;
    return {
      store,
      loaded: {
        hardState: state.hardState,
        entries: recovered.log.entries.slice(),
        commitIndex: Math.min(state.commit, state.lastIndex),
        ...(state.start.index > 0 ? { logStart: state.start } : {}),
        ...(snap !== null
          ? {
            snapshot: {
              index: snap.index,
              term: snap.term,
              sizeBytes: this.snapshot!.bytes.length,
              ...(snap.config === undefined ? {} : { config: snap.config }),
            },
          }
          : {}),
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
    // The renames of a save (snapshot first, then logs.txt) are done in order before its log write: a crash
    // may come before either, between them, or after both.
    let renames = "";
    if (inflight.before !== undefined) {
      const r = this.rng.int(0, 2);
      if (r === 0) {
        this.snapshot = inflight.before.snapshot;
        this.logs = inflight.before.logs;
        renames = ", snapshot/log renames lost";
      } else if (r === 1) {
        this.logs = inflight.before.logs;
        renames = ", log rename lost";
      }
      if (r !== 2) return `unsynced metadata none${renames}`;
    }
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
    return `unsynced metadata ${metaOutcome}, log ${logOutcome}${renames}`;
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
    const view = bytes.subarray(0, this.logs.len);
    // A compacted log starts with `BASE <index> <term>`: its committed lines are those after it, up to the
    // commit index; what is before is in snapshot.txt (committed state as well).
    let start = 0, base = 0;
    const head = new TextDecoder().decode(view.subarray(0, Math.min(64, view.length)));
    const b = /^BASE (\d+) /.exec(head);
    if (b) {
      base = Number(b[1]);
      start = view.indexOf(0x0a) + 1;
    }
    let end = start;
    let lines = 0;
    for (; lines < committed - base; lines++) {
      const nl = view.indexOf(0x0a, end);
      if (nl < 0) break;
      end = nl + 1;
    }
    if (lines > 0 && lines === committed - base) {
      const at = this.rng.int(start, end - 2); // never the last newline itself
      bytes[at] ^= 1 << this.rng.int(0, 7);
      this.corruptedAt = `byte ${at} of logs.txt (committed length ${committed})`;
      return true;
    }
    if (this.snapshot !== null && this.snapshot.bytes.length > 2) {
      const snap = this.snapshot.bytes.slice();
      const at = this.rng.int(0, snap.length - 2);
      snap[at] ^= 1 << this.rng.int(0, 7);
      this.snapshot = { bytes: snap, at: this.snapshot.at };
      this.corruptedAt = `byte ${at} of snapshot.txt`;
      return true;
    }
    return false;
  }
}

interface Inflight {
  readonly request: SaveRequest;
  readonly plan: SavePlan;
  metadataDurable: boolean;
  /** The snapshot and log files before this save renamed new ones into place (undefined: it renames none). */
  readonly before?: { snapshot: SimDisk["snapshot"]; logs: SimFile };
}

/** A durable file holding `bytes`. */
function fileOf(bytes: Uint8Array): SimFile {
  const f = new SimFile();
  f.append(bytes);
  f.sync();
  return f;
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
    // Snapshot files and the log rewrite first, as the file store orders them.
    const before = plan.installSnapshot || plan.ownSnapshot || plan.rewriteLog
      ? { snapshot: disk.snapshot, logs: disk.logs }
      : undefined;
    try {
      this.#snapshotSteps(plan);
    } catch (e) {
      done(e instanceof Error ? e : new Error(String(e)));
      return;
    }
    const inflight: Inflight = { request, plan, metadataDurable: false, before };
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
      if (plan.installSnapshot) this.onInstalled?.(disk.snapshot!.bytes);
      done();
    });
  }

  /** Called when a received snapshot is in place, before the driver is told the save is done. */
  onInstalled: ((bytes: Uint8Array) => void) | undefined;

  /** The snapshot chunk, the install or own snapshot's rename, and the log rewrite of a plan. */
  #snapshotSteps(plan: SavePlan): void {
    const disk = this.disk;
    const path = `n${disk.nodeId}/snapshot.txt`;
    if (plan.snapshotChunk) {
      const c = plan.snapshotChunk;
      if (c.offset !== (c.offset === 0 ? 0 : disk.received.length)) {
        throw new StorageError(
          "invalid",
          `${path}.recv holds ${disk.received.length} bytes, a chunk came for ${c.offset}`,
        );
      }
      const next = new Uint8Array(c.offset + c.data.length);
      if (c.offset > 0) next.set(disk.received);
      next.set(c.data, c.offset);
      disk.received = next;
    }
    if (plan.installSnapshot) {
      const h = parseSnapshot(disk.received, `${path}.recv`, { header() {}, session() {}, pair() {} });
      const at = plan.installSnapshot;
      if (h.index !== at.index || h.term !== at.term) {
        throw new StorageError(
          "corrupt",
          `${path}.recv is at ${h.index}/t${h.term}, expected ${at.index}/t${at.term}`,
        );
      }
      disk.snapshot = { bytes: disk.received, at };
      disk.received = new Uint8Array(0);
    }
    if (plan.ownSnapshot) {
      const tmp = disk.snapshotTmp.get(plan.ownSnapshot.index);
      if (tmp === undefined) {
        throw new StorageError(
          "invalid",
          `${path}.tmp does not hold the snapshot at ${plan.ownSnapshot.index}`,
        );
      }
      disk.snapshot = tmp;
      disk.snapshotTmp.delete(plan.ownSnapshot.index);
    }
    if (plan.rewriteLog) {
      const { header, keepFrom } = plan.rewriteLog;
      const tail = keepFrom === null ? new Uint8Array(0) : disk.logs.bytes().subarray(keepFrom);
      const bytes = new Uint8Array(header.length + tail.length);
      bytes.set(header);
      bytes.set(tail, header.length);
      disk.logs = fileOf(bytes);
    }
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
