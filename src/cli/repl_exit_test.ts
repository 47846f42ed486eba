/**
 * The REPL fed from a pipe (a script) exits non-zero when a command failed, with the code the one-shot command
 * would have exited with: 1 the operation failed, 2 a bad command line, 3 a CAS whose comparison did not hold.
 * The first failure's code wins; every line still runs. An interactive session exits 0 as before.
 */
import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { Readable } from "node:stream";
import { RaftkvClient } from "../client/mod.ts";
import { RpcError, startServer } from "../transport/mod.ts";
import { runRepl } from "./repl.ts";

/** One fake leader with an in-memory map (refuses an empty key, as a real node does) and a client to it. */
async function fakeCluster() {
  const data = new Map<string, string>();
  const refuse = () => {
    throw new RpcError("UNIMPLEMENTED", "fake node");
  };
  const server = await startServer("127.0.0.1:0", {
    clusterId: "fake",
    peer: { requestVote: refuse, appendEntries: refuse, timeoutNow: refuse },
    client: {
      set: (req) => {
        if (req.key === "") {
          return { ok: false, error: "invalidArgument", errorMessage: "key must not be empty", nodeId: 1 };
        }
        data.set(req.key, req.value);
        return { ok: true, index: data.size + 1, nodeId: 1 };
      },
      get: (req) => ({ ok: true, value: data.get(req.key) ?? "", found: data.has(req.key), nodeId: 1 }),
      delete: (req) => ({ ok: true, index: 1, deleted: data.delete(req.key), nodeId: 1 }),
      cas: (req) => {
        const holds = "value" in req.expect ? data.get(req.key) === req.expect.value : !data.has(req.key);
        if (holds) data.set(req.key, req.value);
        return {
          ok: true,
          index: 1,
          succeeded: holds,
          value: data.get(req.key) ?? "",
          found: data.has(req.key),
          version: 1,
          nodeId: 1,
        };
      },
    },
    admin: { status: refuse, transferLeader: refuse, dumpLog: refuse },
  });
  const client = new RaftkvClient({
    nodes: [{ id: 1, address: `127.0.0.1:${server.port}` }],
    timeoutMs: 2000,
  });
  return {
    data,
    repl: (input: string, interactive = false) =>
      runRepl({ client, interactive, input: Readable.from([input]), historyPath: "/dev/null" }),
    close: async () => {
      client.close();
      await server.close();
    },
  };
}

Deno.test("piped commands that all succeed exit 0, a GET or DEL of a missing key included (as the one-shot get)", async () => {
  const c = await fakeCluster();
  try {
    strictEqual(await c.repl("set a 1\nget nokey\ndel nokey\n# a comment\n\nhelp\nget a\n"), 0);
    strictEqual(c.data.get("a"), "1");
  } finally {
    await c.close();
  }
});

Deno.test("a piped unknown command exits 2 (a usage error, as one-shot) after running every other line", async () => {
  const c = await fakeCluster();
  try {
    strictEqual(await c.repl("bogus\nset a 1\nGET\nset b 2\n"), 2);
    deepStrictEqual([c.data.get("a"), c.data.get("b")], ["1", "2"]);
  } finally {
    await c.close();
  }
});

Deno.test("a piped SET the cluster refuses exits 1, the one-shot set's code", async () => {
  const c = await fakeCluster();
  try {
    strictEqual(await c.repl('set a 1\nset "" v\nget a\n'), 1);
  } finally {
    await c.close();
  }
});

Deno.test("a piped CAS whose comparison fails exits 3 as the one-shot cas; the first failure's code wins", async () => {
  const c = await fakeCluster();
  try {
    strictEqual(await c.repl("set a 1\ncas a 2 3\n"), 3);
    strictEqual(c.data.get("a"), "1");
    strictEqual(await c.repl("cas a 2 3\nbogus\n"), 3);
    strictEqual(await c.repl("bogus\ncas a 2 3\n"), 2);
    strictEqual(await c.repl("cas a 1 5\nexit\nbogus\n"), 0); // nothing runs after exit
  } finally {
    await c.close();
  }
});

Deno.test("a piped SET --value-file of a missing file exits 2 as the one-shot set --value-file", async () => {
  const c = await fakeCluster();
  try {
    strictEqual(await c.repl("set a --value-file /nonexistent/raftkv-value\n"), 2);
  } finally {
    await c.close();
  }
});

Deno.test("an interactive session exits 0 after failed commands, as before", async () => {
  const c = await fakeCluster();
  try {
    strictEqual(await c.repl('bogus\nset "" v\ncas a 2 3\n', true), 0);
  } finally {
    await c.close();
  }
});
