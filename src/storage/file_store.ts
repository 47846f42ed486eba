/**
 * The durable, human-readable {@link LogStore}: `DIR/logs_node_<id>/logs.txt` (one line per entry, append-only
 * in normal operation) and `metadata.txt` (term, vote, commit hint, identity; rewritten atomically).
 *
 * @module
 */

import type { Entry, HardState } from "../raft/types.ts";
import {
  checkLineChecksum,
  CHECKSUM_SUFFIX_BYTES,
  encodeEntryLines,
  encodeMetadata,
  type Metadata,
  parseEntryRange,
  ParseFailure,
  parseMetadata,
} from "./codec.ts";
import { StorageError } from "./errors.ts";
import {
  type LoadedState,
  type LogStore,
  nextHardState,
  type SaveRequest,
  validateSave,
} from "./log_store.ts";
import { joinPath, LOCK_FILE, LOGS_FILE, METADATA_FILE, nodeFolder, parentDir } from "./paths.ts";

/** Tuning of a {@link FileLogStore}. */
export interface FileLogStoreOptions {
  /**
   * Minimum spacing, in milliseconds, of metadata rewrites caused only by the commit index advancing (it is a
   * restart hint; a changed term or vote is always written at once). Default 1000: each rewrite is a temp file,
   * two fsyncs and a rename on every node, and a hint a second old costs a restarted node nothing but
   * learning the rest of the commit index from the leader's first AppendEntries.
   */
  readonly commitHintIntervalMs?: number;
  /** Called with the duration of every fsync of logs.txt or metadata.txt in normal operation (for metrics). */
  readonly onSyncSeconds?: (seconds: number) => void;
}

const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
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

/** The result of scanning logs.txt. */
interface ParsedLog {
  entries: Entry[];
  /** `ends[i]`: byte offset just after the newline of entry `i + 1`. */
  ends: number[];
  /** Set when a torn last line must be cut off: the byte length to keep. */
  keepBytes?: number;
  warning?: string;
}

/**
 * Parses logs.txt. A torn last line (incomplete, or failing its checksum) is reported for removal unless
 * it would hold a committed entry; any other bad line throws a `corrupt` StorageError naming the line.
 */
