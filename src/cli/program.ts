/**
 * The `raftkv` command tree and {@linkcode main}, which runs it and turns every outcome into an exit code:
 * 0 success, 1 the operation failed, 2 bad usage or configuration. Expected failures print one line,
 * `error: …`, on stderr, never a stack trace.
 *
 * Each subcommand's module is imported only when that subcommand runs (or for `--help`, which lists them all):
 * a node then never loads the REPL, the benchmark, certificate generation (@peculiar/x509) or the local
 * cluster runner (docs/operations.md "Memory": ~6 MB less RSS for an idle node). tests/ops/module_graph_test.ts
 * checks that `raftkv node`'s static module graph stays free of them.
 *
 * @module
 */
import { Command, CommanderError } from "@commander-js/extra-typings";
import { RaftkvClientError } from "../client/mod.ts";
import { ConfigError } from "../config/cluster_config.ts";
import { VERSION_LINE } from "../version.ts";
import { CliError, errorLine, EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from "./common.ts";
import { answerUnknownCommands } from "./unknown_command.ts";

type AnyCommand = Command<unknown[], Record<string, unknown>>;

/** Every subcommand, by name, with the import that makes it (in `--help` order). */
export const SUBCOMMANDS: Readonly<Record<string, () => Promise<AnyCommand>>> = {
  node: async () => (await import("./node_cmd.ts")).nodeCommand() as unknown as AnyCommand,
  client: async () => (await import("./client_cmd.ts")).clientCommand() as unknown as AnyCommand,
  admin: async () => (await import("./admin_cmd.ts")).adminCommand() as unknown as AnyCommand,
  cluster: async () => (await import("./cluster_cmd.ts")).clusterCommand() as unknown as AnyCommand,
  bench: async () => (await import("./bench_cmd.ts")).benchCommand() as unknown as AnyCommand,
  "systemd-unit": async () =>
    (await import("../ops/systemd.ts")).systemdUnitCommand() as unknown as AnyCommand,
  certs: async () => (await import("./certs_cmd.ts")).certsCommand() as unknown as AnyCommand,
};

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

/**
 * The command tree (without side effects until parsed): every subcommand, or with `only` (a subcommand's name)
 * just that one, so that running it imports nothing else.
 */
export async function buildProgram(only?: string) {
  const program = new Command("raftkv")
    .description("a replicated key-value store on Raft with a leader lease")
    .version(VERSION_LINE, "-V, --version", "print the version")
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(text) });
  const names = only !== undefined && Object.hasOwn(SUBCOMMANDS, only) ? [only] : Object.keys(SUBCOMMANDS);
  for (const cmd of await Promise.all(names.map((name) => SUBCOMMANDS[name]()))) program.addCommand(cmd);
  inherit(program, program);
  answerUnknownCommands(program); // `admin statsu`: one line naming the closest and the known commands
  return program;
}

/** Runs `raftkv <args>` and resolves with the exit code (the caller exits with it). */
export async function main(args: readonly string[]): Promise<number> {
  // The first word names the subcommand (raftkv has no options before it but --help and --version).
  const program = await buildProgram(args[0]);
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
