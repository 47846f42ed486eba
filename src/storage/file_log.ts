/**
 * The logic of the file store above the raw file operations: what recovery makes of the bytes found in a
 * folder, and which file operations one save needs. Pure (no I/O): {@link FileLogStore} executes the plans
 * on real files, and the simulator's disk (tests/sim/disk.ts) executes them on simulated files with faults,
 * so seeds exercise the recovery paths (torn tail cut off, corruption refused) that production relies on.
 *
 * @module
 */

import type { Entry, HardState, LogPosition } from "../raft/types.ts";
import {
  checkLineChecksum,
  CHECKSUM_SUFFIX_BYTES,
  encodeBaseText,
  encodeEntryLines,
  encodeLines,
  encodeMetadata,
  type Metadata,
  parseBaseRange,
  parseEntryRange,
  ParseFailure,
  parseMetadata,
} from "./codec.ts";
import { StorageError } from "./errors.ts";
import { nextHardState, type SaveRequest, validateSave } from "./log_store.ts";

const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
const encoder = new TextEncoder();

/** The result of scanning logs.txt. */
export interface ParsedLog {
  /** The compacted start (a `BASE` first line); index 0 when the file starts at entry 1. */
  start: LogPosition;
  /** Bytes of the BASE line (0 when none). */
  headerBytes: number;
  /** Entries `start.index + 1 ..`, in order. */
  entries: Entry[];
  /** `ends[i]`: byte offset just after the newline of entry `start.index + i + 1`. */
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
  let base: LogPosition = { index: 0, term: 0 };
  let headerBytes = 0;
  // A compacted log starts with `BASE <index> <term>` (checked like any line; it is never torn: the file
  // holding it was written whole and renamed into place).
  const firstNl = bytes.indexOf(0x0a);
  if (firstNl > 0 && text.startsWith("BASE ")) {
    const reason = checkLineChecksum(bytes, 0, firstNl);
    if (reason !== null) corrupt(1, reason);
    try {
      base = parseBaseRange(text, 0, text.indexOf("\n") - CHECKSUM_SUFFIX_BYTES)!;
    } catch (e) {
      if (e instanceof ParseFailure) return corrupt(1, e.message);
      throw e;
    }
    headerBytes = firstNl + 1;
    start = headerBytes;
    tstart = text.indexOf("\n") + 1;
    prevTerm = base.term;
  }
  const lineOffset = headerBytes > 0 ? 2 : 1; // file line of entry i (0-based) is i + lineOffset
  for (let i = 0;; i++) {
    const nl = bytes.indexOf(0x0a, start);
    if (nl < 0) break;
    const index = base.index + i + 1;
    const reason = checkLineChecksum(bytes, start, nl);
    if (reason !== null) {
      if (nl + 1 === bytes.length && index > commitLength) {
        return {
          start: base,
          headerBytes,
          entries,
          ends,
          keepBytes: start,
          warning: `dropped the torn last line ${i + lineOffset} of ${path} (${reason}, ${
            nl + 1 - start
          } bytes)`,
        };
      }
      const committed = index <= commitLength ? ` (a committed entry: commitLength is ${commitLength})` : "";
      corrupt(i + lineOffset, reason + committed);
    }
    const tnl = text.indexOf("\n", tstart);
    let entry: Entry;
    try {
      entry = parseEntryRange(text, tstart, tnl - CHECKSUM_SUFFIX_BYTES, index);
    } catch (e) {
      if (e instanceof ParseFailure) return corrupt(i + lineOffset, e.message);
      throw e;
    }
    if (entry.term < prevTerm) {
      corrupt(i + lineOffset, `term ${entry.term} after term ${prevTerm} (terms never decrease)`);
    }
    prevTerm = entry.term;
    entries.push(entry);
    ends.push(nl + 1);
    start = nl + 1;
    tstart = tnl + 1;
  }
  if (start < bytes.length) {
    const lineNo = entries.length + lineOffset;
    const size = bytes.length - start;
    if (base.index + entries.length + 1 <= commitLength) {
      corrupt(lineNo, `incomplete line (a committed entry: commitLength is ${commitLength})`);
    }
    return {
      start: base,
      headerBytes,
      entries,
      ends,
      keepBytes: start,
      warning:
        `dropped the torn last line ${lineNo} of ${path} (incomplete line without newline, ${size} bytes)`,
    };
  }
  return { start: base, headerBytes, entries, ends };
}

/** Where a folder's files are, and whose it must be. */
export interface FolderIdentity {
  readonly folder: string;
  readonly metadataPath: string;
  readonly logsPath: string;
  readonly nodeId: number;
  readonly clusterId: string;
}

