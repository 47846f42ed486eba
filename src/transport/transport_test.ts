import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import * as pb from "../gen/raftkv.ts";
import type {
  AppendEntries,
  AppendEntriesResponse,
  Entry,
  NodeId,
  RequestVote,
  TimeoutNow,
} from "../raft/types.ts";
import type { NodeStatus } from "./api.ts";
import { ClusterStub } from "./client_stub.ts";
import { refusalToReply } from "./codec.ts";
import { RpcError, TransportError } from "./errors.ts";
import { PeerClients } from "./peer_client.ts";
import { type CallContext, type RunningServer, type ServerHandlers, startServer } from "./server.ts";

const CLUSTER = "test-cluster";

const ENTRIES: readonly Entry[] = [
  { index: 1, term: 1, command: { op: "noop" } },
  {
    index: 2,
    term: 1,
    command: { op: "set", key: "a key\nwith newline", value: "välue 🚀", clientId: "c", seq: 1 },
  },
];

const STATUS: NodeStatus = {
  id: 1,
  address: "127.0.0.1:7001",
  role: "leader",
  term: 4,
  votedFor: 1,
  leaderId: 1,
  commitIndex: 2,
  lastLogIndex: 2,
  lastLogTerm: 1,
  leaseRemainingMs: 700.5,
  leaseWaitRemainingMs: 0,
  servingReads: true,
  promiseRemainingMs: 0,
  peerRpcCount: 17,
  version: "test",
};

/** Never settles until the caller gives up (then rejects, like a node abandoning the wait). */
function hang(ctx: CallContext): Promise<never> {
  return new Promise((_, reject) => ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason)));
}

/** A fake node: records what it received; behaviour is switched by keys and flags. */
class FakeNode {
  readonly received: (RequestVote | AppendEntries | TimeoutNow)[] = [];
  readonly aborted: string[] = [];
  /** When set, every Peer handler throws it. */
  peerFailure: Error | undefined;
  hangPeer = false;

  handlers(clusterId = CLUSTER): ServerHandlers {
    const peerGate = (ctx: CallContext): Promise<void> | void => {
      if (this.peerFailure) throw this.peerFailure;
      if (this.hangPeer) return this.#hang("peer", ctx);
    };
    return {
      clusterId,
      peer: {
        requestVote: async (req, ctx) => {
          await peerGate(ctx);
          this.received.push(req);
          return {
            type: "RequestVoteResponse",
            from: req.to,
            to: req.from,
            term: req.term,
            preVote: req.preVote,
            voteGranted: true,
            leaseRemainingMs: 123.5,
            leaseTerm: req.term - 1,
          };
        },
        appendEntries: async (req, ctx): Promise<AppendEntriesResponse> => {
          await peerGate(ctx);
          this.received.push(req);
          return {
            type: "AppendEntriesResponse",
            from: req.to,
            to: req.from,
            term: req.term,
            success: true,
            matchIndex: req.prevLogIndex + req.entries.length,
            conflictIndex: 0,
            conflictTerm: 0,
            seq: req.seq,
          };
        },
        timeoutNow: async (req, ctx) => {
          await peerGate(ctx);
          this.received.push(req);
        },
      },
      client: {
        get: (req, ctx) => {
          if (req.key === "hang") return this.#hang("get", ctx);
          if (req.key === "unavailable") throw new RpcError("UNAVAILABLE", "shutting down");
          if (req.key === "bug") throw new Error("boom");
          if (req.key === "elsewhere") {
            return {
              ...refusalToReply({ kind: "notLeader", leaderId: 2 }),
              leaderAddress: "h2:7002",
              nodeId: 1,
            };
          }
          return { ok: true, value: `value of ${req.key}`, found: true, nodeId: 1 };
        },
        set: (req) => ({
          ok: true,
          index: 40 + req.seq,
          nodeId: 1,
          errorMessage: `${req.clientId}:${req.key}`,
        }),
      },
      admin: {
        status: () => STATUS,
        transferLeader: (toId) =>
          toId === 9
            ? { ok: false, newLeaderId: 0, error: "no node 9" }
            : { ok: true, newLeaderId: toId || 2, error: "" },
        dumpLog: (req) => ({ entries: ENTRIES.slice(Math.max(0, req.fromIndex - 1)), commitIndex: 2 }),
      },
    };
  }

  #hang(what: string, ctx: CallContext): Promise<never> {
    ctx.signal.addEventListener("abort", () => this.aborted.push(what));
    return hang(ctx);
  }
}

