import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import net from "node:net";
import { status } from "@grpc/grpc-js";
import type { AppendEntries, AppendEntriesResponse, Message, NodeId } from "../../raft/types.ts";
import { ClusterStub } from "../client_stub.ts";
import { RpcError } from "../errors.ts";
import { type CallContext, type PeerServing, startServer } from "../server.ts";
import { memoryCa } from "../../security/certs.ts";
import type { Identity } from "../../security/identity.ts";
import { CertificateStore, tlsMaterialFromPem } from "../../security/tls.ts";
import { RawPeerClients, type RawPeerClientsOptions } from "./client.ts";
import { type RawPeerServerOptions, startRawPeerServer } from "./server.ts";
import { encodeReply, Status } from "./frames.ts";

const CLUSTER = "raw-test";

const ae = (from: NodeId, to: NodeId, seq = 1, value = "v"): AppendEntries => ({
  type: "AppendEntries",
  from,
  to,
  term: 3,
  prevLogIndex: seq - 1,
  prevLogTerm: 3,
  entries: [{ index: seq, term: 3, command: { op: "set", key: "k", value, clientId: "c", seq } }],
  leaderCommit: seq - 1,
  leaseDurationMs: 800,
  seq,
});

const answer = (m: AppendEntries): AppendEntriesResponse => ({
  type: "AppendEntriesResponse",
  from: m.to,
  to: m.from,
  term: m.term,
  success: true,
  matchIndex: m.prevLogIndex + m.entries.length,
  conflictIndex: 0,
  conflictTerm: 0,
  seq: m.seq,
});

/** A fake node's Peer side: records deliveries and answers AppendEntries one way on the back path. */
class FakePeer implements PeerServing {
  readonly delivered: Message[] = [];
  readonly contexts: CallContext[] = [];
  constructor(readonly clusterId = CLUSTER) {}
  readonly peer = {
    requestVote: (req: Message & { type: "RequestVote" }) => ({
      type: "RequestVoteResponse" as const,
      from: req.to,
      to: req.from,
      term: req.term,
      preVote: req.preVote,
      voteGranted: true,
      leaseRemainingMs: 0,
      leaseTerm: 0,
    }),
    appendEntries: (): never => {
      throw new RpcError("FAILED_PRECONDITION", "one-way only");
    },
    timeoutNow: () => {},
    deliver: (msg: Message, ctx: CallContext, back: (m: Message) => boolean) => {
      this.delivered.push(msg);
      this.contexts.push(ctx);
      if (msg.type === "AppendEntries") back(answer(msg));
    },
  };
}

