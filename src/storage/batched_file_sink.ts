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
  /**
   * Rotate when the file would grow past this many bytes: `path` becomes `path.1`, `path.1` becomes `path.2`, …,
   * and `path.<maxFiles>` is deleted, so at most (1 + maxFiles) × maxBytes stay on disk. Default: no rotation.
   */
  readonly maxBytes?: number;
  /** Rotated files kept besides `path` (default 5; only with `maxBytes`). */
  readonly maxFiles?: number;
}

/** A sink for `path` (opened for appending, created if missing). Dispose it to flush, fsync and close. */
export function getBatchedFileSink(path: string, options: BatchedFileSinkOptions): Sink & AsyncDisposable {
  let file = Deno.openSync(path, { create: true, append: true });
  const maxBytes = options.maxBytes ?? Infinity;
  const maxFiles = options.maxFiles ?? 5;
  let size = file.statSync().size;
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

  /** path → path.1 → … → path.<maxFiles> (deleted), then a fresh `path`. Rare: synchronous is fine. */
  const rotate = () => {
    try {
      if (dirty) file.syncDataSync();
    } catch { /* the old file's tail may be lost on a machine crash only */ }
    file.close();
    dirty = false;
    try {
      Deno.removeSync(`${path}.${maxFiles}`);
    } catch { /* not there */ }
    for (let i = maxFiles - 1; i >= 1; i--) {
      try {
        Deno.renameSync(`${path}.${i}`, `${path}.${i + 1}`);
      } catch { /* not there */ }
    }
    Deno.renameSync(path, `${path}.1`);
    file = Deno.openSync(path, { create: true, append: true });
    size = 0;
  };

  const flush = () => {
    flushScheduled = false;
    if (pending.length === 0) return;
    const lines = pending;
    const text = lines.length === 1 ? lines[0] : lines.join("");
    pending = [];
    pendingChars = 0;
    try {
      const bytes = encoder.encode(text);
      if (size + bytes.length <= maxBytes) {
        writeAll(bytes);
        size += bytes.length;
      } else {
        // The batch crosses the bound: write it line by line, rotating where a line would not fit, so no file
        // grows past maxBytes (a single line longer than that gets a file of its own).
        for (const line of lines) {
          const b = encoder.encode(line);
          if (size > 0 && size + b.length > maxBytes) rotate();
          writeAll(b);
          size += b.length;
        }
      }
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
        const f = file; // a rotation may replace `file`; it syncs the old one itself
        syncing = syncing.then(() => f.syncData()).catch(() => {});
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
