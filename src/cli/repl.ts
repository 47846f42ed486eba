/**
 * The interactive client (`raftkv client` without an operation): reads lines with node:readline, runs SET and
 * GET through one {@linkcode RaftkvClient}, and shows which node answered and how long it took.
 *
 * With a terminal: a `raftkv> ` prompt, line editing, history kept in `~/.raftkv_history` across runs
 * (failures to read or write it are ignored), Ctrl-C clears the line (or quits on an empty one), Ctrl-D
 * quits. Without a terminal (piped input): no prompt or banner, one answer per command line, so scripts and
 * tests can drive it; the exit code says whether every line succeeded (see {@linkcode runRepl}).
 *
 * @module
 */
import * as readline from "node:readline";
import process from "node:process";
import type { Readable } from "node:stream";
import {
  type CasResult,
  type DeleteResult,
  type GetOptions,
  type GetResult,
  RaftkvClient,
  type SetResult,
} from "../client/mod.ts";
import { token } from "../raft/describe.ts";
import {
  CliError,
  errorLine,
  EXIT_CAS_FAILED,
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_USAGE,
  readEnv,
} from "./common.ts";
import { parseReplLine, REPL_HELP } from "./repl_parse.ts";
import { readValueFile } from "./value_file.ts";

export const PROMPT = "raftkv> ";
export const HISTORY_FILE = ".raftkv_history";
const HISTORY_SIZE = 1000;

function latency(ms: number): string {
  return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
}

/** `OK  (node 3, 2.1 ms)` */
export function formatSetAnswer(r: SetResult): string {
  return `OK  (node ${r.nodeId}, ${latency(r.latencyMs)})`;
}

/** `Jon  (node 3, 1.0 ms)`; a value with spaces or special characters is shown quoted; a missing key as `""`. */
export function formatGetAnswer(r: GetResult): string {
  const shown = r.found ? token(r.value) : '""';
  return `${shown}  (node ${r.nodeId}, ${latency(r.latencyMs)}${r.found ? "" : "; not found"})`;
}

/** `OK  (node 3, 2.1 ms)`, or `OK (absent)  (…)` when there was nothing to delete. */
export function formatDeleteAnswer(r: DeleteResult): string {
  return `OK${r.deleted ? "" : " (absent)"}  (node ${r.nodeId}, ${latency(r.latencyMs)})`;
}

/** `OK version 12  (node 3, 2.1 ms)` or `FAILED: current value "x" version 9  (…)`. */
export function formatCasAnswer(r: CasResult): string {
  const where = `(node ${r.nodeId}, ${latency(r.latencyMs)})`;
  if (r.succeeded) return `OK version ${r.version}  ${where}`;
  return r.found
    ? `FAILED: current value ${token(r.value)} version ${r.version}  ${where}`
    : `FAILED: the key is absent  ${where}`;
}

/** `17 SET key value`, `18 DEL key`, `19 CAS key value`: one watch event per line. */
export function formatWatchEvent(e: { index: number; op: string; key: string; value: string }): string {
  const op = e.op.toUpperCase();
  return op === "DEL"
    ? `${e.index} DEL ${token(e.key)}`
    : `${e.index} ${op} ${token(e.key)} ${token(e.value)}`;
}

/** LIST prints at most this many keys (then says how to see more). */
export const REPL_LIST_MAX = 1000;

/** `~/.raftkv_history`, or undefined when the home directory is unknown. */
export function defaultHistoryPath(): string | undefined {
  const home = readEnv("HOME");
  return home ? `${home.replace(/\/+$/, "")}/${HISTORY_FILE}` : undefined;
}

/** History lines, newest first (as readline wants them); [] when the file is missing or unreadable. */
export function loadHistory(path: string | undefined): string[] {
  if (!path) return [];
  try {
    return Deno.readTextFileSync(path).split("\n").filter((l) => l.trim() !== "").slice(-HISTORY_SIZE)
      .reverse();
  } catch {
    return [];
  }
}

/** Writes history (given newest first) oldest first; never throws. */
export function saveHistory(path: string | undefined, newestFirst: readonly string[]): void {
  if (!path) return;
  try {
    const lines = newestFirst.slice(0, HISTORY_SIZE).reverse();
    Deno.writeTextFileSync(path, lines.length > 0 ? lines.join("\n") + "\n" : "", { mode: 0o600 });
  } catch {
    // not worth failing the session for
  }
}

export interface ReplOptions {
  readonly client: RaftkvClient;
  /** How GETs are served (`--read-mode`, `--max-staleness`; issue 16). Default: at the leader. */
  readonly getOptions?: GetOptions;
  /** Prompt, banner, line editing and history (default: whether stdin is a terminal). */
  readonly interactive?: boolean;
  /** Printed first in interactive mode. */
  readonly banner?: string;
  /** Default: ~/.raftkv_history (interactive mode only). */
  readonly historyPath?: string;
  /** Where the lines come from (default: stdin; tests give a stream). */
  readonly input?: Readable;
}

/**
 * The exit code of a failed REPL command: the one the one-shot `raftkv client` command would exit with
 * (a `CliError` carries its own: 2 for an unreadable --value-file; anything else the cluster or the network
 * refused is 1).
 */
function failureCode(e: unknown): number {
  return e instanceof CliError ? e.exitCode : EXIT_FAILURE;
}

