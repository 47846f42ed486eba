/**
 * The text formats of the logs folder: one `logs.txt` line per entry and the `metadata.txt` record.
 *
 * A line is `<text> #<crc32>\n` where `<text>` starts with the assignment's form (`NO-OP <term>`,
 * `SET <key> <value> <term>`, `DEL <key> <term>` or `CAS <key> <expected> <new> <term>`), optionally followed by the client session (`@c=<clientId> s=<seq>`), and the
 * checksum is the CRC-32 of the UTF-8 bytes of `<text>`, as eight lowercase hex digits. See README.md.
 *
 * @module
 */

import {
  encodeSnapshotConfig,
  type Membership,
  parseMembership,
  parseSnapshotConfig,
} from "../raft/membership.ts";
import type { CasExpect, Entry, HardState, SnapshotConfig, WriteOutcome } from "../raft/types.ts";
import { crc32, hex8, parseHex8 } from "./crc32.ts";
import { StorageError } from "./errors.ts";

const encoder = new TextEncoder();

// ---------------------------------------------------------------------------------------------------------
// Tokens: a bare word when that is unambiguous and readable, otherwise a JSON string.

/**
 * True for a UTF-16 code unit that must not appear in a bare word: ASCII controls and space, `"` and `\`,
 * DEL and the C1 controls, and the Unicode spaces, invisible format characters and line/paragraph
 * separators that would fool a reader or an editor.
 */
function isSpecial(c: number): boolean {
  if (c <= 0x20 || c === 0x22 || c === 0x5c) return true;
  if (c < 0x7f) return false;
  return c <= 0xa0 || c === 0xad || c === 0x1680 || c === 0x180e || (c >= 0x2000 && c <= 0x200f) ||
    (c >= 0x2028 && c <= 0x202f) || (c >= 0x205f && c <= 0x206f) || c === 0x3000 || c === 0xfeff ||
    (c >= 0xfff9 && c <= 0xfffb);
}

/** True if `s` can be written as a bare word: not empty, no special character, no lone surrogate. */
export function isBareWord(s: string): boolean {
  const n = s.length;
  if (n === 0) return false;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800) {
      if (isSpecial(c)) return false;
    } else if (c <= 0xdbff) {
      // A high surrogate must be followed by a low one (a well-formed pair, e.g. an emoji).
      const d = i + 1 < n ? s.charCodeAt(i + 1) : 0;
      if (d < 0xdc00 || d > 0xdfff) return false;
      i++;
    } else if (c <= 0xdfff) {
      return false; // lone low surrogate
    } else if (isSpecial(c)) {
      return false;
    }
  }
  return true;
}

function hex4(c: number): string {
  return "\\u" + c.toString(16).padStart(4, "0");
}

/**
 * Encodes a string as one token: itself when it is a bare word, otherwise a JSON string literal in which
 * every special character is escaped (so a quoted token is plain printable text on one line).
 */
export function encodeToken(s: string): string {
  if (isBareWord(s)) return s;
  const json = JSON.stringify(s); // escapes ", \, controls < 0x20 and lone surrogates
  let out = "";
  let from = 0;
  for (let i = 0; i < json.length; i++) {
    const c = json.charCodeAt(i);
    if (c >= 0x7f && c < 0xd800 && isSpecial(c) || c >= 0xe000 && isSpecial(c)) {
      out += json.slice(from, i) + hex4(c);
      from = i + 1;
    }
  }
  return from === 0 ? json : out + json.slice(from);
}

/** Thrown by the parsers below; the caller turns it into a StorageError naming the file and line. */
export class ParseFailure extends Error {
  override readonly name = "ParseFailure";
}

/**
 * The parse position and the end of the range being parsed (module state: parsing is synchronous and not
 * reentrant). Parsing ranges of one big string avoids a string per line when a whole log is loaded.
 */
let at = 0;
let lim = 0;