async function until(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function withRaw(
  fn: (
    env: { port: number; fake: FakePeer; refused: string[]; client: RawPeerClients; got: Message[] },
  ) => Promise<void>,
  opts: { server?: RawPeerServerOptions; client?: Partial<RawPeerClientsOptions>; fake?: FakePeer } = {},
): Promise<void> {
  const fake = opts.fake ?? new FakePeer();
  const refused: string[] = [];
  const server = await startRawPeerServer("127.0.0.1:0", fake, {
    ...opts.server,
    onRefused: (_r, why) => refused.push(why),
  });
  const got: Message[] = [];
  const client = new RawPeerClients({
    clusterId: CLUSTER,
    peers: { 2: `127.0.0.1:${server.port}` },
    deadlineMs: 500,
    onMessage: (m) => got.push(m),
    ...opts.client,
  });
  try {
    await fn({ port: server.port, fake, refused, client, got });
  } finally {
    client.close();
    await server.close();
  }
}

Deno.test("a one-way AppendEntries arrives whole and its response comes back on the same connection", async () => {
  await withRaw(async ({ fake, client, got }) => {
    for (let seq = 1; seq <= 50; seq++) ok(client.post(ae(1, 2, seq, "välue 🚀".repeat(seq))) || seq === 1);
    await until(
      "50 responses",
      () => got.length === 50 || (got.length === 49 && fake.delivered.length === 49),
    );
    deepStrictEqual(fake.delivered[fake.delivered.length - 1], ae(1, 2, 50, "välue 🚀".repeat(50)));
    deepStrictEqual(got[got.length - 1], answer(ae(1, 2, 50)));
    strictEqual(client.dropped, 0);
  });
});

Deno.test("a request with a call id gets its answer; a refused one resolves undefined with the server's code", async () => {
  await withRaw(async ({ client }) => {
    const vote = await client.send({
      type: "RequestVote",
      from: 1,
      to: 2,
      term: 4,
      lastLogIndex: 0,
      lastLogTerm: 0,
      preVote: true,
      revokedLeaseTerm: 0,
    });
    strictEqual(vote?.type, "RequestVoteResponse");
    strictEqual(vote?.voteGranted, true);
    strictEqual(await client.send(ae(1, 2)), undefined);
    strictEqual(client.lastError(2)?.code, status.FAILED_PRECONDITION);
    strictEqual(client.lastError(2)?.details, "one-way only");
  });
});

Deno.test("another cluster's one-way messages are dropped and its calls refused with FAILED_PRECONDITION", async () => {
  await withRaw(async ({ fake, client }) => {
    client.post(ae(1, 2));
    strictEqual(await client.send({ type: "TimeoutNow", from: 1, to: 2, term: 3 }), undefined);
    strictEqual(client.lastError(2)?.code, status.FAILED_PRECONDITION);
    ok(client.lastError(2)?.details.includes("cluster id"));
    strictEqual(fake.delivered.length, 0);
  }, { fake: new FakePeer("another-cluster") });
});

Deno.test("the handlers' signal aborts when the dialling side goes away (a lost leader connection)", async () => {
  await withRaw(async ({ fake, client, got }) => {
    client.post(ae(1, 2));
    await until("the response", () => got.length === 1);
    strictEqual(fake.contexts[0].signal.aborted, false);
    client.close();
    await until("the abort", () => fake.contexts[0].signal.aborted);
  });
});

Deno.test("a gRPC client dialling the raw port is refused, and the server says it was an HTTP/2 preface", async () => {
  await withRaw(async ({ port, refused }) => {
    const stub = new ClusterStub(`127.0.0.1:${port}`);
    try {
      await stub.get("k", 1000).then(() => ok(false, "answered"), () => {});
    } finally {
      stub.close();
    }
    await until("the refusal", () => refused.length > 0);
    ok(refused.some((r) => r.includes("HTTP/2 preface")), refused.join("; "));
  });
});

Deno.test("the raw client dialling a gRPC port reports that it is not a raw peer port", async () => {
  const grpcServer = await startServer("127.0.0.1:0", {
    ...new FakePeer(),
    client: { get: () => ({ ok: true }) as never, set: () => ({ ok: true }) as never },
    admin: {} as never,
  });
  const errors: string[] = [];
  const client = new RawPeerClients({
    clusterId: CLUSTER,
    peers: { 2: `127.0.0.1:${grpcServer.port}` },
    onError: (_id, e) => errors.push(e.message),
  });
  try {
    client.post(ae(1, 2));
    await until("an error", () => errors.length > 0);
    ok(/not a raftkv raw peer port|closed the connection/.test(errors[0]), errors[0]);
  } finally {
    client.close();
    await grpcServer.close();
  }
});

Deno.test("a frame over the listener's size limit closes the connection with RESOURCE_EXHAUSTED saying why", async () => {
  await withRaw(async ({ client, refused, fake }) => {
    client.post(ae(1, 2, 1, "x".repeat(5000)));
    await until("the failure", () => client.lastError(2) !== undefined);
    strictEqual(client.lastError(2)?.code, status.RESOURCE_EXHAUSTED);
    ok(client.lastError(2)?.details.includes("over the limit of 1000 bytes"), String(client.lastError(2)));
    ok(refused.some((r) => r.includes("over the limit")));
    strictEqual(fake.delivered.length, 0);
    // Frames within the limit get through on the next connection.
    await until("a new connection", () => client.connected(2));
    client.post(ae(1, 2, 2));
    await until("the small frame", () => fake.delivered.length === 1);
  }, { server: { limits: { maxMessageBytes: 1000 } } });
});

Deno.test("the dialling side refuses to send a frame over its own limit and keeps its connection", async () => {
  await withRaw(async ({ client, fake }) => {
    await until("connected", () => client.connected(2));
    strictEqual(client.post(ae(1, 2, 1, "x".repeat(5000))), false);
    strictEqual(client.lastError(2)?.code, status.RESOURCE_EXHAUSTED);
    ok(client.post(ae(1, 2, 2)));
    await until("the small frame", () => fake.delivered.length === 1);
  }, { client: { maxFrameBytes: 1000 } });
});

Deno.test("connections over maxConnections are refused with RESOURCE_EXHAUSTED naming the limit", async () => {
  await withRaw(async ({ port, client }) => {
    await until("the first connection", () => client.connected(2));
    const errors: string[] = [];
    const second = new RawPeerClients({
      clusterId: CLUSTER,
      peers: { 2: `127.0.0.1:${port}` },
      onError: (_id, e) => errors.push(`${e.codeName} ${e.details}`),
    });
    try {
      await until("the refusal", () => errors.length > 0);
      ok(errors[0].startsWith("RESOURCE_EXHAUSTED") && errors[0].includes("maxConnections (1)"), errors[0]);
    } finally {
      second.close();
    }
  }, { server: { limits: { maxConnections: 1 } } });
});

Deno.test("a connection that sends no hello is closed after handshakeTimeoutMs", async () => {
  await withRaw(async ({ port, refused }) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    const closed = new Promise<void>((r) => socket.on("close", () => r()));
    socket.on("error", () => {});
    socket.resume();
    const t0 = Date.now();
    await closed;
    ok(Date.now() - t0 < 3000);
    ok(refused.some((r) => r.includes("no handshake within 200 ms")), refused.join("; "));
  }, { server: { limits: { handshakeTimeoutMs: 200 } } });
});

