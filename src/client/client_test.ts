import { deepStrictEqual, match, ok, rejects, strictEqual } from "node:assert/strict";
import {
  type Answer,
  type GetReply,
  type GetRequest,
  type RunningServer,
  type SetReply,
  type SetRequest,
  startServer,
} from "../transport/mod.ts";
import { RpcCode, RpcError, TransportError } from "../transport/mod.ts";
import { backoffMs } from "./backoff.ts";
import { describeTransportError, RaftkvClient } from "./client.ts";
import {
  ClientClosedError,
  InvalidArgumentError,
  NoLeaderError,
  NotRaftkvError,
  RequestTooLargeError,
  SessionExpiredError,
  StaleSequenceError,
  TimeoutError,
} from "./errors.ts";

type SetHandler = (req: SetRequest, call: number) => Answer<SetReply> | Promise<Answer<SetReply>>;
type GetHandler = (req: GetRequest, call: number) => Answer<GetReply> | Promise<Answer<GetReply>>;

/** A fake node: Client requests go to swappable handlers; everything it received is recorded. */
class FakeNode {
  readonly id: number;
  server!: RunningServer;
  address = "";
  readonly sets: SetRequest[] = [];
  readonly gets: GetRequest[] = [];
  onSet: SetHandler;
  onGet: GetHandler;

  constructor(id: number) {
    this.id = id;
    this.onSet = () => ({ ok: true, index: 1, nodeId: id });
    this.onGet = () => ({ ok: true, value: `v${id}`, found: true, nodeId: id });
  }

  async start(): Promise<this> {
    const refuse = () => {
      throw new RpcError("UNIMPLEMENTED", "fake node");
    };
    this.server = await startServer("127.0.0.1:0", {
      clusterId: "fake",
      peer: { requestVote: refuse, appendEntries: refuse, timeoutNow: refuse },
      client: {
        set: (req) => {
          this.sets.push(req);
          return this.onSet(req, this.sets.length);
        },
        get: (req) => {
          this.gets.push(req);
          return this.onGet(req, this.gets.length);
        },
      },
      admin: { status: refuse, transferLeader: refuse, dumpLog: refuse },
    });
    this.address = `127.0.0.1:${this.server.port}`;
    return this;
  }
}

async function fakeCluster(n: number): Promise<FakeNode[]> {
  return await Promise.all([...Array(n).keys()].map((i) => new FakeNode(i + 1).start()));
}

async function closeAll(nodes: FakeNode[], client?: RaftkvClient): Promise<void> {
  client?.close();
  await Promise.all(nodes.map((n) => n.server.close()));
}

function notLeader(self: FakeNode, leader?: FakeNode): Answer<SetReply> & Answer<GetReply> {
  return {
    ok: false,
    error: "notLeader",
    errorMessage: leader
      ? `not the leader; the leader is node ${leader.id}`
      : "not the leader; no leader known",
    leaderId: leader?.id ?? 0,
    leaderAddress: leader?.address ?? "",
    nodeId: self.id,
  };
}

/** A loopback port nothing listens on. */
function unusedPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

Deno.test("a client follows a notLeader hint to the leader and remembers it", async () => {
  const nodes = await fakeCluster(3);
  const [n1, n2, n3] = nodes;
  n1.onSet = () => notLeader(n1, n3);
  n2.onSet = () => notLeader(n2, n3);
  n3.onSet = () => ({ ok: true, index: 7, nodeId: 3 });
  n3.onGet = () => ({ ok: true, value: "Jon", found: true, nodeId: 3 });
  const client = new RaftkvClient({ nodes: nodes.map((n) => ({ id: n.id, address: n.address })) });
  try {
    const r = await client.set("name", "Jon");
    strictEqual(r.nodeId, 3);
    strictEqual(r.index, 7);
    ok(r.latencyMs >= 0);
    strictEqual(n3.sets.length, 1);
    strictEqual(n1.sets.length + n2.sets.length, 1, "one refusal, then straight to the hinted leader");
    const g = await client.get("name");
    deepStrictEqual({ value: g.value, found: g.found, nodeId: g.nodeId }, {
      value: "Jon",
      found: true,
      nodeId: 3,
    });
    strictEqual(n1.gets.length + n2.gets.length, 0, "the known leader is asked first");
  } finally {
    await closeAll(nodes, client);
  }
});