/** Reads one token starting at `at`; returns the value and moves `at` after it. */
function readToken(text: string, what: string): string {
  const pos = at;
  if (pos >= lim) throw new ParseFailure(`missing ${what}`);
  if (text.charCodeAt(pos) === 0x22) {
    let j = pos + 1;
    let escaped = false;
    const n = lim;
    while (j < n) {
      const c = text.charCodeAt(j);
      if (c === 0x5c) {
        escaped = true;
        j += 2;
      } else if (c === 0x22) {
        break;
      } else {
        j++;
      }
    }
    if (j >= n) throw new ParseFailure(`unterminated quoted ${what}`);
    at = j + 1;
    if (!escaped) return text.slice(pos + 1, j);
    try {
      return JSON.parse(text.slice(pos, j + 1)) as string;
    } catch {
      throw new ParseFailure(`bad escape in quoted ${what}`);
    }
  }
  let end = text.indexOf(" ", pos);
  if (end < 0 || end > lim) end = lim;
  if (end === pos) throw new ParseFailure(`empty ${what}`);
  at = end;
  return text.slice(pos, end);
}

/** Reads a non-negative decimal integer (a safe integer) at `at`. */
function readUint(text: string, what: string): number {
  const start = at;
  let v = 0;
  let i = start;
  const n = lim;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c < 0x30 || c > 0x39) break;
    v = v * 10 + (c - 0x30);
    i++;
  }
  if (i === start) throw new ParseFailure(`missing or malformed ${what}`);
  if (i - start > 16 || !Number.isSafeInteger(v)) throw new ParseFailure(`${what} too large`);
  at = i;
  return v;
}

function expect(text: string, literal: string, what: string): void {
  if (at + literal.length > lim || !text.startsWith(literal, at)) throw new ParseFailure(`expected ${what}`);
  at += literal.length;
}

// ---------------------------------------------------------------------------------------------------------
// logs.txt lines

/**
 * An entry's assignment as logs.txt words it, up to the term: `SET name1 Jon 1`, `NO-OP 1`. `admin dump-log`
 * prints the same words (one string encoder for both).
 */
export function encodeEntryHead(e: Entry): string {
  const c = e.command;
  switch (c.op) {
    case "noop":
      return `NO-OP ${e.term}`;
    case "config":
      return `CONFIG ${encodeToken(JSON.stringify(c.membership))} ${e.term}`;
    case "set":
      return `SET ${encodeToken(c.key)} ${encodeToken(c.value)} ${e.term}`;
    case "del":
      return `DEL ${encodeToken(c.key)} ${e.term}`;
    case "cas":
      return `CAS ${encodeToken(c.key)} ${encodeCasExpect(c.expect)} ${encodeToken(c.value)} ${e.term}`;
  }
}

/** The human part of an entry's line (no checksum, no newline), e.g. `SET name1 Jon 1 @c=cli-4f2a s=17`. */
export function encodeEntryText(e: Entry): string {
  const c = e.command;
  const s = encodeEntryHead(e);
  if (c.op !== "noop" && c.op !== "config" && (c.clientId !== "" || c.seq !== 0)) {
    return `${s} @c=${encodeToken(c.clientId)} s=${c.seq}`;
  }
  return s;
}

/**
 * A CAS's expectation as one token: the expected value (quoted when it starts with `@`, so it cannot be read
 * as a marker), `@absent` (version 0) or `@v=<version>`.
 */
export function encodeCasExpect(expect: CasExpect): string {
  if ("version" in expect) return expect.version === 0 ? "@absent" : `@v=${expect.version}`;
  const t = encodeToken(expect.value);
  return t.startsWith("@") ? JSON.stringify(expect.value) : t;
}

function readCasExpect(text: string): CasExpect {
  if (text.charCodeAt(at) !== 0x40) return { value: readToken(text, "expected value") };
  if (text.startsWith("@absent", at)) {
    at += 7;
    return { version: 0 };
  }
  expect(text, "@v=", "'@absent', '@v=<version>' or the expected value");
  return { version: readUint(text, "expected version") };
}

/** The optional ` @c=<clientId> s=<seq>` session suffix after the term, then the end of the text. */
function readSessionSuffix(text: string): { clientId: string; seq: number } {
  let clientId = "";
  let seq = 0;
  if (at < lim) {
    expect(text, " @c=", "' @c=<clientId> s=<seq>' or the end after the term");
    clientId = readToken(text, "client id");
    expect(text, " s=", "' s=<seq>' after the client id");
    seq = readUint(text, "sequence number");
  }
  if (at !== lim) throw new ParseFailure("unexpected text after the entry");
  return { clientId, seq };
}