/** What recovery made of a folder's bytes. */
export interface RecoveredFolder {
  /** Null when metadata.txt is missing (a new folder: write one before use). */
  readonly metadata: Metadata | null;
  readonly log: ParsedLog;
  /** The snapshot's position (from snapshot.txt's header), null when the folder has none. */
  readonly snapshot: LogPosition | null;
  /**
   * Set when logs.txt does not hold the snapshot's last entry (a crash between installing a snapshot and
   * resetting the log): the caller must rewrite logs.txt as this BASE line alone before use.
   */
  readonly resetLog?: LogPosition;
  /** Notes for dump.txt (a torn tail cut off, an old term in metadata). */
  readonly warnings: string[];
}

/**
 * Checks the bytes of metadata.txt and logs.txt (null: missing; a leftover metadata.txt.tmp is an unfinished
 * rewrite and is ignored). Throws StorageError `foreign` (another node's or cluster's folder) or `corrupt`
 * (naming the file and line; the node must refuse to start). When `log.keepBytes` is set, the caller must
 * cut logs.txt to that length and fdatasync before use.
 */
export function recoverFolder(
  metaBytes: Uint8Array | null,
  logBytes: Uint8Array | null,
  id: FolderIdentity,
  snapshot: LogPosition | null = null,
): RecoveredFolder {
  const { folder, metadataPath, logsPath, nodeId, clusterId } = id;
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
  const commitLength = metadata?.commitLength ?? 0;
  let log: ParsedLog = logBytes === null
    ? { start: { index: 0, term: 0 }, headerBytes: 0, entries: [], ends: [] }
    : parseLog(logBytes, logsPath, commitLength);
  const snapshotPath = `${folder}/snapshot.txt`;
  if (log.start.index > 0 && (snapshot === null || snapshot.index < log.start.index)) {
    throw new StorageError(
      "corrupt",
      `${logsPath} starts after entry ${log.start.index} but ${snapshotPath} ${
        snapshot === null ? "is missing" : `ends at ${snapshot.index}`
      }: the entries in between are lost; to recover, stop this node, delete its folder ${folder} and start it ` +
        `again: the leader then sends it a fresh snapshot`,
      { path: logsPath },
    );
  }
  let resetLog: LogPosition | undefined;
  const resetWarnings: string[] = [];
  if (snapshot !== null) {
    const i = snapshot.index - log.start.index - 1;
    const term = snapshot.index === log.start.index ? log.start.term : log.entries[i]?.term;
    if (term !== snapshot.term) {
      // Raft §7: a log that does not hold the snapshot's last entry is superseded by the snapshot entirely.
      resetLog = { index: snapshot.index, term: snapshot.term };
      resetWarnings.push(
        `${logsPath} does not hold entry ${snapshot.index} of term ${snapshot.term} (the end of ${snapshotPath}): ` +
          `its ${log.entries.length} entries were superseded by the snapshot and dropped`,
      );
      log = { start: resetLog, headerBytes: 0, entries: [], ends: [] };
    }
  }
  if (metadata === null && (logBytes?.length ?? 0) > 0) {
    throw new StorageError(
      "corrupt",
      `${metadataPath} is missing but ${logsPath} is not empty: refusing to guess the term and vote`,
      { path: metadataPath },
    );
  }
  const lastIndex = log.start.index + log.entries.length;
  if (commitLength > lastIndex && resetLog === undefined) {
    throw new StorageError(
      "corrupt",
      `${metadataPath} says ${commitLength} entries are committed but ${logsPath} holds only ${lastIndex}`,
      { path: logsPath },
    );
  }
  const warnings: string[] = [...resetWarnings];
  if (log.warning !== undefined) warnings.push(log.warning);
  const last = log.entries.length;
  if (metadata !== null && last > 0 && log.entries[last - 1].term > metadata.hardState.term) {
    warnings.push(
      `${metadataPath} has term ${metadata.hardState.term}, older than the last entry's term ${
        log.entries[last - 1].term
      } in ${logsPath}`,
    );
  }
  return { metadata, log, snapshot, resetLog, warnings };
}

/** The file operations of one save, in order. Executed by the file store or the simulated disk. */
export interface SavePlan {
  /**
   * First: write a received snapshot chunk to `snapshot.txt.recv` at `offset` (0: a new file), fdatasync. When
   * `install` is set afterwards, check that file whole (its header must name this index and term) and rename it
   * over `snapshot.txt`, then fsync the folder.
   */
  readonly snapshotChunk?: { readonly offset: number; readonly data: Uint8Array };
  readonly installSnapshot?: LogPosition;
  /**
   * Or: this node's own snapshot, written to `snapshot.txt.tmp` (fsynced) by the caller, becomes `snapshot.txt`
   * (rename, fsync the folder). Skipped when the folder holds a newer snapshot by then.
   */
  readonly ownSnapshot?: LogPosition;
  /**
   * Then: rewrite logs.txt atomically (temp, fsync, rename, fsync the folder) as the `BASE` line `header`
   * followed by the current file's bytes from `keepFrom` to its end (null: none).
   */
  readonly rewriteLog?: { readonly header: Uint8Array; readonly keepFrom: number | null };
  /** Then: rewrite metadata.txt atomically with these bytes (temp file, fsync, rename, fsync the folder). */
  readonly metadata?: { readonly bytes: Uint8Array; readonly commitLength: number };
  /** Then: cut logs.txt to this many bytes. */
  readonly truncateTo?: number;
  /** Then: append these bytes to logs.txt. */
  readonly append?: Uint8Array;
  /** The byte offset just after each appended line, relative to the start of `append`. */
  readonly appendEnds?: readonly number[];
  /** Then: fdatasync logs.txt (set whenever the log changed). */
  readonly syncLog: boolean;
}