Deno.test("a listener that stops reading makes posts drop at framesQueuedMax instead of buffering", async () => {
  // A fake listener: accepts the hello, then never reads again.
  const sockets: net.Socket[] = [];
  const listener = net.createServer((s) => {
    sockets.push(s);
    s.once("data", () => {
      s.write(encodeReply(Status.ACCEPTED));
      s.pause();
    });
  });
  await new Promise<void>((r) => listener.listen({ host: "127.0.0.1", port: 0 }, () => r()));
  const port = (listener.address() as net.AddressInfo).port;
  const client = new RawPeerClients({
    clusterId: CLUSTER,
    peers: { 2: `127.0.0.1:${port}` },
    framesQueuedMax: 4,
  });
  try {
    await until("connected", () => client.connected(2));
    const big = "x".repeat(256 * 1024);
    let sent = 0;
    for (let i = 1; i <= 200 && client.dropped === 0; i++) if (client.post(ae(1, 2, i, big))) sent++;
    ok(client.dropped > 0, `nothing dropped after ${sent} posts`);
    ok(sent < 200);
  } finally {
    client.close();
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => listener.close(() => r()));
  }
});

Deno.test("a restarted listener is found again: one onError for the outage, then onRecovered", async () => {
  const fake = new FakePeer();
  let server = await startRawPeerServer("127.0.0.1:0", fake);
  const port = server.port;
  const events: string[] = [];
  const got: Message[] = [];
  const client = new RawPeerClients({
    clusterId: CLUSTER,
    peers: { 2: `127.0.0.1:${port}` },
    onError: () => events.push("error"),
    onRecovered: () => events.push("recovered"),
    onMessage: (m) => got.push(m),
  });
  try {
    await until("connected", () => client.connected(2));
    await server.close();
    await until("the outage", () => events.length === 1);
    await new Promise((r) => setTimeout(r, 300)); // several reconnect attempts fail meanwhile
    server = await startRawPeerServer(`127.0.0.1:${port}`, fake);
    await until("reconnected", () => client.connected(2), 2000);
    client.post(ae(1, 2));
    await until("the response", () => got.length === 1);
    deepStrictEqual(events, ["error", "recovered"]);
  } finally {
    client.close();
    await server.close();
  }
});

type Ca = Awaited<ReturnType<typeof memoryCa>>;

async function store(ca: Ca, id: Identity): Promise<CertificateStore> {
  const pair = await ca.issue(id);
  return new CertificateStore(tlsMaterialFromPem({ ca: ca.caCert, ...pair }));
}

Deno.test("under mutual TLS node certificates connect; the sender must be the member its certificate names", async () => {
  const ca = await memoryCa();
  const fake = new FakePeer();
  const server = await startRawPeerServer("127.0.0.1:0", fake, {
    tls: await store(ca, { role: "node", nodeId: 2 }),
    limits: { handshakeTimeoutMs: 300 },
  });
  const got: Message[] = [];
  const client = new RawPeerClients({
    clusterId: CLUSTER,
    peers: { 2: `127.0.0.1:${server.port}` },
    tls: await store(ca, { role: "node", nodeId: 1 }),
    onMessage: (m) => got.push(m),
  });
  try {
    await until("connected", () => client.connected(2));
    client.post(ae(3, 2)); // claims to be node 3: dropped
    client.post(ae(1, 2, 2));
    await until("the response", () => got.length === 1);
    deepStrictEqual(fake.delivered.map((m) => m.from), [1]);
    // The handshake timer stopped at the hello: the connection outlives handshakeTimeoutMs.
    await new Promise((r) => setTimeout(r, 600));
    ok(client.connected(2));
    strictEqual(fake.contexts[0].signal.aborted, false);
    client.post(ae(1, 2, 3));
    await until("the second response", () => got.length === 2);
    strictEqual((fake.contexts[0].identity as { nodeId: number }).nodeId, 1);
  } finally {
    client.close();
    await server.close();
  }
});

