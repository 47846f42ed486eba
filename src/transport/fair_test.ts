import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import * as pb from "../gen/raftkv.ts";
import { ClusterStub } from "./client_stub.ts";
import { FairAdmission } from "./fair.ts";
import { type ServerHandlers, startServer } from "./server.ts";

/** Work that stays running until `release()`; records its name when it starts. */
function held(started: string[], name: string) {
  let release!: () => void;
  const done = new Promise<void>((r) => (release = r));
  return { work: () => (started.push(name), done), release: () => release() };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

Deno.test("a lane with a request waiting gets a slot after at most one request of each other waiting lane", async () => {
  const admission = new FairAdmission({ maxInFlight: 2, perLane: 10, maxQueued: 100 });
  const flood = admission.lane(), quiet = admission.lane();
  const started: string[] = [];
  const floodWork = Array.from({ length: 6 }, (_, i) => held(started, `flood${i}`));
  for (const w of floodWork) ok(flood.submit(w.work));
  const quietWork = held(started, "quiet");
  ok(quiet.submit(quietWork.work));
  deepStrictEqual(started, ["flood0", "flood1"], "two slots, both taken by the first lane");
  floodWork[0].release();
  await tick();
  deepStrictEqual(started.slice(2), ["flood2"], "the flooding lane was waiting first: its turn");
  floodWork[1].release();
  await tick();
  deepStrictEqual(started.slice(3), ["quiet"], "then the quiet lane's, before the flood's 4 others");
  floodWork[2].release();
  quietWork.release();
  await tick();
  deepStrictEqual(started.slice(4), ["flood3", "flood4"]);
  deepStrictEqual(admission.stats, { inFlight: 2, queued: 1, lanesWaiting: 1, refused: 0 });
});

Deno.test("one lane runs at most its budget at once, and the node refuses work once its queue is full", async () => {
  const admission = new FairAdmission({ maxInFlight: 10, perLane: 3, maxQueued: 4 });
  const lane = admission.lane();
  const started: string[] = [];
  const works = Array.from({ length: 7 }, (_, i) => held(started, `w${i}`));
  const accepted = works.map((w) => lane.submit(w.work));
  ok(accepted.every((a) => a), "3 running and 4 waiting");
  strictEqual(started.length, 3, "the lane's budget");
  strictEqual(admission.stats.queued, 4);
  strictEqual(lane.submit(held(started, "over").work), false, "the fifth waiting request is refused");
  strictEqual(admission.stats.refused, 1, "the refusal is counted (raftkv_client_requests_refused_total)");
  works[0].release();
  await tick();
  strictEqual(started.length, 4);
  strictEqual(admission.stats.inFlight, 3);
});

Deno.test("work that throws gives its slot back", async () => {
  const admission = new FairAdmission({ maxInFlight: 1, perLane: 1, maxQueued: 10 });
  const lane = admission.lane();
  const started: string[] = [];
  lane.submit(() => Promise.reject(new Error("boom")));
  lane.submit(() => {
    throw new Error("sync boom");
  });
  const last = held(started, "last");
  lane.submit(last.work);
  await tick();
  deepStrictEqual(started, ["last"]);
});

/** Handlers whose GET takes `serviceMs` (a busy node: every request costs time). */
function slowNode(serviceMs: number): ServerHandlers {
  const unused = () => {
    throw new Error("unused");
  };
  return {
    clusterId: "fair",
    peer: { requestVote: unused, appendEntries: unused, timeoutNow: unused },
    client: {
      get: (req) =>
        new Promise((r) =>
          setTimeout(() => r({ ok: true, value: `v:${req.key}`, found: true, nodeId: 1 }), serviceMs)
        ),
      set: unused,
    },
    admin: { status: unused, transferLeader: unused, dumpLog: unused },
  };
}

Deno.test({
  name: "a client keeps getting answers within a bounded time while other connections flood the node",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    // 4 requests served at once, each taking 20 ms: 200 requests/s. Six flooding connections keep 64 requests
    // each in flight, sending a new one as each is answered or refused; the probe asks one at a time. Served
    // in arrival order (or refused when the node is full), the probe waits behind the flood or is refused;
    // served in turn, it waits for one request of each busy connection at most (~6 × 20 ms / 4).
    const server = await startServer("127.0.0.1:0", slowNode(20), {
      limits: { maxClientFramesInFlight: 4 },
    });
    const address = `127.0.0.1:${server.port}`;
    const flooders = Array.from({ length: 6 }, () => new ClusterStub(address));
    const probe = new ClusterStub(address);
    let stop = false, floodAnswered = 0;
    try {
      for (const s of [...flooders, probe]) await s.get("warm", 10_000); // connections up
      const floods = flooders.flatMap((stub) =>
        Array.from({ length: 64 }, async () => {
          while (!stop) {
            await stub.get("flood", 30_000).then(() => floodAnswered++, () => {});
          }
        })
      );
      await new Promise((r) => setTimeout(r, 300)); // the flood is on
      const latencies: number[] = [];
      const failures: string[] = [];
      for (let i = 0; i < 10; i++) {
        const t0 = performance.now();
        try {
          const r = await probe.get(`p${i}`, 3000);
          if (r.value !== `v:p${i}`) failures.push(`${r.error}: ${r.errorMessage}`);
        } catch (e) {
          failures.push(String(e));
        }
        latencies.push(Math.round(performance.now() - t0));
      }
      stop = true;
      await Promise.all(floods);
      deepStrictEqual(failures, [], `the probe's requests were answered (latencies ${latencies})`);
      const sorted = [...latencies].sort((a, b) => a - b);
      // Generous for a loaded machine; served behind the flood (384 requests at 200/s) it takes ~2 s.
      ok(sorted[sorted.length - 1] < 1000, `probe latencies (ms): ${latencies}`);
      ok(floodAnswered > 100, `the flood was served too (${floodAnswered})`);
    } finally {
      stop = true;
      for (const s of flooders) s.close();
      probe.close();
      await server.close();
    }
  },
});