/** The checksum suffix is always ` #` and eight hex digits: 10 bytes before the newline. */
export const CHECKSUM_SUFFIX_BYTES = 10;

/**
 * Encodes entries as consecutive complete lines in one buffer. `ends[i]` is the byte offset just after the
 * newline of entry `i`, relative to the start of the buffer.
 */
export function encodeEntryLines(entries: readonly Entry[]): { bytes: Uint8Array; ends: number[] } {
  const texts: string[] = new Array(entries.length);
  let cap = 0;
  for (let i = 0; i < entries.length; i++) {
    const t = encodeEntryText(entries[i]);
    texts[i] = t;
    cap += t.length * 3 + CHECKSUM_SUFFIX_BYTES + 1;
  }
  const buf = new Uint8Array(cap);
  const ends: number[] = new Array(entries.length);
  let off = 0;
  for (let i = 0; i < texts.length; i++) {
    const { written } = encoder.encodeInto(texts[i], buf.subarray(off));
    const sum = hex8(crc32(buf, off, off + written));
    off += written;
    buf[off++] = 0x20; // ' '
    buf[off++] = 0x23; // '#'
    for (let k = 0; k < 8; k++) buf[off++] = sum.charCodeAt(k);
    buf[off++] = 0x0a;
    ends[i] = off;
  }
  return { bytes: buf.subarray(0, off), ends };
}

/**
 * Checks the checksum of the line `bytes[start, end)` (without its newline). Returns null when it holds,
 * otherwise the reason.
 */
export function checkLineChecksum(bytes: Uint8Array, start: number, end: number): string | null {
  const textEnd = end - CHECKSUM_SUFFIX_BYTES;
  if (textEnd <= start || bytes[textEnd] !== 0x20 || bytes[textEnd + 1] !== 0x23) {
    return "missing checksum";
  }
  const want = parseHex8(bytes, textEnd + 2);
  if (want < 0) return "malformed checksum";
  if (crc32(bytes, start, textEnd) !== want) return "checksum mismatch";
  return null;
}

/** Parses the human part of a line (checksum already removed) into the entry at `index`. */
export function parseEntryText(text: string, index: number): Entry {
  return parseEntryRange(text, 0, text.length, index);
}

/** Parses `text[start, end)` (the human part of a line) into the entry at `index`. */
export function parseEntryRange(text: string, start: number, end: number, index: number): Entry {
  at = start;
  lim = end;
  if (end - start >= 4 && text.startsWith("SET ", start)) {
    at += 4;
    const key = readToken(text, "key");
    expect(text, " ", "a space after the key");
    const value = readToken(text, "value");
    expect(text, " ", "a space after the value");
    const term = readUint(text, "term");
    const { clientId, seq } = readSessionSuffix(text);
    if (term < 1) throw new ParseFailure("term must be at least 1");
    return { index, term, command: { op: "set", key, value, clientId, seq } };
  }
  if (end - start >= 4 && text.startsWith("DEL ", start)) {
    at += 4;
    const key = readToken(text, "key");
    expect(text, " ", "a space after the key");
    const term = readUint(text, "term");
    const { clientId, seq } = readSessionSuffix(text);
    if (term < 1) throw new ParseFailure("term must be at least 1");
    return { index, term, command: { op: "del", key, clientId, seq } };
  }
  if (end - start >= 4 && text.startsWith("CAS ", start)) {
    at += 4;
    const key = readToken(text, "key");
    expect(text, " ", "a space after the key");
    const casExpect = readCasExpect(text);
    expect(text, " ", "a space after the expected value");
    const value = readToken(text, "new value");
    expect(text, " ", "a space after the new value");
    const term = readUint(text, "term");
    const { clientId, seq } = readSessionSuffix(text);
    if (term < 1) throw new ParseFailure("term must be at least 1");
    return { index, term, command: { op: "cas", key, expect: casExpect, value, clientId, seq } };
  }
  if (end - start >= 6 && text.startsWith("NO-OP ", start)) {
    at += 6;
    const term = readUint(text, "term");
    if (at !== lim) throw new ParseFailure("unexpected text after the entry");
    if (term < 1) throw new ParseFailure("term must be at least 1");
    return { index, term, command: { op: "noop" } };
  }
  if (end - start >= 7 && text.startsWith("CONFIG ", start)) {
    at += 7;
    const json = readToken(text, "configuration");
    expect(text, " ", "a space after the configuration");
    const term = readUint(text, "term");
    if (at !== lim) throw new ParseFailure("unexpected text after the entry");
    if (term < 1) throw new ParseFailure("term must be at least 1");
    return { index, term, command: { op: "config", membership: parseMembershipJson(json) } };
  }
  throw new ParseFailure("unknown operation (expected SET, DEL, CAS, NO-OP or CONFIG)");
}

