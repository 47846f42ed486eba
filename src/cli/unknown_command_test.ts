/**
 * A mistyped subcommand (`raftkv client sett k v`, `raftkv admin statsu`) is named as unknown, with the closest
 * command when one is close and the list of the known ones, on one line, exit 2: what the user needs to fix it.
 */
import { ok, strictEqual } from "node:assert/strict";
import { CommanderError } from "@commander-js/extra-typings";
import { buildProgram, exitCodeFor } from "./program.ts";
import { closestCommand } from "./unknown_command.ts";

/** Runs `raftkv <args>` in this process as `main` does; returns what commander printed and the exit code. */
async function refused(args: string[]): Promise<{ stderr: string; code: number }> {
  const program = await buildProgram(args[0]);
  const printed: string[] = [];
  const quiet = (cmd: typeof program) => {
    cmd.configureOutput({ writeErr: (s) => printed.push(s), writeOut: (s) => printed.push(s) });
    for (const sub of cmd.commands) quiet(sub as unknown as typeof program);
  };
  quiet(program);
  try {
    await program.parseAsync(args, { from: "user" });
  } catch (e) {
    ok(e instanceof CommanderError, `not a usage error: ${e}`);
    return { stderr: printed.join(""), code: exitCodeFor(e) };
  }
  throw new Error(`raftkv ${args.join(" ")} was accepted`);
}

Deno.test("a mistyped client command is named as unknown, with the closest one and the known ones", async () => {
  for (const args of [["client", "sett", "k", "v"], ["client", "--node", "127.0.0.1:1", "sett", "k", "v"]]) {
    const r = await refused(args);
    strictEqual(r.code, 2, r.stderr);
    strictEqual(
      r.stderr,
      "error: unknown command 'sett' for raftkv client: did you mean 'set'? " +
        "(commands: set, get, delete, cas, list, watch)\n",
    );
  }
});

Deno.test("a client word close to no command is unknown without a guess", async () => {
  const r = await refused(["client", "frobnicate", "k"]);
  strictEqual(r.code, 2);
  strictEqual(
    r.stderr,
    "error: unknown command 'frobnicate' for raftkv client (commands: set, get, delete, cas, list, watch)\n",
  );
});

Deno.test("mistyped admin and certs commands get the same one-line answer", async () => {
  const admin = await refused(["admin", "statsu"]);
  strictEqual(admin.code, 2);
  strictEqual(
    admin.stderr,
    "error: unknown command 'statsu' for raftkv admin: did you mean 'status'? " +
      "(commands: status, transfer-leader, dump-log, snapshot, add-node, remove-node)\n",
  );
  const certs = await refused(["certs", "inti", "--dir", "x"]);
  strictEqual(certs.code, 2);
  strictEqual(
    certs.stderr,
    "error: unknown command 'inti' for raftkv certs: did you mean 'init'? (commands: init, issue)\n",
  );
});

Deno.test("an unknown top-level command lists raftkv's commands", async () => {
  const r = await refused(["clinet", "get", "k"]);
  strictEqual(r.code, 2);
  ok(
    r.stderr.startsWith("error: unknown command 'clinet': did you mean 'client'? (commands: node, client, "),
    r.stderr,
  );
  strictEqual(r.stderr.split("\n").length, 2, r.stderr);
});

Deno.test("the closest command is one typo away, or the only one the word begins", () => {
  const names = ["status", "transfer-leader", "dump-log", "snapshot", "add-node", "remove-node"];
  strictEqual(closestCommand("statsu", names), "status");
  strictEqual(closestCommand("snapshto", names), "snapshot");
  strictEqual(closestCommand("transfer", names), "transfer-leader");
  strictEqual(closestCommand("dump", names), "dump-log");
  strictEqual(closestCommand("node", names), undefined); // two commands end in it, none begins with it
  strictEqual(closestCommand("xyz", names), undefined);
  strictEqual(closestCommand("s", ["set", "get"]), undefined); // one letter says too little
});
