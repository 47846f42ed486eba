/**
 * `withTargetOptions` (admin_cmd.ts) adds --config, --node, --json and --timeout to an admin command and keeps
 * commander extra-typings' inferred option types: the assignments below fail `deno check` if a type is lost
 * (an `any` would pass the first and fail the `@ts-expect-error` lines).
 */
import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { Command } from "@commander-js/extra-typings";
import { withTargetOptions } from "./admin_cmd.ts";
import { positiveIntOption } from "./common.ts";

function command() {
  return withTargetOptions(
    new Command("x").option("--id <n>", "own option", positiveIntOption).exitOverride(),
    "print JSON",
    { ms: 15_000, shown: "15s" },
  );
}

Deno.test("the shared admin options parse and stay typed next to the command's own", () => {
  const cmd = command();
  cmd.parse([
    "--id",
    "4",
    "--config",
    "c.json",
    "--node",
    "h:1",
    "--node",
    "h:2",
    "--json",
    "--timeout",
    "2s",
  ], {
    from: "user",
  });
  const o = cmd.opts();
  const typed: { id?: number; config?: string; node?: string[]; json?: true; timeout: number } = o;
  deepStrictEqual(typed, { id: 4, config: "c.json", node: ["h:1", "h:2"], json: true, timeout: 2000 });
  // @ts-expect-error: --timeout is a number, not a string
  const _notString: string = o.timeout;
  // @ts-expect-error: an option nobody declared is not there
  void o.nope;
  strictEqual(command().parse([], { from: "user" }).opts().timeout, 15_000, "the default deadline");
});