/** A CONFIG line's configuration (JSON), checked for shape. */
function parseMembershipJson(json: string): Membership {
  try {
    return parseMembership(json);
  } catch (e) {
    throw new ParseFailure(e instanceof Error ? e.message : String(e));
  }
}

// ---------------------------------------------------------------------------------------------------------
// metadata.txt

/** The current metadata format version. */
export const METADATA_FORMAT = 1;

/** What metadata.txt records. */
export interface Metadata {
  readonly nodeId: number;
  readonly clusterId: string;
  readonly hardState: HardState;
  /** The number of log entries known committed (a restart hint; never beyond the durable log). */
  readonly commitLength: number;
}

const METADATA_HEADER = "# raftkv node state. Rewritten atomically by the node; do not edit.";

/** Renders metadata.txt: `key: value` lines, ending with a checksum line over all preceding bytes. */
export function encodeMetadata(m: Metadata): string {
  const body = `${METADATA_HEADER}\n` +
    `format: ${METADATA_FORMAT}\n` +
    `nodeId: ${m.nodeId}\n` +
    `clusterId: ${encodeToken(m.clusterId)}\n` +
    `term: ${m.hardState.term}\n` +
    `votedFor: ${m.hardState.votedFor}\n` +
    (m.hardState.promisedLeaseMs ? `promisedLeaseMs: ${m.hardState.promisedLeaseMs}\n` : "") +
    `commitLength: ${m.commitLength}\n`;
  return `${body}checksum: ${hex8(crc32(encoder.encode(body)))}\n`;
}

