import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { EventEmitter } from "node:events";
import * as grpc from "@grpc/grpc-js";
import * as pb from "../gen/raftkv.ts";
import type { SetReply, SetRequest } from "./api.ts";
import {
  CallMux,
  type Frame,
  FRAME_BATCH_METADATA as MUX_BATCH_METADATA,
  type FrameBatching,
  serveFrames,
} from "./call_mux.ts";
import { ClusterStub } from "./client_stub.ts";
import {
  CLIENT_FRAME_BATCHING,
  clientFrameSizeBound,
  FRAME_BATCH_METADATA,
  type ServerHandlers,
  startServer,
} from "./server.ts";

/** A server whose SETs wait until the test settles them (`settle`), in the order it chooses. */
function gatedServer() {
  const waiting = new Map<string, (reply: Partial<SetReply> & { ok: boolean }) => void>();
  let arrived: () => void = () => {};
  const handlers: ServerHandlers = {
    clusterId: "batch-test",
    peer: {
      requestVote: () => Promise.reject(new Error("unused")),
      appendEntries: () => Promise.reject(new Error("unused")),
      timeoutNow: () => Promise.reject(new Error("unused")),
    },
    client: {
      get: (req: { key: string }) => ({
        ok: true,
        value: "x".repeat(Number(req.key)),
        found: true,
        version: 1,
      }),
      set: (req: SetRequest) =>
        new Promise((resolve) => {
          waiting.set(req.key, resolve);
          arrived();
        }),
    },
    admin: {
      status: () => Promise.reject(new Error("unused")),
      transferLeader: () => Promise.reject(new Error("unused")),
      dumpLog: () => Promise.reject(new Error("unused")),
    },
  } as unknown as ServerHandlers;
  return {
    handlers,
    waiting,
    /** Resolves once `n` SETs wait. */
    until: (n: number) =>
      new Promise<void>((resolve) => {
        arrived = () => waiting.size >= n && resolve();
        arrived();
      }),
    /** Settles the SETs of `keys` in this order, in one synchronous stretch (as one commit does). */
    settle: (keys: string[]) => {
      for (const k of keys) waiting.get(k)!({ ok: true, index: Number(k) });
    },
  };
}

