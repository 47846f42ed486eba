import { deepStrictEqual, match, ok, rejects, strictEqual } from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import { Buffer } from "node:buffer";
import * as grpc from "@grpc/grpc-js";
import * as pb from "../gen/raftkv.ts";
import {
  ClusterStub,
  PeerClients,
  RpcCode,
  type RunningServer,
  type ServerHandlers,
  startServer,
  type TransportLimits,
} from "../transport/mod.ts";
import { accessDenied } from "../client/mod.ts";
import { TransportError } from "../transport/mod.ts";
import type { RequestVote } from "../raft/types.ts";
import {
  CertificateStore,
  type Identity,
  initCerts,
  issueCert,
  loadTlsMaterial,
  memoryCa,
  TlsConfigError,
  tlsMaterialFromPem,
} from "./mod.ts";

const CLUSTER = "sec";

/** A node's handlers that answer everything (what is refused never reaches them). */
function handlers(served: string[]): ServerHandlers {
  return {
    clusterId: CLUSTER,
    peer: {
      requestVote: (req) => {
        served.push(`vote from ${req.from}`);
        return {
          type: "RequestVoteResponse",
          from: req.to,
          to: req.from,
          term: req.term,
          preVote: req.preVote,
          voteGranted: true,
          leaseRemainingMs: 0,
          leaseTerm: 0,
        };
      },
      appendEntries: () => {
        throw new Error("unused");
      },
      timeoutNow: () => {},
    },
    client: {
      get: (req) => {
        served.push(`get ${req.key}`);
        return { ok: true, value: `v:${req.key}`, found: true, nodeId: 1 };
      },
      set: (req) => ({ ok: true, index: req.seq, nodeId: 1 }),
    },
    admin: {
      status: () => ({
        id: 1,
        address: "",
        role: "leader",
        term: 1,
        votedFor: 1,
        leaderId: 1,
        commitIndex: 0,
        lastLogIndex: 0,
        lastLogTerm: 0,
        leaseRemainingMs: 0,
        leaseWaitRemainingMs: 0,
        servingReads: true,
        promiseRemainingMs: 0,
        peerRpcCount: 0,
        version: "t",
      }),
      transferLeader: () => {
        served.push("transfer");
        return { ok: true, newLeaderId: 2, error: "" };
      },
      dumpLog: () => {
        served.push("dump");
        return { entries: [], commitIndex: 0 };
      },
      addNode: (req) => {
        served.push(`add ${req.id}`);
        return { ok: true, error: "", leaderId: 1, index: 7 };
      },
      removeNode: (id) => {
        served.push(`remove ${id}`);
        return { ok: true, error: "", leaderId: 1, index: 8 };
      },
    },
  };
}

type Ca = Awaited<ReturnType<typeof memoryCa>>;

async function store(ca: Ca, id: Identity, opts: Parameters<Ca["issue"]>[1] = {}, check = true) {
  const pair = await ca.issue(id, opts);
  return new CertificateStore(tlsMaterialFromPem({ ca: ca.caCert, ...pair }, { checkValidity: check }));
}

interface Env {
  readonly ca: Ca;
  readonly server: RunningServer;
  readonly address: string;
  readonly served: string[];
  readonly serverStore: CertificateStore;
}

async function withTlsServer(fn: (env: Env) => Promise<void>, limits: Partial<TransportLimits> = {}) {
  const ca = await memoryCa();
  const serverStore = await store(ca, { role: "node", nodeId: 1 });
  const served: string[] = [];
  const server = await startServer("127.0.0.1:0", handlers(served), { tls: serverStore, limits });
  try {
    await fn({ ca, server, address: `127.0.0.1:${server.port}`, served, serverStore });
  } finally {
    await server.close();
  }
}

async function refusal(p: Promise<unknown>): Promise<TransportError> {
  try {
    await p;
  } catch (e) {
    ok(e instanceof TransportError, `expected a TransportError, got ${e}`);
    return e;
  }
  throw new Error("the call was expected to be refused");
}

