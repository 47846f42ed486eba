/**
 * The durable, human-readable {@link LogStore}: `DIR/logs_node_<id>/logs.txt` (one line per entry, append-only
 * in normal operation) and `metadata.txt` (term, vote, commit hint, identity; rewritten atomically).
 *
 * @module
 */

import { StorageError } from "./errors.ts";
import { FileLogState, type ParsedLog, parseLog, recoverFolder, type SavePlan } from "./file_log.ts";
import type { LoadedState, LogStore, SaveRequest } from "./log_store.ts";
import { joinPath, LOCK_FILE, LOGS_FILE, METADATA_FILE, nodeFolder, parentDir } from "./paths.ts";
import { encodeBaseText, encodeLines } from "./codec.ts";
import {
  ownSnapshotTmpPath,
  readSnapshotFile,
  type SnapshotHeader,
  snapshotPath,
  snapshotRecoveryAdvice,
  type SnapshotSink,
} from "./snapshot_file.ts";
import type { Entry, SnapshotInfo } from "../raft/types.ts";

/** Tuning of a {@link FileLogStore}. */
export interface FileLogStoreOptions {
  /**
   * Minimum spacing, in milliseconds, of metadata rewrites caused only by the commit index advancing (it is a
   * restart hint; a changed term or vote is always written at once). Default 1000: each rewrite is a temp file,
   * two fsyncs and a rename on every node, and a hint a second old costs a restarted node nothing but
   * learning the rest of the commit index from the leader's first AppendEntries.
   */
  readonly commitHintIntervalMs?: number;
  /**
   * Receives the content of snapshot.txt while the folder is opened (the node restores its state machine
   * from it); without one the snapshot is only checked. A damaged snapshot fails the open either way.
   */
  readonly snapshotSink?: SnapshotSink;
  /** Called with the duration of every fsync of logs.txt or metadata.txt in normal operation (for metrics). */
  readonly onSyncSeconds?: (seconds: number) => void;
}

export { ownSnapshotTmpPath } from "./snapshot_file.ts";

/** `snapshot.txt.recv`: a snapshot being received from the leader; renamed by a save (`installSnapshot`). */
function receivedSnapshotPath(folder: string): string {
  return `${snapshotPath(folder)}.recv`;
}

const NO_SINK: SnapshotSink = { header() {}, session() {}, pair() {} };

const encoder = new TextEncoder();

function isNotFound(e: unknown): boolean {
  return e instanceof Deno.errors.NotFound;
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await file.write(bytes.subarray(off));
}

function writeAllSync(file: Deno.FsFile, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) off += file.writeSync(bytes.subarray(off));
}

async function readIfExists(path: string): Promise<Uint8Array | null> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    if (isNotFound(e)) return null;
    throw e;
  }
}

async function syncDir(path: string): Promise<void> {
  const d = await Deno.open(path, { read: true });
  try {
    await d.sync();
  } finally {
    d.close();
  }
}

export { parseLog } from "./file_log.ts";

/**
 * A node's durable state in `DIR/logs_node_<id>/`. Open it with {@link FileLogStore.open}; use it from one async
 * loop (calls are serialized internally anyway).
 *
 * Writes: one `save` = (if the term or vote changed) an atomic metadata rewrite, then (if the log changed) an
 * ftruncate to the first replaced line, one write of all new lines and one fdatasync. The commit index is
 * written lazily (at most every `commitHintIntervalMs`, the last value of a burst once that interval has
 * passed; also with the next hard-state change, on `flush` and on `close`), never beyond the durable log.
 */
export class FileLogStore implements LogStore {
  /** `DIR/logs_node_<id>`. */
  readonly folder: string;
  /** `<folder>/logs.txt`. */
  readonly logsPath: string;
  /** `<folder>/metadata.txt`. */
  readonly metadataPath: string;
  /** The node this folder belongs to. */
  readonly nodeId: number;
  /** The cluster this folder belongs to. */
  readonly clusterId: string;