/** Parses metadata.txt; a StorageError (`corrupt`) names `path` and the 1-based line at fault. */
export function parseMetadata(text: string, path: string): Metadata {
  const fail = (line: number, reason: string): never => {
    throw new StorageError("corrupt", `corrupt metadata in ${path} line ${line}: ${reason}`, { path, line });
  };
  if (text.length > 0 && !text.endsWith("\n")) {
    fail(text.split("\n").length, "incomplete last line");
  }
  const lines = text.split("\n");
  lines.pop(); // the empty string after the final newline
  const values = new Map<string, string>();
  const lineOf = new Map<string, number>();
  let checksumSeen = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const no = i + 1;
    if (checksumSeen) fail(no, "text after the checksum line");
    if (line === "" || line.startsWith("#")) continue;
    const colon = line.indexOf(": ");
    if (colon <= 0) fail(no, "expected 'key: value'");
    const key = line.slice(0, colon);
    const value = line.slice(colon + 2);
    if (key === "checksum") {
      const want = value.length === 8 ? parseHex8(encoder.encode(value), 0) : -1;
      if (want < 0) fail(no, "malformed checksum");
      if (crc32(encoder.encode(text.slice(0, textOffsetOfLine(lines, i)))) !== want) {
        fail(no, "checksum mismatch");
      }
      checksumSeen = true;
      continue;
    }
    if (values.has(key)) fail(no, `duplicate key '${key}'`);
    values.set(key, value);
    lineOf.set(key, no);
  }
  if (!checksumSeen) fail(lines.length + 1, "missing 'checksum: <crc32>' line");
  const end = lines.length + 1;
  const uint = (key: string): number => {
    const v = values.get(key);
    if (v === undefined) return fail(end, `missing '${key}'`);
    if (!/^(0|[1-9][0-9]{0,15})$/.test(v) || !Number.isSafeInteger(Number(v))) {
      fail(lineOf.get(key)!, `'${key}' is not a non-negative integer`);
    }
    return Number(v);
  };
  const format = uint("format");
  if (format !== METADATA_FORMAT) {
    fail(lineOf.get("format")!, `unsupported format version ${format} (this build reads ${METADATA_FORMAT})`);
  }
  const known = new Set([
    "format",
    "nodeId",
    "clusterId",
    "term",
    "votedFor",
    "promisedLeaseMs",
    "commitLength",
  ]);
  for (const [k, no] of lineOf) if (!known.has(k)) fail(no, `unknown key '${k}'`);
  const rawCluster = values.get("clusterId");
  if (rawCluster === undefined) return fail(end, "missing 'clusterId'");
  let clusterId: string;
  try {
    at = 0;
    lim = rawCluster.length;
    clusterId = readToken(rawCluster, "cluster id");
    if (at !== rawCluster.length) throw new ParseFailure("unexpected text after the cluster id");
  } catch (e) {
    return fail(lineOf.get("clusterId")!, e instanceof Error ? e.message : String(e));
  }
  // The largest lease this node ever promised (a duration in ms); absent in files written before it existed.
  const rawPromised = values.get("promisedLeaseMs");
  let promisedLeaseMs = 0;
  if (rawPromised !== undefined) {
    promisedLeaseMs = Number(rawPromised);
    if (!/^[0-9]+(\.[0-9]+)?$/.test(rawPromised) || !Number.isFinite(promisedLeaseMs)) {
      fail(lineOf.get("promisedLeaseMs")!, "'promisedLeaseMs' is not a non-negative number of ms");
    }
  }
  return {
    nodeId: uint("nodeId"),
    clusterId,
    hardState: promisedLeaseMs > 0
      ? { term: uint("term"), votedFor: uint("votedFor"), promisedLeaseMs }
      : { term: uint("term"), votedFor: uint("votedFor") },
    commitLength: uint("commitLength"),
  };
}

function textOffsetOfLine(lines: readonly string[], i: number): number {
  let off = 0;
  for (let k = 0; k < i; k++) off += lines[k].length + 1;
  return off;
}

// ---------------------------------------------------------------------------------------------------------
// snapshot.txt lines (see snapshot_file.ts): the same `<text> #<crc32>` framing and tokens as logs.txt.

/**
 * The current snapshot format version. 2: `KV` lines carry the key's version, `SESSION` lines the session's
 * fingerprint, last index and kept outcome, and an optional `CONFIG` line follows the header. Version 1 (the
 * first snapshots: `KV <key> <value>`, `SESSION <client> <seq>`, and files of builds in between that wrote the
 * longer lines under the same number) is still read; a build that reads only version 1 refuses a version-2
 * file with "unsupported format version 2".
 */
export const SNAPSHOT_FORMAT = 2;
/** The oldest snapshot format this build reads. */
export const SNAPSHOT_FORMAT_MIN = 1;

/** The first line of snapshot.txt: where the snapshot stands in the log and what it holds. */
export interface SnapshotHeader {
  /** Index of the last log entry the snapshot includes. */
  readonly index: number;
  /** Term of that entry. */
  readonly term: number;
  /** Number of `KV` lines. */
  readonly keys: number;
  /** Number of `SESSION` lines. */
  readonly sessions: number;
  /**
   * The configuration in force at `index` (the `CONFIG` line after the header; issue 11): where a node whose
   * log was compacted past a configuration entry finds its membership. Absent in older files.
   */
  readonly config?: SnapshotConfig;
  /** The format version a parsed header line names (SnapshotParser keeps it to itself). */
  readonly format?: number;
}

/** One parsed snapshot line. */
export type SnapshotRecord =
  | { readonly kind: "header"; readonly header: SnapshotHeader }
  | { readonly kind: "kv"; readonly key: string; readonly value: string; readonly version: number }
  | { readonly kind: "session"; readonly clientId: string; readonly session: SnapshotSession }
  | { readonly kind: "config"; readonly config: SnapshotConfig }
  | { readonly kind: "end" };

