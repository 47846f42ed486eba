import { deepStrictEqual as assertEquals } from "node:assert/strict";
import type { ClusterStub } from "../../src/transport/client_stub.ts";
import type { GetReply, SetReply } from "../../src/transport/api.ts";
import { TransportError } from "../../src/transport/errors.ts";
import { History } from "./history.ts";
import { Rng } from "./prng.ts";
import { definitelyNotSent, Workload } from "./workload.ts";

type Answer = Partial<SetReply & GetReply> | TransportError;

/** Nodes that answer SET/GET from a script, per node, in order (then repeat the last answer). */
function fakeCluster(script: Record<number, Answer[]>) {
  const calls: string[] = [];
  const next = (id: number): Answer => {
    const list = script[id] ?? [new TransportError(14, "No connection established", `n${id}`)];
    return list.length > 1 ? list.shift()! : list[0];
  };
  const reply = (id: number, a: Answer) => {
    if (a instanceof TransportError) return Promise.reject(a);
    return Promise.resolve({
      ok: false,
      error: "none",
      errorMessage: "",
      leaderId: 0,
      leaderAddress: "",
      retryAfterMs: 0,
      nodeId: id,
      index: 0,
      value: "",
      found: false,
      ...a,
    });
  };
  return {
    calls,
    source: {
      ids: [1, 2, 3],
      stub: (id: number) =>
        ({
          set: (key: string, value: string, clientId: string, seq: number) => {
            calls.push(`${id}:set ${key}=${value} ${clientId.split("-")[1]}/${seq}`);
            return reply(id, next(id));
          },
          get: (key: string) => {
            calls.push(`${id}:get ${key}`);
            return reply(id, next(id));
          },
        }) as unknown as ClusterStub,
    },
  };
}

const notLeader = (leaderId: number): Answer => ({ error: "notLeader", leaderId });
const deadline = new TransportError(4, "Deadline exceeded", "x");
const refused = new TransportError(14, "No connection established. Last error: connect ECONNREFUSED", "x");

async function readOnceWith(script: Record<number, Answer[]>) {
  const f = fakeCluster(script);
  const h = new History();
  const w = new Workload(f.source, h, { opTimeoutMs: 200, attemptTimeoutMs: 50 });
  const r = await w.readOnce("k", 200);
  return { r, calls: f.calls, events: h.events };
}

Deno.test("workload: follows the leader hint and records the value read", async () => {
  const { r, calls, events } = await readOnceWith({ 1: [notLeader(3)], 3: [{ ok: true, value: "v" }] });
  assertEquals(r.kind, "ok");
  assertEquals(calls, ["1:get k", "3:get k"]);
  assertEquals(events.map((e) => [e.type, e.value, e.node]), [["invoke", null, undefined], ["ok", "v", 3]]);
});

Deno.test("workload: a GET refused everywhere fails; one that timed out is info", async () => {
  assertEquals((await readOnceWith({ 1: [notLeader(0)], 2: [notLeader(0)], 3: [refused] })).r.kind, "fail");
  assertEquals((await readOnceWith({ 1: [deadline], 2: [notLeader(0)], 3: [refused] })).r.kind, "info");
});

Deno.test("workload: refusals and refused connections are not ambiguous; a timeout is", () => {
  assertEquals(definitelyNotSent(refused), true);
  assertEquals(definitelyNotSent(deadline), false);
  assertEquals(definitelyNotSent(new TransportError(14, "Connection dropped", "x")), false);
});

Deno.test({
  name: "workload: a SET is info after an ambiguous attempt, fail when every attempt was refused, and " +
    "keeps its (clientId, seq) across retries",
  sanitizeOps: false,
  fn: async () => {
    for (
      const [script, want] of [
        [{ 1: [{ error: "timeout", leaderId: 0 }], 2: [notLeader(0)], 3: [notLeader(0)] }, "info"],
        [{ 1: [notLeader(0)], 2: [{ error: "notReady", retryAfterMs: 5 }], 3: [refused] }, "fail"],
        [{ 1: [deadline], 2: [notLeader(3)], 3: [{ ok: true }] }, "ok"],
      ] as [Record<number, Answer[]>, string][]
    ) {
      const f = fakeCluster(script);
      const h = new History();
      const w = new Workload(f.source, h, { opTimeoutMs: 150, attemptTimeoutMs: 50 });
      w.addWorker(new Rng("t"), { keys: ["k"], readFraction: 0 });
      while (h.events.length < 2) await new Promise((r) => setTimeout(r, 5));
      await w.stop();
      assertEquals(h.events[1].type, want);
      // Every attempt of the first SET carries its value with the same client id and seq.
      const value = h.events[0].value!;
      const attempts = f.calls.filter((c) => c.includes(`=${value} `));
      assertEquals(attempts.length >= 1, true);
      assertEquals(new Set(attempts.map((c) => c.split(" ").pop())).size, 1);
    }
  },
});
