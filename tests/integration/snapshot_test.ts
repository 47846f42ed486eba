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
import { WatchError } from "../../src/client/mod.ts";
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
      // DELETE and CAS go into the snapshots too: a deleted key stays gone, a CAS'd key keeps its version.
      strictEqual((await client.set("gone", "soon")).index > 0, true);
      strictEqual((await client.delete("gone")).deleted, true);
      const held = await client.cas("cas-key", { version: 0 }, "first");
      strictEqual(held.succeeded, true);
      want.set("cas-key", "first");
      await write(0, 700);
      // Every node snapshots on its own and keeps only the tail of its log.
      await c.waitFor(
        (s) => [...s.values()].every((x) => x !== undefined && (x.snapshotIndex ?? 0) > 400),
        20_000,
        "every node to have a snapshot beyond 400",
      );
      // The watch history went with the compacted log: a watch from index 1 is refused as compacted.
      const watchErr = await (async () => {
        try {
          for await (
            const _ of c.client({ clientId: "snap-watcher" }).watch("key-", { prefix: true, fromIndex: 1 })
          ) {
            return undefined;
          }
        } catch (e) {
          return e;
        }
      })();
      ok(watchErr instanceof WatchError && watchErr.kind === "compacted", String(watchErr));
      ok(watchErr.oldestIndex > 1, `oldest index ${watchErr.oldestIndex}`);
      for (const id of c.ids) {
        const first = (await Deno.readTextFile(c.logsPath(id))).split("\n")[0];
        ok(first.startsWith("BASE "), `node ${id}'s logs.txt starts with a BASE line: ${first}`);
        const snap = (await Deno.readTextFile(`${c.nodeDir(id)}/snapshot.txt`)).split("\n");
        // 60 keys and cas-key ("gone" was deleted); each KV line ends with the key's version.
        ok(/^SNAPSHOT format=2 index=\d+ term=\d+ keys=61 sessions=\d+ #[0-9a-f]{8}$/.test(snap[0]), snap[0]);
        ok(snap.some((l) => /^KV cas-key first \d+ #/.test(l)), `node ${id}: a KV line with a version`);
        ok(!snap.some((l) => l.startsWith("KV gone ")), `node ${id}: the deleted key is not in the snapshot`);
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
      // Parsed while it arrived, not read again from the file after the install.
      await c.waitForDump(wiped, /restored the snapshot at index \d+ as its chunks came/, 20_000);
      const l2 = await c.leader();
      await c.waitFor(
        (s) => s.get(wiped)?.commitIndex !== undefined && s.get(wiped)!.commitIndex >= l2.commitIndex,
        20_000,
        "the wiped follower to catch up",
      );
      // Each key's version (the index of its last change) as the old leader serves it.
      const reader = c.client({ clientId: "snap-reader" });
      const versions = new Map<string, number>();
      for (const k of want.keys()) versions.set(k, (await reader.get(k)).version ?? -1);

      // Leadership moves to the rebuilt node: it serves the values it got from the snapshot and the log.
      const t = await c.runCli(["admin", "transfer-leader", "--config", c.configPath, "--to", String(wiped)]);
      strictEqual(t.code, 0, t.stderr);
      await c.waitFor(
        (s) => s.get(wiped)?.role === "leader" && s.get(wiped)?.servingReads,
        10_000,
        "new leader",
      );
      for (const [k, v] of want) {
        const got = await reader.get(k);
        strictEqual(got.value, v, k);
        strictEqual(got.version, versions.get(k), `${k}'s version on the rebuilt node`);
      }
      strictEqual((await reader.get("gone")).found, false);
      // A CAS on the version the snapshot carried holds.
      const moved = await client.cas("cas-key", { version: versions.get("cas-key")! }, "second");
      strictEqual(moved.succeeded, true);
      want.set("cas-key", "second");

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
