/**
 * Snapshots with real processes (issue 10): the log is compacted behind snapshots, a wiped follower is rebuilt
 * from the leader's snapshot (InstallSnapshot) and serves correct values after a transfer to it, restart
 * loads the snapshot, and `raftkv admin snapshot` forces one.
 *
 *     deno test -A tests/integration/snapshot_test.ts
 *
 * @module
 */

import { ok, strictEqual } from "node:assert/strict";
import { IT, withCluster } from "./harness.ts";

Deno.test({
  name:
    "snapshots: logs are compacted, a wiped follower is rebuilt by InstallSnapshot and serves after a transfer",
  ...IT,
  fn: async () => {
    await withCluster({
      nodes: 3,
      name: "snap",
      extraConfig: { snapshotThresholdEntries: 200, snapshotTrailingEntries: 20, snapshotChunkBytes: 4096 },
    }, async (c) => {
      const client = c.client({ clientId: "snap-writer" });
      const want = new Map<string, string>();
      const write = async (from: number, to: number) => {
        for (let i = from; i < to; i++) {
          const key = `key-${i % 60}`, value = `value ${i} ${"x".repeat(i % 50)}`;
          await client.set(key, value);
          want.set(key, value);
        }
      };
      await write(0, 700);
      // Every node snapshots on its own and keeps only the tail of its log.
      await c.waitFor(
        (s) => [...s.values()].every((x) => x !== undefined && (x.snapshotIndex ?? 0) > 400),
        20_000,
        "every node to have a snapshot beyond 400",
      );
      for (const id of c.ids) {
        const first = (await Deno.readTextFile(c.logsPath(id))).split("\n")[0];
        ok(first.startsWith("BASE "), `node ${id}'s logs.txt starts with a BASE line: ${first}`);
        const snap = (await Deno.readTextFile(`${c.nodeDir(id)}/snapshot.txt`)).split("\n");
        ok(/^SNAPSHOT format=1 index=\d+ term=\d+ keys=60 sessions=\d+ #[0-9a-f]{8}$/.test(snap[0]), snap[0]);
        strictEqual(snap.at(-2)?.startsWith("END #"), true);
        const st = await c.status(id);
        ok(
          st !== undefined && (st.logEntries ?? Infinity) < 400,
          `node ${id} holds a short log: ${st?.logEntries}`,
        );
      }

      // A follower loses its folder; the cluster moves on and compacts past everything it had.
      const leader = await c.leader();
      const wiped = c.ids.find((id) => id !== leader.id)!;
      await c.kill(wiped);
      await Deno.remove(c.nodeDir(wiped), { recursive: true });
      await write(700, 1100);
      c.restart(wiped);
      await c.waitForDump(wiped, /installed the snapshot at index \d+/, 20_000);
      const l2 = await c.leader();
      await c.waitFor(
        (s) => s.get(wiped)?.commitIndex !== undefined && s.get(wiped)!.commitIndex >= l2.commitIndex,
        20_000,
        "the wiped follower to catch up",
      );

      // Leadership moves to the rebuilt node: it serves the values it got from the snapshot and the log.
      const t = await c.runCli(["admin", "transfer-leader", "--config", c.configPath, "--to", String(wiped)]);
      strictEqual(t.code, 0, t.stderr);
      await c.waitFor(
        (s) => s.get(wiped)?.role === "leader" && s.get(wiped)?.servingReads,
        10_000,
        "new leader",
      );
      const reader = c.client({ clientId: "snap-reader" });
      for (const [k, v] of want) strictEqual((await reader.get(k)).value, v, k);

      // `admin snapshot` forces one on the leader; a restart loads the snapshot and replays only the suffix.
      const r = await c.runCli(["admin", "snapshot", "--config", c.configPath, "--json"]);
      strictEqual(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout);
      strictEqual(out.ok, true);
      strictEqual(out.id, wiped);
      await c.kill(wiped);
      c.restart(wiped);
      await c.waitForDump(
        wiped,
        new RegExp(`starting \\(term \\d+, snapshot at ${out.snapshotIndex}`),
        10_000,
      );
      await c.leader();
      for (const [k, v] of want) strictEqual((await reader.get(k)).value, v, `${k} after restart`);
    });
  },
});
