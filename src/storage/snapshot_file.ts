/**
 * `snapshot.txt`: the state machine as of one log index, human-readable and checksummed.
 *
 * ```
 * SNAPSHOT format=2 index=1200 term=3 keys=2 sessions=1 #1a2b3c4d
 * CONFIG {"index":1150,"membership":{"members":[…]},"everUsed":[1,2,3,4]} #...
 * SESSION cli-4f2a 17 3735928559 1187 succeeded found 1187 Jon #...
 * KV name1 Jon 1187 #...
 * KV "first name" "Jon Snow\nthe 2nd" 942 #...
 * END #...
 * ```
 *
 * Every line is `<text> #<crc32>` like logs.txt, with keys, values and client ids in logs.txt's escaping. A
 * `KV` line ends with the key's version (the log index of its last change); a `SESSION` line holds the
 * session's seq, fingerprint and last index, then the outcome of its last write (what a retry is answered).
 * The optional `CONFIG` line (right after the header) is the membership configuration in force at the
 * snapshot's index, with its log index and every id ever a member: a node whose log is compacted past a
 * configuration entry takes its membership from here, never from cluster.json's bootstrap list again.
 * The header's counts and the final `END` line make a truncated file detectable. A file is written to
 * `snapshot.txt.tmp` in chunks (yielding to the event loop between them, so the node keeps serving), fsynced,
 * renamed over `snapshot.txt`, and the folder is fsynced: a crash leaves the old snapshot or the new one.
 *
 * @module
 */

import {
  encodeLines,
  encodeSnapshotConfigText,
  encodeSnapshotHeaderText,
  encodeSnapshotPairInto,
  encodeSnapshotPairText,
  encodeSnapshotSessionText,
  ParseFailure,
  parseSnapshotKvInto,
  parseSnapshotRange,
  SNAPSHOT_END_TEXT,
  SNAPSHOT_FORMAT,
  type SnapshotHeader,
  type SnapshotKvSlot,
  type SnapshotSession,
} from "./codec.ts";
import { checkLineChecksum, CHECKSUM_SUFFIX_BYTES } from "./codec.ts";
import { StorageError } from "./errors.ts";
import { joinPath, parentDir, SNAPSHOT_FILE } from "./paths.ts";

export type { SnapshotHeader, SnapshotSession } from "./codec.ts";

/** A frozen view of the state machine to write: it must not change while it is being written. */
export interface SnapshotSource {
  /** Index, term and counts (`keys` must equal the number of pairs `nextPairs` returns in all). */
  readonly header: SnapshotHeader;
  /** The sessions, in the order a restore re-creates them (least recently used first). */
  sessions(): Iterable<readonly [string, SnapshotSession]>;
  /** The next up to `max` pairs, each with its key's version; an empty array once all were returned. */
  nextPairs(max: number): readonly (readonly [string, string, number])[];
}

/** Receives a snapshot's content as it is read, in file order: header, sessions, pairs. */
export interface SnapshotSink {
  header(h: SnapshotHeader): void;
  session(clientId: string, session: SnapshotSession): void;
  pair(key: string, value: string, version: number): void;
}

/** Tuning of {@link writeSnapshotFile}. */
export interface SnapshotWriteOptions {
  /** Pairs encoded per write (the writer lets the event loop turn every few ms). Default 512. */
  readonly pairsPerChunk?: number;
  /**
   * Rename the finished temp file over snapshot.txt (default). False: leave it as `snapshot.txt.tmp-<index>`,
   * fsynced, for the store to rename in order with its other writes (a node's own snapshot).
   */
  readonly rename?: boolean;
  /**
   * fdatasync the temp file each time this many more bytes are written (default {@link SYNC_EVERY_BYTES}), so
   * that the final fsync finds little left to write back.
   */
  readonly syncEveryBytes?: number;
}