/** An exactly-once session as a snapshot holds it (the state machine's session record). */
export interface SnapshotSession {
  /** The session's last applied seq. */
  readonly seq: number;
  /** Fingerprint of that write (a retry must be the same write). */
  readonly fingerprint: number;
  /** Log index of the session's last write (its idle time counts from here). */
  readonly lastIndex: number;
  /** What that write did: a retry of it is answered with this (a CAS is never evaluated twice). */
  readonly outcome: WriteOutcome;
}

/** `SNAPSHOT format=1 index=<i> term=<t> keys=<n> sessions=<m>`. */
export function encodeSnapshotHeaderText(h: SnapshotHeader): string {
  return `SNAPSHOT format=${SNAPSHOT_FORMAT} index=${h.index} term=${h.term} keys=${h.keys} sessions=${h.sessions}`;
}

/** `CONFIG <json>`: the configuration in force at the snapshot's index, as JSON {index, membership, everUsed}. */
export function encodeSnapshotConfigText(c: SnapshotConfig): string {
  return `CONFIG ${encodeToken(encodeSnapshotConfig(c))}`;
}

/** `KV <key> <value> <version>` (the version: the log index of the key's last change). */
export function encodeSnapshotPairText(key: string, value: string, version: number): string {
  return `KV ${encodeToken(key)} ${encodeToken(value)} ${version}`;
}

/**
 * `SESSION <clientId> <seq> <fingerprint> <lastIndex> <succeeded|failed> <found|absent> <version> <value>`:
 * the session's record, then the outcome of its last write (what a retry of it is answered).
 */
export function encodeSnapshotSessionText(clientId: string, s: SnapshotSession): string {
  const o = s.outcome;
  return `SESSION ${encodeToken(clientId)} ${s.seq} ${s.fingerprint} ${s.lastIndex} ` +
    `${o.succeeded ? "succeeded" : "failed"} ${o.found ? "found" : "absent"} ${o.version} ${
      encodeToken(o.value)
    }`;
}

/** Reads one of two words (`yes` → true, `no` → false) at the cursor. */
function readFlag(text: string, yes: string, no: string, what: string): boolean {
  if (text.startsWith(yes, at) && (at + yes.length === lim || text[at + yes.length] === " ")) {
    at += yes.length;
    return true;
  }
  if (text.startsWith(no, at) && (at + no.length === lim || text[at + no.length] === " ")) {
    at += no.length;
    return false;
  }
  throw new ParseFailure(`expected '${yes}' or '${no}' (${what})`);
}

/** The last line: its presence shows the file is complete. */
export const SNAPSHOT_END_TEXT = "END";

/** Appends `text` as one checksummed line (`<text> #<crc32>\n`) to `buf` at `off`; returns the new offset. */
export function encodeLineInto(text: string, buf: Uint8Array, off: number): number {
  const { written } = encoder.encodeInto(text, buf.subarray(off));
  const sum = hex8(crc32(buf, off, off + written));
  off += written;
  buf[off++] = 0x20; // ' '
  buf[off++] = 0x23; // '#'
  for (let k = 0; k < 8; k++) buf[off++] = sum.charCodeAt(k);
  buf[off++] = 0x0a;
  return off;
}

/** The lowercase hex digits, as bytes. */
const HEX_BYTES = new TextEncoder().encode("0123456789abcdef");

/**
 * Copies `s` into `buf` at `off` when it is a bare word of printable ASCII (the common key or value), and
 * returns the new offset; returns -1, having written nothing that counts, for anything else. `buf` must have
 * room for `s.length` bytes.
 */
function copyAsciiBareWord(s: string, buf: Uint8Array, off: number): number {
  const n = s.length;
  if (n === 0) return -1;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f || c === 0x22 || c === 0x5c) return -1;
    buf[off + i] = c;
  }
  return off + n;
}

/**
 * Appends the checksummed line `KV <key> <value> <version>` to `buf` at `off` and returns the new offset, or
 * -1 when `buf` has no room for it (nothing that counts was written: grow it and call again). The same bytes
 * as {@link encodeSnapshotPairText} then {@link encodeLineInto}, without a string per line: a key or value
 * that is a bare word of printable ASCII is copied as it is, the rest goes through {@link encodeToken}.
 */