/** A plain gRPC Client (unary calls, no stream) on a connection of its own. */
function unaryClient(address: string) {
  const client = new pb.ClientClient(address, grpc.credentials.createInsecure(), {
    "grpc.use_local_subchannel_pool": 1,
  });
  return {
    /** The value of a unary Get, or the call's failure as `CODE: details`. */
    get: (key: string, timeoutMs: number): Promise<string> =>
      new Promise((resolve) => {
        client.get(
          { key, readMode: pb.ReadMode.LEADER, maxStalenessMs: 0 },
          new grpc.Metadata(),
          { deadline: Date.now() + timeoutMs },
          (err, reply) =>
            resolve(
              err ? `${grpc.status[err.code]}: ${err.details}` : reply.ok ? reply.value : reply.errorMessage,
            ),
        );
      }),
    close: () => client.close(),
  };
}

/**
 * A node that serves `capacity` GETs at a time, each taking `serviceMs`, the rest waiting in arrival order (a
 * busy node's CPU); `peak` is the most GETs the handlers held at once.
 */
function boundedNode(capacity: number, serviceMs: number) {
  const unused = () => {
    throw new Error("unused");
  };
  let busy = 0;
  const waiting: (() => void)[] = [];
  const stats = { peak: 0, held: 0 };
  const handlers: ServerHandlers = {
    clusterId: "fair",
    peer: { requestVote: unused, appendEntries: unused, timeoutNow: unused },
    client: {
      get: async (req) => {
        stats.held++;
        stats.peak = Math.max(stats.peak, stats.held);
        if (busy >= capacity) await new Promise<void>((r) => waiting.push(r));
        else busy++;
        await new Promise((r) => setTimeout(r, serviceMs));
        const next = waiting.shift();
        if (next) next();
        else busy--;
        stats.held--;
        return { ok: true, value: `v:${req.key}`, found: true, nodeId: 1 };
      },
      set: unused,
    },
    admin: { status: unused, transferLeader: unused, dumpLog: unused },
  };
  return { handlers, stats };
}

Deno.test({
  name:
    "a unary client keeps getting answers within a bounded time while other connections flood the node with unary calls",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    // The node can serve 4 GETs at a time, 20 ms each: 200/s. Six flooding connections keep 64 unary Gets each
    // open, sending a new one as each is answered; the probe asks one at a time on its own connection. When the
    // unary calls bypass admission every one of them reaches the handlers, and the probe waits behind the 384
    // of the flood (~2 s); admitted in turn, it waits for one request of each busy connection at most.
    const node = boundedNode(4, 20);
    const server = await startServer("127.0.0.1:0", node.handlers, {
      limits: { maxClientFramesInFlight: 4 },
    });
    const address = `127.0.0.1:${server.port}`;
    const flooders = Array.from({ length: 6 }, () => unaryClient(address));
    const probe = unaryClient(address);
    let stop = false, floodAnswered = 0;
    try {
      for (const c of [...flooders, probe]) strictEqual(await c.get("warm", 10_000), "v:warm"); // connections up
      const floods = flooders.flatMap((c) =>
        Array.from({ length: 64 }, async () => {
          while (!stop) if ((await c.get("flood", 30_000)) === "v:flood") floodAnswered++;
        })
      );
      await new Promise((r) => setTimeout(r, 300)); // the flood is on
      const latencies: number[] = [];
      const failures: string[] = [];
      for (let i = 0; i < 10; i++) {
        const t0 = performance.now();
        const answer = await probe.get(`p${i}`, 3000);
        if (answer !== `v:p${i}`) failures.push(answer);
        latencies.push(Math.round(performance.now() - t0));
      }
      const peak = node.stats.peak;
      stop = true;
      await Promise.all(floods);
      deepStrictEqual(failures, [], `the probe's unary calls were answered (latencies ${latencies})`);
      const sorted = [...latencies].sort((a, b) => a - b);
      // Generous for a loaded machine; served behind the flood (384 requests at 200/s) it takes ~2 s.
      ok(sorted[sorted.length - 1] < 1000, `probe latencies (ms): ${latencies}`);
      ok(
        peak <= 4,
        `at most maxClientFramesInFlight (4) unary calls reached the handlers at once, saw ${peak}`,
      );
      ok(floodAnswered > 100, `the flood was served too (${floodAnswered})`);
    } finally {
      stop = true;
      for (const c of [...flooders, probe]) c.close();
      await server.close();
    }
  },
});