Deno.test("a retried SET keeps its clientId and seq; the next SET gets the next seq", async () => {
  const nodes = await fakeCluster(2);
  const [n1, n2] = nodes;
  n1.onSet = (_req, call) => {
    if (call === 1) return { ok: false, error: "notReady", retryAfterMs: 10, nodeId: 1 };
    if (call === 2) return { ok: false, error: "timeout", errorMessage: "no majority", nodeId: 1 };
    if (call === 3) return new Promise(() => {}); // never answers: the attempt deadline passes
    return { ok: true, index: 9, nodeId: 1 };
  };
  n2.onSet = () => ({ ok: true, index: 5, nodeId: 2 });
  const client = new RaftkvClient({
    nodes: [{ id: 1, address: n1.address }, { id: 2, address: n2.address }],
    attemptTimeoutMs: 300,
    clientId: "client-A",
  });
  try {
    const r = await client.set("k", "v");
    strictEqual(r.nodeId, 2);
    const seen = [...n1.sets, ...n2.sets].map((s) => `${s.clientId}/${s.seq}`);
    strictEqual(n1.sets.length, 3, "notReady, timeout, no answer: then the next node");
    strictEqual(n2.sets.length, 1);
    deepStrictEqual(new Set(seen), new Set(["client-A/1"]));
    await client.set("k", "w");
    deepStrictEqual(n2.sets.at(-1), { key: "k", value: "w", clientId: "client-A", seq: 2 });
  } finally {
    await closeAll(nodes, client);
  }
});