  readonly #commitHintIntervalMs: number;
  readonly #onSyncSeconds: ((seconds: number) => void) | undefined;
  readonly #lockFile: Deno.FsFile;
  #logFile: Deno.FsFile;
  /** The entries found at open, handed out by the first `load` (later ones re-read logs.txt). */
  #initialEntries: Entry[] | undefined;
  /** The snapshot in the folder, undefined when none. */
  #snapshot: SnapshotInfo | undefined;
  /** An open handle on the current snapshot, for sending it in chunks. */
  #snapshotReader: { index: number; file: Deno.FsFile } | undefined;
  readonly #dirHandle: Deno.FsFile;
  /** Entries, offsets, hard state and commit hint, and the save planning (file_log.ts, shared with the simulator). */
  readonly #state: FileLogState;
  readonly #warnings: readonly string[];
  #lastMetadataWriteAt = -Infinity;
  #tail: Promise<void> = Promise.resolve();
  #closed = false;
  #failure: unknown = undefined;
  #commitWriteQueued = false;
  /** A commit-hint write waiting for its interval to pass (so the last commit of a burst is written too). */
  #commitHintTimer: ReturnType<typeof setTimeout> | undefined;

  private constructor(
    init: {
      folder: string;
      nodeId: number;
      clusterId: string;
      options: FileLogStoreOptions;
      lockFile: Deno.FsFile;
      logFile: Deno.FsFile;
      dirHandle: Deno.FsFile;
      state: FileLogState;
      warnings: string[];
      entries: Entry[];
      snapshot: SnapshotInfo | undefined;
    },
  ) {
    this.#initialEntries = init.entries;
    this.#snapshot = init.snapshot;
    this.folder = init.folder;
    this.logsPath = joinPath(init.folder, LOGS_FILE);
    this.metadataPath = joinPath(init.folder, METADATA_FILE);
    this.nodeId = init.nodeId;
    this.clusterId = init.clusterId;
    this.#commitHintIntervalMs = init.options.commitHintIntervalMs ?? 1000;
    this.#onSyncSeconds = init.options.onSyncSeconds;
    this.#lockFile = init.lockFile;
    this.#logFile = init.logFile;
    this.#dirHandle = init.dirHandle;
    this.#state = init.state;
    this.#warnings = init.warnings;
  }