export function parseLog(bytes: Uint8Array, path: string, commitLength: number): ParsedLog {
  const corrupt = (line: number, reason: string): never => {
    throw new StorageError("corrupt", `corrupt entry in ${path} line ${line}: ${reason}`, { path, line });
  };
  // Each line is checked on the bytes and parsed on the decoded text: a newline byte is a newline character
  // (UTF-8 never uses 0x0a inside a multi-byte sequence, and the decoder never swallows it).
  const text = decoder.decode(bytes);
  // Grown with push: `new Array(n)` for a large n makes a slow dictionary-mode array in V8.
  const entries: Entry[] = [];
  const ends: number[] = [];
  let start = 0;
  let tstart = 0; // where the line starts in `text`
  let prevTerm = 0;
  for (let i = 0;; i++) {
    const nl = bytes.indexOf(0x0a, start);
    if (nl < 0) break;
    const reason = checkLineChecksum(bytes, start, nl);
    if (reason !== null) {
      if (nl + 1 === bytes.length && i + 1 > commitLength) {
        return {
          entries,
          ends,
          keepBytes: start,
          warning: `dropped the torn last line ${i + 1} of ${path} (${reason}, ${nl + 1 - start} bytes)`,
        };
      }
      const committed = i + 1 <= commitLength ? ` (a committed entry: commitLength is ${commitLength})` : "";
      corrupt(i + 1, reason + committed);
    }
    const tnl = text.indexOf("\n", tstart);
    let entry: Entry;
    try {
      entry = parseEntryRange(text, tstart, tnl - CHECKSUM_SUFFIX_BYTES, i + 1);
    } catch (e) {
      if (e instanceof ParseFailure) return corrupt(i + 1, e.message);
      throw e;
    }
    if (entry.term < prevTerm) {
      corrupt(i + 1, `term ${entry.term} after term ${prevTerm} (terms never decrease)`);
    }
    prevTerm = entry.term;
    entries.push(entry);
    ends.push(nl + 1);
    start = nl + 1;
    tstart = tnl + 1;
  }
  if (start < bytes.length) {
    const lineNo = entries.length + 1;
    const size = bytes.length - start;
    if (lineNo <= commitLength) {
      corrupt(lineNo, `incomplete line (a committed entry: commitLength is ${commitLength})`);
    }
    return {
      entries,
      ends,
      keepBytes: start,
      warning:
        `dropped the torn last line ${lineNo} of ${path} (incomplete line without newline, ${size} bytes)`,
    };
  }
  return { entries, ends };
}

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
  readonly #logFile: Deno.FsFile;
  readonly #dirHandle: Deno.FsFile;
  readonly #entries: Entry[];
  readonly #ends: number[];
  readonly #warnings: readonly string[];
  #hardState: HardState;
  /** Highest commit index reported (clamped to the log). */
  #commit: number;
  /** The commitLength in metadata.txt now. */
  #commitWritten: number;
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
      metadata: Metadata;
      entries: Entry[];
      ends: number[];
      warnings: string[];
    },
  ) {
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
    this.#entries = init.entries;
    this.#ends = init.ends;
    this.#warnings = init.warnings;
    this.#hardState = init.metadata.hardState;
    this.#commit = init.metadata.commitLength;
    this.#commitWritten = init.metadata.commitLength;
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
      let metadata: Metadata | null = null;
      if (metaBytes !== null) {
        metadata = parseMetadata(decoder.decode(metaBytes), metadataPath);
        if (metadata.nodeId !== nodeId) {
          throw new StorageError(
            "foreign",
            `${metadataPath} belongs to node ${metadata.nodeId}, not node ${nodeId}: refusing to use ${folder}`,
            { path: metadataPath },
          );
        }
        if (metadata.clusterId !== clusterId) {
          throw new StorageError(
            "foreign",
            `${metadataPath} belongs to cluster ${JSON.stringify(metadata.clusterId)}, not ${
              JSON.stringify(clusterId)
            }: refusing to use ${folder}`,
            { path: metadataPath },
          );
        }
      }

      // 4. The log.
      const logsPath = joinPath(folder, LOGS_FILE);
      let logBytes: Uint8Array | null;
      try {
        logBytes = await readIfExists(logsPath);
      } catch (e) {
        throw io("read", logsPath, e);
      }
      const commitLength = metadata?.commitLength ?? 0;
      const parsed: ParsedLog = logBytes === null
        ? { entries: [], ends: [] }
        : parseLog(logBytes, logsPath, commitLength);
      if (metadata === null && (logBytes?.length ?? 0) > 0) {
        throw new StorageError(
          "corrupt",
          `${metadataPath} is missing but ${logsPath} is not empty: refusing to guess the term and vote`,
          { path: metadataPath },
        );
      }
      if (commitLength > parsed.entries.length) {
        throw new StorageError(
          "corrupt",
          `${metadataPath} says ${commitLength} entries are committed but ${logsPath} holds only ${parsed.entries.length}`,
          { path: logsPath },
        );
      }
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
          warnings.push(parsed.warning!);
        }
        if (logBytes === null) await dirHandle.sync(); // logs.txt was just created
      } catch (e) {
        throw io("repair", logsPath, e);
      }
      const last = parsed.entries.length;
      if (metadata !== null && last > 0 && parsed.entries[last - 1].term > metadata.hardState.term) {
        warnings.push(
          `${metadataPath} has term ${metadata.hardState.term}, older than the last entry's term ${
            parsed.entries[last - 1].term
          } in ${logsPath}`,
        );
      }

      const store = new FileLogStore({
        folder,
        nodeId,
        clusterId,
        options,
        lockFile,
        logFile,
        dirHandle,
        metadata: metadata ?? { nodeId, clusterId, hardState: { term: 0, votedFor: 0 }, commitLength: 0 },
        entries: parsed.entries,
        ends: parsed.ends,
        warnings,
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
    return this.#entries.length;
  }

  /** The current state: what was found at open (after repairs), with everything saved since. */
  load(): LoadedState {
    if (this.#closed) throw this.#closedError();
    this.#usable();
    return {
      hardState: this.#hardState,
      entries: this.#entries.slice(),
      commitIndex: Math.min(this.#commit, this.#entries.length),
      warnings: this.#warnings,
    };
  }

  /** Makes `request` durable (see the class comment); resolves once it is on disk. */
  save(request: SaveRequest): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closedError());
    return this.#enqueue(() => this.#save(request));
  }

  /** Writes the latest commit index to metadata.txt now. */
  flush(): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closedError());
    return this.#enqueue(async () => {
      this.#usable();
      if (this.#commitWritten !== Math.min(this.#commit, this.#entries.length)) {
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
    if (this.#failure === undefined && this.#commitWritten !== Math.min(this.#commit, this.#entries.length)) {
      try {
        await this.#writeMetadata();
      } catch (e) {
        error = new StorageError("io", `cannot write ${this.metadataPath}: ${describe(e)}`, { cause: e });
      }
    }
    this.#logFile.close();
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

  async #save(request: SaveRequest): Promise<void> {
    this.#usable();
    const entries = this.#entries;
    const n = entries.length;
    const from = validateSave(
      request,
      n,
      (i) => (i === 0 ? 0 : entries[i - 1].term),
      this.#commit,
      this.#hardState,
    );
    const hs = request.hardState;
    const hsChanged = hs !== undefined &&
      (hs.term !== this.#hardState.term || hs.votedFor !== this.#hardState.votedFor ||
        (hs.promisedLeaseMs ?? 0) > (this.#hardState.promisedLeaseMs ?? 0));
    const logChanged = request.appendFrom !== undefined && (from <= n || request.entries.length > 0);
    await this.#guard(async () => {
      if (hs !== undefined && hsChanged) {
        // Term and vote first: the term on disk is then never older than an entry on disk. The commit hint
        // written with them stays within the log that survives this save's truncation.
        this.#hardState = nextHardState(this.#hardState, hs);
        await this.#writeMetadata(Math.min(this.#commit, from - 1, n));
      }
      if (logChanged) {
        if (from <= n) {
          await this.#logFile.truncate(from === 1 ? 0 : this.#ends[from - 2]);
          entries.length = from - 1;
          this.#ends.length = from - 1;
        }
        const base = from === 1 ? 0 : this.#ends[from - 2];
        if (request.entries.length > 0) {
          const { bytes, ends } = encodeEntryLines(request.entries);
          // A synchronous write: appending to the page cache takes microseconds, less than the hop to
          // Deno's I/O thread an async write costs (that hop was ~10 % of a follower's CPU). The fdatasync
          // below, which waits for the disk, stays async.
          writeAllSync(this.#logFile, bytes);
          for (let i = 0; i < request.entries.length; i++) {
            entries.push(request.entries[i]);
            this.#ends.push(base + ends[i]);
          }
        }
        await this.#timedSync(() => this.#logFile.syncData());
      }
    });
    if (request.commitIndex !== undefined) {
      this.#commit = Math.max(this.#commit, Math.min(request.commitIndex, entries.length));
    }
    this.#scheduleCommitHint();
  }

  /**
   * Writes the commit hint off the saves' critical path (the next queued call waits for it): now if the last
   * metadata write is `commitHintIntervalMs` old, else once it is (one timer, not one per save).
   */
  #scheduleCommitHint(): void {
    if (
      this.#commit === this.#commitWritten || this.#commitWriteQueued || this.#commitHintTimer !== undefined
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
      if (this.#failure !== undefined || this.#commit === this.#commitWritten) return;
      await this.#guard(() => this.#writeMetadata());
    }).catch(() => {/* the failure is reported by the next call */});
  }

  /** Runs one fsync, reporting its duration to `onSyncSeconds` when set. */
  async #timedSync(sync: () => Promise<void>): Promise<void> {
    if (this.#onSyncSeconds === undefined) return sync();
    const t0 = performance.now();
    await sync();
    this.#onSyncSeconds((performance.now() - t0) / 1000);
  }

  /** Atomically rewrites metadata.txt: temp file, fsync, rename, fsync the folder. */
  async #writeMetadata(commitLength: number = Math.min(this.#commit, this.#entries.length)): Promise<void> {
    const text = encodeMetadata({
      nodeId: this.nodeId,
      clusterId: this.clusterId,
      hardState: this.#hardState,
      commitLength,
    });
    const tmp = `${this.metadataPath}.tmp`;
    const f = await Deno.open(tmp, { write: true, create: true, truncate: true });
    try {
      await writeAll(f, encoder.encode(text));
      await this.#timedSync(() => f.sync());
    } finally {
      f.close();
    }
    await Deno.rename(tmp, this.metadataPath);
    await this.#dirHandle.sync();
    this.#commitWritten = commitLength;
    this.#lastMetadataWriteAt = performance.now();
  }
}