function vote(from: number, to: number): RequestVote {
  return {
    type: "RequestVote",
    from,
    to,
    term: 1,
    lastLogIndex: 0,
    lastLogTerm: 0,
    preVote: true,
    revokedLeaseTerm: 0,
  };
}

/** Sends one RequestVote with `peerStore`'s certificate; returns the failure (undefined on success). */
async function peerCall(env: Env, peerStore: CertificateStore, msg: RequestVote) {
  const peers = new PeerClients({ clusterId: CLUSTER, peers: { [msg.to]: env.address }, tls: peerStore });
  try {
    const reply = await peers.send(msg, { deadlineMs: 3000 });
    return { reply, error: peers.lastError(msg.to) };
  } finally {
    peers.close();
  }
}

Deno.test("a client certificate may GET and SET over mutual TLS, and its identity reaches the handler", async () => {
  await withTlsServer(async (env) => {
    const stub = new ClusterStub(env.address, {}, {
      tls: await store(env.ca, { role: "client", name: "app" }),
    });
    try {
      strictEqual((await stub.get("k", 3000)).value, "v:k");
      strictEqual((await stub.set("k", "v", "c", 7, 3000)).index, 7);
      strictEqual((await stub.status(3000)).role, "leader", "status is readable by clients");
    } finally {
      stub.close();
    }
    ok(env.served.includes("get k"));
  });
});

Deno.test("a caller without a client certificate is refused UNAUTHENTICATED, saying so", async () => {
  await withTlsServer(async (env) => {
    const creds = grpc.credentials.createSsl(Buffer.from(env.ca.caCert), null, null, {
      checkServerIdentity: () => undefined,
    });
    const admin = new pb.AdminClient(env.address, creds, { "grpc.ssl_target_name_override": "raftkv" });
    const client = new pb.ClientClient(env.address, creds, { "grpc.ssl_target_name_override": "raftkv" });
    try {
      const err = await new Promise<grpc.ServiceError | null>((resolve) =>
        admin.status({}, new grpc.Metadata(), { deadline: Date.now() + 3000 }, (e) => resolve(e))
      );
      strictEqual(err?.code, grpc.status.UNAUTHENTICATED, String(err));
      match(err!.details, /no client certificate .*refused to read the node status/);
      const get = await new Promise<grpc.ServiceError | null>((resolve) =>
        client.get({ key: "k", readMode: 0, maxStalenessMs: 0 }, new grpc.Metadata(), {
          deadline: Date.now() + 3000,
        }, (e) => resolve(e))
      );
      strictEqual(get?.code, grpc.status.UNAUTHENTICATED);
      match(get!.details, /no client certificate .*refused to read or write keys/);
    } finally {
      admin.close();
      client.close();
    }
    strictEqual(env.served.length, 0);
  });
});