  /**
   * Opens (creating if missing) `dir/logs_node_<nodeId>/`, takes its lock, and reads and checks its files.
   *
   * @throws StorageError `locked` when another process (or open store) holds the folder; `foreign` when its
   *   metadata names another node or cluster; `corrupt` (naming file and line) for a damaged file; `io`.
   */
  static async open(
    dir: string,
    nodeId: number,
    clusterId: string,
    options: FileLogStoreOptions = {},
  ): Promise<FileLogStore> {
    if (!Number.isSafeInteger(nodeId) || nodeId < 1) {
      throw new StorageError("invalid", `node id must be a positive integer, got ${nodeId}`);
    }
    const folder = nodeFolder(dir, nodeId);
    const io = (what: string, path: string, e: unknown): StorageError =>
      e instanceof StorageError ? e : new StorageError("io", `cannot ${what} ${path}: ${describe(e)}`, {
        path,
        cause: e,
      });

    // 1. The folder, made durable when it is new.
    try {
      await Deno.stat(folder);
    } catch (e) {
      if (!isNotFound(e)) throw io("inspect", folder, e);
      try {
        const parent = parentDir(folder);
        let parentExisted = true;
        try {
          await Deno.stat(parent);
        } catch {
          parentExisted = false;
        }
        await Deno.mkdir(folder, { recursive: true });
        await syncDir(parent);
        if (!parentExisted) await syncDir(parentDir(parent));
      } catch (e2) {
        throw io("create", folder, e2);
      }
    }

    // 2. The lock, before reading anything.
    const lockPath = joinPath(folder, LOCK_FILE);
    let lockFile: Deno.FsFile;
    try {
      lockFile = await Deno.open(lockPath, { read: true, write: true, create: true });
    } catch (e) {
      throw io("open", lockPath, e);
    }
    let locked: boolean;
    try {
      locked = await lockFile.tryLock(true);
    } catch (e) {
      lockFile.close();
      throw io("lock", lockPath, e);
    }
    if (!locked) {
      let holder = "";
      try {
        const t = (await Deno.readTextFile(lockPath)).trim();
        if (/^pid \d+$/.test(t)) holder = ` by process ${t.slice(4)}`;
      } catch { /* best effort */ }
      lockFile.close();
      throw new StorageError(
        "locked",
        `${folder} is in use${holder}: another raftkv node holds its lock file ${lockPath}`,
        { path: lockPath },
      );
    }

    const opened: Deno.FsFile[] = [];
    try {
      try {
        await lockFile.truncate(0);
        await writeAll(lockFile, encoder.encode(`pid ${Deno.pid}\n`));
      } catch { /* the pid is only a diagnostic */ }

      // 3. Metadata (a leftover temp file is an unfinished rewrite: the old metadata.txt stands).
      const metadataPath = joinPath(folder, METADATA_FILE);
      const tmpPath = `${metadataPath}.tmp`;
      try {
        await Deno.remove(tmpPath);
      } catch (e) {
        if (!isNotFound(e)) throw io("remove", tmpPath, e);
      }
      let metaBytes: Uint8Array | null;
      try {
        metaBytes = await readIfExists(metadataPath);
      } catch (e) {
        throw io("read", metadataPath, e);
      }
      // 4. The log.
      const logsPath = joinPath(folder, LOGS_FILE);
      let logBytes: Uint8Array | null;
      try {
        logBytes = await readIfExists(logsPath);
      } catch (e) {
        throw io("read", logsPath, e);
      }
      // The snapshot (read whole and checked; its content goes to the caller's sink), and the leftovers of a
      // snapshot being written or received when the node stopped (unfinished: the old snapshot stands).
      const leftovers = [receivedSnapshotPath(folder), `${logsPath}.tmp`];
      try {
        for (const e of Deno.readDirSync(folder)) {
          if (e.name.startsWith("snapshot.txt.tmp")) leftovers.push(joinPath(folder, e.name));
        }
      } catch (e) {
        throw io("list", folder, e);
      }
      for (const leftover of leftovers) {
        try {
          await Deno.remove(leftover);
        } catch (e) {
          if (!isNotFound(e)) throw io("remove", leftover, e);
        }
      }
      const snapPath = snapshotPath(folder);
      let header: SnapshotHeader | null;
      let snapshot: SnapshotInfo | undefined;
      try {
        header = await readSnapshotFile(snapPath, options.snapshotSink ?? NO_SINK);
        if (header !== null) {
          snapshot = {
            index: header.index,
            term: header.term,
            sizeBytes: (await Deno.stat(snapPath)).size,
            ...(header.config === undefined ? {} : { config: header.config }),
          };
        }
      } catch (e) {
        throw io("read", snapPath, e);
      }
      const recovered = recoverFolder(metaBytes, logBytes, {
        folder,
        metadataPath,
        logsPath,
        nodeId,
        clusterId,
      }, header === null ? null : { index: header.index, term: header.term });
      if (recovered.resetLog !== undefined) {
        try {
          const r = recovered.resetLog;
          await rewriteFileAtomically(logsPath, encodeLines([encodeBaseText(r.index, r.term)]), folder);
        } catch (e) {
          throw io("reset", logsPath, e);
        }
      }
      const metadata = recovered.metadata;
      const parsed: ParsedLog = recovered.log;
      const warnings: string[] = [];
      let logFile: Deno.FsFile;
      try {
        logFile = await Deno.open(logsPath, { read: true, append: true, create: true });
      } catch (e) {
        throw io("open", logsPath, e);
      }
      opened.push(logFile);
      let dirHandle: Deno.FsFile;
      try {
        dirHandle = await Deno.open(folder, { read: true });
      } catch (e) {
        throw io("open", folder, e);
      }
      opened.push(dirHandle);
      try {
        if (parsed.keepBytes !== undefined) {
          await logFile.truncate(parsed.keepBytes);
          await logFile.syncData();
        }
        if (logBytes === null) await dirHandle.sync(); // logs.txt was just created
      } catch (e) {
        throw io("repair", logsPath, e);
      }
      warnings.push(...recovered.warnings);

      const store = new FileLogStore({
        folder,
        nodeId,
        clusterId,
        options,
        lockFile,
        logFile,
        dirHandle,
        state: new FileLogState(nodeId, clusterId, recovered),
        warnings,
        entries: parsed.entries,
        snapshot,
      });
      if (metadata === null) {
        try {
          await store.#writeMetadata();
        } catch (e) {
          throw io("write", metadataPath, e);
        }
      }
      return store;
    } catch (e) {
      for (const f of opened) f.close();
      try {
        await lockFile.unlock();
      } catch { /* closing releases it anyway */ }
      lockFile.close();
      throw e;
    }
  }

