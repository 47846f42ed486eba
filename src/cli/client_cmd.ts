/**
 * `raftkv client`: one-shot `set <key> <value>` / `get <key>`, or the REPL when no operation is given.
 *
 * ```text
 * raftkv client [--config F | --node host:port ...] [--timeout 5s] [--verbose] set <key> <value>   → OK
 * raftkv client [...] get <key>                                                                   → the value
 * raftkv client [...]                                                                             → REPL
 * ```
 * Success exits 0. A failure prints `error: <one line>` on stderr and exits 1 within `--timeout` (plus start-up);
 * a bad config or option exits 2. `get` prints the value followed by a newline: an empty line when absent, with
 * a note on stderr saying the key does not exist (`--json` prints `{"key", "value", "found"}` instead).
 * `set <key> -` reads the value from stdin and `set <key> --value-file F` from a file, byte for byte (values
 * larger than the command line allows, or binary-safe text).
 *
 * @module
 */
import { Command, Option } from "@commander-js/extra-typings";
import { RaftkvClient } from "../client/mod.ts";
import { CliError, collectAddress, durationOption, EXIT_USAGE, resolveCluster, userPath } from "./common.ts";
import { formatDuration } from "./duration.ts";
import { runRepl } from "./repl.ts";

export const DEFAULT_CLIENT_TIMEOUT_MS = 5000;

interface ClientOptions {
  config?: string;
  node?: string[];
  timeout: number;
  verbose?: true;
}

async function connect(o: ClientOptions): Promise<{ client: RaftkvClient; source: string; count: number }> {
  const target = await resolveCluster(o);
  const client = new RaftkvClient({
    nodes: target.nodes,
    timeoutMs: o.timeout,
    onAttempt: o.verbose
      ? (e) =>
        console.error(
          `  ${e.op} → ${/^\d+$/.test(e.node) ? `node ${e.node}` : e.node}: ${e.outcome}` +
            `${e.detail ? ` (${e.detail})` : ""} in ${e.ms.toFixed(1)} ms`,
        )
      : undefined,
  });
  return { client, source: target.source, count: target.nodes.length };
}

export function clientCommand() {
  // Options belong to `client`; commander also recognises them after `set`/`get` (no positional options).
  const client = new Command("client")
    .usage("[options] [set <key> <value> | get <key>]")
    .option("--config <file>", "cluster config (default: $RAFTKV_CONFIG or ./cluster.json)")
    .addOption(
      new Option("--node <host:port>", "a node address instead of a config file (repeatable)").argParser(
        collectAddress,
      ),
    )
    .addOption(
      new Option("--timeout <duration>", "give up after this long (e.g. 500ms, 5s, 1m)")
        .default(DEFAULT_CLIENT_TIMEOUT_MS, "5s")
        .argParser(durationOption),
    )
    .option("-v, --verbose", "print every attempt on stderr")
    .description("SET/GET one key, or start an interactive session (REPL) when no operation is given")
    .addHelpText(
      "after",
      "\nExamples:\n  raftkv client --config cluster.json set name Jon\n  raftkv client --node 127.0.0.1:7101 get name\n" +
        "  raftkv client set k -- -5      (a value starting with '-' goes after --)\n" +
        "  raftkv client                  (interactive: SET k v, GET k, help, exit)",
    )
    .action(async (o) => {
      const { client, source, count } = await connect(o);
      try {
        return void (await runRepl({
          client,
          banner: `raftkv client: ${count} node${count === 1 ? "" : "s"} from ${source}, ` +
            `timeout ${formatDuration(o.timeout)}. Type help for commands, exit or Ctrl-D to quit.`,
        }));
      } finally {
        client.close();
      }
    });

  client.addCommand(
    new Command("set")
      .description("store <value> under <key>; prints OK once a majority has it")
      .argument("<key>")
      .argument("[value]", "the value; - reads it from stdin")
      .option("--value-file <file>", "read the value from this file (exactly its bytes, as UTF-8)")
      .action(async (key, valueArg, o, cmd) => {
        const value = await readValue(valueArg, o.valueFile); // a value from the line, stdin or a file
        const { client } = await connect(cmd.optsWithGlobals() as ClientOptions);
        try {
          await client.set(key, value);
          console.log("OK");
        } finally {
          client.close();
        }
      }),
  );
  client.addCommand(
    new Command("get")
      .description("print the value of <key> (an empty line and a note on stderr when it does not exist)")
      .argument("<key>")
      .option("--json", 'print {"key", "value", "found"}: found tells a missing key from an empty value')
      .action(async (key, o, cmd) => {
        const { client } = await connect(cmd.optsWithGlobals() as ClientOptions);
        try {
          const r = await client.get(key);
          if (o.json) return void console.log(JSON.stringify({ key, value: r.value, found: r.found }));
          console.log(r.value);
          if (!r.found) {
            console.error(`note: key ${JSON.stringify(key)} does not exist (printed as an empty line)`);
          }
        } finally {
          client.close();
        }
      }),
  );
  return client;
}

/**
 * The value of `set`: the argument, or with `-` all of stdin, or with `--value-file` the file's bytes (UTF-8).
 * Exactly one source; the bytes are kept as they are (a trailing newline is part of the value).
 */
export async function readValue(arg: string | undefined, file: string | undefined): Promise<string> {
  if (file !== undefined && arg !== undefined) {
    throw new CliError("give the value either as an argument or with --value-file, not both", EXIT_USAGE);
  }
  let bytes: Uint8Array;
  let from: string;
  if (file !== undefined) {
    from = userPath(file);
    try {
      bytes = await Deno.readFile(from);
    } catch (e) {
      throw new CliError(
        `cannot read --value-file ${from}: ${e instanceof Error ? e.message : e}`,
        EXIT_USAGE,
      );
    }
  } else if (arg === "-") {
    from = "stdin";
    bytes = new Uint8Array(await new Response(Deno.stdin.readable).arrayBuffer());
  } else if (arg === undefined) {
    throw new CliError(
      "set needs a value: set <key> <value>, set <key> - (stdin) or --value-file F",
      EXIT_USAGE,
    );
  } else {
    return arg;
  }
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new CliError(
      `the value from ${from} is not valid UTF-8 text (raftkv stores text values)`,
      EXIT_USAGE,
    );
  }
}
