/**
 * A LogTape sink that appends formatted records to a file in batches: the records logged during one
 * synchronous stretch of code go out in one `write` when it yields (a microtask), and the file is fsynced in
 * the background at most once per `syncIntervalMs` (and at close).
 *
 * Why not `@logtape/file`: its `getFileSink` fsyncs on every flush, and in its default mode it flushes every
 * record shorter than 200 bytes on its own, so each dump line cost a write and an fsync. dump.txt gets a line
 * per heartbeat, per committed entry and per GET, so that was 15–27 % of a node's CPU and halved a follower's
 * catch-up rate (docs/benchmarks.md). dump.txt is a diagnostic record, not state: raftkv never reads it back.
 * A line is in the kernel's page cache as soon as the code that logged it yields, so `kill -9` of the
 * process loses nothing already logged; only a crash of the whole machine can lose up to `syncIntervalMs` of
 * lines.
 *
 * @module
 */

import type { LogRecord, Sink } from "@logtape/logtape";

export interface BatchedFileSinkOptions {
  /** Renders one record as its line (with the trailing newline). */
  readonly formatter: (record: LogRecord) => string;
  /** Background fsync at most this often while lines are written. Default 1000. */
  readonly syncIntervalMs?: number;
  /** Write at once when this many bytes are waiting, without waiting for the code to yield. Default 64 KiB. */
  readonly maxBufferBytes?: number;
}

/** A sink for `path` (opened for appending, created if missing). Dispose it to flush, fsync and close. */
export function getBatchedFileSink(path: string, options: BatchedFileSinkOptions): Sink & AsyncDisposable {
  const file = Deno.openSync(path, { create: true, append: true });
  const encoder = new TextEncoder();
  const syncIntervalMs = options.syncIntervalMs ?? 1000;
  const maxBufferBytes = options.maxBufferBytes ?? 64 * 1024;
  let pending: string[] = [];
  let pendingChars = 0;
  let flushScheduled = false;
  let dirty = false;
  let syncTimer: ReturnType<typeof setTimeout> | undefined;
  let syncing: Promise<void> = Promise.resolve();
  let closed = false;

  const writeAll = (bytes: Uint8Array) => {
    let off = 0;
    while (off < bytes.length) off += file.writeSync(bytes.subarray(off));
  };

  const flush = () => {
    flushScheduled = false;
    if (pending.length === 0) return;
    const text = pending.length === 1 ? pending[0] : pending.join("");
    pending = [];
    pendingChars = 0;
    try {
      writeAll(encoder.encode(text));
    } catch (e) {
      // A diagnostic log must never take the node down; say so once per failure on stderr.
      console.error(`dump: cannot write ${path}: ${e instanceof Error ? e.message : String(e)}`);
      return;
    }
    dirty = true;
    if (syncTimer === undefined && !closed) {
      syncTimer = setTimeout(() => {
        syncTimer = undefined;
        if (!dirty) return;
        dirty = false;
        syncing = syncing.then(() => file.syncData()).catch(() => {});
      }, syncIntervalMs);
      Deno.unrefTimer(syncTimer);
    }
  };

  const sink = (record: LogRecord): void => {
    if (closed) return;
    const line = options.formatter(record);
    pending.push(line);
    pendingChars += line.length;
    if (pendingChars >= maxBufferBytes) {
      flush();
    } else if (!flushScheduled) {
      // A microtask, not a timer: the lines of one synchronous stretch (a loop batch's events) still go out
      // in one write, and a timer per batch cost more than the write (node-compat timers).
      flushScheduled = true;
      queueMicrotask(flush);
    }
  };

  return Object.assign(sink, {
    async [Symbol.asyncDispose](): Promise<void> {
      if (closed) return;
      flush();
      closed = true;
      if (syncTimer !== undefined) clearTimeout(syncTimer);
      await syncing;
      try {
        if (dirty) await file.syncData();
      } finally {
        file.close();
      }
    },
  });
}