export function encodeSnapshotPairInto(
  key: string,
  value: string,
  version: number,
  buf: Uint8Array,
  off: number,
): number {
  const start = off;
  const cap = buf.length;
  // "KV " + key + " " + value + " " + up to 16 digits + " #" + 8 hex digits + "\n".
  if (off + key.length + value.length + 32 > cap) return -1;
  buf[off++] = 0x4b; // 'K'
  buf[off++] = 0x56; // 'V'
  buf[off++] = 0x20;
  let next = copyAsciiBareWord(key, buf, off);
  if (next < 0) {
    const t = encodeToken(key);
    if (off + t.length * 3 + value.length + 29 > cap) return -1;
    next = off + encoder.encodeInto(t, buf.subarray(off)).written;
  }
  off = next;
  buf[off++] = 0x20;
  next = copyAsciiBareWord(value, buf, off);
  if (next < 0) {
    const t = encodeToken(value);
    if (off + t.length * 3 + 28 > cap) return -1;
    next = off + encoder.encodeInto(t, buf.subarray(off)).written;
  }
  off = next;
  buf[off++] = 0x20;
  if (!Number.isSafeInteger(version) || version < 0) throw new RangeError(`bad version ${version}`);
  let d = 1;
  for (let p = 10; p <= version; p *= 10) d++;
  for (let i = d - 1, v = version; i >= 0; i--, v = Math.floor(v / 10)) buf[off + i] = 0x30 + (v % 10);
  off += d;
  const sum = crc32(buf, start, off);
  buf[off++] = 0x20; // ' '
  buf[off++] = 0x23; // '#'
  for (let shift = 28; shift >= 0; shift -= 4) buf[off++] = HEX_BYTES[(sum >>> shift) & 0xf];
  buf[off++] = 0x0a;
  return off;
}

/** Encodes texts as checksummed lines in one buffer. */
export function encodeLines(texts: readonly string[]): Uint8Array {
  let cap = 0;
  for (const t of texts) cap += t.length * 3 + CHECKSUM_SUFFIX_BYTES + 1;
  const buf = new Uint8Array(cap);
  let off = 0;
  for (const t of texts) off = encodeLineInto(t, buf, off);
  return buf.subarray(0, off);
}

/** Where {@link parseSnapshotKvInto} puts a `KV` line's fields (one object reused for every line). */
export interface SnapshotKvSlot {
  key: string;
  value: string;
  version: number;
}

/**
 * The hot path of a snapshot restore: parses `text[start, end)`, a format-2 `KV <key> <value> <version>` line
 * without its checksum, into `out` (no record object per line). The same tokens and refusals as
 * {@link parseSnapshotRange}; throws a {@link ParseFailure}.
 */
export function parseSnapshotKvInto(text: string, start: number, end: number, out: SnapshotKvSlot): void {
  at = start + 3;
  lim = end;
  const key = readToken(text, "key");
  expect(text, " ", "a space after the key");
  const value = readToken(text, "value");
  expect(text, " ", "a space after the value");
  const version = readUint(text, "version");
  if (at !== lim) throw new ParseFailure("unexpected text after the version");
  out.key = key;
  out.value = value;
  out.version = version;
}

/**
 * Parses `text[start, end)` (one snapshot line without its checksum) into a record; `format` is the version
 * the file's header named (version 1's `KV` and `SESSION` lines may stop early, see {@link SNAPSHOT_FORMAT}).
 */
