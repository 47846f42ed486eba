/**
 * `DIR/logs_node_<id>/dump.txt`: the node's human-readable event log, one timestamped line per event
 * (`2026-11-23T12:00:00.123Z Node 2 became the leader for term 3.`), written through LogTape.
 *
 * Sink: `batched_file_sink.ts`, which writes the lines logged in one synchronous stretch in one `write` and
 * fsyncs at most once a second in the background (a line is in the page cache once the logging code yields, so
 * `kill -9` loses none). `close()` flushes, fsyncs and closes: await it on every exit path.
 *
 * LogTape's configuration is process-global: this module owns it. Several dumps (one per node id) may be open
 * at once in one process (tests, a local cluster); each has its own file and category `["raftkv", "node<id>"]`.
 * Opening a dump fails if something else already configured LogTape.
 *
 * @module
 */

import {
  configure,
  getConfig,
  getConsoleSink,
  getJsonLinesFormatter,
  getLogger,
  type LogRecord,
  reset,
  type Sink,
} from "@logtape/logtape";
import { getBatchedFileSink } from "./batched_file_sink.ts";
import { DUMP_FILE, joinPath, nodeFolder } from "./paths.ts";

/** A node's dump.txt. */
export interface Dump {
  /** The file written. */
  readonly path: string;
  /** Appends a line. Never throws; ignored after `close`. */
  info(message: string): void;
  /** Appends a line marked `WARNING`. */
  warn(message: string): void;
  /** Writes out every buffered line, closes the file and releases the node's LogTape category. */
  close(): Promise<void>;
}

/** Options of {@link openDump}. */
export interface DumpOptions {
  /** Also echo every line to the console (prefixed with the node id). Default false. */
  readonly console?: boolean;
  /**
   * How the console echo (the node's operational log on stdout) looks: `text` (default: `<ISO time> node2 …`,
   * as dump.txt) or `json` (JSON lines for journald or a log agent: `@timestamp`, `level`, `logger`, `message`,
   * `node`). dump.txt itself always keeps the text form.
   */
  readonly consoleFormat?: "text" | "json";
  /** Rotate dump.txt when it reaches this size (default 10 MiB): dump.txt → dump.txt.1 → … */
  readonly maxBytes?: number;
  /** Rotated files kept besides dump.txt (default 5). */
  readonly maxFiles?: number;
}

/** Longest dump line kept whole; the rest is cut with its length shown (a safety net for any message). */
export const DUMP_LINE_MAX_CHARS = 2048;

/** Renders a record's message as one line (newlines in it are escaped as `\n`). */
function messageOf(record: LogRecord): string {
  const parts = record.message;
  let msg = "";
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    msg += typeof p === "string" ? p : String(p);
  }
  if (msg.includes("\n") || msg.includes("\r")) msg = msg.replaceAll("\r", "\\r").replaceAll("\n", "\\n");
  if (msg.length > DUMP_LINE_MAX_CHARS) msg = `${msg.slice(0, DUMP_LINE_MAX_CHARS)}…(${msg.length} chars)`;
  return record.level === "info" ? msg : `${record.level.toUpperCase()} ${msg}`;
}

let lastTimestamp = NaN;
let lastIso = "";

/** `toISOString` of a LogTape timestamp, reused while it stays the same (a catch-up logs thousands per ms). */
function isoOf(timestamp: number): string {
  if (timestamp !== lastTimestamp) {
    lastTimestamp = timestamp;
    lastIso = new Date(timestamp).toISOString();
  }
  return lastIso;
}

/** The dump line: `<ISO-8601 UTC wall time> <message>\n`. Wall time is for humans only. */
export function formatDumpLine(record: LogRecord): string {
  return `${isoOf(record.timestamp)} ${messageOf(record)}\n`;
}

/**
 * Tells LogTape that a sink is done with a record when it returns (ours formats it at once and keeps only the
 * text), so LogTape need not copy every record's properties first: that copy was ~30 µs per dump line in a
 * leader's profile. The symbol is the one LogTape's own synchronous sinks carry; should a LogTape release
 * stop reading it, records are merely copied again.
 */
function markImmediate(sink: Sink): Sink {
  (sink as unknown as Record<symbol, boolean>)[Symbol.for("LogTape.sinkSnapshotPolicy.immediate")] = true;
  return sink;
}

interface ActiveDump {
  readonly nodeId: number;
  readonly file: Sink & AsyncDisposable;
  readonly console: boolean;
  readonly consoleFormat: "text" | "json";
}

/** JSON lines (LogTape's formatter), with the node id as a field. */
const jsonLines = getJsonLinesFormatter({ properties: "flatten", categorySeparator: "." });

/** One operational log line as JSON, in the same shape the node's echo uses (for lines outside any dump). */
export function formatJsonLine(level: "info" | "warning" | "error", message: string, fields = {}): string {
  return jsonLines({
    category: ["raftkv", "cli"],
    level,
    message: [message],
    rawMessage: message,
    properties: fields,
    timestamp: Date.now(),
  }).trimEnd();
}

