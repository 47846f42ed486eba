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
 * The REPL fed from a pipe exits with the first failed command's one-shot code (0 when none failed; see
 * {@linkcode runRepl}); an interactive one exits 0.
 *
 * @module
 */
import { Command, Option } from "@commander-js/extra-typings";
import { type GetOptions, RaftkvClient, WatchError } from "../client/mod.ts";
import type { CasExpect } from "../raft/types.ts";
import { token } from "../raft/describe.ts";
import {
  CliError,
  collectAddress,
  durationOption,
  EXIT_CAS_FAILED,
  EXIT_OK,
  EXIT_USAGE,
  resolveCluster,
  withTlsOptions,
} from "./common.ts";
import { formatDuration } from "./duration.ts";
import { formatWatchEvent, runRepl } from "./repl.ts";
import { decodeValue, readValueFile } from "./value_file.ts";
import { refuseUnknownCommand } from "./unknown_command.ts";

export const DEFAULT_CLIENT_TIMEOUT_MS = 5000;
export { EXIT_CAS_FAILED } from "./common.ts";

interface ClientOptions {
  config?: string;
  node?: string[];
  timeout: number;
  verbose?: true;
  readMode?: string;
  maxStaleness?: number;
}

/**
 * The GET options of `--read-mode` and `--max-staleness` (issue 16). `--max-staleness` alone means the
 * stale mode; the stale mode needs it. Exits 2 (usage) on a contradiction.
 */