/** The log as a save leaves it: its start, header size, terms and line ends. */
interface LogImage {
  start: LogPosition;
  headerBytes: number;
  terms: number[];
  ends: number[];
}

/**
 * The in-memory image of a folder a store keeps: the log's start, each entry's term and byte offset (not the
 * entries: the core holds the one copy of the log tail), hard state, commit hint, snapshot position.
 * `plan` turns a save request into file operations; `applied` records them once they are durable.
 */
export class FileLogState {
  #log: LogImage;
  hardState: HardState;
  /** Highest commit index reported (clamped to the log). */
  commit: number;
  /** The commitLength in metadata.txt now. */
  commitWritten: number;
  /** The snapshot in the folder (index 0: none). */
  snapshot: LogPosition;
  /** The log after the planned, not yet applied, save (plans and applies alternate, one save at a time). */
  #next: LogImage | undefined;
  #nextSnapshot: LogPosition | undefined;

  constructor(readonly nodeId: number, readonly clusterId: string, recovered: RecoveredFolder) {
    const log = recovered.log;
    this.#log = {
      start: log.start,
      headerBytes: log.headerBytes,
      terms: log.entries.map((e) => e.term),
      ends: log.ends,
    };
    const m = recovered.metadata;
    this.hardState = m?.hardState ?? { term: 0, votedFor: 0 };
    this.snapshot = recovered.snapshot ?? { index: 0, term: 0 };
    this.commit = Math.max(Math.min(m?.commitLength ?? 0, this.lastIndex), this.snapshot.index);
    this.commitWritten = m?.commitLength ?? 0;
  }

  get lastIndex(): number {
    return this.#log.start.index + this.#log.terms.length;
  }

  /** The last compacted entry (index 0 when none). */
  get start(): LogPosition {
    return this.#log.start;
  }

  /** The term of the stored entry at `index` (the compacted start's included), undefined when not held. */
  termAt(index: number): number | undefined {
    const l = this.#log;
    if (index === l.start.index) return l.start.term;
    return index < l.start.index ? undefined : l.terms[index - l.start.index - 1];
  }

  /** Entries held in logs.txt. */
  get length(): number {
    return this.#log.terms.length;
  }

  /** metadata.txt's bytes for the current hard state and `commitLength`. */
  metadataBytes(commitLength: number = Math.min(this.commit, this.lastIndex)): Uint8Array {
    return encoder.encode(encodeMetadata({
      nodeId: this.nodeId,
      clusterId: this.clusterId,
      hardState: this.hardState,
      commitLength,
    }));
  }

  /**
   * Validates `request` (throws StorageError `invalid` before any I/O) and returns its file operations. The
   * hard state in memory is updated at once (it is what the metadata bytes carry); call `applied` once the
   * operations are durable.
   */
  plan(request: SaveRequest): SavePlan {
    let log = this.#log;
    let snapshot = this.snapshot;
    let snapshotChunk: SavePlan["snapshotChunk"];
    let installSnapshot: SavePlan["installSnapshot"];
    let ownSnapshot: SavePlan["ownSnapshot"];
    let rewriteLog: SavePlan["rewriteLog"];
    const termAt = (l: LogImage, i: number): number | undefined =>
      i === l.start.index ? l.start.term : i < l.start.index ? undefined : l.terms[i - l.start.index - 1];
    const rewrite = (to: LogPosition, keepSuffix: boolean) => {
      const header = encodeLines([encodeBaseText(to.index, to.term)]);
      const k = to.index - log.start.index; // entries dropped
      const keepFrom = keepSuffix ? (k === 0 ? log.headerBytes : log.ends[k - 1]) : null;
      const shift = header.length - (keepFrom ?? 0);
      const terms = keepSuffix ? log.terms.slice(k) : [];
      const ends = keepSuffix ? log.ends.slice(k).map((e) => e + shift) : [];
      rewriteLog = {
        header,
        keepFrom: keepFrom !== null && keepFrom < (log.ends.at(-1) ?? log.headerBytes) ? keepFrom : null,
      };
      log = { start: to, headerBytes: header.length, terms, ends };
    };
    if (request.snapshotChunk !== undefined) {
      snapshotChunk = { offset: request.snapshotChunk.offset, data: request.snapshotChunk.data };
    }
    const inst = request.installSnapshot;
    if (inst !== undefined) {
      if (snapshotChunk === undefined || !request.snapshotChunk!.done) {
        throw new StorageError(
          "invalid",
          `invalid save: snapshot ${inst.index} installed without its last chunk`,
        );
      }
      installSnapshot = inst;
      snapshot = inst;
      // Raft §7: keep the entries after the snapshot if this log holds its last entry, else drop them all.
      rewrite(inst, termAt(log, inst.index) === inst.term && inst.index <= this.lastIndex);
    }
    const own = request.compactLog;
    if (own !== undefined && inst === undefined) {
      if (own.snapshot.index > snapshot.index) {
        ownSnapshot = own.snapshot;
        snapshot = own.snapshot;
      }
      const to = own.compactTo;
      if (to.index > log.start.index && to.index <= snapshot.index && to.index <= this.lastIndex) {
        if (termAt(log, to.index) !== to.term) {
          throw new StorageError(
            "invalid",
            `invalid save: compaction to ${to.index}/t${to.term}, the log has term ${
              termAt(log, to.index)
            } there`,
          );
        }
        rewrite(to, true);
      }
    }
    const n = log.start.index + log.terms.length;
    if (request.appendFrom !== undefined && request.appendFrom <= log.start.index) {
      throw new StorageError(
        "invalid",
        `invalid save: appendFrom ${request.appendFrom} is inside the compacted log (up to ${log.start.index})`,
      );
    }
    const l = log;
    const from = validateSave(
      request,
      n,
      (i) => termAt(l, i) ?? 0,
      Math.max(this.commit, log.start.index),
      this.hardState,
    );
    const hs = request.hardState;
    const hsChanged = hs !== undefined &&
      (hs.term !== this.hardState.term || hs.votedFor !== this.hardState.votedFor ||
        (hs.promisedLeaseMs ?? 0) > (this.hardState.promisedLeaseMs ?? 0));
    const logChanged = request.appendFrom !== undefined && (from <= n || request.entries.length > 0);
    let metadata: SavePlan["metadata"];
    if (hs !== undefined && hsChanged) {
      // Term and vote first: the term on disk is then never older than an entry on disk. The commit hint
      // written with them stays within the log that survives this save's truncation.
      this.hardState = nextHardState(this.hardState, hs);
      const commitLength = Math.max(Math.min(this.commit, from - 1, n), snapshot.index);
      metadata = { bytes: this.metadataBytes(commitLength), commitLength };
    }
    this.#next = log;
    this.#nextSnapshot = snapshot;
    const head = { snapshotChunk, installSnapshot, ownSnapshot, rewriteLog, metadata };
    const syncLog = logChanged || rewriteLog !== undefined;
    if (!logChanged) return { ...head, syncLog };
    const k = from - log.start.index - 1;
    const truncateTo = from <= n ? (k === 0 ? log.headerBytes : log.ends[k - 1]) : undefined;
    if (request.entries.length === 0) return { ...head, truncateTo, syncLog };
    const { bytes, ends } = encodeEntryLines(request.entries);
    return { ...head, truncateTo, append: bytes, appendEnds: ends, syncLog };
  }

  /** Records a save's operations as done: `request` and the `plan` made for it. */
  applied(request: SaveRequest, plan: SavePlan): void {
    if (plan.metadata) this.commitWritten = plan.metadata.commitLength;
    const log = this.#next ?? this.#log;
    this.#log = log;
    this.snapshot = this.#nextSnapshot ?? this.snapshot;
    this.#next = undefined;
    this.#nextSnapshot = undefined;
    if (request.appendFrom !== undefined && (plan.truncateTo !== undefined || plan.append !== undefined)) {
      const from = request.appendFrom;
      const keep = from - log.start.index - 1;
      log.terms.length = Math.min(log.terms.length, keep);
      log.ends.length = log.terms.length;
      const base = keep === 0 ? log.headerBytes : log.ends[keep - 1];
      const ends = plan.appendEnds ?? [];
      for (let i = 0; i < request.entries.length; i++) {
        log.terms.push(request.entries[i].term);
        log.ends.push(base + ends[i]);
      }
    }
    this.commit = Math.max(this.commit, this.snapshot.index);
    if (request.commitIndex !== undefined) {
      this.commit = Math.max(this.commit, Math.min(request.commitIndex, this.lastIndex));
    }
  }

  /** True when the commit hint in metadata.txt is behind. */
  get commitHintBehind(): boolean {
    return this.commitWritten !== Math.min(this.commit, this.lastIndex);
  }
}