const active = new Map<number, ActiveDump>();
let ownConfig: unknown = null;
let mutation: Promise<void> = Promise.resolve();

/** Serializes changes of the global LogTape configuration. */
function mutate<T>(fn: () => Promise<T>): Promise<T> {
  const p = mutation.then(fn);
  mutation = p.then(() => {}, () => {});
  return p;
}

/** Installs a LogTape configuration routing each open dump's category to its file (and the console). */
async function reconfigure(): Promise<void> {
  const current = getConfig();
  if (current !== null && current !== ownConfig) {
    throw new Error("LogTape was configured outside src/storage/dump.ts, which owns LogTape's configuration");
  }
  if (active.size === 0) {
    await reset();
    ownConfig = null;
    return;
  }
  // The file sinks are wrapped in plain functions so that a reconfiguration never disposes them: each is
  // disposed by its own dump's close().
  const sinks: Record<string, Sink> = { meta: getConsoleSink() };
  const loggers: { category: string[]; sinks: string[]; lowestLevel?: "debug" | "warning" }[] = [
    { category: ["logtape", "meta"], sinks: ["meta"], lowestLevel: "warning" },
  ];
  for (const d of active.values()) {
    const file = d.file;
    sinks[`file${d.nodeId}`] = markImmediate((record: LogRecord) => file(record));
    const ids = [`file${d.nodeId}`];
    if (d.console) {
      const prefix = `node${d.nodeId}`;
      const node = d.nodeId;
      sinks[`console${d.nodeId}`] = getConsoleSink({
        formatter: d.consoleFormat === "json"
          ? (r: LogRecord) => jsonLines({ ...r, properties: { ...r.properties, node } }).trimEnd()
          : (r: LogRecord) => `${isoOf(r.timestamp)} ${prefix} ${messageOf(r)}`,
      });
      ids.push(`console${d.nodeId}`);
    }
    loggers.push({ category: ["raftkv", `node${d.nodeId}`], sinks: ids, lowestLevel: "debug" });
  }
  const config = { reset: true, sinks, loggers };
  await configure(config);
  ownConfig = getConfig();
}

/** The fields of a record written straight to the file sink that its formatter never reads. */
const CATEGORY_UNUSED: readonly string[] = ["raftkv"];
const NO_PROPERTIES: Record<string, unknown> = Object.freeze({});

/** A constant template: `logger.info(TEMPLATE, msg)` logs `msg` verbatim (no `{placeholder}` parsing). */
const TEMPLATE: TemplateStringsArray = ((s: TemplateStringsArray, ..._v: unknown[]) => s)`${""}`;

/**
 * Opens (appending to) `dir/logs_node_<nodeId>/dump.txt`, creating the folder if needed.
 *
 * @throws Error when a dump of the same node is already open in this process, or when LogTape was configured
 *   by someone else.
 */
export function openDump(dir: string, nodeId: number, options: DumpOptions = {}): Promise<Dump> {
  return mutate(async () => {
    if (active.has(nodeId)) throw new Error(`dump.txt of node ${nodeId} is already open in this process`);
    const folder = nodeFolder(dir, nodeId);
    await Deno.mkdir(folder, { recursive: true });
    const path = joinPath(folder, DUMP_FILE);
    const file = getBatchedFileSink(path, {
      formatter: formatDumpLine,
      maxBytes: options.maxBytes ?? 10 * 1024 * 1024,
      maxFiles: options.maxFiles ?? 5,
    });
    const entry: ActiveDump = {
      nodeId,
      file,
      console: options.console ?? false,
      consoleFormat: options.consoleFormat ?? "text",
    };
    active.set(nodeId, entry);
    try {
      await reconfigure();
    } catch (e) {
      active.delete(nodeId);
      await file[Symbol.asyncDispose]();
      throw e;
    }
    const logger = getLogger(["raftkv", `node${nodeId}`]);
    let closed = false;
    let closing: Promise<void> | null = null;
    // Without the console echo the file is the only sink: a line goes straight to it. LogTape's dispatch
    // (level checks, sink plan, record object with lazy properties) cost more than the line itself: 18 % of
    // an idle follower's CPU (a line per heartbeat) and a slice of every SET's path (docs/benchmarks.md).
    const direct = !entry.console;
    const toFile = (level: "info" | "warning", message: string) =>
      file({
        category: CATEGORY_UNUSED,
        level,
        message: [message],
        rawMessage: message,
        properties: NO_PROPERTIES,
        timestamp: Date.now(),
      });
    return {
      path,
      info(message: string): void {
        if (closed) return;
        if (direct) toFile("info", message);
        else logger.info(TEMPLATE, message);
      },
      warn(message: string): void {
        if (closed) return;
        if (direct) toFile("warning", message);
        else logger.warn(TEMPLATE, message);
      },
      close(): Promise<void> {
        closed = true;
        closing ??= mutate(async () => {
          active.delete(nodeId);
          try {
            await reconfigure();
          } finally {
            await file[Symbol.asyncDispose]();
          }
        });
        return closing;
      },
    };
  });
}
