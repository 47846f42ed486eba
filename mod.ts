/**
 * raftkv: a replicated key-value store on Raft with a leader lease.
 *
 * Run it: `deno run -A mod.ts <command>` (or the compiled `raftkv <command>`); see `--help`.
 * Use it as a library: {@linkcode RaftkvClient} talks to a cluster.
 *
 * @module
 */
import { main } from "./src/cli/mod.ts";

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
