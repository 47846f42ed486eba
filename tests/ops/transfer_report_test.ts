/**
 * A transfer to a node that is down does not report a hand-off: the leader steps down when the transfer times
 * out, someone else is elected, and the command says the target did not take over (it used to print the
 * elected node as the "new leader", and a stopping leader logged "handed leadership to Node N").
 */
import { ok, strictEqual } from "node:assert/strict";
import { IT, withCluster } from "../integration/harness.ts";

Deno.test(
  "transfer-leader to a node that is down fails, naming why, instead of reporting a hand-off",
  IT,
  async () => {
    await withCluster({ nodes: 3, name: "transfer-down" }, async (c) => {
      const leader = await c.leader();
      const down = c.ids.find((id) => id !== leader.id)!;
      await c.kill(down);
      const r = await c.runCli(["admin", "transfer-leader", "--config", c.configPath, "--to", String(down)]);
      strictEqual(r.code, 1, r.stdout + r.stderr);
      ok(r.stderr.includes(`node ${down} did not take over`), r.stderr);
      ok(/this node stepped down: transfer to node \d+ timed out/.test(r.stderr), r.stderr);
      ok(!r.stdout.includes("new leader"), r.stdout);
    });
  },
);
