/**
 * `raftkv cluster` run again on a folder after `admin add-node --replace`: it starts the members of the
 * latest configuration its nodes' folders hold (a log's CONFIG entry, or a snapshot's CONFIG line), not the
 * bootstrap list of cluster.json, so a replaced node is not brought back from its stale or empty folder.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { localClusterConfig } from "../config/cluster_config.ts";
import { encodeEntryLines } from "../storage/codec.ts";
import { encodeSnapshot } from "../storage/snapshot_file.ts";
import type { Membership } from "../raft/membership.ts";
import type { Entry } from "../raft/types.ts";
import { latestConfiguration, planNodes } from "./cluster_members.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-members-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const voters = (ids: number[], extra: Record<number, string> = {}): Membership => ({
  members: ids.map((id) => ({ id, address: extra[id] ?? `127.0.0.1:${7100 + id}`, voter: true })),
});

/** `dir/logs_node_<id>/logs.txt` holding `entries` (1, 2, … in term 1 unless given). */
async function writeLog(dir: string, id: number, commands: Entry["command"][], term = 1): Promise<void> {
  await Deno.mkdir(`${dir}/logs_node_${id}`, { recursive: true });
  const entries = commands.map((command, i) => ({ index: i + 1, term, command }));
  await Deno.writeFile(`${dir}/logs_node_${id}/logs.txt`, encodeEntryLines(entries).bytes);
}

const set = (key: string): Entry["command"] => ({ op: "set", key, value: "v", clientId: "", seq: 0 });

Deno.test("folders without a configuration entry leave cluster.json's nodes to start, as before", async () => {
  await withDir(async (dir) => {
    await writeLog(dir, 1, [{ op: "noop" }, set("a")]);
    await Deno.mkdir(`${dir}/logs_node_2`);
    strictEqual(await latestConfiguration(dir), undefined);
    const plan = planNodes(localClusterConfig(3, 7101), dir, undefined);
    deepStrictEqual(plan.start.map((n) => [n.id, n.join]), [[1, false], [2, false], [3, false]]);
    deepStrictEqual([plan.removed, plan.notHere], [[], []]);
  });
});

Deno.test("after node 3 was replaced by node 6, cluster starts 1, 2, 4, 5 and 6 (with --join), not 3", async () => {
  await withDir(async (dir) => {
    const joint: Membership = { ...voters([1, 2, 3, 4, 5, 6]), outgoingVoters: [1, 2, 3, 4, 5] };
    const after = voters([1, 2, 4, 5, 6]);
    // Node 1 saw the whole replacement; node 3 died before it (its folder says nothing of it); node 6's
    // folder has the log it received.
    for (const id of [1, 2, 4, 5, 6]) {
      await writeLog(dir, id, [{ op: "noop" }, set("a"), { op: "config", membership: joint }, {
        op: "config",
        membership: after,
      }]);
    }
    await writeLog(dir, 3, [{ op: "noop" }, set("a")]);
    const latest = await latestConfiguration(dir);
    ok(latest);
    deepStrictEqual([latest.index, latest.term, latest.membership], [4, 1, after]);
    const plan = planNodes(localClusterConfig(5, 7101), dir, latest);
    deepStrictEqual(plan.start.map((n) => [n.id, n.address, n.join]), [
      [1, "127.0.0.1:7101", false],
      [2, "127.0.0.1:7102", false],
      [4, "127.0.0.1:7104", false],
      [5, "127.0.0.1:7105", false],
      [6, "127.0.0.1:7106", true],
    ]);
    deepStrictEqual([plan.removed, plan.notHere], [[3], []]);
  });
});

Deno.test("the latest configuration wins: a higher term, then a higher index; a stale folder's older one loses", async () => {
  await withDir(async (dir) => {
    await writeLog(dir, 1, [{ op: "noop" }, { op: "config", membership: voters([1, 2, 3]) }], 2);
    await writeLog(dir, 2, [{ op: "noop" }, set("x"), { op: "config", membership: voters([1, 2]) }], 1);
    const latest = await latestConfiguration(dir);
    deepStrictEqual([latest?.index, latest?.term, latest?.nodeId], [2, 2, 1]);
  });
});

Deno.test("a member with no folder here is named, not started from an empty folder; a joint phase starts both sides", async () => {
  await withDir(async (dir) => {
    const joint: Membership = { ...voters([1, 2, 7]), outgoingVoters: [1, 2, 3] };
    await writeLog(dir, 1, [{ op: "noop" }, { op: "config", membership: joint }]);
    const plan = planNodes(localClusterConfig(3, 7101), dir, await latestConfiguration(dir));
    deepStrictEqual(plan.start.map((n) => n.id), [1, 2, 3]);
    deepStrictEqual([plan.removed, plan.notHere.map((m) => m.id)], [[], [7]]);
  });
});

Deno.test("a snapshot's CONFIG line counts when the log was compacted past the change", async () => {
  await withDir(async (dir) => {
    await Deno.mkdir(`${dir}/logs_node_1`);
    const config = { index: 40, membership: voters([1, 2]), everUsed: [1, 2, 3] };
    await Deno.writeFile(
      `${dir}/logs_node_1/snapshot.txt`,
      encodeSnapshot({
        header: { index: 50, term: 3, keys: 0, sessions: 0, config },
        sessions: () => [],
        nextPairs: () => [],
      }),
    );
    const latest = await latestConfiguration(dir);
    deepStrictEqual([latest?.index, latest?.membership.members.map((m) => m.id)], [40, [1, 2]]);
  });
});
