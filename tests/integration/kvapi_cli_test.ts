/**
 * Issue 15 from the command line on a real 3-node cluster: `raftkv client delete | cas | list | watch`, the
 * DEL/CAS lines of logs.txt and the dump.txt wording.
 */
import { ok, strictEqual } from "node:assert/strict";
import { IT, withCluster } from "./harness.ts";

Deno.test({
  name: "the CLI deletes, compare-and-sets, lists and watches, and logs.txt and dump.txt say so",
  ...IT,
  fn: async () => {
    await withCluster({ nodes: 3, name: "kvapi" }, async (c) => {
      const leader = await c.leader();
      const cli = (...args: string[]) => c.runCli(["client", "--config", c.configPath, ...args]);
      strictEqual((await cli("set", "cfg/a", "1")).stdout, "OK\n");
      const held = await cli("cas", "cfg/a", "1", "two words");
      ok(held.code === 0 && /^OK \(version \d+\)\n$/.test(held.stdout), JSON.stringify(held));
      const missed = await cli("cas", "cfg/a", "1", "3");
      strictEqual(missed.code, 3, JSON.stringify(missed));
      strictEqual(missed.stdout.split(" (version")[0], 'FAILED: current value "two words"');
      strictEqual((await cli("cas", "--absent", "lock", "me")).code, 0);
      strictEqual((await cli("cas", "--absent", "lock", "you")).code, 3);
      strictEqual((await cli("delete", "lock")).stdout, "OK\n");
      strictEqual((await cli("delete", "lock")).stdout, "OK (absent)\n");
      strictEqual((await cli("get", "lock")).stdout, "\n");
      strictEqual((await cli("set", "cfg/b", "2")).code, 0);
      strictEqual((await cli("list", "--prefix", "cfg/")).stdout, "cfg/a\ncfg/b\n");
      strictEqual(
        (await cli("list", "--prefix", "cfg/", "--limit", "1", "--values")).stdout,
        'cfg/a\t"two words"\n',
      );
      // A watch from index 1 replays the history: stop it once it has printed the last change.
      const watch = await c.runCli([
        "client",
        "--config",
        c.configPath,
        "watch",
        "--prefix",
        "cfg/",
        "--from",
        "1",
      ], 4000);
      const lines = watch.stdout.trim().split("\n");
      ok(
        /^\d+ SET cfg\/a 1$/.test(lines[0]) && /^\d+ CAS cfg\/a "two words"$/.test(lines[1]) &&
          /^\d+ SET cfg\/b 2$/.test(lines[2]),
        watch.stdout,
      );
      const logs = await c.readLogs(leader.id);
      ok(logs.some((e) => e.op === "CAS" && e.expected === "1" && e.value === "two words"), "a CAS line");
      ok(
        logs.some((e) => e.op === "CAS" && e.expected === "@absent" && e.value === "me"),
        "a CAS @absent line",
      );
      ok(logs.some((e) => e.op === "DEL" && e.key === "lock" && e.clientId), "a DEL line with its session");
      await c.waitForDump(leader.id, `Node ${leader.id} (leader) received a CAS request.`);
      await c.waitForDump(
        leader.id,
        `Node ${leader.id} (leader) committed the entry DEL lock to the state machine.`,
      );
    });
  },
});