/**
 * The writer's fdatasync step, bytes. One fsync of a whole 131 MB snapshot (1,000,000 keys) at the end wrote
 * all its pages back at once, and every SET's fdatasync of logs.txt queued behind it on the disk: SETs waited
 * the whole flush (155 ms at load 10 here, longer on a slower disk or a busier machine), then the install after
 * it (docs/benchmarks.md, "The 401 ms wait"). In 8 MiB steps each flush is short and SETs' fdatasyncs pass
 * between them.
 */
export const SYNC_EVERY_BYTES = 8 << 20;

const decoder = new TextDecoder("utf-8", { ignoreBOM: true });

/** The longest stretch of snapshot encoding between two turns of the event loop, ms. */
const YIELD_EVERY_MS = 2;
/**
 * How long the writer then stays out of the way, ms: a client request crosses the event loop several times
 * (frame in, proposal, fsync, answer), and with a bare `setTimeout(0)` each crossing waited for a whole
 * encoding slice (a 1,000,000-key snapshot cut a loaded node's throughput to a seventh). With a pause as long
 * as the slice, the writer takes at most half the node's time; a snapshot takes longer to write, clients wait
 * less.
 */
const YIELD_PAUSE_MS = 2;

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await file.write(bytes.subarray(off));
}

async function syncDir(path: string): Promise<void> {
  const d = await Deno.open(path, { read: true });
  try {
    await d.sync();
  } finally {
    d.close();
  }
}

/** The path of the snapshot in the node folder `folder`. */
export function snapshotPath(folder: string): string {
  return joinPath(folder, SNAPSHOT_FILE);
}

/** `snapshot.txt.tmp-<index>`: this node's own snapshot at `index`, written, waiting for its rename. */
export function ownSnapshotTmpPath(folder: string, index: number): string {
  return `${snapshotPath(folder)}.tmp-${index}`;
}

/** What a reader of a damaged snapshot is told to do. */
export function snapshotRecoveryAdvice(path: string): string {
  return `to recover, stop this node, delete its folder ${parentDir(path)} and start it again: ` +
    `the leader then sends it a fresh snapshot`;
}

function corruptSnapshot(path: string, line: number, reason: string): StorageError {
  return new StorageError(
    "corrupt",
    `corrupt snapshot ${path} line ${line}: ${reason}; ${snapshotRecoveryAdvice(path)}`,
    { path, line },
  );
}

/**
 * Writes `source` as `<folder>/snapshot.txt`: temp file, chunked writes, fsync, rename, fsync the folder.
 * Resolves with the file's size in bytes once it is durable.
 *
 * @throws StorageError `io` (the temp file is removed) or `invalid` when the source's counts are wrong.
 */