Deno.test("a certificate from another CA is refused, and the client reports it as an access refusal", async () => {
  await withTlsServer(async (env) => {
    const other = await memoryCa();
    // Trusts the right CA (so it accepts the server) but presents a certificate signed by another one.
    const pair = await other.issue({ role: "client", name: "mallory" });
    const foreign = new CertificateStore(tlsMaterialFromPem({ ca: env.ca.caCert, ...pair }));
    const stub = new ClusterStub(env.address, {}, { tls: foreign });
    try {
      const e = await refusal(stub.get("k", 3000));
      strictEqual(e.code, RpcCode.UNAUTHENTICATED, e.message);
      match(e.details, /client "mallory" is not signed by this cluster's CA/);
      ok(accessDenied(e), "the client library stops: retrying cannot help");
    } finally {
      stub.close();
    }
    strictEqual(env.served.length, 0);
  });
});

Deno.test("a client certificate calling Peer or the admin actions is refused PERMISSION_DENIED naming it", async () => {
  await withTlsServer(async (env) => {
    const client = await store(env.ca, { role: "client", name: "app" });
    const { reply, error } = await peerCall(env, client, vote(2, 1));
    strictEqual(reply, undefined);
    strictEqual(error?.code, RpcCode.PERMISSION_DENIED, String(error));
    match(error!.details, /client "app" may not call the Peer service/);

    const stub = new ClusterStub(env.address, {}, { tls: client });
    try {
      const t = await refusal(stub.transferLeader(2, 3000));
      strictEqual(t.code, RpcCode.PERMISSION_DENIED);
      match(t.details, /client "app" may not transfer leadership/);
      const d = await refusal(stub.dumpLog(1, 10, 3000));
      strictEqual(d.code, RpcCode.PERMISSION_DENIED);
      match(d.details, /client "app" may not dump the log/);
    } finally {
      stub.close();
    }
    const admin = new ClusterStub(env.address, {}, {
      tls: await store(env.ca, { role: "admin", name: "ops" }),
    });
    try {
      strictEqual((await admin.transferLeader(2, 3000)).newLeaderId, 2, "an admin certificate may");
      strictEqual((await admin.dumpLog(1, 10, 3000)).commitIndex, 0);
    } finally {
      admin.close();
    }
    const node2 = new ClusterStub(env.address, {}, { tls: await store(env.ca, { role: "node", nodeId: 2 }) });
    try {
      strictEqual(
        (await refusal(node2.transferLeader(2, 3000))).code,
        RpcCode.PERMISSION_DENIED,
        "nodes may not",
      );
    } finally {
      node2.close();
    }
    strictEqual(
      env.served.filter((s) => s === "transfer" || s === "dump").length,
      2,
      "only the admin's calls",
    );
  });
});

Deno.test("a node certificate may send Raft messages as itself, not claiming another member id", async () => {
  await withTlsServer(async (env) => {
    const node2 = await store(env.ca, { role: "node", nodeId: 2 });
    const good = await peerCall(env, node2, vote(2, 1));
    strictEqual(good.reply?.type, "RequestVoteResponse", String(good.error));
    const bad = await peerCall(env, node2, vote(3, 1));
    strictEqual(bad.reply, undefined);
    strictEqual(bad.error?.code, RpcCode.PERMISSION_DENIED, String(bad.error));
    match(bad.error!.details, /node 2 may not send RequestVote claiming to be node 3/);
    strictEqual(env.served.filter((s) => s.startsWith("vote")).join(","), "vote from 2");
  });
});

Deno.test("a peer channel refuses a server presenting another member's certificate", async () => {
  await withTlsServer(async (env) => {
    // The server at env.address is node 1; dial it believing it is node 4.
    const node2 = await store(env.ca, { role: "node", nodeId: 2 });
    const { reply, error } = await peerCall(env, node2, vote(2, 4));
    strictEqual(reply, undefined);
    ok(error && accessDenied(error), `refused: ${error}`);
    match(error!.details, /expected node 4|presented node 1/);
  });
});

Deno.test("an expired or not-yet-valid certificate is refused with a message that says so", async () => {
  const ca = await memoryCa();
  const day = 24 * 3600 * 1000;
  const expired = await ca.issue({ role: "client", name: "old" }, {
    notBefore: new Date(Date.now() - 10 * day),
    notAfter: new Date(Date.now() - day),
  });
  let e: unknown;
  try {
    tlsMaterialFromPem({ ca: ca.caCert, ...expired });
  } catch (err) {
    e = err;
  }
  ok(e instanceof TlsConfigError);
  match(e.message, /expired on \d{4}-/);
  const future = await ca.issue({ role: "client", name: "new" }, {
    notBefore: new Date(Date.now() + day),
    notAfter: new Date(Date.now() + 10 * day),
  });
  let f: unknown;
  try {
    tlsMaterialFromPem({ ca: ca.caCert, ...future });
  } catch (err) {
    f = err;
  }
  ok(f instanceof TlsConfigError);
  match(f.message, /not yet valid: valid from/);

  // Presented anyway (skipping the local check): the node refuses it in the handshake.
  await withTlsServer(async (env) => {
    const old = await env.ca.issue({ role: "client", name: "old" }, {
      notBefore: new Date(Date.now() - 10 * day),
      notAfter: new Date(Date.now() - day),
    });
    const stub = new ClusterStub(env.address, {}, {
      tls: new CertificateStore(tlsMaterialFromPem({ ca: env.ca.caCert, ...old }, { checkValidity: false })),
    });
    try {
      const err = await refusal(stub.get("k", 3000));
      strictEqual(err.code, RpcCode.UNAUTHENTICATED, err.message);
      match(err.details, /the certificate of client "old" expired on \d{4}-/);
    } finally {
      stub.close();
    }
    strictEqual(env.served.length, 0);
  });
});

Deno.test("a key that does not belong to the certificate is refused at load and on reload, keeping the current files", async () => {
  const ca = await memoryCa();
  const mine = await ca.issue({ role: "node", nodeId: 1 });
  const other = await ca.issue({ role: "node", nodeId: 1 });
  let e: unknown;
  try {
    tlsMaterialFromPem({ ca: ca.caCert, cert: mine.cert, key: other.key });
  } catch (err) {
    e = err;
  }
  ok(e instanceof TlsConfigError, `a mismatched pair was accepted: ${e}`);
  match(e.message, /key .* does not match the certificate/);

  // On SIGHUP (CertificateStore.reload): a new certificate put in place without its key is refused.
  const dir = await Deno.makeTempDir({ prefix: "raftkv-keymatch-" });
  try {
    const files = { cacert: `${dir}/ca.crt`, cert: `${dir}/node.crt`, key: `${dir}/node.key` };
    await Deno.writeTextFile(files.cacert, ca.caCert);
    await Deno.writeTextFile(files.cert, mine.cert);
    await Deno.writeTextFile(files.key, mine.key);
    const store = new CertificateStore(await loadTlsMaterial(files));
    await Deno.writeTextFile(files.cert, other.cert);
    await rejects(store.reload(), /does not match the certificate/);
    strictEqual(store.material.cert.toString(), mine.cert, "the current certificate stays in use");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reloading the server's certificate keeps open connections and new ones get the new certificate", async () => {
  await withTlsServer(async (env) => {
    const client = await store(env.ca, { role: "client", name: "app" });
    const stub = new ClusterStub(env.address, {}, { tls: client });
    try {
      await stub.get("before", 3000);
      const fresh = await env.ca.issue({ role: "node", nodeId: 1 });
      env.serverStore.update(tlsMaterialFromPem({ ca: env.ca.caCert, ...fresh }));
      await stub.get("after", 3000); // the open connection stays
      const served = await new Promise<string>((resolve, reject) => {
        const s = tls.connect({
          host: "127.0.0.1",
          port: env.server.port,
          servername: "raftkv",
          ca: Buffer.from(env.ca.caCert),
          cert: client.material.cert,
          key: client.material.key,
          ALPNProtocols: ["h2"],
          checkServerIdentity: () => undefined,
        }, () => {
          resolve(s.getPeerCertificate().fingerprint256);
          s.destroy();
        });
        s.on("error", reject);
      });
      strictEqual(
        served,
        new (await import("node:crypto")).X509Certificate(fresh.cert).fingerprint256,
        "a new connection sees the new certificate",
      );
      // Another node's certificate cannot replace this node's.
      const other = await env.ca.issue({ role: "node", nodeId: 5 });
      let e: unknown;
      try {
        env.serverStore.update(tlsMaterialFromPem({ ca: env.ca.caCert, ...other }));
      } catch (err) {
        e = err;
      }
      ok(e instanceof TlsConfigError);
      match(e.message, /is for node 5, not node 1/);
    } finally {
      stub.close();
    }
  });
});

Deno.test("certs init writes the CA key apart and every key 0600; certs issue adds one with the kept CA", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const files = await initCerts(dir, { nodes: [1, 2], hosts: ["db1.internal", "10.0.0.7"] });
    for (const f of files.filter((f) => f.endsWith(".key"))) {
      strictEqual((await Deno.stat(f)).mode! & 0o777, 0o600, f);
    }
    ok(files.includes(`${dir}/ca/ca.key`));
    strictEqual((await Deno.stat(`${dir}/ca`)).mode! & 0o777, 0o700);
    const m = await loadTlsMaterial({
      cacert: `${dir}/ca.crt`,
      cert: `${dir}/node-2.crt`,
      key: `${dir}/node-2.key`,
    });
    strictEqual(m.identity.role, "node");
    const san = new (await import("node:crypto")).X509Certificate(m.cert).subjectAltName ?? "";
    for (const want of ["DNS:localhost", "IP Address:127.0.0.1", "DNS:db1.internal", "IP Address:10.0.0.7"]) {
      ok(san.includes(want), `${want} in ${san}`);
    }
    await rejects(initCerts(dir, { nodes: [1] }), /already has a CA/);
    const issued = await issueCert(dir, { role: "admin", name: "bob" });
    strictEqual(issued.cert, `${dir}/admin-bob.crt`);
    const bob = await loadTlsMaterial({ cacert: `${dir}/ca.crt`, cert: issued.cert, key: issued.key });
    strictEqual(JSON.stringify(bob.identity), JSON.stringify({ role: "admin", name: "bob" }));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ----------------------------------------------------------------------------------------------------------
// Limits under abuse (short versions; scripts/abuse.ts runs the full ones).

Deno.test("connections over the limit are closed on arrival, and unfinished handshakes after the timeout", async () => {
  await withTlsServer(async (env) => {
    const sockets: net.Socket[] = [];
    const closed: number[] = [];
    const t0 = performance.now();
    for (let i = 0; i < 12; i++) {
      const s = net.connect(env.server.port, "127.0.0.1");
      s.on("error", () => {});
      s.on("close", () => closed.push(performance.now() - t0));
      sockets.push(s);
    }
    // 8 allowed: 4 closed at once; the 8 idle ones after the 600 ms handshake timeout.
    while (closed.length < 4 && performance.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 20));
    strictEqual(closed.length >= 4, true, `4 over the limit closed (closed ${closed.length})`);
    ok(closed.slice(0, 4).every((ms) => ms < 500), `closed on arrival: ${closed}`);
    while (closed.length < 12 && performance.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 20));
    strictEqual(closed.length, 12, "the idle ones closed after the handshake timeout");
    ok(closed[11] >= 500, `not before the timeout: ${closed}`);
    strictEqual(env.server.connections, 0);
    // Still serving.
    const stub = new ClusterStub(env.address, {}, {
      tls: await store(env.ca, { role: "client", name: "a" }),
    });
    try {
      strictEqual((await stub.get("k", 3000)).value, "v:k");
    } finally {
      stub.close();
    }
    for (const s of sockets) s.destroy();
  }, { maxConnections: 8, handshakeTimeoutMs: 600 });
});

/** The first bytes a real TLS client sends (a ClientHello), captured from node:tls against a silent listener. */
async function clientHello(): Promise<Uint8Array> {
  const listener = net.createServer();
  const hello = new Promise<Uint8Array>((resolve) =>
    listener.on(
      "connection",
      (s) => s.once("data", (d: Uint8Array) => (resolve(new Uint8Array(d)), s.destroy())),
    )
  );
  await new Promise<void>((r) => listener.listen(0, "127.0.0.1", r));
  const c = tls.connect({
    host: "127.0.0.1",
    port: (listener.address() as net.AddressInfo).port,
    servername: "raftkv",
    rejectUnauthorized: false,
  });
  c.on("error", () => {});
  try {
    return await hello;
  } finally {
    c.destroy();
    listener.close();
  }
}

Deno.test("TLS handshakes that stall after the ClientHello are counted, and closed by the node at the timeout", async () => {
  const hello = await clientHello();
  await withTlsServer(async (env) => {
    const closed: number[] = [];
    const sockets: net.Socket[] = [];
    const t0 = performance.now();
    for (let i = 0; i < 10; i++) {
      const s = net.connect(env.server.port, "127.0.0.1", () => s.write(hello));
      s.on("error", () => {});
      s.on("close", () => closed.push(performance.now() - t0));
      s.resume(); // read what the node sends (its ServerHello), so that its FIN is seen
      sockets.push(s);
    }
    try {
      // 6 allowed: 4 closed on arrival; the 6 stalled ones counted until the 800 ms timeout closes them.
      while (closed.length < 4 && performance.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 20));
      ok(closed.length >= 4 && closed.slice(0, 4).every((ms) => ms < 700), `closed on arrival: ${closed}`);
      strictEqual(env.server.connections, 6, "the stalled handshakes are counted");
      while (closed.length < 10 && performance.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 20));
      strictEqual(closed.length, 10, `the node closed every stalled handshake (closed at ${closed})`);
      ok(closed[9] >= 700, `not before the timeout: ${closed}`);
      strictEqual(env.server.connections, 0, "and no longer counts them");
    } finally {
      for (const s of sockets) s.destroy();
    }
  }, { maxConnections: 6, handshakeTimeoutMs: 800 });
});