  /** Index of the last stored entry (0 when the log is empty). */
  get lastIndex(): number {
    return this.#state.lastIndex;
  }

  /** The current state: what was found at open (after repairs), with everything saved since. */
  load(): LoadedState {
    if (this.#closed) throw this.#closedError();
    this.#usable();
    let entries = this.#initialEntries;
    this.#initialEntries = undefined;
    if (entries === undefined) {
      // The store keeps no entries (the core holds the one copy): read them back from logs.txt.
      entries = parseLog(Deno.readFileSync(this.logsPath), this.logsPath, 0).entries;
    }
    const start = this.#state.start;
    return {
      hardState: this.#state.hardState,
      entries,
      commitIndex: Math.min(this.#state.commit, this.#state.lastIndex),
      ...(start.index > 0 ? { logStart: start } : {}),
      ...(this.#snapshot !== undefined ? { snapshot: this.#snapshot } : {}),
      warnings: this.#warnings,
    };
  }

  /** The snapshot in the folder, undefined when none. */
  get snapshot(): SnapshotInfo | undefined {
    return this.#snapshot;
  }

  /** Entries in logs.txt. */
  get logEntries(): number {
    return this.#state.length;
  }

  /**
   * Bytes [offset, offset + length) of the snapshot at `index`, for an InstallSnapshot chunk; undefined when
   * the folder no longer holds that snapshot (the message is then dropped; the core sends the newer one).
   */
  readSnapshotChunk(index: number, offset: number, length: number): Uint8Array | undefined {
    if (this.#closed || this.#snapshot?.index !== index) return undefined;
    let r = this.#snapshotReader;
    if (r === undefined || r.index !== index) {
      r?.file.close();
      r = this.#snapshotReader = { index, file: Deno.openSync(snapshotPath(this.folder), { read: true }) };
    }
    const out = new Uint8Array(length);
    r.file.seekSync(offset, Deno.SeekMode.Start);
    let got = 0;
    while (got < length) {
      const n = r.file.readSync(out.subarray(got));
      if (n === null) break;
      got += n;
    }
    return got === length ? out : undefined;
  }

  /**
   * Makes `request` durable (see the class comment); resolves once it is on disk. `snapshotChecked`: the
   * caller has parsed and checked every byte of the received snapshot this request installs (as they came,
   * with the same {@link SnapshotParser}: checksums, counts, END, its index and term), so the install does
   * not read the whole file again before renaming it.
   */
  save(request: SaveRequest, opts: { snapshotChecked?: boolean } = {}): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closedError());
    return this.#enqueue(() => this.#save(request, opts.snapshotChecked === true));
  }

  /** Writes the latest commit index to metadata.txt now. */
  flush(): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closedError());
    return this.#enqueue(async () => {
      this.#usable();
      if (this.#state.commitHintBehind) {
        await this.#guard(() => this.#writeMetadata());
      }
    });
  }

  /** Waits for queued saves, flushes the commit hint, closes the files and releases the lock. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#commitHintTimer !== undefined) clearTimeout(this.#commitHintTimer);
    // Wait for queued work, then flush the commit hint (unless an I/O failure left the files in doubt).
    await this.#tail;
    let error: unknown = undefined;
    if (this.#failure === undefined && this.#state.commitHintBehind) {
      try {
        await this.#writeMetadata();
      } catch (e) {
        error = new StorageError("io", `cannot write ${this.metadataPath}: ${describe(e)}`, { cause: e });
      }
    }
    this.#logFile.close();
    this.#snapshotReader?.file.close();
    this.#snapshotReader = undefined;
    this.#dirHandle.close();
    try {
      await this.#lockFile.unlock();
    } catch { /* closing releases it anyway */ }
    this.#lockFile.close();
    if (error !== undefined) throw error;
  }

  // -------------------------------------------------------------------------------------------------------

  #enqueue(fn: () => Promise<void>): Promise<void> {
    const p = this.#tail.then(fn);
    this.#tail = p.then(() => {}, () => {});
    return p;
  }

  #closedError(): StorageError {
    return new StorageError("closed", `store ${this.folder} is closed`);
  }

  /** Throws if an earlier I/O failure poisoned the store (calls queued before `close` still run). */
  #usable(): void {
    if (this.#failure !== undefined) {
      throw new StorageError(
        "failed",
        `store ${this.folder} refuses writes after an earlier I/O failure: ${describe(this.#failure)}`,
        { cause: this.#failure },
      );
    }
  }

  /** Runs an I/O step; a failure poisons the store (after a failed fsync the file contents are unknown). */
  async #guard(step: () => Promise<void>): Promise<void> {
    try {
      await step();
    } catch (e) {
      this.#failure = e;
      throw new StorageError("io", `I/O failure in ${this.folder}: ${describe(e)}`, { cause: e });
    }
  }

  async #save(request: SaveRequest, snapshotChecked = false): Promise<void> {
    this.#usable();
    // Validation and the choice of file operations are file_log.ts's (shared with the simulated disk).
    const plan: SavePlan = this.#state.plan(request);
    this.#initialEntries = undefined; // what load() returns is now logs.txt's
    await this.#guard(async () => {
      if (plan.snapshotChunk) {
        const c = plan.snapshotChunk;
        await this.#writeChunk(c.offset, c.data, plan.installSnapshot !== undefined);
      }
      if (plan.installSnapshot) {
        await this.#installReceived(plan.installSnapshot.index, plan.installSnapshot.term, snapshotChecked);
      }
      if (plan.ownSnapshot) await this.#installOwn(plan.ownSnapshot.index, plan.ownSnapshot.term);
      if (plan.rewriteLog) await this.#rewriteLog(plan.rewriteLog.header, plan.rewriteLog.keepFrom);
      if (plan.metadata) await this.#writeMetadataBytes(plan.metadata.bytes, plan.metadata.commitLength);
      if (plan.truncateTo !== undefined) await this.#logFile.truncate(plan.truncateTo);
      // A synchronous write: appending to the page cache takes microseconds, less than the hop to Deno's I/O
      // thread an async write costs (that hop was ~10 % of a follower's CPU). The fdatasync below, which
      // waits for the disk, stays async.
      if (plan.append) writeAllSync(this.#logFile, plan.append);
      if (plan.syncLog) await this.#timedSync(() => this.#logFile.syncData());
    });
    this.#state.applied(request, plan);
    this.#scheduleCommitHint();
  }

  /**
   * Writes a received chunk at `offset` of snapshot.txt.recv (0: a new file); the last one (`sync`) fdatasyncs
   * the whole file before it is checked and renamed. The chunks before are not synced one by one: a crash
   * leaves a `.recv` file, which the next open removes whatever it holds, so a chunk's acknowledgement
   * promises nothing durable (the leader starts over with a node that restarted), and one fdatasync per
   * snapshot instead of one per chunk is what lets chunks stream.
   */
  async #writeChunk(offset: number, data: Uint8Array, sync: boolean): Promise<void> {
    const path = receivedSnapshotPath(this.folder);
    const f = await Deno.open(path, { write: true, create: true, truncate: offset === 0 });
    try {
      if ((await f.stat()).size !== offset) {
        throw new StorageError(
          "invalid",
          `${path} holds ${(await f.stat()).size} bytes, a chunk came for ${offset}`,
        );
      }
      await f.seek(offset, Deno.SeekMode.Start);
      await writeAll(f, data);
      if (sync) await f.syncData();
    } finally {
      f.close();
    }
  }

  /** Checks the received snapshot whole, then renames it over snapshot.txt and syncs the folder. */
  async #installReceived(index: number, term: number, checked: boolean): Promise<void> {
    const path = receivedSnapshotPath(this.folder);
    if (checked) {
      await this.#renameSnapshot(path, index, term);
      return;
    }
    const h = await readSnapshotFile(path, NO_SINK);
    if (h === null || h.index !== index || h.term !== term) {
      throw new StorageError(
        "corrupt",
        `${path}: the received snapshot is ${
          h === null ? "missing" : `at ${h.index}/t${h.term}`
        }, expected ` +
          `${index}/t${term}; ${snapshotRecoveryAdvice(snapshotPath(this.folder))}`,
        { path },
      );
    }
    await this.#renameSnapshot(path, index, term);
  }

  /** This node's own snapshot (written to snapshot.txt.tmp by the node) becomes snapshot.txt. */
  async #installOwn(index: number, term: number): Promise<void> {
    await this.#renameSnapshot(ownSnapshotTmpPath(this.folder, index), index, term);
  }

  async #renameSnapshot(from: string, index: number, term: number): Promise<void> {
    const to = snapshotPath(this.folder);
    await Deno.rename(from, to);
    await this.#dirHandle.sync();
    this.#snapshot = { index, term, sizeBytes: (await Deno.stat(to)).size };
  }

  /** Rewrites logs.txt atomically as `header` + its bytes from `keepFrom` on, and reopens it for appends. */
  async #rewriteLog(header: Uint8Array, keepFrom: number | null): Promise<void> {
    let tail = new Uint8Array(0);
    if (keepFrom !== null) {
      const all = await Deno.readFile(this.logsPath);
      tail = all.subarray(keepFrom);
    }
    const bytes = new Uint8Array(header.length + tail.length);
    bytes.set(header);
    bytes.set(tail, header.length);
    await rewriteFileAtomically(this.logsPath, bytes, this.folder);
    this.#logFile.close();
    this.#logFile = await Deno.open(this.logsPath, { read: true, append: true });
  }

  /**
   * Writes the commit hint off the saves' critical path (the next queued call waits for it): now if the last
   * metadata write is `commitHintIntervalMs` old, else once it is (one timer, not one per save).
   */
  #scheduleCommitHint(): void {
    if (
      !this.#state.commitHintBehind || this.#commitWriteQueued || this.#commitHintTimer !== undefined
    ) {
      return;
    }
    const waitMs = this.#lastMetadataWriteAt + this.#commitHintIntervalMs - performance.now();
    if (waitMs > 0) {
      this.#commitHintTimer = setTimeout(() => {
        this.#commitHintTimer = undefined;
        if (!this.#closed) this.#scheduleCommitHint();
      }, Math.ceil(waitMs));
      return;
    }
    this.#commitWriteQueued = true;
    this.#enqueue(async () => {
      this.#commitWriteQueued = false;
      if (this.#failure !== undefined || !this.#state.commitHintBehind) return;
      await this.#guard(() => this.#writeMetadata());
    }).catch(() => {/* the failure is reported by the next call */});
  }

  /** Atomically rewrites metadata.txt with the current hard state and `commitLength`. */
  #writeMetadata(commitLength: number = Math.min(this.#state.commit, this.#state.lastIndex)): Promise<void> {
    return this.#writeMetadataBytes(this.#state.metadataBytes(commitLength), commitLength);
  }

  /** Runs one fsync, reporting its duration to `onSyncSeconds` when set. */
  async #timedSync(sync: () => Promise<void>): Promise<void> {
    if (this.#onSyncSeconds === undefined) return sync();
    const t0 = performance.now();
    await sync();
    this.#onSyncSeconds((performance.now() - t0) / 1000);
  }

  /** Atomically rewrites metadata.txt: temp file, fsync, rename, fsync the folder. */
  async #writeMetadataBytes(bytes: Uint8Array, commitLength: number): Promise<void> {
    const tmp = `${this.metadataPath}.tmp`;
    const f = await Deno.open(tmp, { write: true, create: true, truncate: true });
    try {
      await writeAll(f, bytes);
      await this.#timedSync(() => f.sync());
    } finally {
      f.close();
    }
    await Deno.rename(tmp, this.metadataPath);
    await this.#dirHandle.sync();
    this.#state.commitWritten = commitLength;
    this.#lastMetadataWriteAt = performance.now();
  }
}

/** Replaces `path` by `bytes` atomically: `<path>.tmp`, fsync, rename, fsync the folder. */
async function rewriteFileAtomically(path: string, bytes: Uint8Array, folder: string): Promise<void> {
  const tmp = `${path}.tmp`;
  const f = await Deno.open(tmp, { write: true, create: true, truncate: true });
  try {
    await writeAll(f, bytes);
    await f.sync();
  } finally {
    f.close();
  }
  await Deno.rename(tmp, path);
  await syncDir(folder);
}
