/**
 * Peer messages are one way: a node's response to a request travels as its own message, so a request the
 * core ignores cannot leave behind a reply slot that a later response would fill (issue 14, part 3).
 *
 * The test plays node 2 of a three-node cluster against a real node 1: its own gRPC server stands at node
 * 2's address and records what node 1 sends it; it talks to node 1 with PeerClients (request/response calls,
 * which exist before and after the change), and collects node 1's responses from both paths.
 */
import { RaftNode } from "./raft_node.ts";
import { freeRawPortOffset } from "../transport/raw/mod.ts";
import { parseClusterConfig } from "../config/cluster_config.ts";
import { peerFingerprint } from "../raft/config.ts";
import type { AppendEntries, Message } from "../raft/types.ts";
import { PeerClients, RpcError, type ServerHandlers, startServer } from "../transport/mod.ts";

function freePorts(n: number): number[] {
  const listeners = [...Array(n)].map(() => Deno.listen({ hostname: "127.0.0.1", port: 0 }));
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  return ports;
}

Deno.test({
  name: "a request node 1 ignores does not make its later responses go to the wrong caller",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const ports = freePorts(3);
    const config = parseClusterConfig({
      clusterId: "oneway",
      nodes: ports.map((p, i) => ({ id: i + 1, address: `127.0.0.1:${p}` })),
      rawPeerPortOffset: freeRawPortOffset(ports), // raw peer ports (the default) clear of other listeners
      // Node 1 must stay a follower while the test talks to it.
      heartbeatIntervalMs: 100,
      electionTimeoutMsMin: 20_000,
      electionTimeoutMsMax: 30_000,
      leaseDurationMs: 1000,
    });
    // What peers send as their cluster id: the id and the timings (issue 11, rule 6).
    const fingerprint = peerFingerprint(config.clusterId, config);
    const received: Message[] = [];
    const refuse = () => {
      throw new RpcError("UNIMPLEMENTED", "fake node 2");
    };
    const handlers = {
      clusterId: fingerprint,
      peer: {
        requestVote: refuse,
        appendEntries: refuse,
        timeoutNow: refuse,
        deliver: (msg: Message) => received.push(msg),
      },
      client: { get: refuse, set: refuse },
      admin: { status: refuse, transferLeader: refuse, dumpLog: refuse },
    } as unknown as ServerHandlers;
    const fake2 = await startServer(config.nodes[1].address, handlers);
    const dir = await Deno.makeTempDir({ prefix: "raftkv-oneway-test-" });
    const node1 = await RaftNode.start({ config, id: 1, dataDir: dir });
    const peers = new PeerClients({
      clusterId: fingerprint,
      // "Node 99" is node 1's address too: a misaddressed request, which node 1's core ignores.
      peers: new Map([[1, config.nodes[0].address], [99, config.nodes[0].address]]),
      deadlineMs: 1500,
    });
    try {
      const append = (to: number, seq: number): AppendEntries => ({
        type: "AppendEntries",
        from: 2,
        to,
        term: 1,
        prevLogIndex: 0,
        prevLogTerm: 0,
        entries: [],
        leaderCommit: 0,
        leaseDurationMs: 500,
        seq,
      });
      // 1. Addressed to another node: node 1's core ignores it and answers nothing.
      const ignored = await peers.send(append(99, 1));
      // 2. A proper heartbeat from "leader" 2: node 1 answers it (seq 2).
      const answered = await peers.send(append(1, 2));
      const deadline = performance.now() + 3000;
      const seqs = () => [
        ...(answered?.type === "AppendEntriesResponse" ? [answered.seq] : []),
        ...received.flatMap((m) => (m.type === "AppendEntriesResponse" ? [m.seq] : [])),
      ];
      while (!seqs().includes(2) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      if (!seqs().includes(2)) {
        throw new Error(
          `node 1's response to heartbeat seq 2 never reached node 2 (call answers: ${
            JSON.stringify([ignored, answered])
          }, one-way messages: ${JSON.stringify(received)})`,
        );
      }
      if (seqs().includes(1)) throw new Error("node 1 answered the request addressed to node 99");
    } finally {
      peers.close();
      await node1.stop();
      await fake2.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