Deno.test("a client gives up with NoLeaderError within the timeout when every node refuses", async () => {
  const nodes = await fakeCluster(3);
  for (const n of nodes) n.onGet = () => notLeader(n);
  const client = new RaftkvClient({
    nodes: nodes.map((n) => ({ id: n.id, address: n.address })),
    timeoutMs: 600,
  });
  try {
    const t0 = performance.now();
    const err = await client.get("k").then(() => undefined, (e: unknown) => e);
    const ms = performance.now() - t0;
    ok(err instanceof NoLeaderError, `got ${err}`);
    ok(ms >= 550 && ms < 1500, `gave up after ${ms} ms`);
    ok(!err.message.includes("\n"));
    ok(
      /^no leader reachable after \d+ ms \(tried nodes [123],[123],[123]; last error: node \d: notLeader/
        .test(err.message),
      err.message,
    );
    const attempts = nodes.reduce((s, n) => s + n.gets.length, 0);
    ok(attempts >= 3 && attempts < 60, `backed off between rounds (${attempts} attempts)`);
  } finally {
    await closeAll(nodes, client);
  }
});

Deno.test("a client gives up with NoLeaderError naming UNAVAILABLE when no node listens", async () => {
  const nodes = [1, 2, 3].map((id) => ({ id, address: `127.0.0.1:${unusedPort()}` }));
  const client = new RaftkvClient({ nodes, timeoutMs: 500 });
  try {
    const t0 = performance.now();
    const err = await client.set("k", "v").then(() => undefined, (e: unknown) => e);
    ok(err instanceof NoLeaderError, `got ${err}`);
    ok(performance.now() - t0 < 1500);
    ok(err.message.includes("tried nodes 1,2,3") || err.message.includes("tried nodes"), err.message);
    ok(err.message.includes("UNAVAILABLE (connection refused)"), err.message);
  } finally {
    client.close();
  }
});

Deno.test("a client does not retry an invalidArgument refusal", async () => {
  const nodes = await fakeCluster(2);
  nodes[0].onSet = () => ({
    ok: false,
    error: "invalidArgument",
    errorMessage: "key must not be empty",
    nodeId: 1,
  });
  const client = new RaftkvClient({ nodes: nodes.map((n) => ({ id: n.id, address: n.address })) });
  try {
    await rejects(client.set("", "v"), (e: unknown) => {
      ok(e instanceof InvalidArgumentError);
      strictEqual(e.message, "SET refused by node 1: key must not be empty");
      return true;
    });
    strictEqual(nodes[0].sets.length + nodes[1].sets.length, 1);
  } finally {
    await closeAll(nodes, client);
  }
});

Deno.test("a SET over the message limit fails at once as not sent, and requests in flight beside it are answered", async () => {
  // `raftkv client set k --value-file F` with a 20 MB file said "no quorum available … start the stopped nodes
  // … may or may not have been applied" after 5 s of retries, and the oversized frame reset the shared stream.
  const nodes = await fakeCluster(1);
  nodes[0].onGet = async () => {
    await new Promise((r) => setTimeout(r, 300));
    return { ok: true, value: "v1", found: true, nodeId: 1 };
  };
  const client = new RaftkvClient({ nodes: nodes.map((n) => ({ id: n.id, address: n.address })) });
  try {
    await client.set("warm", "up"); // the stream is open: the GET below is in flight on it
    const inFlight = client.get("k");
    await new Promise((r) => setTimeout(r, 50));
    const t0 = performance.now();
    await rejects(client.set("big", "é".repeat(9 * 1024 * 1024)), (e: unknown) => {
      ok(e instanceof RequestTooLargeError, String(e));
      match(e.message, /SET of 18874371 bytes .* over the 16777216-byte message limit: not sent/);
      return true;
    });
    ok(performance.now() - t0 < 1000, `refused after ${performance.now() - t0} ms`);
    strictEqual((await inFlight).value, "v1");
    strictEqual(nodes[0].gets.length, 1, "the GET beside it was not retried (its stream stayed up)");
    strictEqual(nodes[0].sets.length, 1, "only the warm-up SET reached the node");
  } finally {
    await closeAll(nodes, client);
  }
});

Deno.test("a client reports TimeoutError when the leader never completes the SET", async () => {
  const nodes = await fakeCluster(1);
  nodes[0].onSet = () => ({ ok: false, error: "timeout", errorMessage: "no majority", nodeId: 1 });
  const client = new RaftkvClient({ nodes: [{ id: 1, address: nodes[0].address }], timeoutMs: 400 });
  try {
    await rejects(client.set("k", "v"), (e: unknown) => {
      ok(e instanceof TimeoutError, String(e));
      ok(e.message.startsWith("SET timed out after"), e.message);
      ok(e.message.includes("leader was node 1"), e.message);
      return true;
    });
  } finally {
    await closeAll(nodes, client);
  }
});

Deno.test("a SET that a leader took but never answered may have been applied, and the error says so", async () => {
  const nodes = await fakeCluster(1);
  nodes[0].onSet = () => new Promise(() => {}); // appended, never committed
  const client = new RaftkvClient({
    nodes: [{ id: 1, address: nodes[0].address }],
    timeoutMs: 500,
    attemptTimeoutMs: 200,
  });
  try {
    await rejects(client.set("k", "v"), (e: unknown) => {
      ok(e instanceof TimeoutError, String(e));
      ok(
        /^SET timed out after \d+ ms; the SET may or may not have been applied \(leader was node 1;/.test(
          e.message,
        ),
        e.message,
      );
      return true;
    });
  } finally {
    await closeAll(nodes, client);
  }
});

Deno.test("a SET refused at once by every node does not claim it may have been applied", async () => {
  const nodes = await fakeCluster(2);
  for (const n of nodes) n.onSet = () => notLeader(n);
  const client = new RaftkvClient({
    nodes: nodes.map((n) => ({ id: n.id, address: n.address })),
    timeoutMs: 300,
  });
  try {
    await rejects(client.set("k", "v"), (e: unknown) => {
      ok(e instanceof NoLeaderError, String(e));
      ok(!e.message.includes("may or may not"), e.message);
      return true;
    });
  } finally {
    await closeAll(nodes, client);
  }
});

Deno.test("two nodes naming each other as leader do not make the client loop", async () => {
  const nodes = await fakeCluster(2);
  const [n1, n2] = nodes;
  n1.onGet = () => notLeader(n1, n2);
  n2.onGet = () => notLeader(n2, n1);
  const client = new RaftkvClient({
    nodes: nodes.map((n) => ({ id: n.id, address: n.address })),
    timeoutMs: 500,
  });
  try {
    await rejects(client.get("k"), NoLeaderError);
    const attempts = n1.gets.length + n2.gets.length;
    ok(attempts < 60, `${attempts} attempts in 500 ms`);
  } finally {
    await closeAll(nodes, client);
  }
});

Deno.test("a client given addresses only learns ids and follows address hints", async () => {
  const nodes = await fakeCluster(2);
  const [n1, n2] = nodes;
  n1.onGet = () => notLeader(n1, n2);
  const client = new RaftkvClient({
    nodes: [{ id: 0, address: n1.address }, { id: 0, address: n2.address }],
  });
  try {
    const r = await client.get("k");
    strictEqual(r.nodeId, 2);
    strictEqual(r.value, "v2");
    deepStrictEqual(client.leader, { id: 2, address: n2.address });
  } finally {
    await closeAll(nodes, client);
  }
});

Deno.test("a client pointed at an HTTP server fails fast with a clear message", async () => {
  const http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => new Response("hello"));
  const client = new RaftkvClient({
    nodes: [{ id: 1, address: `127.0.0.1:${http.addr.port}` }],
    timeoutMs: 5000,
  });
  try {
    const t0 = performance.now();
    await rejects(client.get("k"), (e: unknown) => {
      ok(e instanceof NotRaftkvError, String(e));
      ok(e.message.includes("not a raftkv node"), e.message);
      ok(!e.message.includes("\n"));
      return true;
    });
    ok(performance.now() - t0 < 2000);
  } finally {
    client.close();
    await http.shutdown();
  }
});

Deno.test("closing a client ends a request that is backing off", async () => {
  const nodes = await fakeCluster(1);
  nodes[0].onGet = () => notLeader(nodes[0]);
  const client = new RaftkvClient({ nodes: [{ id: 1, address: nodes[0].address }], timeoutMs: 10_000 });
  try {
    const pending = client.get("k");
    while (nodes[0].gets.length === 0) await new Promise((r) => setTimeout(r, 5));
    const t0 = performance.now();
    client.close();
    await rejects(pending, ClientClosedError);
    ok(performance.now() - t0 < 1000);
  } finally {
    await closeAll(nodes, client);
  }
});

Deno.test("back-off grows exponentially with jitter and stays under the cap", () => {
  strictEqual(backoffMs(0, {}, () => 0), 25);
  strictEqual(backoffMs(0, {}, () => 0.999999) < 50, true);
  strictEqual(backoffMs(3, {}, () => 0), 200);
  for (let a = 0; a < 50; a++) {
    const ms = backoffMs(a, { initialMs: 50, maxMs: 500 });
    ok(ms >= 25 && ms <= 500, `attempt ${a}: ${ms}`);
  }
  strictEqual(backoffMs(40, {}, () => 0), 250);
});

Deno.test("a slow notLeader refusal is not taken for a SET that may have been applied", async () => {
  // Before the explicit code, the client guessed from timing: a refusal slower than 50 ms meant "maybe".
  const nodes = await fakeCluster(2);
  for (const n of nodes) {
    n.onSet = () => new Promise((resolve) => setTimeout(() => resolve(notLeader(n)), 120));
  }
  const client = new RaftkvClient({
    nodes: nodes.map((n) => ({ id: n.id, address: n.address })),
    timeoutMs: 600,
  });
  try {
    await rejects(client.set("k", "v"), (e: unknown) => {
      ok(e instanceof NoLeaderError, String(e));
      ok(!e.message.includes("may or may not"), e.message);
      return true;
    });
  } finally {
    await closeAll(nodes, client);
  }
});

Deno.test("with only a minority of nodes answering, the client says no quorum is available, not just no leader", async () => {
  const nodes = await fakeCluster(1);
  for (const n of nodes) n.onGet = () => notLeader(n);
  const down = [`127.0.0.1:${unusedPort()}`, `127.0.0.1:${unusedPort()}`];
  const client = new RaftkvClient({
    nodes: [{ id: 1, address: nodes[0].address }, { id: 2, address: down[0] }, { id: 3, address: down[1] }],
    timeoutMs: 600,
  });
  try {
    const err = await client.get("k").then(() => undefined, (e: unknown) => e);
    ok(err instanceof NoLeaderError, `got ${err}`);
    ok(err.noQuorum, err.message);
    ok(
      /^no quorum available: only 1 of 3 nodes answered and a leader needs 2; /.test(err.message),
      err.message,
    );
  } finally {
    await closeAll(nodes, client);
  }
});

Deno.test("an outcomeUnknown answer makes the client retry the same seq at the named leader and say so if it gives up", async () => {
  const nodes = await fakeCluster(2);
  nodes[0].onSet = () => ({
    ok: false,
    error: "outcomeUnknown",
    errorMessage: "lost leadership before the SET committed",
    leaderId: 2,
    leaderAddress: nodes[1].address,
    nodeId: 1,
  });
  nodes[1].onSet = () => ({ ok: false, error: "overloaded", errorMessage: "inbox full", nodeId: 2 });
  const client = new RaftkvClient({
    nodes: nodes.map((n) => ({ id: n.id, address: n.address })),
    timeoutMs: 400,
  });
  try {
    await rejects(client.set("k", "v"), (e: unknown) => {
      ok(e instanceof TimeoutError, String(e));
      ok(e.message.includes("may or may not have been applied"), e.message);
      return true;
    });
    ok(nodes[1].sets.length >= 1, "the named leader was tried");
    const seqs = new Set([...nodes[0].sets, ...nodes[1].sets].map((r) => `${r.clientId}/${r.seq}`));
    strictEqual(seqs.size, 1, `every attempt reuses one (clientId, seq): ${[...seqs].join(" ")}`);
  } finally {
    await closeAll(nodes, client);
  }
});

Deno.test("a stale-sequence refusal fails the SET at once and is not retried", async () => {
  const nodes = await fakeCluster(2);
  const [n1, n2] = nodes;
  n1.onSet = () => ({ ok: false, error: "staleSequence", errorMessage: "stale sequence", nodeId: 1 });
  const client = new RaftkvClient({ nodes: nodes.map((n) => ({ id: n.id, address: n.address })) });
  try {
    await rejects(client.set("k", "v"), StaleSequenceError);
    strictEqual(n1.sets.length + n2.sets.length, 1, "one attempt, no retry anywhere");
  } finally {
    await closeAll(nodes, client);
  }
});

Deno.test("session expired on a SET's first attempt: a new session, and the SET is retried in it at seq 1", async () => {
  const nodes = await fakeCluster(1);
  const [n1] = nodes;
  n1.onSet = (req) =>
    req.clientId === "old-session"
      ? { ok: false, error: "sessionExpired", errorMessage: "session expired", nodeId: 1 }
      : { ok: true, index: 4, nodeId: 1 };
  const client = new RaftkvClient({ nodes: [{ id: 1, address: n1.address }], clientId: "old-session" });
  try {
    await client.set("k", "v");
    strictEqual(n1.sets.length, 2);
    ok(client.clientId !== "old-session", "a new session id");
    deepStrictEqual(n1.sets[1], { key: "k", value: "v", clientId: client.clientId, seq: 1 });
  } finally {
    await closeAll(nodes, client);
  }
});

Deno.test("session expired after an attempt that may have applied the SET: it fails, not retried blindly", async () => {
  const nodes = await fakeCluster(1);
  const [n1] = nodes;
  n1.onSet = (_req, call) =>
    call === 1
      ? { ok: false, error: "timeout", errorMessage: "no majority", nodeId: 1 }
      : { ok: false, error: "sessionExpired", errorMessage: "session expired", nodeId: 1 };
  const client = new RaftkvClient({ nodes: [{ id: 1, address: n1.address }], clientId: "s" });
  try {
    const e = await client.set("k", "v").then(() => undefined, (e) => e);
    ok(e instanceof SessionExpiredError, `expected SessionExpiredError, got ${e}`);
    ok(e.maybeApplied && /may or may not have been applied/.test(e.message), e.message);
    strictEqual(n1.sets.length, 2, "no attempt in a new session");
    ok(client.clientId !== "s", "later SETs use a new session");
    await client.set("k", "w").catch(() => {});
    strictEqual(n1.sets.at(-1)!.seq, 1);
  } finally {
    await closeAll(nodes, client);
  }
});

Deno.test("a client and a node that disagree on TLS are told so, not just 'Failed to connect'", () => {
  // The details grpc-js gives (Deno 2.8.3) for `client --insecure` against a TLS cluster, and for a TLS
  // client against a node started with --insecure; each reads "no quorum available … start the stopped nodes"
  // around it, though every node runs.
  const plainToTls = new TransportError(
    RpcCode.UNAVAILABLE,
    "No connection established. Last error: Failed to connect (2026-12-02T08:17:55.802Z). Resolution note: ",
    "127.0.0.1:7101",
  );
  match(
    describeTransportError(plainToTls, 2000),
    /^UNAVAILABLE \(Failed to connect: .*requires TLS.*--insecure/,
  );
  const tlsToPlain = new TransportError(
    RpcCode.UNAVAILABLE,
    "No connection established. Last error: Error: received corrupt message of type InvalidContentType " +
      "(SSL routines:ssl3_get_record:wrong version number) (2026-12-02T08:10:00.000Z). Resolution note: ",
    "127.0.0.1:7301",
  );
  match(
    describeTransportError(tlsToPlain, 2000),
    /^UNAVAILABLE \(TLS handshake failed: the node speaks plain text/,
  );
  // A node that is simply down keeps its short description.
  const refused = new TransportError(
    RpcCode.UNAVAILABLE,
    "No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:7105. Resolution note: ",
    "127.0.0.1:7105",
  );
  strictEqual(describeTransportError(refused, 2000), "UNAVAILABLE (connection refused)");
});
