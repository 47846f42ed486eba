import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { SET_TRACE_ENV, SetTracer, type SetTraceRecord } from "./set_trace.ts";

function withTraceFile<T>(fn: (path: string) => T): T {
  const path = Deno.makeTempFileSync({ suffix: ".jsonl" });
  const before = Deno.env.get(SET_TRACE_ENV);
  Deno.env.set(SET_TRACE_ENV, path);
  try {
    return fn(path);
  } finally {
    if (before === undefined) Deno.env.delete(SET_TRACE_ENV);
    else Deno.env.set(SET_TRACE_ENV, before);
    Deno.removeSync(path);
  }
}

const read = (path: string): SetTraceRecord[] =>
  Deno.readTextFileSync(path).split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));

Deno.test("without RAFTKV_TRACE_FILE a node gets no tracer", () => {
  const before = Deno.env.get(SET_TRACE_ENV);
  Deno.env.delete(SET_TRACE_ENV);
  try {
    assertEquals(SetTracer.fromEnv(1), undefined);
  } finally {
    if (before !== undefined) Deno.env.set(SET_TRACE_ENV, before);
  }
});

Deno.test("a leader's record holds every stage of its SET, in order, once the reply is handed back", () => {
  withTraceFile((path) => {
    const t = SetTracer.fromEnv(1)!;
    try {
      const recv = performance.now();
      t.mark(7, "leader", "turn");
      t.fsyncStart("leader", 7, 7);
      t.sent(2, 7, 7);
      t.sent(3, 7, 7);
      t.fsyncEnd("leader");
      t.acked(2, 7);
      t.acked(2, 7); // a second ack of the same index changes nothing
      t.committed(7);
      t.mark(7, "leader", "answer");
      t.flush();
      assertEquals(read(path), [], "not written before the reply");
      t.answered(7, recv);
      t.flush();
      const [r] = read(path);
      assertEquals([r.node, r.role, r.index], [1, "leader", 7]);
      const order = [
        "recv",
        "turn",
        "fsyncStart",
        "send.2",
        "send.3",
        "fsyncEnd",
        "ack.2",
        "commit",
        "answer",
        "answered",
      ];
      for (const s of order) assert(typeof r.t[s] === "number", `stage ${s} missing`);
      for (let i = 1; i < order.length; i++) {
        assert(r.t[order[i - 1]] <= r.t[order[i]], `${order[i - 1]} after ${order[i]}`);
      }
      assertEquals(r.t["ack.3"], undefined, "peer 3 never acked");
    } finally {
      t.close();
    }
  });
});

Deno.test("a follower's records are complete when the ack covering them leaves", () => {
  withTraceFile((path) => {
    const t = SetTracer.fromEnv(2)!;
    try {
      for (const i of [4, 5, 6]) t.mark(i, "follower", "recv");
      t.fsyncStart("follower", 4, 6);
      t.fsyncEnd("follower");
      t.ackSent(5);
      t.flush();
      const rs = read(path);
      assertEquals(rs.map((r) => r.index).sort(), [4, 5]);
      for (const r of rs) assert(r.t.recv <= r.t.fsyncStart && r.t.fsyncEnd <= r.t.ackSent);
    } finally {
      t.close();
    }
  });
});