async function withServer(
  node: FakeNode,
  fn: (server: RunningServer, address: string) => Promise<void>,
  options: { clusterId?: string; address?: string } = {},
): Promise<void> {
  const server = await startServer(options.address ?? "127.0.0.1:0", node.handlers(options.clusterId));
  try {
    await fn(server, `127.0.0.1:${server.port}`);
  } finally {
    await server.close();
  }
}

/** Polls `cond` until it holds or `timeoutMs` passes (then fails with `what`). */
async function waitFor(
  what: string,
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

const rv = (to: NodeId): RequestVote => ({
  type: "RequestVote",
  from: 1,
  to,
  term: 5,
  lastLogIndex: 2,
  lastLogTerm: 1,
  preVote: true,
  revokedLeaseTerm: 4,
});

const ae = (to: NodeId, seq = 1): AppendEntries => ({
  type: "AppendEntries",
  from: 1,
  to,
  term: 5,
  prevLogIndex: 0,
  prevLogTerm: 0,
  entries: ENTRIES,
  leaderCommit: 1,
  leaseDurationMs: 800,
  seq,
});

for (const streams of [true, false]) {
  const mode = streams ? "frames on a Peer stream" : "unary calls";

  Deno.test(`PeerClients delivers each Raft request and returns the peer's response (${mode})`, async () => {
    const node = new FakeNode();
    await withServer(node, async (_server, address) => {
      const peers = new PeerClients({ streams, clusterId: CLUSTER, peers: { 2: address } });
      try {
        const vote = await peers.send(rv(2));
        deepStrictEqual(vote, {
          type: "RequestVoteResponse",
          from: 2,
          to: 1,
          term: 5,
          preVote: true,
          voteGranted: true,
          leaseRemainingMs: 123.5,
          leaseTerm: 4,
        });
        const ack = await peers.send(ae(2, 77));
        strictEqual(ack?.success, true);
        strictEqual(ack?.matchIndex, 2);
        strictEqual(ack?.seq, 77);
        strictEqual(await peers.send({ type: "TimeoutNow", from: 1, to: 2, term: 5 }), undefined);
        deepStrictEqual(node.received, [rv(2), ae(2, 77), { type: "TimeoutNow", from: 1, to: 2, term: 5 }]);
        strictEqual(peers.rpcCount, 3);
        strictEqual(peers.failureStreak(2), 0);
      } finally {
        peers.close();
      }
    });
  });

  Deno.test(`a peer of another cluster refuses Raft requests with FAILED_PRECONDITION (${mode})`, async () => {
    const node = new FakeNode();
    await withServer(node, async (_server, address) => {
      const errors: TransportError[] = [];
      const peers = new PeerClients({
        streams,
        clusterId: "some-other-cluster",
        peers: new Map([[2, address]]),
        onError: (_id, err) => errors.push(err),
      });
      try {
        strictEqual(await peers.send(rv(2)), undefined);
        strictEqual(await peers.send(ae(2)), undefined);
        strictEqual(await peers.send({ type: "TimeoutNow", from: 1, to: 2, term: 5 }), undefined);
        strictEqual(node.received.length, 0);
        strictEqual(errors.length, 1);
        strictEqual(errors[0].codeName, "FAILED_PRECONDITION");
        ok(errors[0].details.includes("cluster id or timings mismatch"), errors[0].details);
        strictEqual(peers.lastError(2)?.codeName, "FAILED_PRECONDITION");
        strictEqual(peers.failureStreak(2), 3);
        strictEqual(peers.rpcCount, 3);
      } finally {
        peers.close();
      }
    }, { clusterId: CLUSTER });
  });

  Deno.test(`onError fires once per failure streak and onRecovered when the peer answers again (${mode})`, async () => {
    const node = new FakeNode();
    await withServer(node, async (_server, address) => {
      const events: string[] = [];
      const peers = new PeerClients({
        streams,
        clusterId: CLUSTER,
        peers: { 2: address },
        onError: (id, err) => events.push(`error ${id} ${err.codeName}`),
        onRecovered: (id, failures) => events.push(`recovered ${id} after ${failures}`),
      });
      try {
        node.peerFailure = new RpcError("UNAVAILABLE", "disk full");
        for (let i = 0; i < 3; i++) strictEqual(await peers.send(ae(2, i)), undefined);
        node.peerFailure = undefined;
        ok(await peers.send(ae(2, 3)));
        node.peerFailure = new Error("bug");
        strictEqual(await peers.send(ae(2, 4)), undefined);
        deepStrictEqual(events, ["error 2 UNAVAILABLE", "recovered 2 after 3", "error 2 INTERNAL"]);
        strictEqual(peers.lastError(2)?.details, "Error: bug");
      } finally {
        peers.close();
      }
    });
  });

  Deno.test(`a Raft request to an unreachable peer resolves undefined with UNAVAILABLE (${mode})`, async () => {
    const errors: TransportError[] = [];
    const peers = new PeerClients({
      streams,
      clusterId: CLUSTER,
      peers: { 3: `127.0.0.1:${freePort()}` },
      deadlineMs: 2000,
      onError: (_id, err) => errors.push(err),
    });
    try {
      strictEqual(await peers.send(rv(3)), undefined);
      strictEqual(errors.length, 1);
      strictEqual(errors[0].codeName, "UNAVAILABLE");
    } finally {
      peers.close();
    }
  });

  Deno.test(`a peer that restarts on the same address is reached again by the same PeerClients (${mode})`, async () => {
    const node = new FakeNode();
    const first = await startServer("127.0.0.1:0", node.handlers());
    const address = `127.0.0.1:${first.port}`;
    const peers = new PeerClients({ streams, clusterId: CLUSTER, peers: { 2: address }, deadlineMs: 300 });
    try {
      ok(await peers.send(ae(2)));
      await first.close();
      strictEqual(await peers.send(ae(2)), undefined);
      const second = await startServer(address, node.handlers());
      try {
        const started = Date.now();
        await waitFor("the restarted peer to answer", async () => (await peers.send(ae(2))) !== undefined);
        // Reconnect backoff is capped at 1 s: the peer is found again well within an election timeout.
        ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
      } finally {
        await second.close();
      }
    } finally {
      peers.close();
      await first.close();
    }
  });

  Deno.test(`a Raft request whose peer does not answer in time resolves undefined with DEADLINE_EXCEEDED (${mode})`, async () => {
    const node = new FakeNode();
    node.hangPeer = true;
    await withServer(node, async (_server, address) => {
      const peers = new PeerClients({ streams, clusterId: CLUSTER, peers: { 2: address }, deadlineMs: 5000 });
      try {
        const started = Date.now();
        strictEqual(await peers.send(ae(2), { deadlineMs: 150 }), undefined);
        ok(Date.now() - started < 2000);
        strictEqual(peers.lastError(2)?.codeName, "DEADLINE_EXCEEDED");
        await waitFor("the handler to see the cancellation", () => node.aborted.includes("peer"));
      } finally {
        peers.close();
      }
    });
  });

  Deno.test(`sending a response message or to an unknown peer is a programming error (${mode})`, async () => {
    const peers = new PeerClients({ streams, clusterId: CLUSTER, peers: { 2: "127.0.0.1:1" } });
    try {
      await rejects(
        peers.send({
          type: "AppendEntriesResponse",
          from: 1,
          to: 2,
          term: 1,
          success: true,
          matchIndex: 0,
          conflictIndex: 0,
          conflictTerm: 0,
          seq: 0,
        }),
        TypeError,
      );
      await rejects(peers.send(rv(7)), TypeError);
      strictEqual(peers.rpcCount, 0);
    } finally {
      peers.close();
    }
  });
}

Deno.test("answers on a Peer stream that come back out of order reach the requests they answer", async () => {
  const node = new FakeNode();
  const handlers = node.handlers();
  const slow = handlers.peer.appendEntries;
  // The first AppendEntries is answered after the second one.
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => (release = r));
  handlers.peer.appendEntries = async (req, ctx) => {
    if (req.seq === 1) await gate;
    return await slow(req, ctx);
  };
  const server = await startServer("127.0.0.1:0", handlers);
  const peers = new PeerClients({ clusterId: CLUSTER, peers: { 2: `127.0.0.1:${server.port}` } });
  try {
    const first = peers.send(ae(2, 1));
    const second = await peers.send(ae(2, 2));
    strictEqual(second?.seq, 2);
    release();
    strictEqual((await first)?.seq, 1);
    deepStrictEqual(node.received.map((m) => (m as AppendEntries).seq), [2, 1]);
  } finally {
    peers.close();
    await server.close();
  }
});