/** A raw Client stream (no CallMux), recording every message exactly as it arrives. */
function rawStream(address: string, batching: boolean) {
  const client = new pb.ClientClient(address, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  if (batching) md.set(FRAME_BATCH_METADATA, "1");
  const call = client.stream(md);
  const messages: pb.ClientFrame[] = [];
  call.on("data", (f: pb.ClientFrame) => messages.push(f));
  call.on("error", () => {});
  return {
    messages,
    send: (f: pb.ClientFrame) => call.write(f),
    /** Every answer so far, in arrival order, batches unpacked. */
    answers: () => messages.flatMap((m) => m.batch ? m.batch.frames : [m]),
    close: () => {
      call.cancel();
      client.close();
    },
  };
}

async function waitFor(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  ok(cond(), `timed out waiting for ${what}`);
}

const setFrame = (callId: number, key: string): pb.ClientFrame => ({
  callId,
  set: { key, value: "v", clientId: "", seq: 0 },
});

Deno.test("answers that settle together on a Client stream arrive as one batch, in the order they settled", async () => {
  const gate = gatedServer();
  const server = await startServer("127.0.0.1:0", gate.handlers);
  const raw = rawStream(`127.0.0.1:${server.port}`, true);
  try {
    for (let i = 1; i <= 10; i++) raw.send(setFrame(i, String(i)));
    await gate.until(10);
    const order = ["7", "3", "10", "1", "2", "9", "4", "8", "5", "6"];
    gate.settle(order);
    await waitFor(() => raw.answers().length === 10, "10 answers");
    strictEqual(raw.messages.length, 1, "one message for the ten answers");
    strictEqual(raw.messages[0].callId, 0);
    deepStrictEqual(raw.answers().map((f) => f.callId), order.map(Number));
    deepStrictEqual(raw.answers().map((f) => f.setReply?.index), order.map(Number));
  } finally {
    raw.close();
    await server.close();
  }
});

Deno.test("a caller that did not ask for batches gets one message per answer", async () => {
  const gate = gatedServer();
  const server = await startServer("127.0.0.1:0", gate.handlers);
  const raw = rawStream(`127.0.0.1:${server.port}`, false);
  try {
    for (let i = 1; i <= 5; i++) raw.send(setFrame(i, String(i)));
    await gate.until(5);
    gate.settle(["1", "2", "3", "4", "5"]);
    await waitFor(() => raw.messages.length === 5, "5 messages");
    ok(raw.messages.every((m) => m.batch === undefined && m.setReply !== undefined));
    deepStrictEqual(raw.messages.map((m) => m.callId), [1, 2, 3, 4, 5]);
  } finally {
    raw.close();
    await server.close();
  }
});

/** A stand-in for a grpc-js server stream: records each `write` (one message each). */
class FakeCall extends EventEmitter {
  readonly written: TestFrame[] = [];
  getPeer(): string {
    return "fake";
  }
  write(frame: TestFrame, done?: () => void): boolean {
    this.written.push(frame);
    queueMicrotask(() => done?.());
    return true;
  }
  end(): void {}
}

interface TestFrame extends Frame {
  n?: number;
  bytes?: number;
  batch?: TestFrame[];
}

const TEST_BATCHING: FrameBatching<TestFrame> = {
  pack: (frames) => ({ callId: 0, batch: frames }),
  unbatch: (f) => f.batch,
  sizeOf: (f) => f.bytes,
  maxFrames: 100,
  maxBytes: 1000,
};

/** Serves `FakeCall` frames with batching limits; each answer settles when the test calls `settle`. */
function servedFake(limits: { maxFrames: number; maxBytes: number }) {
  const call = new FakeCall();
  const waiting = new Map<number, (f: Omit<TestFrame, "callId">) => void>();
  serveFrames<TestFrame>(
    call as unknown as grpc.ServerDuplexStream<TestFrame, TestFrame>,
    (frame) => new Promise((resolve) => waiting.set(frame.callId, resolve)),
    () => ({ code: 13, message: "failed" }),
    undefined,
    undefined,
    undefined,
    { limits: { ...TEST_BATCHING, ...limits }, replies: true },
  );
  return {
    call,
    request: (callId: number) => call.emit("data", { callId }),
    /** Settles the answers of `ids` in this order in one synchronous stretch; `bytes` undefined: goes alone. */
    settle: (ids: number[], bytes: (id: number) => number | undefined = () => 10) => {
      for (const id of ids) waiting.get(id)!({ n: id, bytes: bytes(id) });
    },
    /** Each write's answers: [n] for a single frame, [n, …] for a batch. */
    writes: () => call.written.map((w) => w.batch ? w.batch.map((f) => f.n) : [w.n]),
  };
}

const settleTurn = () => new Promise((r) => setTimeout(r, 0));

Deno.test("a batch holds at most its frame limit: more answers settling together go out in several batches", async () => {
  const s = servedFake({ maxFrames: 4, maxBytes: 1_000_000 });
  for (let i = 1; i <= 10; i++) s.request(i);
  s.settle([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  await settleTurn();
  deepStrictEqual(s.writes(), [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]);
});

Deno.test("a batch stays under its byte limit: the answer that would cross it starts the next batch", async () => {
  const s = servedFake({ maxFrames: 100, maxBytes: 100 });
  for (let i = 1; i <= 5; i++) s.request(i);
  s.settle([1, 2, 3, 4, 5], (id) => (id === 3 ? 70 : 20));
  await settleTurn();
  deepStrictEqual(s.writes(), [[1, 2], [3, 4], [5]]);
});

Deno.test("an answer too big to batch goes out alone, after the answers that settled before it", async () => {
  const s = servedFake({ maxFrames: 100, maxBytes: 1000 });
  for (let i = 1; i <= 5; i++) s.request(i);
  s.settle([2, 1, 3, 5, 4], (id) => (id === 3 ? undefined : 10));
  await settleTurn();
  deepStrictEqual(s.writes(), [[2, 1], [3], [5, 4]]);
  strictEqual(s.call.written[1].batch, undefined, "the big answer is a frame of its own, not a batch of one");
});

Deno.test("answers that settle in different turns go out in different writes, a lone one unbatched", async () => {
  const s = servedFake({ maxFrames: 100, maxBytes: 1000 });
  for (let i = 1; i <= 3; i++) s.request(i);
  s.settle([1]);
  await settleTurn();
  s.settle([3, 2]);
  await settleTurn();
  deepStrictEqual(s.writes(), [[1], [3, 2]]);
  strictEqual(s.call.written[0].batch, undefined);
});

Deno.test("a reply's size bound counts its strings three bytes a character; LIST replies and big GETs go alone", () => {
  const common = {
    ok: true,
    error: 0,
    errorMessage: "",
    leaderId: 0,
    leaderAddress: "",
    retryAfterMs: 0,
    nodeId: 1,
  };
  const small = clientFrameSizeBound({ callId: 1, setReply: { ...common, index: 1 } });
  strictEqual(small, 64);
  const get = { ...common, value: "é".repeat(1000), found: true, version: 1 };
  strictEqual(clientFrameSizeBound({ callId: 1, getReply: get }), 64 + 3000);
  strictEqual(
    clientFrameSizeBound({ callId: 1, listReply: { ...common, items: [] } as unknown as pb.ListReply }),
    undefined,
  );
  const big = { ...get, value: "x".repeat(30_000) };
  strictEqual(CLIENT_FRAME_BATCHING.sizeOf({ callId: 1, getReply: big }), undefined);
});

Deno.test("a ClusterStub reads batched answers: many SETs in flight each get their own reply", async () => {
  const gate = gatedServer();
  const server = await startServer("127.0.0.1:0", gate.handlers);
  const stub = new ClusterStub(`127.0.0.1:${server.port}`);
  try {
    const keys = Array.from({ length: 40 }, (_, i) => String(i + 1));
    const replies = Promise.all(keys.map((k) => stub.set(k, "v", "", 0, 5000)));
    await gate.until(40);
    gate.settle([...keys].reverse());
    deepStrictEqual((await replies).map((r) => r.index), keys.map(Number));
  } finally {
    stub.close();
    await server.close();
  }
});

Deno.test("a server answers each request of a batch frame, under its own call id", async () => {
  const gate = gatedServer();
  const server = await startServer("127.0.0.1:0", gate.handlers);
  const raw = rawStream(`127.0.0.1:${server.port}`, false);
  try {
    raw.send({ callId: 0, batch: { frames: [setFrame(5, "5"), setFrame(6, "6"), setFrame(7, "7")] } });
    await gate.until(3);
    gate.settle(["6", "5", "7"]);
    await waitFor(() => raw.answers().length === 3, "3 answers");
    deepStrictEqual(raw.answers().map((f) => [f.callId, f.setReply?.index]), [[6, 6], [5, 5], [7, 7]]);
  } finally {
    raw.close();
    await server.close();
  }
});

/** A stand-in for a grpc-js client stream: records each `write`. */
class FakeClientCall extends EventEmitter {
  readonly written: TestFrame[] = [];
  writableLength = 0;
  write(frame: TestFrame): boolean {
    this.written.push(frame);
    return true;
  }
  cancel(): void {}
}

function fakeMux(serverSaysBatches: boolean) {
  const call = new FakeClientCall();
  const mux = new CallMux<TestFrame>(
    "fake",
    () => call as unknown as grpc.ClientDuplexStream<TestFrame, TestFrame>,
    undefined,
    { ...TEST_BATCHING, maxFrames: 3 },
  );
  const first = mux.call({ callId: 0, n: 1, bytes: 10 }, 5000); // opens the stream
  const md = new grpc.Metadata();
  if (serverSaysBatches) md.set(MUX_BATCH_METADATA, "1");
  call.emit("metadata", md);
  return { call, mux, first };
}

Deno.test("a CallMux batches the requests of one microtask checkpoint once the server says it reads batches", async () => {
  const { call, mux, first } = fakeMux(true);
  const calls = [2, 3, 4, 5].map((n) => mux.call({ callId: 0, n, bytes: n === 4 ? undefined : 10 }, 5000));
  await settleTurn();
  // 1 went out before the metadata; 2 and 3 batch; 4 cannot be batched, so it flushes them and goes alone.
  deepStrictEqual(call.written.map((w) => w.batch ? w.batch.map((f) => f.n) : [w.n]), [[1], [2, 3], [4], [
    5,
  ]]);
  // Answers in one batch frame reach their calls.
  const ids = [first, ...calls].map((_, i) => i + 1);
  call.emit("data", { callId: 0, batch: ids.map((callId) => ({ callId, n: callId * 10 })) });
  deepStrictEqual((await Promise.all([first, ...calls])).map((f) => f.n), [10, 20, 30, 40, 50]);
  mux.close();
});

Deno.test("a CallMux sends one frame per request to a server that did not say it reads batches", async () => {
  const { call, mux, first } = fakeMux(false);
  const calls = [2, 3, 4].map((n) => mux.call({ callId: 0, n, bytes: 10 }, 5000));
  await settleTurn();
  deepStrictEqual(call.written.map((w) => w.batch ? "batch" : w.n), [1, 2, 3, 4]);
  mux.close();
  await Promise.allSettled([first, ...calls]);
});

Deno.test("a CallMux's batch holds at most its frame limit", async () => {
  const { call, mux, first } = fakeMux(true);
  const calls = [2, 3, 4, 5, 6, 7, 8].map((n) => mux.call({ callId: 0, n, bytes: 10 }, 5000));
  await settleTurn();
  deepStrictEqual(call.written.map((w) => w.batch ? w.batch.map((f) => f.n) : [w.n]), [[1], [2, 3, 4], [
    5,
    6,
    7,
  ], [8]]);
  mux.close();
  await Promise.allSettled([first, ...calls]);
});
