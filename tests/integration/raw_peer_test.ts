/**
 * The raw peer transport (`"peerTransport": "raw"`, src/transport/raw/) on clusters of real processes: they
 * elect, replicate and survive a leader kill (with the connection-reset signal driving the fast PreVote), in
 * plain text and under mutual TLS.
 *
 *     deno test -A tests/integration/raw_peer_test.ts
 *
 * @module
 */

import { ok, strictEqual } from "node:assert/strict";
import net from "node:net";
import { IT, type LocalCluster, withCluster } from "./harness.ts";
import { encodeHello, parseReply, RawStatus } from "../../src/transport/raw/mod.ts";

/**
 * The raw port is the gRPC port plus this: the harness's ports are ephemeral ones (32768-60999), so minus
 * 30000 lands below the ephemeral range, where no outgoing connection takes it.
 */
const OFFSET = -30000;
const RAW = { peerTransport: "raw", rawPeerPortOffset: OFFSET };

/** Dials node `id`'s raw port in plain text and returns the status its reply carries. */
async function helloStatus(c: LocalCluster, id: number): Promise<number> {
  const port = Number(c.addresses.get(id)!.split(":")[1]) + OFFSET;
  const socket = net.connect({ host: "127.0.0.1", port });
  try {
    return await new Promise<number>((resolve, reject) => {
      let got = new Uint8Array(0);
      socket.on("error", reject);
      socket.on("data", (chunk: Uint8Array) => {
        const all = new Uint8Array(got.length + chunk.length);
        all.set(got);
        all.set(chunk, got.length);
        got = all;
        try {
          const reply = parseReply(got, `node ${id}`);
          if (reply) resolve(reply.status);
        } catch (e) {
          reject(e); // not a raw peer reply (e.g. a TLS alert)
        }
      });
      socket.write(encodeHello());
    });
  } finally {
    socket.destroy();
  }
}

async function electReplicateSurviveKill(c: LocalCluster): Promise<void> {
  const leader = await c.leader(20_000);
  for (const id of c.ids) {
    await c.waitForDump(id, /serves Peer traffic on the raw transport/);
  }
  const client = c.client();
  for (let i = 0; i < 20; i++) await client.set(`k${i}`, `v${i}`);
  const index = (await c.status(leader.id))!.commitIndex;
  await c.waitForReplication(index);
  await c.kill(leader.id, "SIGKILL");
  const rest = c.ids.filter((id) => id !== leader.id);
  const next = await c.leader(10_000, rest);
  ok(next.term > leader.term, `new leader ${next.id} in term ${next.term} after ${leader.term}`);
  // The followers saw the raw connection from the dead leader end (a reset, not a timeout).
  await c.waitUntil(
    async () => {
      for (const id of rest) {
        const lines = await c.readDump(id);
        if (lines.some((l) => l.includes(`lost its connection to Leader ${leader.id} (reset`))) return true;
      }
      return false;
    },
    5000,
    "a follower to report the lost connection to the killed leader",
  );
  const after = await client.set("after", "kill");
  strictEqual(after.nodeId, next.id);
  strictEqual((await client.get("k19")).value, "v19");
  strictEqual((await client.get("after")).value, "kill");
}

Deno.test({
  name: "raw peer transport: three nodes in plain text elect, replicate and survive a leader kill",
  ...IT,
  fn: async () => {
    await withCluster({ nodes: 3, name: "raw", insecure: true, extraConfig: RAW }, async (c) => {
      for (const id of c.ids) {
        await c.waitForDump(id, /serves Peer traffic on the raw transport/);
        strictEqual(await helloStatus(c, id), RawStatus.ACCEPTED);
      }
      await electReplicateSurviveKill(c);
    });
  },
});

Deno.test({
  name: "raw peer transport: three nodes under mutual TLS elect, replicate and survive a leader kill",
  ...IT,
  fn: async () => {
    await withCluster({ nodes: 3, name: "rawtls", extraConfig: RAW }, async (c) => {
      // Without a certificate the raw port does not even get to the hello.
      await c.waitForDump(1, /serves Peer traffic on the raw transport/);
      const plain = await helloStatus(c, 1).then((s) => `status ${s}`, (e) => `refused: ${e}`);
      ok(plain.startsWith("refused"), `a plain-text hello to a TLS raw port was answered with ${plain}`);
      await electReplicateSurviveKill(c);
    });
  },
});

Deno.test({
  name:
    "raw peer transport: a TLS cluster switches from gRPC peers to raw in rolling restarts, serving writes throughout",
  ...IT,
  fn: async () => {
    // Step 1 of the switch: an explicit offset makes every node serve raw connections while it dials gRPC.
    await withCluster(
      { nodes: 3, name: "rawroll", extraConfig: { rawPeerPortOffset: OFFSET } },
      async (c) => {
        for (const id of c.ids) await c.waitForDump(id, /serves Peer traffic on the raw transport/);
        const client = c.client();
        await client.set("before", "grpc");
        // Step 2: "peerTransport": "raw", one node at a time (a mixed cluster in between).
        const config = JSON.parse(await Deno.readTextFile(c.configPath));
        await Deno.writeTextFile(c.configPath, JSON.stringify({ ...config, peerTransport: "raw" }, null, 2));
        for (const id of c.ids) {
          const status = await c.kill(id, "SIGTERM");
          strictEqual(status.code, 0, `node ${id} stopped cleanly`);
          c.restart(id);
          await c.leader(20_000);
          const r = await client.set(`after-${id}`, "mixed");
          ok(r.index > 0, `a SET after node ${id} switched`);
        }
        const leader = await c.leader();
        await c.waitForReplication((await c.status(leader.id))!.commitIndex);
        strictEqual((await client.get("before")).value, "grpc");
        strictEqual((await client.get(`after-${c.ids[c.ids.length - 1]}`)).value, "mixed");
      },
    );
  },
});