export function parseSnapshotRange(
  text: string,
  start: number,
  end: number,
  format: number = SNAPSHOT_FORMAT,
): SnapshotRecord {
  at = start;
  lim = end;
  if (text.startsWith("KV ", start)) {
    at += 3;
    const key = readToken(text, "key");
    if (format === 1 && at === lim) return { kind: "kv", key, value: "", version: 0 };
    expect(text, " ", "a space after the key");
    const value = readToken(text, "value");
    // Version 1 without versions: 0, which SnapshotParser turns into the snapshot's index.
    if (format === 1 && at === lim) return { kind: "kv", key, value, version: 0 };
    expect(text, " ", "a space after the value");
    const version = readUint(text, "version");
    if (at !== lim) throw new ParseFailure("unexpected text after the version");
    return { kind: "kv", key, value, version };
  }
  if (text.startsWith("SESSION ", start)) {
    at += 8;
    const clientId = readToken(text, "client id");
    expect(text, " ", "a space after the client id");
    const seq = readUint(text, "sequence number");
    if (format === 1 && at === lim) {
      // Version 1's first shape: no fingerprint, so a retry of that write is refused as stale (never applied
      // twice), and the session counts as last used at the snapshot's index.
      const outcome = { succeeded: true, found: true, version: 0, value: "" };
      return { kind: "session", clientId, session: { seq, fingerprint: 0, lastIndex: -1, outcome } };
    }
    expect(text, " ", "a space after the sequence number");
    const fingerprint = readUint(text, "fingerprint");
    expect(text, " ", "a space after the fingerprint");
    const lastIndex = readUint(text, "last index");
    expect(text, " ", "a space after the last index");
    const succeeded = readFlag(text, "succeeded", "failed", "the last write's outcome");
    expect(text, " ", "a space after the outcome");
    const found = readFlag(text, "found", "absent", "whether the key was found");
    expect(text, " ", "a space after found/absent");
    const version = readUint(text, "outcome version");
    expect(text, " ", "a space after the outcome version");
    const value = readToken(text, "outcome value");
    if (at !== lim) throw new ParseFailure("unexpected text after the session's outcome value");
    return {
      kind: "session",
      clientId,
      session: { seq, fingerprint, lastIndex, outcome: { succeeded, found, version, value } },
    };
  }
  if (end - start === SNAPSHOT_END_TEXT.length && text.startsWith(SNAPSHOT_END_TEXT, start)) {
    return { kind: "end" };
  }
  if (text.startsWith("CONFIG ", start)) {
    at += 7;
    const json = readToken(text, "configuration");
    if (at !== lim) throw new ParseFailure("unexpected text after the configuration");
    try {
      return { kind: "config", config: parseSnapshotConfig(json) };
    } catch (e) {
      throw new ParseFailure(e instanceof Error ? e.message : String(e));
    }
  }
  if (text.startsWith("SNAPSHOT ", start)) {
    at += 9;
    expect(text, "format=", "'format=<n>'");
    const version = readUint(text, "format");
    if (version < SNAPSHOT_FORMAT_MIN || version > SNAPSHOT_FORMAT) {
      throw new ParseFailure(
        `unsupported format version ${version} (this build reads ${SNAPSHOT_FORMAT_MIN} to ${SNAPSHOT_FORMAT})`,
      );
    }
    expect(text, " index=", "' index=<n>'");
    const index = readUint(text, "index");
    expect(text, " term=", "' term=<n>'");
    const term = readUint(text, "term");
    expect(text, " keys=", "' keys=<n>'");
    const keys = readUint(text, "keys");
    expect(text, " sessions=", "' sessions=<n>'");
    const sessions = readUint(text, "sessions");
    if (at !== lim) throw new ParseFailure("unexpected text after the header");
    return { kind: "header", header: { index, term, keys, sessions, format: version } };
  }
  throw new ParseFailure("unknown line (expected SNAPSHOT, CONFIG, KV, SESSION or END)");
}

// ---------------------------------------------------------------------------------------------------------
// The first line of a compacted logs.txt.

/** `BASE <index> <term>`: the entries before were compacted into snapshot.txt; the next line is index + 1. */
export function encodeBaseText(index: number, term: number): string {
  return `BASE ${index} ${term}`;
}

/** Parses `text[start, end)` as a BASE line, or returns null when it is not one. */
export function parseBaseRange(
  text: string,
  start: number,
  end: number,
): { index: number; term: number } | null {
  if (!text.startsWith("BASE ", start)) return null;
  at = start + 5;
  lim = end;
  const index = readUint(text, "base index");
  expect(text, " ", "a space after the base index");
  const term = readUint(text, "base term");
  if (at !== lim) throw new ParseFailure("unexpected text after the base term");
  return { index, term };
}