Deno.test("under mutual TLS a client certificate, another CA's node or the wrong node are refused", async () => {
  const ca = await memoryCa();
  const other = await memoryCa();
  const fake = new FakePeer();
  const refused: string[] = [];
  const server = await startRawPeerServer("127.0.0.1:0", fake, {
    tls: await store(ca, { role: "node", nodeId: 2 }),
    onRefused: (_r, why) => refused.push(why),
  });
  const attempt = async (tls: CertificateStore, expectNode = 2): Promise<string> => {
    const errors: string[] = [];
    const c = new RawPeerClients({
      clusterId: CLUSTER,
      peers: { [expectNode]: `127.0.0.1:${server.port}` },
      tls,
      onError: (_id, e) => errors.push(`${e.codeName} ${e.details}`),
    });
    try {
      await until("a refusal", () => errors.length > 0);
      return errors[0];
    } finally {
      c.close();
    }
  };
  try {
    const asClient = await attempt(await store(ca, { role: "client", name: "mallory" }));
    ok(asClient.startsWith("UNAUTHENTICATED") && asClient.includes("may not send Raft traffic"), asClient);
    // A dialler trusting the listener's CA but presenting another CA's node certificate: the listener refuses.
    const forged = new CertificateStore(
      tlsMaterialFromPem({ ca: ca.caCert, ...await other.issue({ role: "node", nodeId: 1 }) }),
    );
    const otherCa = await attempt(forged);
    ok(otherCa.startsWith("UNAUTHENTICATED") && otherCa.includes("not signed by this cluster's CA"), otherCa);
    // And a dialler of another CA refuses the listener's certificate itself.
    ok((await attempt(await store(other, { role: "node", nodeId: 1 }))).includes("verify"));
    await until(
      "the refusal of another CA",
      () => refused.some((r) => r.includes("not signed by this cluster's CA")),
    );
    // The dialler checks the listener too: node 2's certificate where node 3 was expected.
    const wrongNode = await attempt(await store(ca, { role: "node", nodeId: 1 }), 3);
    ok(wrongNode.includes("expected node 3"), wrongNode);
    strictEqual(fake.delivered.length, 0);
  } finally {
    await server.close();
  }
});

Deno.test("a handshake slower than the RPC deadline is not reset by posts meanwhile: it completes", async () => {
  // A fake listener that answers the hello only after 400 ms (a TLS handshake on a starved machine).
  let connections = 0;
  const sockets: net.Socket[] = [];
  const listener = net.createServer((s) => {
    connections++;
    sockets.push(s);
    s.on("error", () => {});
    s.once("data", () => setTimeout(() => s.write(encodeReply(Status.ACCEPTED)), 400));
  });
  await new Promise<void>((r) => listener.listen({ host: "127.0.0.1", port: 0 }, () => r()));
  const port = (listener.address() as net.AddressInfo).port;
  const client = new RawPeerClients({
    clusterId: CLUSTER,
    peers: { 2: `127.0.0.1:${port}` },
    deadlineMs: 100,
  });
  try {
    for (let i = 1; !client.connected(2); i++) {
      if (i > 100) throw new Error("never connected");
      client.post(ae(1, 2, i));
      await new Promise((r) => setTimeout(r, 20));
    }
    strictEqual(connections, 1);
  } finally {
    client.close();
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => listener.close(() => r()));
  }
});

Deno.test("a connection reset for silence is replaced at once: the post that reset it is not dropped", async () => {
  await withRaw(async ({ fake, client }) => {
    await until("connected", () => client.connected(2));
    await new Promise((r) => setTimeout(r, 150)); // older than the reconnect backoff
    const timeoutNow = (term: number): Message => ({ type: "TimeoutNow", from: 1, to: 2, term });
    ok(client.post(timeoutNow(1))); // nothing comes back for a TimeoutNow
    await new Promise((r) => setTimeout(r, 250)); // over the 100 ms deadline: the next post resets
    ok(client.post(timeoutNow(2)));
    strictEqual(client.lastError(2)?.codeName, "DEADLINE_EXCEEDED");
    await until("both delivered", () => fake.delivered.length === 2);
    deepStrictEqual(fake.delivered.map((m) => m.term), [1, 2]);
    strictEqual(fake.contexts[0].signal.aborted, true, "the first connection ended");
    strictEqual(fake.contexts[1].signal.aborted, false);
    strictEqual(client.dropped, 0);
  }, { client: { deadlineMs: 100 } });
});