Deno.test("random bytes on the port are refused and the node keeps serving, its connection count bounded", async () => {
  await withTlsServer(async (env) => {
    const sockets: net.Socket[] = [];
    for (let i = 0; i < 20; i++) {
      const bytes = crypto.getRandomValues(new Uint8Array(4096));
      if (i % 2 === 0) bytes.set([0x16, 3, 1]); // looks like a TLS handshake record at first
      const s = net.connect(env.server.port, "127.0.0.1", () => s.write(bytes));
      s.on("error", () => {});
      sockets.push(s);
    }
    await new Promise((r) => setTimeout(r, 300));
    const client = await store(env.ca, { role: "client", name: "a" });
    const stub = new ClusterStub(env.address, {}, { tls: client });
    try {
      strictEqual((await stub.get("k", 3000)).value, "v:k");
      ok(env.server.connections <= 21, `connections counted: ${env.server.connections}`);
    } finally {
      stub.close();
      for (const s of sockets) s.destroy();
    }
    // A legitimate connection is counted while open, and no longer once closed.
    const again = new ClusterStub(env.address, {}, { tls: client });
    try {
      await again.get("k", 3000);
      ok(env.server.connections >= 1, "the open connection is counted");
    } finally {
      again.close();
    }
    const until = performance.now() + 3000;
    while (env.server.connections > 0 && performance.now() < until) {
      await new Promise((r) => setTimeout(r, 20));
    }
    strictEqual(env.server.connections, 0, "closed connections are no longer counted");
  });
});