/**
 * Runs the REPL until `exit`, end of input or Ctrl-D; resolves with the exit code. Interactive: 0. Piped
 * (a script): 0 when every command succeeded, else the code of the first one that failed, as the one-shot
 * command exits: 1 failed, 2 not a command (unknown, bad usage), 3 a CAS whose comparison did not hold. Every
 * line runs either way; a line on stderr then counts the failures.
 */
export async function runRepl(o: ReplOptions): Promise<number> {
  const interactive = o.interactive ?? Deno.stdin.isTerminal();
  const historyPath = interactive ? (o.historyPath ?? defaultHistoryPath()) : undefined;
  const rl = readline.createInterface({
    input: o.input ?? process.stdin,
    output: process.stdout,
    terminal: interactive,
    prompt: PROMPT,
    history: loadHistory(historyPath),
    historySize: HISTORY_SIZE,
    removeHistoryDuplicates: true,
  });
  let closed = false; // end of input or Ctrl-D, maybe while a command runs: no prompt after that
  rl.on("close", () => (closed = true));
  let lineNo = 0;
  let commands = 0;
  const failures = { count: 0, firstCode: EXIT_OK, firstLine: 0 };
  const failed = (code: number) => {
    failures.count++;
    if (failures.count === 1) [failures.firstCode, failures.firstLine] = [code, lineNo];
  };
  /** The WATCH running, stopped by Ctrl-C. */
  let watching: AbortController | undefined;
  rl.on("SIGINT", () => {
    if (watching) {
      watching.abort();
      process.stdout.write("^C (watch stopped)\n");
      return;
    }
    if (rl.line.length > 0) {
      // Clear the line being typed, like a shell.
      rl.write(null, { ctrl: true, name: "u" });
      process.stdout.write("^C\n");
      rl.prompt();
    } else {
      process.stdout.write("\n");
      rl.close();
    }
  });
  if (interactive && o.banner) console.log(o.banner);
  if (interactive) rl.prompt();
  try {
    for await (const line of rl) {
      lineNo++;
      const cmd = parseReplLine(line);
      if (cmd.kind === "exit") break;
      if (cmd.kind !== "empty") commands++;
      switch (cmd.kind) {
        case "empty":
          break;
        case "help":
          console.log(REPL_HELP);
          break;
        case "error":
          console.error(`error: ${cmd.message}`);
          failed(EXIT_USAGE);
          break;
        case "set":
          try {
            console.log(formatSetAnswer(await o.client.set(cmd.key, cmd.value)));
          } catch (e) {
            console.error(`error: ${errorLine(e)}`);
            failed(failureCode(e));
          }
          break;
        case "setFile":
          try {
            const value = await readValueFile(cmd.file);
            console.log(formatSetAnswer(await o.client.set(cmd.key, value)));
          } catch (e) {
            console.error(`error: ${errorLine(e)}`);
            failed(failureCode(e));
          }
          break;
        case "get":
          try {
            console.log(formatGetAnswer(await o.client.get(cmd.key, o.getOptions)));
          } catch (e) {
            console.error(`error: ${errorLine(e)}`);
            failed(failureCode(e));
          }
          break;
        case "del":
          try {
            console.log(formatDeleteAnswer(await o.client.delete(cmd.key)));
          } catch (e) {
            console.error(`error: ${errorLine(e)}`);
            failed(failureCode(e));
          }
          break;
        case "cas":
          try {
            const r = await o.client.cas(cmd.key, cmd.expect, cmd.value);
            console.log(formatCasAnswer(r));
            if (!r.succeeded) failed(EXIT_CAS_FAILED);
          } catch (e) {
            console.error(`error: ${errorLine(e)}`);
            failed(failureCode(e));
          }
          break;
        case "list":
          try {
            let after: string | undefined;
            let shown = 0;
            do {
              const page = await o.client.list(cmd.prefix, { after, withValues: true, limit: 500 });
              for (const it of page.items) {
                console.log(`${token(it.key)} = ${token(it.value)}  (version ${it.version})`);
              }
              shown += page.items.length;
              after = page.next;
            } while (after !== undefined && shown < REPL_LIST_MAX);
            if (after !== undefined) {
              console.log(`… more keys after ${token(after)} (use raftkv client list)`);
            } else console.log(`(${shown} key${shown === 1 ? "" : "s"})`);
          } catch (e) {
            console.error(`error: ${errorLine(e)}`);
            failed(failureCode(e));
          }
          break;
        case "watch": {
          watching = new AbortController();
          if (interactive) console.log("watching; Ctrl-C stops");
          try {
            const events = o.client.watch(cmd.key, {
              prefix: cmd.prefix,
              fromIndex: cmd.fromIndex,
              signal: watching.signal,
            });
            for await (const e of events) console.log(formatWatchEvent(e));
          } catch (e) {
            console.error(`error: ${errorLine(e)}`);
            failed(failureCode(e));
          } finally {
            watching = undefined;
          }
          break;
        }
      }
      if (interactive && !closed) rl.prompt();
    }
  } finally {
    const history = (rl as unknown as { history?: unknown }).history;
    rl.close();
    if (historyPath && Array.isArray(history)) saveHistory(historyPath, history as string[]);
  }
  if (interactive || failures.count === 0) return EXIT_OK;
  console.error(
    `error: ${failures.count} of ${commands} command${commands === 1 ? "" : "s"} failed; exit code ` +
      `${failures.firstCode}, that of the first failure (line ${failures.firstLine})`,
  );
  return failures.firstCode;
}
