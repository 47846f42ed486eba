/** `raftkv client --read-mode/--max-staleness` (issue 16): what the options mean, and what they refuse. */
import { deepStrictEqual, throws } from "node:assert/strict";
import { getOptionsOf } from "./client_cmd.ts";
import { CliError } from "./common.ts";

Deno.test("--read-mode and --max-staleness become the GET options, and contradictions are usage errors", () => {
  deepStrictEqual(getOptionsOf({}), { readMode: "leader" });
  deepStrictEqual(getOptionsOf({ readMode: "follower" }), { readMode: "follower" });
  deepStrictEqual(getOptionsOf({ readMode: "stale", maxStaleness: 2000 }), {
    readMode: "stale",
    maxStalenessMs: 2000,
  });
  // --max-staleness alone means the stale mode.
  deepStrictEqual(getOptionsOf({ maxStaleness: 500 }), { readMode: "stale", maxStalenessMs: 500 });
  throws(() => getOptionsOf({ readMode: "stale" }), CliError);
  throws(() => getOptionsOf({ readMode: "stale", maxStaleness: 0 }), CliError);
  throws(() => getOptionsOf({ readMode: "follower", maxStaleness: 500 }), CliError);
  throws(() => getOptionsOf({ readMode: "nearest" }), CliError);
});
