/**
 * `raftkv admin status --watch [--interval 1s]`: polls every node and redraws the status table in place, with
 * each node's lease remaining and replication lag, until Ctrl-C (exit 0).
 *
 * In a terminal the previous drawing is erased (cursor up, clear to the end of the screen) before the next one,
 * so the table stays put; piped, each refresh is printed after the last one (with `--json`, one JSON array per
 * line), so `--watch | tee` keeps a record.
 *
 * @module
 */
import { renderStatusTable, statusJson, type StatusReader } from "./status.ts";
import { formatDuration } from "./duration.ts";

export interface WatchOptions {
  readonly reader: StatusReader;
  readonly intervalMs: number;
  /** Per-poll deadline. */
  readonly timeoutMs: number;
  readonly json: boolean;
  readonly source: string;
  /** Where to write (default stdout) and whether it is a terminal (default: asks stdout). */
  readonly write?: (text: string) => void;
  readonly isTerminal?: boolean;
  /** Stops the loop (default: SIGINT/SIGTERM). */
  readonly signal?: AbortSignal;
}

const ERASE_UP = (lines: number) => (lines > 0 ? `\x1b[${lines}A\r\x1b[J` : "");
const HIDE_CURSOR = "\x1b[?25l";
const SHOW_CURSOR = "\x1b[?25h";

/** Polls and redraws until the signal (or Ctrl-C); resolves when stopped. */
export async function watchStatus(o: WatchOptions): Promise<void> {
  const encoder = new TextEncoder();
  const write = o.write ?? ((t: string) => void Deno.stdout.writeSync(encoder.encode(t)));
  const tty = o.isTerminal ?? Deno.stdout.isTerminal();
  let signal = o.signal;
  let cleanup = () => {};
  if (!signal) {
    const ac = new AbortController();
    const stop = () => ac.abort();
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
    cleanup = () => {
      Deno.removeSignalListener("SIGINT", stop);
      Deno.removeSignalListener("SIGTERM", stop);
    };
    signal = ac.signal;
  }
  let drawn = 0;
  if (tty && !o.json) write(HIDE_CURSOR);
  try {
    while (!signal.aborted) {
      const started = performance.now();
      const rows = await o.reader.readMembers(o.timeoutMs); // members added later too (issue 11)
      if (signal.aborted) break;
      if (o.json) {
        write(`${JSON.stringify({ time: new Date().toISOString(), nodes: statusJson(rows) })}\n`);
      } else {
        const text = `${new Date().toISOString()}  every ${formatDuration(o.intervalMs)} from ${o.source}` +
          `  (Ctrl-C to stop)\n${renderStatusTable(rows, { lag: true })}\n`;
        write(tty ? ERASE_UP(drawn) + text : `${text}\n`);
        drawn = text.split("\n").length - 1;
      }
      const waitMs = Math.max(0, o.intervalMs - (performance.now() - started));
      await new Promise<void>((resolve) => {
        // One abort listener per wait, removed when the wait ends: a watch left running for days adds none.
        const onAbort = () => {
          clearTimeout(t);
          resolve();
        };
        const t = setTimeout(() => {
          signal!.removeEventListener("abort", onAbort);
          resolve();
        }, waitMs);
        signal!.addEventListener("abort", onAbort, { once: true });
      });
    }
  } finally {
    if (tty && !o.json) write(SHOW_CURSOR);
    cleanup();
  }
}