export async function writeSnapshotFile(
  folder: string,
  source: SnapshotSource,
  options: SnapshotWriteOptions = {},
): Promise<number> {
  const path = snapshotPath(folder);
  // A node's own snapshot gets a temp name of its own: the store renames it later, while the next one may be
  // being written already.
  const tmp = options.rename === false ? ownSnapshotTmpPath(folder, source.header.index) : `${path}.tmp`;
  const perChunk = options.pairsPerChunk ?? 512;
  const syncEvery = options.syncEveryBytes ?? SYNC_EVERY_BYTES;
  const h = source.header;
  let file: Deno.FsFile;
  try {
    file = await Deno.open(tmp, { write: true, create: true, truncate: true });
  } catch (e) {
    throw new StorageError("io", `cannot create ${tmp}: ${describe(e)}`, { path: tmp, cause: e });
  }
  let size = 0;
  try {
    const head: string[] = [encodeSnapshotHeaderText(h)];
    if (h.config !== undefined) head.push(encodeSnapshotConfigText(h.config));
    let sessions = 0;
    for (const [c, s] of source.sessions()) {
      head.push(encodeSnapshotSessionText(c, s));
      sessions++;
    }
    if (sessions !== h.sessions) {
      throw new StorageError(
        "invalid",
        `snapshot source gave ${sessions} sessions, header says ${h.sessions}`,
      );
    }
    let bytes = encodeLines(head);
    await writeAll(file, bytes);
    size += bytes.length;
    let pairs = 0, syncedSize = 0;
    let buf = new Uint8Array(64 * 1024);
    let sliceStartMs = performance.now();
    for (;;) {
      // A file write's promise can settle without the event loop turning (timers and sockets wait): give the
      // node its turn every few milliseconds of encoding, so a large snapshot never stalls clients for long.
      if (performance.now() - sliceStartMs >= YIELD_EVERY_MS) {
        await new Promise((resolve) => setTimeout(resolve, YIELD_PAUSE_MS));
        sliceStartMs = performance.now();
      }
      const chunk = source.nextPairs(perChunk);
      if (chunk.length === 0) break;
      pairs += chunk.length;
      let off = 0;
      for (const [k, v, version] of chunk) {
        // Straight into the buffer: no string per line (a 1,000,000-key snapshot made ~250 MB of garbage
        // that way, and the collections it caused are what clients waited for).
        let next = encodeSnapshotPairInto(k, v, version, buf, off);
        while (next < 0) {
          const bigger = new Uint8Array(Math.max(buf.length * 2, off + (k.length + v.length) * 18 + 64));
          bigger.set(buf.subarray(0, off));
          buf = bigger;
          next = encodeSnapshotPairInto(k, v, version, buf, off);
        }
        off = next;
      }
      await writeAll(file, buf.subarray(0, off));
      size += off;
      if (size - syncedSize >= syncEvery) {
        await file.syncData();
        syncedSize = size;
      }
    }
    if (pairs !== h.keys) {
      throw new StorageError("invalid", `snapshot source gave ${pairs} pairs, header says ${h.keys}`);
    }
    bytes = encodeLines([SNAPSHOT_END_TEXT]);
    await writeAll(file, bytes);
    size += bytes.length;
    await file.sync();
  } catch (e) {
    file.close();
    try {
      await Deno.remove(tmp);
    } catch { /* best effort */ }
    if (e instanceof StorageError) throw e;
    throw new StorageError("io", `cannot write ${tmp}: ${describe(e)}`, { path: tmp, cause: e });
  }
  file.close();
  if (options.rename === false) return size;
  try {
    await Deno.rename(tmp, path);
    await syncDir(folder);
  } catch (e) {
    throw new StorageError("io", `cannot install ${path}: ${describe(e)}`, { path, cause: e });
  }
  return size;
}

/** Bytes read per step by {@link readSnapshotFile}. */
const READ_BLOCK_BYTES = 1 << 20;

/**
 * Reads and checks a snapshot file, feeding `sink` as it goes (header first). Returns the header, or null
 * when the file does not exist. Any damage (a checksum, a line that does not parse, counts that do not
 * match the header, a missing `END`) throws a `corrupt` StorageError naming the file and line and saying
 * how to recover: the caller must refuse to start rather than run without its snapshot.
 */
export async function readSnapshotFile(path: string, sink: SnapshotSink): Promise<SnapshotHeader | null> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new StorageError("io", `cannot open ${path}: ${describe(e)}`, { path, cause: e });
  }
  try {
    const parser = new SnapshotParser(path, sink);
    const block = new Uint8Array(READ_BLOCK_BYTES);
    for (;;) {
      let n: number | null;
      try {
        n = await file.read(block);
      } catch (e) {
        throw new StorageError("io", `cannot read ${path}: ${describe(e)}`, { path, cause: e });
      }
      if (n === null) break;
      parser.push(block.subarray(0, n));
    }
    return parser.finish();
  } finally {
    file.close();
  }
}

/**
 * Parses snapshot bytes pushed in pieces of any size (a file read in blocks, or chunks off the wire).
 *
 * The restore's hot path (a follower parses every chunk as it arrives): each piece is decoded from UTF-8 once
 * and its lines are parsed as ranges of that one string; a piece that is all ASCII (its string as long as its
 * bytes) uses the byte offsets for the string too; a format-2 `KV` line goes to the sink without a record
 * object; only the line torn across two pieces is copied (its start is kept as bytes, so a character split
 * between pieces decodes whole).
 */