Deno.test("frames over the in-flight limit of a stream are answered overloaded at once, the rest served", async () => {
  const ca = await memoryCa();
  const serverStore = await store(ca, { role: "node", nodeId: 1 });
  const release: (() => void)[] = [];
  const h = handlers([]);
  const slow: ServerHandlers = {
    ...h,
    client: {
      ...h.client,
      get: (req) =>
        new Promise((r) => release.push(() => r({ ok: true, value: req.key, found: true, nodeId: 1 }))),
    },
  };
  const server = await startServer("127.0.0.1:0", slow, {
    tls: serverStore,
    limits: { maxInFlightFrames: 5 },
  });
  const stub = new ClusterStub(`127.0.0.1:${server.port}`, {}, {
    tls: await store(ca, { role: "client", name: "a" }),
  });
  try {
    const calls = Array.from(
      { length: 8 },
      (_, i) =>
        stub.get(`k${i}`, 5000).then((
          r,
        ) => (r.value === `k${i}` ? r.value : `${r.error}: ${r.errorMessage}`)),
    );
    while (release.length < 5) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 100));
    strictEqual(release.length, 5, "only 5 reached the handler");
    for (const r of release) r();
    const out = await Promise.all(calls);
    const refused = out.filter((o) => String(o).startsWith("overloaded"));
    strictEqual(refused.length, 3, JSON.stringify(out));
    for (const e of refused) match(String(e), /requests of this stream are in flight/);
  } finally {
    stub.close();
    await server.close();
  }
});