Deno.test("a Peer stream that went silent past a deadline is replaced, and the next request gets through", async () => {
  const node = new FakeNode();
  node.hangPeer = true;
  await withServer(node, async (_server, address) => {
    const peers = new PeerClients({ clusterId: CLUSTER, peers: { 2: address } });
    try {
      strictEqual(await peers.send(ae(2, 1), { deadlineMs: 100 }), undefined);
      strictEqual(peers.lastError(2)?.codeName, "DEADLINE_EXCEEDED");
      await waitFor("the server to see the silent stream cancelled", () => node.aborted.includes("peer"));
      node.hangPeer = false;
      strictEqual((await peers.send(ae(2, 2)))?.seq, 2);
      strictEqual(peers.failureStreak(2), 0);
    } finally {
      peers.close();
    }
  });
});

Deno.test("a Peer stream frame without a request is answered with INVALID_ARGUMENT and the stream stays open", async () => {
  await withServer(new FakeNode(), async (_server, address) => {
    const client = new pb.PeerClient(address, grpc.credentials.createInsecure());
    const call = client.stream();
    try {
      const answers: pb.PeerFrame[] = [];
      call.on("data", (f: pb.PeerFrame) => answers.push(f));
      call.on("error", () => {});
      call.write({ callId: 7 });
      call.write({ callId: 8, timeoutNow: { clusterId: CLUSTER, from: 1, to: 2, term: 5 } });
      await waitFor("two answers", () => answers.length === 2);
      const bad = answers.find((a) => a.callId === 7)!;
      strictEqual(bad.error?.code, grpc.status.INVALID_ARGUMENT);
      ok(bad.error?.message.includes("must carry a request"), bad.error?.message);
      ok(answers.find((a) => a.callId === 8)?.timeoutNowResponse);
    } finally {
      call.cancel();
      client.close();
    }
  });
});