Deno.test({
  name:
    "unary calls share the node's slots with stream frames, keep to one connection's budget, and are refused node busy when the queue is full",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const release: (() => void)[] = [];
    /** The keys of the GETs that reached the handler, in order. */
    const arrived: string[] = [];
    const unused = () => {
      throw new Error("unused");
    };
    const handlers: ServerHandlers = {
      clusterId: "fair",
      peer: { requestVote: unused, appendEntries: unused, timeoutNow: unused },
      client: {
        get: (req) => {
          arrived.push(req.key);
          return new Promise((r) =>
            release.push(() => r({ ok: true, value: `v:${req.key}`, found: true, nodeId: 1 }))
          );
        },
        set: unused,
      },
      admin: { status: unused, transferLeader: unused, dumpLog: unused },
    };
    const server = await startServer("127.0.0.1:0", handlers, {
      limits: { maxClientFramesInFlight: 4, maxClientFramesPerConnection: 2, maxClientFramesQueued: 2 },
    });
    const address = `127.0.0.1:${server.port}`;
    const stream = new ClusterStub(address);
    const unaryA = unaryClient(address), unaryB = unaryClient(address);
    const until = async (cond: () => boolean, what: string) => {
      for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
      ok(cond(), `timed out waiting for ${what} (arrived: ${arrived})`);
    };
    const quiet = () => new Promise((r) => setTimeout(r, 150));
    try {
      // The stream's connection takes its budget of 2 slots.
      const s = [0, 1].map((i) => stream.get(`s${i}`, 10_000));
      for (const p of s) p.catch(() => {}); // a failed assertion closes the stub: not an unhandled rejection
      await until(() => arrived.length === 2, "the stream's 2 frames");
      // Connection A's 3 unary calls: 2 admitted (the node's 4 slots are now full), the third waits its turn.
      const a = [0, 1, 2].map((i) => unaryA.get(`a${i}`, 10_000));
      await until(() => arrived.length >= 4, "connection A's calls");
      await quiet();
      strictEqual(arrived.length, 4, `4 slots on the node: 2 stream frames and 2 unary calls (${arrived})`);
      // Connection B: one unary call waits (2 requests queued now), the next is refused at once.
      const b0 = unaryB.get("b0", 10_000);
      await quiet();
      strictEqual(
        await unaryB.get("b1", 10_000),
        "RESOURCE_EXHAUSTED: node busy: 2 client requests wait for their turn; back off and retry",
      );
      strictEqual(arrived.length, 4, "b0 waits its turn");
      // The stream's first frame is answered: its slot goes to B, not to A (at its budget of 2).
      release[arrived.indexOf("s0")]();
      await until(() => arrived.length === 5, "the freed slot's next request");
      strictEqual(arrived[4], "b0");
      for (let i = 0; i < 500 && arrived.length < 6; i++) {
        for (const r of release.splice(0)) r();
        await new Promise((r) => setTimeout(r, 10));
      }
      for (const r of release.splice(0)) r();
      deepStrictEqual((await Promise.all(s)).map((r) => r.value), ["v:s0", "v:s1"]);
      deepStrictEqual(await Promise.all(a), ["v:a0", "v:a1", "v:a2"]);
      strictEqual(await b0, "v:b0", "the waiting call was served once a slot freed");
    } finally {
      for (const r of release.splice(0)) r();
      stream.close();
      unaryA.close();
      unaryB.close();
      await server.close();
    }
  },
});
