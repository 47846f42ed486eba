/**
 * The raw peer transport is the default: a rolling upgrade from the previous release (whose nodes serve no raw
 * port) keeps the cluster available. Three real processes on the default `rawPeerPortOffset` (1000), one of
 * them configured as the previous release would be (gRPC peers only, no raw port): the others fall back to
 * gRPC for their links to it, say so once, show it on /metrics, elect and write wherever the leader is, and
 * move those links to raw once the node is restarted on the default.
 *
 *     deno test -A tests/integration/raw_fallback_test.ts
 *
 * @module
 */

import { ok, strictEqual } from "node:assert/strict";
import net from "node:net";
import { IT, type LocalCluster, withCluster } from "./harness.ts";

const DEFAULT_OFFSET = 1000;

/** Node `id`'s /metrics text. */
async function scrape(c: LocalCluster, id: number): Promise<string> {
  const res = await fetch(`http://${c.metricsAddresses.get(id)!}/metrics`);
  return await res.text();
}

/** The transport node `from`'s /metrics says its link to `to` uses (undefined: no such sample at 1). */
async function linkTransport(c: LocalCluster, from: number, to: number): Promise<string | undefined> {
  const text = await scrape(c, from);
  const m = new RegExp(`^raftkv_peer_transport\\{peer="${to}",transport="(raw|grpc)"[^}]*\\} 1$`, "m").exec(
    text,
  );
  return m?.[1];
}

/** True when something accepts TCP connections on node `id`'s default raw port. */
function rawPortOpen(c: LocalCluster, id: number): Promise<boolean> {
  const port = Number(c.addresses.get(id)!.split(":")[1]) + DEFAULT_OFFSET;
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port });
    s.on("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.on("error", () => resolve(false));
  });
}

async function transferTo(c: LocalCluster, to: number): Promise<void> {
  await c.waitUntil(
    async () => {
      const leader = await c.leader(10_000);
      if (leader.id === to) return true;
      const r = await c.runCli(["admin", "transfer-leader", "--config", c.configPath, "--to", String(to)]);
      return r.code === 0 && (await c.leader(10_000)).id === to;
    },
    30_000,
    `the leadership to move to node ${to}`,
  );
}

async function previousReleaseAmongDefault(insecure: boolean): Promise<void> {
  await withCluster(
    { nodes: 3, name: "rawfallback", insecure, metrics: true, rawPorts: "default" },
    async (c) => {
      const OLD = 3;
      const NEW = c.ids.filter((id) => id !== OLD);
      // All on the default: raw links everywhere, on port + 1000 (no offset in the config).
      const config = JSON.parse(await Deno.readTextFile(c.configPath));
      strictEqual(config.rawPeerPortOffset, undefined, "the test runs on the default offset");
      strictEqual(config.peerTransport, undefined, "the test runs on the default transport");
      for (const id of c.ids) {
        for (const peer of c.ids.filter((p) => p !== id)) {
          await c.waitForDump(id, `Peer link to Node ${peer} uses the raw transport`, 10_000);
        }
      }
      const client = c.client();
      await client.set("before", "all-raw");

      // Node 3 restarted as the previous release is configured: no peerTransport in its release meant gRPC
      // peers and no raw port; in this release that is "peerTransport": "grpc" without an offset.
      const oldPath = `${c.dir}/cluster-previous-release.json`;
      await Deno.writeTextFile(oldPath, JSON.stringify({ ...config, peerTransport: "grpc" }, null, 2));
      strictEqual((await c.kill(OLD, "SIGTERM")).code, 0);
      c.useConfig(OLD, oldPath);
      c.restart(OLD);
      await c.waitForReplication((await c.status((await c.leader(20_000)).id))!.commitIndex);
      ok(!(await rawPortOpen(c, OLD)), "the previous release serves no raw port");
      const warning = (id: number) =>
        c.waitForDump(
          id,
          new RegExp(
            `WARN.*Node ${OLD} serves no raw peer port at 127\\.0\\.0\\.1:\\d+ .*using gRPC peers until it ` +
              `serves raw: an older version, or a different rawPeerPortOffset`,
          ),
          20_000,
        );
      for (const id of NEW) {
        await warning(id);
        await c.waitUntil(
          async () => (await linkTransport(c, id, OLD)) === "grpc",
          10_000,
          `${id}→3 on gRPC`,
        );
        strictEqual(
          await linkTransport(c, id, NEW.find((p) => p !== id)!),
          "raw",
          "the new nodes stay on raw",
        );
      }

      // Elections and writes wherever the leader is: on the old node, and back.
      await transferTo(c, OLD);
      const onOld = await client.set("leader", "old");
      strictEqual(onOld.nodeId, OLD);
      await transferTo(c, NEW[0]);
      const onNew = await client.set("leader", "new");
      strictEqual(onNew.nodeId, NEW[0]);
      await c.waitForReplication((await c.status(NEW[0]))!.commitIndex);
      strictEqual((await client.get("before")).value, "all-raw");
      strictEqual((await client.get("leader")).value, "new");
      // Said once per peer, however many probes of its raw port were refused meanwhile.
      for (const id of NEW) {
        const said = (await c.readDump(id)).filter((l) => l.includes(`Node ${OLD} serves no raw peer port`));
        strictEqual(said.length, 1, `node ${id} warned ${said.length} times:\n${said.join("\n")}`);
      }

      // The upgrade of node 3: restarted on the default, every link to it moves to raw.
      strictEqual((await c.kill(OLD, "SIGTERM")).code, 0);
      c.useConfig(OLD, undefined);
      c.restart(OLD);
      for (const id of NEW) {
        await c.waitForDump(
          id,
          new RegExp(
            `Peer link to Node ${OLD} uses the raw transport at .* \\(moved from gRPC: it serves raw now\\)`,
          ),
          20_000,
        );
        await c.waitUntil(
          async () => (await linkTransport(c, id, OLD)) === "raw",
          10_000,
          `${id}→3 on raw`,
        );
      }
      for (const peer of NEW) {
        await c.waitUntil(
          async () => (await linkTransport(c, OLD, peer)) === "raw",
          20_000,
          `3→${peer} on raw`,
        );
      }
      const after = await client.set("after", "upgrade");
      ok(after.index > onNew.index);
      await c.waitForReplication(after.index);
    },
  );
}

Deno.test({
  name:
    "a node of the previous release (no raw port) among nodes on the raw default gets gRPC links from them, said once, and raw ones once restarted on the default",
  ...IT,
  fn: () => previousReleaseAmongDefault(true),
});

Deno.test({
  name: "the same rolling upgrade under mutual TLS: gRPC links to the old node, raw ones after its upgrade",
  ...IT,
  fn: () => previousReleaseAmongDefault(false),
});