for (const streams of [true, false]) {
  const mode = streams ? "frames on a Client stream" : "unary calls";

  Deno.test(`ClusterStub reaches every Client and Admin call and returns plain objects (GET/SET as ${mode})`, async () => {
    await withServer(new FakeNode(), async (_server, address) => {
      const stub = new ClusterStub(address, {}, { streams });
      try {
        deepStrictEqual(await stub.get("my key", 2000), {
          ok: true,
          value: "value of my key",
          found: true,
          version: 0,
          error: "none",
          errorMessage: "",
          leaderId: 0,
          leaderAddress: "",
          retryAfterMs: 0,
          nodeId: 1,
        });
        const redirected = await stub.get("elsewhere", 2000);
        strictEqual(redirected.ok, false);
        strictEqual(redirected.error, "notLeader");
        strictEqual(redirected.leaderId, 2);
        strictEqual(redirected.leaderAddress, "h2:7002");
        const set = await stub.set("k", "v\nw", "client-1", 2, 2000);
        strictEqual(set.ok, true);
        strictEqual(set.index, 42);
        strictEqual(set.errorMessage, "client-1:k");
        deepStrictEqual(await stub.status(2000), STATUS);
        deepStrictEqual(await stub.transferLeader(0, 2000), { ok: true, newLeaderId: 2, error: "" });
        deepStrictEqual(await stub.transferLeader(9, 2000), {
          ok: false,
          newLeaderId: 0,
          error: "no node 9",
        });
        deepStrictEqual(await stub.dumpLog(2, 0, 2000), { entries: ENTRIES.slice(1), commitIndex: 2 });
      } finally {
        stub.close();
      }
    });
  });

  Deno.test(`a deadline that expires surfaces as a TransportError with DEADLINE_EXCEEDED (GET/SET as ${mode})`, async () => {
    const node = new FakeNode();
    await withServer(node, async (_server, address) => {
      const stub = new ClusterStub(address, {}, { streams });
      try {
        await rejects(stub.get("hang", 150), (err: unknown) => {
          ok(err instanceof TransportError);
          strictEqual(err.codeName, "DEADLINE_EXCEEDED");
          strictEqual(err.address, address);
          return true;
        });
        await waitFor("the handler to see the cancellation", () => node.aborted.includes("get"));
        // The channel is still usable afterwards.
        strictEqual((await stub.get("x", 2000)).ok, true);
      } finally {
        stub.close();
      }
    });
  });

  Deno.test(`handler errors become gRPC statuses: an RpcError keeps its code, anything else is INTERNAL (GET/SET as ${mode})`, async () => {
    await withServer(new FakeNode(), async (_server, address) => {
      const stub = new ClusterStub(address, {}, { streams });
      try {
        await rejects(stub.get("unavailable", 2000), { name: "TransportError", codeName: "UNAVAILABLE" });
        await rejects(stub.get("bug", 2000), {
          name: "TransportError",
          codeName: "INTERNAL",
          details: "Error: boom",
        });
      } finally {
        stub.close();
      }
    });
  });

  Deno.test(`an unreachable node surfaces as a TransportError with UNAVAILABLE (GET/SET as ${mode})`, async () => {
    const stub = new ClusterStub(`127.0.0.1:${freePort()}`, {}, { streams });
    try {
      await rejects(stub.status(2000), { name: "TransportError", codeName: "UNAVAILABLE" });
      await rejects(stub.get("k", 2000), { name: "TransportError", codeName: "UNAVAILABLE" });
      await rejects(stub.set("k", "v", "", 0, 2000), { name: "TransportError", codeName: "UNAVAILABLE" });
    } finally {
      stub.close();
    }
  });

  Deno.test(`a closed stub refuses calls with CANCELLED (GET/SET as ${mode})`, async () => {
    const stub = new ClusterStub("127.0.0.1:1", {}, { streams });
    stub.close();
    await rejects(stub.get("k", 100), { name: "TransportError", codeName: "CANCELLED" });
  });
}

