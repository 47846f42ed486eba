/**
 * The interactive client (`raftkv client` without an operation): reads lines with node:readline, runs SET and
 * GET through one {@linkcode RaftkvClient}, and shows which node answered and how long it took.
 *
 * With a terminal: a `raftkv> ` prompt, line editing, history kept in `~/.raftkv_history` across runs
 * (failures to read or write it are ignored), Ctrl-C clears the line (or quits on an empty one), Ctrl-D
 * quits. Without a terminal (piped input): no prompt or banner, one answer per command line, so scripts and
 * tests can drive it.
 *
 * @module
 */
import * as readline from "node:readline";
import process from "node:process";
import { type GetResult, RaftkvClient, type SetResult } from "../client/mod.ts";
import { token } from "../raft/describe.ts";
import { errorLine, readEnv } from "./common.ts";
import { parseReplLine, REPL_HELP } from "./repl_parse.ts";

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
  /** Prompt, banner, line editing and history (default: whether stdin is a terminal). */
  readonly interactive?: boolean;
  /** Printed first in interactive mode. */
  readonly banner?: string;
  /** Default: ~/.raftkv_history (interactive mode only). */
  readonly historyPath?: string;
}

/** Runs the REPL until `exit`, end of input or Ctrl-D; resolves with the exit code (0). */
export async function runRepl(o: ReplOptions): Promise<number> {
  const interactive = o.interactive ?? Deno.stdin.isTerminal();
  const historyPath = interactive ? (o.historyPath ?? defaultHistoryPath()) : undefined;
  const rl = readline.createInterface({
    input: process.stdin,
    output: process.stdout,
    terminal: interactive,
    prompt: PROMPT,
    history: loadHistory(historyPath),
    historySize: HISTORY_SIZE,
    removeHistoryDuplicates: true,
  });
  rl.on("SIGINT", () => {
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
      const cmd = parseReplLine(line);
      if (cmd.kind === "exit") break;
      switch (cmd.kind) {
        case "empty":
          break;
        case "help":
          console.log(REPL_HELP);
          break;
        case "error":
          console.error(`error: ${cmd.message}`);
          break;
        case "set":
          try {
            console.log(formatSetAnswer(await o.client.set(cmd.key, cmd.value)));
          } catch (e) {
            console.error(`error: ${errorLine(e)}`);
          }
          break;
        case "get":
          try {
            console.log(formatGetAnswer(await o.client.get(cmd.key)));
          } catch (e) {
            console.error(`error: ${errorLine(e)}`);
          }
          break;
      }
      if (interactive) rl.prompt();
    }
  } finally {
    const history = (rl as unknown as { history?: unknown }).history;
    rl.close();
    if (historyPath && Array.isArray(history)) saveHistory(historyPath, history as string[]);
  }
  return 0;
}