Deno.test("after a certificate rotation (a new CA) new raw connections use the new certificates and the old CA's are refused", async () => {
  const oldCa = await memoryCa();
  const newCa = await memoryCa();
  const listenerStore = await store(oldCa, { role: "node", nodeId: 2 });
  const diallerStore = await store(oldCa, { role: "node", nodeId: 1 });
  const fake = new FakePeer();
  const refused: string[] = [];
  const server = await startRawPeerServer("127.0.0.1:0", fake, {
    tls: listenerStore,
    onRefused: (_r, why) => refused.push(why),
  });
  const peers = new Map([[2, `127.0.0.1:${server.port}`]]);
  const got: Message[] = [];
  const client = new RawPeerClients({
    clusterId: CLUSTER,
    peers,
    tls: diallerStore,
    onMessage: (m) => got.push(m),
  });
  const oldDialler = new RawPeerClients({
    clusterId: CLUSTER,
    peers,
    tls: await store(oldCa, { role: "node", nodeId: 1 }),
  });
  try {
    await until("connected on the old certificates", () => client.connected(2));
    oldDialler.close();
    // The rotation (what SIGHUP does on each node: CertificateStore.reload → update).
    listenerStore.update(
      tlsMaterialFromPem({ ca: newCa.caCert, ...await newCa.issue({ role: "node", nodeId: 2 }) }),
    );
    diallerStore.update(
      tlsMaterialFromPem({ ca: newCa.caCert, ...await newCa.issue({ role: "node", nodeId: 1 }) }),
    );
    // A new connection (the old one is closed by a membership round trip): only the new CA on both sides
    // verifies, so it being accepted shows the dialler sent its new certificate and the listener its new one.
    client.setPeers(new Map());
    client.setPeers(peers);
    await until("connected on the new certificates", () => client.connected(2));
    client.post(ae(1, 2, 1));
    await until("the response", () => got.length === 1);
    strictEqual((fake.contexts[fake.contexts.length - 1].identity as { nodeId: number }).nodeId, 1);
    // A dialler still on the old CA's certificate is refused now (and refuses the listener's new one).
    const errors: string[] = [];
    const stale = new RawPeerClients({
      clusterId: CLUSTER,
      peers,
      tls: await store(oldCa, { role: "node", nodeId: 1 }),
      onError: (_id, e) => errors.push(`${e.codeName} ${e.details}`),
    });
    try {
      await until("the stale dialler's refusal", () => errors.length > 0);
      ok(!stale.connected(2));
    } finally {
      stale.close();
    }
    const forged = new RawPeerClients({
      clusterId: CLUSTER,
      peers,
      // Trusts the new CA (so it gets past its own check) but presents the old CA's node certificate.
      tls: new CertificateStore(
        tlsMaterialFromPem({ ca: newCa.caCert, ...await oldCa.issue({ role: "node", nodeId: 1 }) }),
      ),
    });
    try {
      await until(
        "the listener to refuse the old CA",
        () => refused.some((r) => r.includes("not signed by this cluster's CA")),
      );
    } finally {
      forged.close();
    }
  } finally {
    client.close();
    oldDialler.close();
    await server.close();
  }
});

Deno.test("a plain-text peer dialling a TLS listener is told, and the listener says, that only one side runs TLS", async () => {
  const ca = await memoryCa();
  const refused: string[] = [];
  const server = await startRawPeerServer("127.0.0.1:0", new FakePeer(), {
    tls: await store(ca, { role: "node", nodeId: 2 }),
    onRefused: (_r, why) => refused.push(why),
  });
  const errors: string[] = [];
  const client = new RawPeerClients({
    clusterId: CLUSTER,
    peers: { 2: `127.0.0.1:${server.port}` }, // no tls: a node started with --insecure
    onError: (_id, e) => errors.push(`${e.codeName} ${e.details}`),
  });
  try {
    client.post(ae(1, 2));
    await until("the dialler's error", () => errors.length > 0);
    ok(/answered with TLS: .*--insecure/.test(errors[0]), errors[0]);
    await until("the listener's refusal", () => refused.length > 0);
    ok(
      /TLS handshake failed: .*a peer without TLS \(started with --insecure\?\)/.test(refused[0]),
      refused[0],
    );
  } finally {
    client.close();
    await server.close();
  }
});