Deno.test("GETs and SETs in flight together on one Client stream each get their own reply", async () => {
  await withServer(new FakeNode(), async (_server, address) => {
    const stub = new ClusterStub(address);
    try {
      const keys = Array.from({ length: 50 }, (_, i) => `key ${i}`);
      const [gets, sets] = await Promise.all([
        Promise.all(keys.map((k) => stub.get(k, 2000))),
        Promise.all(keys.map((k, i) => stub.set(k, "v", "c", i, 2000))),
      ]);
      deepStrictEqual(gets.map((g) => g.value), keys.map((k) => `value of ${k}`));
      deepStrictEqual(sets.map((r) => r.index), keys.map((_, i) => 40 + i));
    } finally {
      stub.close();
    }
  });
});

Deno.test("starting a server on an address already in use fails with an error naming the address", async () => {
  await withServer(new FakeNode(), async (_server, address) => {
    await rejects(startServer(address, new FakeNode().handlers()), (err: unknown) => {
      ok(err instanceof Error);
      ok(err.message.includes(address), err.message);
      return true;
    });
  });
});

Deno.test("closing a server twice is harmless and frees its port", async () => {
  const server = await startServer("127.0.0.1:0", new FakeNode().handlers());
  await server.close();
  await server.close();
  const again = await startServer(`127.0.0.1:${server.port}`, new FakeNode().handlers());
  await again.close();
});

Deno.test("a Client stream with its limit of requests in flight answers the next one overloaded at once", async () => {
  const node = new FakeNode();
  const server = await startServer("127.0.0.1:0", { ...node.handlers(), clientFramesInFlightMax: 3 });
  const stub = new ClusterStub(`127.0.0.1:${server.port}`);
  try {
    const hung = [1, 2, 3].map(() => stub.get("hang", 3000).catch(() => undefined));
    const t0 = performance.now();
    const next = await stub.set("k", "v", "c", 1, 3000);
    strictEqual(next.ok, false);
    strictEqual(next.error, "overloaded");
    ok(performance.now() - t0 < 2000, "refused at once, not after the hung requests");
    stub.close();
    await Promise.all(hung);
  } finally {
    stub.close();
    await server.close();
  }
});

Deno.test("one-way Peer frames reach deliver with no answer, and another cluster's are dropped", async () => {
  const delivered: unknown[] = [];
  const base = new FakeNode().handlers();
  const server = await startServer("127.0.0.1:0", {
    ...base,
    peer: { ...base.peer, deliver: (msg) => delivered.push(msg) },
  });
  const address = `127.0.0.1:${server.port}`;
  const ours = new PeerClients({ clusterId: CLUSTER, peers: new Map([[1, address]]) });
  const theirs = new PeerClients({ clusterId: "other", peers: new Map([[1, address]]) });
  try {
    const response = {
      type: "AppendEntriesResponse" as const,
      from: 2,
      to: 1,
      term: 3,
      success: true,
      matchIndex: 7,
      conflictIndex: 0,
      conflictTerm: 0,
      seq: 9,
    };
    ok(theirs.post(response));
    ok(ours.post(response));
    const t0 = performance.now();
    while (delivered.length < 1 && performance.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 100));
    deepStrictEqual(delivered, [response]);
  } finally {
    ours.close();
    theirs.close();
    await server.close();
  }
});

Deno.test("a connection carrying a Peer stream gets the wider HTTP/2 windows and a client's does not", async () => {
  await withServer(new FakeNode(), async (server, address) => {
    const stub = new ClusterStub(address, {}, { streams: true });
    const peers = new PeerClients({ clusterId: CLUSTER, peers: { 2: address } });
    try {
      ok((await stub.get("k", 2000)).ok);
      strictEqual(server.widePeerConnections, 0);
      ok(await peers.send(rv(2)));
      strictEqual(server.widePeerConnections, 1);
      ok(await peers.send(ae(2)));
      strictEqual(server.widePeerConnections, 1, "one connection, widened once");
      peers.close();
      await waitFor("the widened connection to close", () => server.widePeerConnections === 0);
    } finally {
      peers.close();
      stub.close();
    }
  });
});
