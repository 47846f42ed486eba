import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
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
  deepStrictEqual(admission.stats, { inFlight: 2, queued: 1, lanesWaiting: 1 });
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
