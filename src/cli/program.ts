/**
 * The `raftkv` command tree and {@linkcode main}, which runs it and turns every outcome into an exit code:
 * 0 success, 1 the operation failed, 2 bad usage or configuration. Expected failures print one line,
 * `error: …`, on stderr, never a stack trace.
 *
 * @module
 */
import { Command, CommanderError } from "@commander-js/extra-typings";
import { RaftkvClientError } from "../client/mod.ts";
import { ConfigError } from "../config/cluster_config.ts";
import { systemdUnitCommand } from "../ops/systemd.ts";
import { VERSION_LINE } from "../version.ts";
import { adminCommand } from "./admin_cmd.ts";
import { benchCommand } from "./bench_cmd.ts";
import { clientCommand } from "./client_cmd.ts";
import { clusterCommand } from "./cluster_cmd.ts";
import { CliError, errorLine, EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from "./common.ts";
import { nodeCommand } from "./node_cmd.ts";
import { certsCommand } from "./certs_cmd.ts";

/** Applies the root's error handling and output settings to every command below it. */
function inherit(
  root: Command<[], Record<string, unknown>>,
  cmd: Command<unknown[], Record<string, unknown>>,
) {
  for (const sub of cmd.commands) {
    sub.copyInheritedSettings(root);
    inherit(root, sub as Command<unknown[], Record<string, unknown>>);
  }
}

/** The command tree (without side effects until parsed). */
export function buildProgram() {
  const program = new Command("raftkv")
    .description("a replicated key-value store on Raft with a leader lease")
    .version(VERSION_LINE, "-V, --version", "print the version")
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(text) });
  program.addCommand(nodeCommand());
  program.addCommand(clientCommand());
  program.addCommand(adminCommand());
  program.addCommand(clusterCommand());
  program.addCommand(benchCommand());
  program.addCommand(systemdUnitCommand());
  program.addCommand(certsCommand());
  inherit(program, program);
  return program;
}

/** Runs `raftkv <args>` and resolves with the exit code (the caller exits with it). */
export async function main(args: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync([...args], { from: "user" });
    return EXIT_OK;
  } catch (e) {
    return exitCodeFor(e);
  }
}

/** Prints an error the way users see it and picks the exit code. */
export function exitCodeFor(e: unknown): number {
  if (e instanceof CommanderError) {
    // commander has already printed its message (help, version, or a usage error)
    return e.code === "commander.helpDisplayed" || e.code === "commander.version" ||
        e.code === "commander.help" || e.exitCode === 0
      ? EXIT_OK
      : EXIT_USAGE;
  }
  if (e instanceof CliError) {
    if (e.message) console.error(`error: ${e.message}`);
    return e.exitCode;
  }
  if (e instanceof ConfigError) {
    console.error(`error: ${errorLine(e)}`);
    return EXIT_USAGE;
  }
  if (e instanceof RaftkvClientError) {
    console.error(`error: ${errorLine(e)}`);
    return EXIT_FAILURE;
  }
  if (e instanceof Error && e.name === "UnitOptionsError") {
    console.error(`error: ${errorLine(e)}`);
    return EXIT_USAGE;
  }
  // Unexpected: still one line, with the error's type to help a bug report.
  const name = e instanceof Error ? e.name : typeof e;
  console.error(`error: ${errorLine(e)} (${name})`);
  return EXIT_FAILURE;
}
