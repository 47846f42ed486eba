/**
 * The wire of issue 15: DELETE, CAS and LIST as frames and as unary calls, the WATCH server stream, and a
 * server without those handlers answering UNIMPLEMENTED.
 */
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import type { CasRequest, ListRequest, WatchReply, WatchRequest } from "./api.ts";
import { ClusterStub } from "./client_stub.ts";
import { TransportError } from "./errors.ts";
import { type ServerHandlers, startServer } from "./server.ts";

const NOT_USED = () => {
  throw new Error("not used");
};

function handlers(seen: unknown[]): ServerHandlers {
  return {
    clusterId: "c",
    peer: { requestVote: NOT_USED, appendEntries: NOT_USED, timeoutNow: NOT_USED },
    admin: { status: NOT_USED, transferLeader: NOT_USED, dumpLog: NOT_USED },
    client: {
      get: () => ({ ok: true, value: "v", found: true, version: 7, nodeId: 1 }),
      set: () => ({ ok: true, index: 1 }),
      delete: (req) => {
        seen.push(req);
        return { ok: true, index: 9, deleted: true, nodeId: 1 };
      },
      cas: (req: CasRequest) => {
        seen.push(req);
        return { ok: true, index: 10, succeeded: false, value: "cur", found: true, version: 4, nodeId: 1 };
      },
      list: (req: ListRequest) => {
        seen.push(req);
        return { ok: true, items: [{ key: "p/a", value: "1", version: 3 }], more: true, nextAfter: "p/a" };
      },
      async *watch(req: WatchRequest): AsyncGenerator<Partial<WatchReply>> {
        seen.push(req);
        yield { startIndex: req.fromIndex, nodeId: 1 };
        yield {
          events: [{ index: 5, op: "set", key: "p/a", value: "1" }, {
            index: 6,
            op: "del",
            key: "p/a",
            value: "",
          }],
        };
        yield { error: "compacted", errorMessage: "gone", oldestIndex: 4 };
      },
    },
  };
}

for (const streams of [true, false]) {
  Deno.test(`DELETE, CAS and LIST reach the handlers and come back whole (${streams ? "frames" : "unary calls"})`, async () => {
    const seen: unknown[] = [];
    const server = await startServer("127.0.0.1:0", handlers(seen));
    const stub = new ClusterStub(`127.0.0.1:${server.port}`, {}, { streams });
    try {
      strictEqual((await stub.get("k", 2000)).version, 7);
      const d = await stub.delete("k", "c1", 3, 2000);
      deepStrictEqual([d.ok, d.index, d.deleted], [true, 9, true]);
      const absent = await stub.cas(
        { key: "k", expect: { version: 0 }, value: "n", clientId: "c1", seq: 4 },
        2000,
      );
      deepStrictEqual([absent.succeeded, absent.value, absent.found, absent.version], [
        false,
        "cur",
        true,
        4,
      ]);
      await stub.cas({ key: "k", expect: { value: "" }, value: "n", clientId: "c1", seq: 5 }, 2000);
      const l = await stub.list({ prefix: "p/", after: "", limit: 5, withValues: true }, 2000);
      deepStrictEqual([l.items, l.more, l.nextAfter], [
        [{ key: "p/a", value: "1", version: 3 }],
        true,
        "p/a",
      ]);
      deepStrictEqual(seen, [
        { key: "k", clientId: "c1", seq: 3 },
        { key: "k", expect: { version: 0 }, value: "n", clientId: "c1", seq: 4 },
        // An empty expected value is still a value (the oneof keeps which one was set).
        { key: "k", expect: { value: "" }, value: "n", clientId: "c1", seq: 5 },
        { prefix: "p/", after: "", limit: 5, withValues: true },
      ]);
    } finally {
      stub.close();
      await server.close();
    }
  });
}

Deno.test("a watch stream delivers its replies in order and ends after the error reply", async () => {
  const seen: unknown[] = [];
  const server = await startServer("127.0.0.1:0", handlers(seen));
  const stub = new ClusterStub(`127.0.0.1:${server.port}`);
  try {
    const replies: WatchReply[] = [];
    for await (const r of stub.watch({ key: "p/", prefix: true, fromIndex: 5 })) replies.push(r);
    strictEqual(replies.length, 3);
    strictEqual(replies[0].startIndex, 5);
    deepStrictEqual(replies[1].events.map((e) => `${e.index}${e.op}`), ["5set", "6del"]);
    deepStrictEqual([replies[2].error, replies[2].oldestIndex], ["compacted", 4]);
  } finally {
    stub.close();
    await server.close();
  }
});

Deno.test("a server without the new handlers answers them with UNIMPLEMENTED", async () => {
  const h = handlers([]);
  const bare: ServerHandlers = { ...h, client: { get: h.client.get, set: h.client.set } };
  const server = await startServer("127.0.0.1:0", bare);
  const stub = new ClusterStub(`127.0.0.1:${server.port}`, {}, { streams: false });
  try {
    await rejects(
      stub.delete("k", "", 0, 2000),
      (e: unknown) => e instanceof TransportError && e.codeName === "UNIMPLEMENTED",
    );
    let failed: unknown;
    try {
      for await (const _ of stub.watch({ key: "", prefix: true, fromIndex: 0 })) break;
    } catch (e) {
      failed = e;
    }
    ok(failed instanceof TransportError && failed.codeName === "UNIMPLEMENTED", String(failed));
  } finally {
    stub.close();
    await server.close();
  }
});
