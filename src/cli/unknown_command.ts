/**
 * The answer to a mistyped subcommand, one line with exit 2 (usage): which word is unknown, under which
 * command, the closest known command when one is close, and the known ones.
 *
 * ```text
 * error: unknown command 'sett' for raftkv client: did you mean 'set'? (commands: set, get, delete, cas, list, watch)
 * ```
 * commander answers `raftkv admin statsu` on two lines without the list, and `raftkv client sett k v` (a command
 * with its own action, the REPL) with "too many arguments for 'client'", which hides the typo.
 *
 * @module
 */
import type { Command } from "@commander-js/extra-typings";
import { EXIT_USAGE } from "./common.ts";

// deno-lint-ignore no-explicit-any
type AnyCommand = Command<any, any, any>;

/** Optimal string alignment distance: insertions, deletions, substitutions and swaps of neighbours. */
function editDistance(a: string, b: string): number {
  const d: number[][] = [];
  for (let i = 0; i <= a.length; i++) d[i] = [i];
  for (let j = 0; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

/**
 * The command `word` was probably meant to be: the nearest by edit distance when it is at most 3 edits and
 * the two share more than 40 % (as commander judges), else the only command that begins with `word` (3
 * letters or more: `transfer` → `transfer-leader`); undefined when no single command stands out.
 */
export function closestCommand(word: string, names: readonly string[]): string | undefined {
  const w = word.toLowerCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  let tie = false;
  for (const name of names) {
    const distance = editDistance(w, name);
    const similarity = 1 - distance / Math.max(w.length, name.length);
    if (distance > 3 || similarity <= 0.4) continue;
    if (distance < bestDistance) [best, bestDistance, tie] = [name, distance, false];
    else if (distance === bestDistance) tie = true;
  }
  if (best !== undefined && !tie) return best;
  const begun = w.length >= 3 ? names.filter((n) => n.startsWith(w)) : [];
  return begun.length === 1 ? begun[0] : undefined;
}

/** `raftkv client`: the command's path from the root, as the user typed it. */
function commandPath(cmd: AnyCommand): string {
  const names: string[] = [];
  for (let c: AnyCommand | null = cmd; c; c = c.parent as AnyCommand | null) names.unshift(c.name());
  return names.join(" ");
}

/** The one-line refusal of `word` as a subcommand of `cmd`. */
export function unknownCommandMessage(cmd: AnyCommand, word: string): string {
  const names = cmd.commands.map((c) => c.name()).filter((n) => n !== "help");
  const guess = closestCommand(word, names);
  const under = cmd.parent ? ` for ${commandPath(cmd)}` : "";
  return `error: unknown command '${word}'${under}${guess ? `: did you mean '${guess}'?` : ""} ` +
    `(commands: ${names.join(", ")})`;
}

/** Refuses `word` as a subcommand of `cmd` (throws commander's usage error, exit 2, after printing it). */
export function refuseUnknownCommand(cmd: AnyCommand, word: string): never {
  cmd.error(unknownCommandMessage(cmd, word), { exitCode: EXIT_USAGE, code: "commander.unknownCommand" });
}

/**
 * Makes `cmd` and every command below it that has subcommands answer a mistyped one with
 * {@linkcode unknownCommandMessage} (commander's `command:*` event, raised for an unknown subcommand of a
 * command without its own action). A command with its own action (`client`, the REPL) calls
 * {@linkcode refuseUnknownCommand} itself.
 */
export function answerUnknownCommands(cmd: AnyCommand): void {
  if (cmd.commands.length > 0) {
    cmd.on("command:*", (operands: string[]) => refuseUnknownCommand(cmd, operands[0]));
  }
  for (const sub of cmd.commands) answerUnknownCommands(sub as AnyCommand);
}
