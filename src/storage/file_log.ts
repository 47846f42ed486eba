/**
 * The logic of the file store above the raw file operations: what recovery makes of the bytes found in a
 * folder, and which file operations one save needs. Pure (no I/O): {@link FileLogStore} executes the plans
 * on real files, and the simulator's disk (tests/sim/disk.ts) executes them on simulated files with faults,
 * so seeds exercise the recovery paths (torn tail cut off, corruption refused) that production relies on.
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
import { nextHardState, type SaveRequest, validateSave } from "./log_store.ts";

const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
const encoder = new TextEncoder();

/** The result of scanning logs.txt. */
export interface ParsedLog {
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
  const log: ParsedLog = logBytes === null
    ? { entries: [], ends: [] }
    : parseLog(logBytes, logsPath, commitLength);
  if (metadata === null && (logBytes?.length ?? 0) > 0) {
    throw new StorageError(
      "corrupt",
      `${metadataPath} is missing but ${logsPath} is not empty: refusing to guess the term and vote`,
      { path: metadataPath },
    );
  }
  if (commitLength > log.entries.length) {
    throw new StorageError(
      "corrupt",
      `${metadataPath} says ${commitLength} entries are committed but ${logsPath} holds only ${log.entries.length}`,
      { path: logsPath },
    );
  }
  const warnings: string[] = [];
  if (log.warning !== undefined) warnings.push(log.warning);
  const last = log.entries.length;
  if (metadata !== null && last > 0 && log.entries[last - 1].term > metadata.hardState.term) {
    warnings.push(
      `${metadataPath} has term ${metadata.hardState.term}, older than the last entry's term ${
        log.entries[last - 1].term
      } in ${logsPath}`,
    );
  }
  return { metadata, log, warnings };
}

/** The file operations of one save, in order. Executed by the file store or the simulated disk. */
export interface SavePlan {
  /** First: rewrite metadata.txt atomically with these bytes (temp file, fsync, rename, fsync the folder). */
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

/**
 * The in-memory image of a folder a store keeps: entries, their byte offsets, hard state, commit hint.
 * `plan` turns a save request into file operations; `applied` records them once they are durable.
 */
export class FileLogState {
  readonly entries: Entry[];
  readonly ends: number[];
  hardState: HardState;
  /** Highest commit index reported (clamped to the log). */
  commit: number;
  /** The commitLength in metadata.txt now. */
  commitWritten: number;

  constructor(readonly nodeId: number, readonly clusterId: string, recovered: RecoveredFolder) {
    this.entries = recovered.log.entries;
    this.ends = recovered.log.ends;
    const m = recovered.metadata;
    this.hardState = m?.hardState ?? { term: 0, votedFor: 0 };
    this.commit = m?.commitLength ?? 0;
    this.commitWritten = this.commit;
  }

  get lastIndex(): number {
    return this.entries.length;
  }

  /** metadata.txt's bytes for the current hard state and `commitLength`. */
  metadataBytes(commitLength: number = Math.min(this.commit, this.entries.length)): Uint8Array {
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
    const entries = this.entries;
    const n = entries.length;
    const from = validateSave(
      request,
      n,
      (i) => (i === 0 ? 0 : entries[i - 1].term),
      this.commit,
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
      const commitLength = Math.min(this.commit, from - 1, n);
      metadata = { bytes: this.metadataBytes(commitLength), commitLength };
    }
    if (!logChanged) return { metadata, syncLog: false };
    const truncateTo = from <= n ? (from === 1 ? 0 : this.ends[from - 2]) : undefined;
    if (request.entries.length === 0) return { metadata, truncateTo, syncLog: true };
    const { bytes, ends } = encodeEntryLines(request.entries);
    return { metadata, truncateTo, append: bytes, appendEnds: ends, syncLog: true };
  }

  /** Records a save's operations as done: `request` and the `plan` made for it. */
  applied(request: SaveRequest, plan: SavePlan): void {
    if (plan.metadata) this.commitWritten = plan.metadata.commitLength;
    if (plan.syncLog) {
      const from = request.appendFrom!;
      this.entries.length = Math.min(this.entries.length, from - 1);
      this.ends.length = this.entries.length;
      const base = from === 1 ? 0 : this.ends[from - 2];
      const ends = plan.appendEnds ?? [];
      for (let i = 0; i < request.entries.length; i++) {
        this.entries.push(request.entries[i]);
        this.ends.push(base + ends[i]);
      }
    }
    if (request.commitIndex !== undefined) {
      this.commit = Math.max(this.commit, Math.min(request.commitIndex, this.entries.length));
    }
  }

  /** True when the commit hint in metadata.txt is behind. */
  get commitHintBehind(): boolean {
    return this.commitWritten !== Math.min(this.commit, this.entries.length);
  }
}
