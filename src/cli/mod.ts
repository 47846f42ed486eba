/**
 * The `raftkv` command line: `node`, `client` (one-shot or REPL), `admin` (status, transfer-leader, dump-log),
 * `cluster` (a local cluster in one command), `systemd-unit`, `--version`.
 *
 * The repository's `mod.ts` calls {@linkcode main}; the pieces below are exported for tests and reuse.
 *
 * @example
 * ```ts
 * import { main } from "./mod.ts";
 * Deno.exit(await main(["client", "--config", "cluster.json", "get", "name"]));
 * ```
 *
 * @module
 */
export { buildProgram, exitCodeFor, main } from "./program.ts";
export { CliError, EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from "./common.ts";
export { DurationError, formatDuration, parseDuration } from "./duration.ts";
export { parseReplLine, REPL_HELP, type ReplCommand } from "./repl_parse.ts";
export { formatGetAnswer, formatSetAnswer, runRepl } from "./repl.ts";
export { formatTable } from "./table.ts";
export { renderLog } from "./dump_log.ts";
export { renderStatusTable, statusJson, type StatusRow } from "./status.ts";
export { selfCommand } from "./self_command.ts";