export class SnapshotParser {
  /** The start of a line torn at the end of the previous push (bytes, no newline yet). */
  #rest: Uint8Array = new Uint8Array(0);
  #line = 0;
  #header: SnapshotHeader | undefined;
  /** The header's format version (version 1's lines may stop early). */
  #format: number | undefined;
  #keys = 0;
  #sessions = 0;
  #ended = false;
  readonly #kv: SnapshotKvSlot = { key: "", value: "", version: 0 };

  constructor(private readonly path: string, private readonly sink: SnapshotSink) {}

  /** Parses every complete line in `bytes` (with what was left over from the previous push). */
  push(bytes: Uint8Array): void {
    // A chunk off the wire is a Node Buffer (protobuf decodes into one): its indexOf is the Node polyfill's,
    // written in JavaScript and ~10 times slower than the typed array's own (a third of a restore's time).
    if (Object.getPrototypeOf(bytes) !== Uint8Array.prototype) {
      bytes = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    }
    let from = 0;
    if (this.#rest.length > 0) {
      // The torn line: its start from before, its end up to the first newline here.
      const nl = bytes.indexOf(0x0a);
      if (nl < 0) {
        const longer = new Uint8Array(this.#rest.length + bytes.length);
        longer.set(this.#rest);
        longer.set(bytes, this.#rest.length);
        this.#rest = longer;
        return;
      }
      const line = new Uint8Array(this.#rest.length + nl + 1);
      line.set(this.#rest);
      line.set(bytes.subarray(0, nl + 1), this.#rest.length);
      this.#rest = new Uint8Array(0);
      this.#lines(line);
      from = nl + 1;
    }
    const end = bytes.lastIndexOf(0x0a) + 1; // after the last complete line (0: none)
    if (end > from) this.#lines(bytes.subarray(from, end));
    const tail = Math.max(end, from);
    if (tail < bytes.length) this.#rest = bytes.slice(tail);
  }

  /** Checks that the file was complete; returns its header. */
  finish(): SnapshotHeader {
    if (this.#rest.length > 0) {
      throw corruptSnapshot(this.path, this.#line + 1, "incomplete last line (the file is truncated)");
    }
    if (this.#header === undefined) throw corruptSnapshot(this.path, 1, "empty file (no SNAPSHOT header)");
    if (!this.#ended) {
      throw corruptSnapshot(this.path, this.#line + 1, "missing END line (the file is truncated)");
    }
    return this.#header;
  }

  /** Parses `bytes`, complete lines only (it ends with a newline). */
  #lines(bytes: Uint8Array): void {
    const text = decoder.decode(bytes);
    // One byte per UTF-16 unit: character offsets are byte offsets. The decoder turns every run of k ≥ 1 bytes
    // (a character, or an invalid sequence's U+FFFD) into at most k units, and into k only when k is 1, so
    // equal lengths mean every byte became exactly one unit.
    const ascii = text.length === bytes.length;
    const kv = this.#kv;
    const n = bytes.length;
    let start = 0;
    let tstart = 0;
    while (start < n) {
      const nl = bytes.indexOf(0x0a, start);
      const tnl = ascii ? nl : text.indexOf("\n", tstart);
      const no = ++this.#line;
      if (this.#ended) throw corruptSnapshot(this.path, no, "text after the END line");
      const bad = checkLineChecksum(bytes, start, nl);
      if (bad !== null) throw corruptSnapshot(this.path, no, bad);
      const h = this.#header;
      if (
        this.#format === SNAPSHOT_FORMAT && bytes[start] === 0x4b && bytes[start + 1] === 0x56 &&
        bytes[start + 2] === 0x20 && h !== undefined
      ) {
        // `KV ` in the current format: the one kind of line there are many of.
        try {
          parseSnapshotKvInto(text, tstart, tnl - CHECKSUM_SUFFIX_BYTES, kv);
        } catch (e) {
          if (e instanceof ParseFailure) throw corruptSnapshot(this.path, no, e.message);
          throw e;
        }
        if (++this.#keys > h.keys) {
          throw corruptSnapshot(this.path, no, `more than the ${h.keys} keys the header announces`);
        }
        this.sink.pair(kv.key, kv.value, kv.version);
      } else {
        this.#other(text, tstart, tnl - CHECKSUM_SUFFIX_BYTES, no);
      }
      start = nl + 1;
      tstart = tnl + 1;
    }
  }

  /** Any line but a format-2 `KV` line: `text[start, end)` without its checksum, line number `no`. */
  #other(text: string, start: number, end: number, no: number): void {
    const fail = (reason: string): never => {
      throw corruptSnapshot(this.path, no, reason);
    };
    let r;
    try {
      r = parseSnapshotRange(text, start, end, this.#format);
    } catch (e) {
      if (e instanceof ParseFailure) fail(e.message);
      throw e;
    }
    const h = this.#header;
    if (r.kind === "header") {
      if (h !== undefined) fail("a second SNAPSHOT header");
      const { format, ...header } = r.header; // the format is this parser's business, not the caller's
      this.#format = format;
      this.#header = header;
      this.sink.header(header);
    } else if (h === undefined) {
      fail("the first line must be the SNAPSHOT header");
    } else if (r.kind === "config") {
      if (h.config !== undefined || this.#sessions > 0 || this.#keys > 0) {
        fail("a CONFIG line after the SESSION or KV lines, or a second one");
      }
      this.#header = { ...h, config: r.config };
    } else if (r.kind === "session") {
      if (this.#keys > 0) fail("a SESSION line after the KV lines");
      if (++this.#sessions > h.sessions) fail(`more than the ${h.sessions} sessions the header announces`);
      // Version 1 without a last index (-1): last used at the snapshot's index.
      const session = r.session.lastIndex < 0 ? { ...r.session, lastIndex: h.index } : r.session;
      this.sink.session(r.clientId, session);
    } else if (r.kind === "kv") {
      if (++this.#keys > h.keys) fail(`more than the ${h.keys} keys the header announces`);
      // Version 1 without versions (0): changed at the latest at the snapshot's index, so that (a CAS on an
      // older version fails, as it would have).
      this.sink.pair(r.key, r.value, r.version === 0 && this.#format === 1 ? h.index : r.version);
    } else {
      if (this.#sessions !== h.sessions || this.#keys !== h.keys) {
        fail(
          `END after ${this.#sessions} sessions and ${this.#keys} keys, the header announces ${h.sessions} and ${h.keys}`,
        );
      }
      this.#ended = true;
    }
  }
}

/** The bytes of a snapshot file for `source`, at once (the simulator's disk; small states only). */
export function encodeSnapshot(source: SnapshotSource): Uint8Array {
  const texts: string[] = [encodeSnapshotHeaderText(source.header)];
  if (source.header.config !== undefined) texts.push(encodeSnapshotConfigText(source.header.config));
  for (const [c, s] of source.sessions()) texts.push(encodeSnapshotSessionText(c, s));
  for (let chunk = source.nextPairs(4096); chunk.length > 0; chunk = source.nextPairs(4096)) {
    for (const [k, v, version] of chunk) texts.push(encodeSnapshotPairText(k, v, version));
  }
  texts.push(SNAPSHOT_END_TEXT);
  return encodeLines(texts);
}

/** Parses a whole snapshot held in memory (the simulator's disk); throws like {@link readSnapshotFile}. */
export function parseSnapshot(bytes: Uint8Array, path: string, sink: SnapshotSink): SnapshotHeader {
  const p = new SnapshotParser(path, sink);
  p.push(bytes);
  return p.finish();
}
