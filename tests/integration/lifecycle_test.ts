/**
 * Stopping nodes gracefully: SIGTERM makes a leader hand off (revoking its lease) before it exits 0.
 *
 *     deno test -A tests/integration/lifecycle_test.ts
 *
 * @module
 */

import { ok, strictEqual } from "node:assert/strict";
import { IT, withCluster } from "./harness.ts";

Deno.test({
  name:
    "lifecycle: SIGTERM to the leader hands leadership off, exits 0, and the node rejoins after a restart",
  ...IT,
  fn: async () => {
    await withCluster({ nodes: 3, name: "sigterm" }, async (c) => {
      const leader = await c.leader();
      const client = c.client();
      await client.set("before", "term");
      const t0 = performance.now();
      const st = await c.kill(leader.id, "SIGTERM");
      const exitMs = performance.now() - t0;
      strictEqual(st.code, 0, `exit code after SIGTERM: ${st.code}\n${(await c.output(leader.id)).stderr}`);
      const others = c.ids.filter((id) => id !== leader.id);
      const next = await c.leader(5000, others);
      const handOffMs = performance.now() - t0;
      await client.set("after", "term");
      strictEqual((await client.get("before")).value, "term");
      console.log(
        `lifecycle: leader ${leader.id} exited ${
          exitMs.toFixed(0)
        } ms after SIGTERM; node ${next.id} serving ` +
          `reads ${
            handOffMs.toFixed(0)
          } ms after the signal (election timeout min ${c.timings.electionTimeoutMsMin} ms)`,
      );
      const dump = await c.readDump(leader.id);
      ok(
        dump.some((l) => /handed leadership to Node \d+ before stopping|revoked its lease/.test(l)),
        `dump.txt shows the hand-off:\n${dump.slice(-10).join("\n")}`,
      );
      ok(dump.at(-1)?.includes(`Node ${leader.id} stopped.`), `last dump line: ${dump.at(-1)}`);

      c.restart(leader.id);
      const target = (await c.status(next.id))!;
      await c.waitFor(
        (s) => s.get(leader.id)?.role === "follower" && s.get(leader.id)!.commitIndex >= target.commitIndex,
        10_000,
        `node ${leader.id} to rejoin as a follower with commit ${target.commitIndex}`,
      );
    });
  },
});