Deno.test("client frames over the node-wide budget wait their turn, and are refused once the node's queue is full", async () => {
  const ca = await memoryCa();
  const serverStore = await store(ca, { role: "node", nodeId: 1 });
  const release: (() => void)[] = [];
  let held = true;
  const h = handlers([]);
  const slow: ServerHandlers = {
    ...h,
    client: {
      ...h.client,
      get: (req) => {
        const answer = { ok: true, value: req.key, found: true, nodeId: 1 } as const;
        return held ? new Promise((r) => release.push(() => r(answer))) : answer;
      },
    },
  };
  const server = await startServer("127.0.0.1:0", slow, {
    tls: serverStore,
    limits: { maxInFlightFrames: 100, maxClientFramesInFlight: 4, maxClientFramesQueued: 1 },
  });
  const clientStore = await store(ca, { role: "client", name: "a" });
  const stubs = [0, 1].map(() => new ClusterStub(`127.0.0.1:${server.port}`, {}, { tls: clientStore }));
  try {
    const calls = stubs.flatMap((stub, s) =>
      [0, 1, 2].map((i) => stub.get(`s${s}k${i}`, 5000).then((r) => r.value, (e: TransportError) => e))
    );
    const out = calls.map(() => undefined as unknown);
    calls.forEach((p, i) => p.then((v) => (out[i] = v)));
    while (release.length < 4 || out.filter((o) => o instanceof TransportError).length < 1) {
      await new Promise((r) => setTimeout(r, 10));
    }
    await new Promise((r) => setTimeout(r, 100));
    strictEqual(release.length, 4, "4 reached the handlers, one waits its turn");
    held = false;
    for (const r of release) r();
    const done = await Promise.all(calls);
    const refused = done.filter((o) => o instanceof TransportError) as TransportError[];
    strictEqual(refused.length, 1, "one refused: the node's queue (1) was full");
    strictEqual(refused[0].code, RpcCode.RESOURCE_EXHAUSTED);
    match(refused[0].details, /node busy: 1 client requests wait for their turn/);
    strictEqual(
      done.filter((o) => typeof o === "string").length,
      5,
      "the waiting one was served once slots freed",
    );
    strictEqual((await stubs[0].get("after", 3000)).value, "after", "the slots are given back");
  } finally {
    for (const s of stubs) s.close();
    await server.close();
  }
});

