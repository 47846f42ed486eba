import { ok } from "node:assert/strict";
import { PeerClients, WARM_INTERVAL_MS } from "./peer_client.ts";
import { type ServerHandlers, startServer } from "./server.ts";

const unused = () => Promise.reject(new Error("unused"));
const HANDLERS = {
  clusterId: "warm-test",
  peer: { requestVote: unused, appendEntries: unused, timeoutNow: unused },
  client: { get: unused, set: unused },
  admin: { status: unused, transferLeader: unused, dumpLog: unused },
} as unknown as ServerHandlers;

async function waitFor(cond: () => boolean, withinMs: number): Promise<boolean> {
  const until = performance.now() + withinMs;
  while (!cond() && performance.now() < until) await new Promise((r) => setTimeout(r, 20));
  return cond();
}

Deno.test("PeerClients connects to a peer it never sends to", async () => {
  const server = await startServer("127.0.0.1:0", HANDLERS);
  const peers = new PeerClients({ clusterId: "warm-test", peers: { 2: `127.0.0.1:${server.port}` } });
  try {
    ok(await waitFor(() => server.connections > 0, 5000), "a connection without any message sent");
  } finally {
    peers.close();
    await server.close();
  }
});

Deno.test("PeerClients reconnects to a peer that restarted, without being sent anything", async () => {
  const first = await startServer("127.0.0.1:0", HANDLERS);
  const address = `127.0.0.1:${first.port}`;
  const peers = new PeerClients({ clusterId: "warm-test", peers: { 2: address } });
  try {
    ok(await waitFor(() => first.connections > 0, 5000), "connected to the first server");
    await first.close(); // the connection drops: the channel falls idle
    await new Promise((r) => setTimeout(r, 200));
    const second = await startServer(address, HANDLERS);
    try {
      ok(
        await waitFor(() => second.connections > 0, WARM_INTERVAL_MS * 3 + 2000),
        "connected again once the peer listened again",
      );
    } finally {
      await second.close();
    }
  } finally {
    peers.close();
  }
});
