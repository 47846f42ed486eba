/**
 * raftkv: a replicated key-value store on Raft with a leader lease.
 *
 * Run it: `deno run -A mod.ts <command>` (or the compiled `raftkv <command>`); see `--help`.
 * Use it as a library: {@linkcode RaftkvClient} talks to a cluster.
 *
 * @module
 */
// program.ts, not src/cli/mod.ts: that front door also re-exports the REPL and the status renderers, which
// `raftkv node` must not load (src/cli/program.ts imports each subcommand only when it runs).
import { main } from "./src/cli/program.ts";

export {
  ClientClosedError,
  type GetResult,
  InvalidArgumentError,
  NoLeaderError,
  NotRaftkvError,
  RaftkvClient,
  RaftkvClientError,
  type RaftkvClientOptions,
  type SetResult,
  TimeoutError,
} from "./src/client/mod.ts";

if (import.meta.main) Deno.exit(await main(Deno.args));