Deno.test("adding or removing a member takes an admin certificate; a client or node certificate is refused", async () => {
  await withTlsServer(async (env) => {
    for (const id of [{ role: "client", name: "app" }, { role: "node", nodeId: 2 }] as const) {
      const stub = new ClusterStub(env.address, {}, { tls: await store(env.ca, id) });
      try {
        const a = await refusal(stub.addNode(6, "127.0.0.1:7106", false, 3000));
        strictEqual(a.code, RpcCode.PERMISSION_DENIED, JSON.stringify(id));
        match(a.details, /may not change membership/);
        const r = await refusal(stub.removeNode(3, 3000));
        strictEqual(r.code, RpcCode.PERMISSION_DENIED, JSON.stringify(id));
      } finally {
        stub.close();
      }
    }
    const admin = new ClusterStub(env.address, {}, {
      tls: await store(env.ca, { role: "admin", name: "ops" }),
    });
    try {
      strictEqual((await admin.addNode(6, "127.0.0.1:7106", false, 3000)).index, 7);
      strictEqual((await admin.removeNode(3, 3000)).index, 8);
    } finally {
      admin.close();
    }
    deepStrictEqual(env.served.filter((s) => s.startsWith("add") || s.startsWith("remove")), [
      "add 6",
      "remove 3",
    ]);
  });
});
