/**
 * `raftkv client`: one-shot `set <key> <value>` / `get <key>`, or the REPL when no operation is given.
 *
 * ```text
 * raftkv client [--config F | --node host:port ...] [--timeout 5s] [--verbose] set <key> <value>   → OK
 * raftkv client [...] get <key>                                                                   → the value
 * raftkv client [...]                                                                             → REPL
 * ```
 * Success exits 0. A failure prints `error: <one line>` on stderr and exits 1 within `--timeout` (plus start-up);
 * a bad config or option exits 2. `get` prints the value followed by a newline: an empty line when absent.
 *
 * @module
 */
import { Command, Option } from "@commander-js/extra-typings";
import { RaftkvClient } from "../client/mod.ts";
import { collectAddress, durationOption, resolveCluster, withTlsOptions } from "./common.ts";
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
    tls: target.tls,
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
  const client = withTlsOptions(new Command("client"))
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
      .argument("<value>")
      .action(async (key, value, _o, cmd) => {
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
      .description("print the value of <key> (an empty line when it does not exist)")
      .argument("<key>")
      .action(async (key, _o, cmd) => {
        const { client } = await connect(cmd.optsWithGlobals() as ClientOptions);
        try {
          const r = await client.get(key);
          console.log(r.value);
        } finally {
          client.close();
        }
      }),
  );
  return client;
}