export function getOptionsOf(o: { readMode?: string; maxStaleness?: number }): GetOptions {
  const mode = o.readMode ?? (o.maxStaleness !== undefined ? "stale" : "leader");
  if (mode !== "leader" && mode !== "follower" && mode !== "stale") {
    throw new CliError(
      `--read-mode must be leader, follower or stale (got ${JSON.stringify(mode)})`,
      EXIT_USAGE,
    );
  }
  if (mode === "stale" && !(o.maxStaleness !== undefined && o.maxStaleness > 0)) {
    throw new CliError(
      "--read-mode stale needs --max-staleness DURATION (e.g. 2s), greater than 0",
      EXIT_USAGE,
    );
  }
  if (mode !== "stale" && o.maxStaleness !== undefined) {
    throw new CliError(
      `--max-staleness only applies to --read-mode stale (got --read-mode ${mode})`,
      EXIT_USAGE,
    );
  }
  return mode === "stale" ? { readMode: mode, maxStalenessMs: o.maxStaleness } : { readMode: mode };
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
    .addOption(
      new Option(
        "--read-mode <mode>",
        "how GETs are served: leader (under its lease), follower (any node, after applying the leader's " +
          "read index: linearizable), stale (any node within --max-staleness)",
      ).choices(["leader", "follower", "stale"]),
    )
    .addOption(
      new Option(
        "--max-staleness <duration>",
        "with --read-mode stale: the oldest state a node may answer from (e.g. 2s); it refuses otherwise",
      ).argParser(durationOption),
    )
    .description("SET/GET one key, or start an interactive session (REPL) when no operation is given")
    .addHelpText(
      "after",
      "\nExamples:\n  raftkv client --config cluster.json set name Jon\n  raftkv client --node 127.0.0.1:7101 get name\n" +
        "  raftkv client set k -- -5      (a value starting with '-' goes after --)\n" +
        "  raftkv client                  (interactive: SET k v, GET k, help, exit)",
    )
    // Words after `client` that name no operation reach this action (the REPL's): `client sett k v` is a typo
    // of `set`, refused as an unknown command, not as "too many arguments for 'client'". (No description:
    // help does not list the argument; the usage line above stays.)
    .argument("[words...]")
    .action(async (words, o, cmd) => {
      if (words.length > 0) refuseUnknownCommand(cmd, words[0]);
      const getOptions = getOptionsOf(o);
      const { client, source, count } = await connect(o);
      try {
        const code = await runRepl({
          client,
          getOptions,
          banner: `raftkv client: ${count} node${count === 1 ? "" : "s"} from ${source}, ` +
            `timeout ${formatDuration(o.timeout)}. Type help for commands, exit or Ctrl-D to quit.`,
        });
        // Piped input with a failed command (runRepl has said which): the first failure's one-shot code.
        if (code !== EXIT_OK) throw new CliError("", code);
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
      .option("--with-version", "also print `version <n>` (log index of the key's last change, 0 if absent)")
      .action(async (key, o, cmd) => {
        const globals = cmd.optsWithGlobals() as unknown as ClientOptions;
        const getOptions = getOptionsOf(globals);
        const { client } = await connect(globals);
        try {
          const r = await client.get(key, getOptions);
          if (o.json) {
            const version = o.withVersion ? { version: r.version ?? 0 } : {};
            return void console.log(JSON.stringify({ key, value: r.value, found: r.found, ...version }));
          }
          console.log(r.value);
          if (!r.found) {
            console.error(`note: key ${JSON.stringify(key)} does not exist (printed as an empty line)`);
          }
          if (o.withVersion) console.log(`version ${r.version ?? 0}`);
        } finally {
          client.close();
        }
      }),
  );
  for (const c of kvCommands()) client.addCommand(c);
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
  if (file !== undefined) return await readValueFile(file);
  if (arg === "-") {
    return decodeValue(new Uint8Array(await new Response(Deno.stdin.readable).arrayBuffer()), "stdin");
  }
  if (arg === undefined) {
    throw new CliError(
      "set needs a value: set <key> <value>, set <key> - (stdin) or --value-file F",
      EXIT_USAGE,
    );
  }
  return arg;
}

/** `delete`, `cas`, `list` and `watch` (issue 15): what a caller scripts against, one line per answer. */
function kvCommands() {
  return [
    new Command("delete")
      .description("remove <key> (exactly once); prints OK, or OK (absent) when it did not exist")
      .argument("<key>")
      .action(async (key, _o, cmd) => {
        const { client } = await connect(cmd.optsWithGlobals() as ClientOptions);
        try {
          const r = await client.delete(key);
          console.log(r.deleted ? "OK" : "OK (absent)");
        } finally {
          client.close();
        }
      }),
    new Command("cas")
      .description(
        "compare-and-set: write <new> iff <key> holds <expected> (or with --absent: does not exist; with " +
          "--expect-version N: its version is N). Prints OK (version V); otherwise exits 3 printing the current value",
      )
      .usage("[--absent | --expect-version N] <key> [expected] <new>")
      .option("--absent", "require the key to be absent (then give only <key> <new>)")
      .option("--expect-version <n>", "require the key's version (log index of its last change) to be n")
      .argument("<key>")
      .argument("<args...>")
      .action(async (key, args, o, cmd) => {
        const byForm = o.absent === true || o.expectVersion !== undefined;
        if (byForm ? args.length !== 1 : args.length !== 2) {
          cmd.error(
            byForm
              ? "error: cas --absent|--expect-version N takes <key> <new>"
              : "error: cas takes <key> <expected> <new>",
            { exitCode: 2 },
          );
        }
        if (o.absent && o.expectVersion !== undefined) {
          cmd.error("error: --absent and --expect-version exclude each other", { exitCode: 2 });
        }
        let expect: CasExpect;
        if (o.absent) expect = { version: 0 };
        else if (o.expectVersion !== undefined) {
          const n = Number(o.expectVersion);
          if (!Number.isSafeInteger(n) || n < 0) {
            cmd.error(`error: --expect-version wants an index ≥ 0, got ${o.expectVersion}`, { exitCode: 2 });
          }
          expect = { version: n };
        } else expect = { value: args[0] };
        const { client } = await connect(cmd.optsWithGlobals() as ClientOptions);
        try {
          const r = await client.cas(key, expect, args[args.length - 1]);
          if (r.succeeded) {
            console.log(`OK (version ${r.version})`);
            return;
          }
          console.log(
            r.found
              ? `FAILED: current value ${token(r.value)} (version ${r.version})`
              : "FAILED: the key is absent",
          );
          throw new CliError("", EXIT_CAS_FAILED);
        } finally {
          client.close();
        }
      }),
    new Command("list")
      .description("print the keys under a prefix in key order, one per line (key<TAB>value with --values)")
      .option("--prefix <p>", "only keys starting with p (default: every key)", "")
      .option("--limit <n>", "at most n keys (default: all, fetched a page at a time)")
      .option("--values", "print values too")
      .action(async (o, cmd) => {
        const limit = o.limit === undefined ? Infinity : Number(o.limit);
        if (!(limit >= 1) || (o.limit !== undefined && !Number.isSafeInteger(limit))) {
          cmd.error(`error: --limit wants a positive integer, got ${o.limit}`, { exitCode: 2 });
        }
        const { client } = await connect(cmd.optsWithGlobals() as unknown as ClientOptions);
        try {
          let after: string | undefined = undefined;
          let shown = 0;
          do {
            const page = await client.list(o.prefix, {
              after,
              limit: Math.min(limit - shown, 1000),
              withValues: o.values === true,
            });
            for (const it of page.items) {
              console.log(o.values ? `${token(it.key)}\t${token(it.value)}` : token(it.key));
            }
            shown += page.items.length;
            after = page.next;
          } while (after !== undefined && shown < limit);
        } finally {
          client.close();
        }
      }),
    new Command("watch")
      .description(
        "print committed changes to a key or prefix as they happen (`<index> SET|DEL|CAS <key> [value]`), " +
          "until Ctrl-C; survives leader changes and node restarts",
      )
      .argument("[key]", "one key (or use --prefix)")
      .option("--prefix <p>", "every key starting with p")
      .option("--from <index>", "start at this log index (default: now)")
      .action(async (key, o, cmd) => {
        if ((key === undefined) === (o.prefix === undefined)) {
          cmd.error("error: watch takes a <key> or --prefix <p> (one of them)", { exitCode: 2 });
        }
        const from = o.from === undefined ? 0 : Number(o.from);
        if (!Number.isSafeInteger(from) || from < 0) {
          cmd.error(`error: --from wants an index ≥ 0`, { exitCode: 2 });
        }
        const opts = cmd.optsWithGlobals() as unknown as ClientOptions;
        const { client } = await connect(opts);
        const abort = new AbortController();
        const onSigint = () => abort.abort();
        Deno.addSignalListener("SIGINT", onSigint);
        try {
          const events = client.watch(key ?? o.prefix!, {
            prefix: key === undefined,
            fromIndex: from,
            signal: abort.signal,
            reconnectTimeoutMs: opts.timeout,
            onConnect: opts.verbose
              ? (i) => console.error(`  watching at node ${i.nodeId} from index ${i.startIndex}`)
              : undefined,
          });
          for await (const e of events) console.log(formatWatchEvent(e));
        } catch (e) {
          if (e instanceof WatchError) {
            cmd.error(`error: ${e.message}`, { exitCode: 1 });
          }
          throw e;
        } finally {
          Deno.removeSignalListener("SIGINT", onSigint);
          client.close();
        }
      }),
  ];
}
