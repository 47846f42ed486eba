/**
 * The CLI as a user runs it: `deno run -A mod.ts …` in a child process, against fake nodes served from this
 * test process (src/transport's startServer with in-memory handlers) or against nothing at all.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { type NodeStatus, RpcError, type RunningServer, startServer } from "../transport/mod.ts";
import { VERSION_LINE } from "../version.ts";

const MOD = new URL("../../mod.ts", import.meta.url).pathname;

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

async function raftkv(args: string[], opts: { stdin?: string; cwd?: string; killAfterMs?: number } = {}) {
  const t0 = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MOD, ...args],
    cwd: opts.cwd,
    // Plain text, said explicitly (the nodes these tests start in-process have no TLS); TLS is tested in
    // src/security and tests/integration.
    env: { NO_COLOR: "1", RAFTKV_CONFIG: "", RAFTKV_INSECURE: "1" },
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const killer = setTimeout(() => child.kill("SIGKILL"), opts.killAfterMs ?? 30_000);
  const out = await child.output();
  clearTimeout(killer);
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
    ms: performance.now() - t0,
  } satisfies Run;
}

/** A loopback port nothing listens on. */
function unusedPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** One fake leader with an in-memory map. */
async function fakeLeader(
  id = 1,
): Promise<{ server: RunningServer; address: string; data: Map<string, string> }> {
  const data = new Map<string, string>();
  const refuse = () => {
    throw new RpcError("UNIMPLEMENTED", "fake node");
  };
  let address = "";
  const status = (): NodeStatus => ({
    id,
    address,
    role: "leader",
    term: 3,
    votedFor: id,
    leaderId: id,
    commitIndex: data.size + 1,
    lastLogIndex: data.size + 1,
    lastLogTerm: 3,
    leaseRemainingMs: 712.4,
    leaseWaitRemainingMs: 0,
    servingReads: true,
    promiseRemainingMs: 0,
    peerRpcCount: 42,
    version: "test",
  });
  const server = await startServer("127.0.0.1:0", {
    clusterId: "fake",
    peer: { requestVote: refuse, appendEntries: refuse, timeoutNow: refuse },
    client: {
      set: (req) => {
        if (req.key === "") {
          return { ok: false, error: "invalidArgument", errorMessage: "key must not be empty", nodeId: id };
        }
        data.set(req.key, req.value);
        return { ok: true, index: data.size + 1, nodeId: id };
      },
      get: (req) => ({ ok: true, value: data.get(req.key) ?? "", found: data.has(req.key), nodeId: id }),
    },
    admin: {
      status,
      transferLeader: refuse,
      dumpLog: () => ({
        commitIndex: 2,
        entries: [
          { index: 1, term: 1, command: { op: "noop" } },
          { index: 2, term: 1, command: { op: "set", key: "a", value: "x y", clientId: "c", seq: 1 } },
          { index: 3, term: 2, command: { op: "set", key: "b", value: "z", clientId: "c", seq: 2 } },
        ],
      }),
    },
  });
  address = `127.0.0.1:${server.port}`;
  return { server, address, data };
}

Deno.test("--version prints the version line", async () => {
  const r = await raftkv(["--version"]);
  strictEqual(r.code, 0);
  strictEqual(r.stdout, `${VERSION_LINE}\n`);
});

Deno.test("a client with no reachable node exits non-zero within its timeout with a one-line reason", async () => {
  const r = await raftkv(["client", "--node", `127.0.0.1:${unusedPort()}`, "--timeout", "1s", "get", "k"]);
  strictEqual(r.code, 1);
  ok(r.ms < 3000, `took ${r.ms} ms`);
  strictEqual(r.stdout, "");
  const lines = r.stderr.trimEnd().split("\n");
  strictEqual(lines.length, 1, r.stderr);
  ok(
    /^error: no leader reachable after \d+ ms \(tried nodes 127\.0\.0\.1:\d+; last error: .*UNAVAILABLE/.test(
      lines[0],
    ),
    lines[0],
  );
});

Deno.test("a config with duplicate node ids exits 2 naming the field", async () => {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-cli-" });
  try {
    const path = `${dir}/cluster.json`;
    await Deno.writeTextFile(
      path,
      JSON.stringify({ nodes: [{ id: 1, address: "127.0.0.1:7101" }, { id: 1, address: "127.0.0.1:7102" }] }),
    );
    for (const args of [["client", "--config", path, "get", "k"], ["node", "--id", "1", "--config", path]]) {
      const r = await raftkv(args);
      strictEqual(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      strictEqual(r.stderr, `error: ${path}: nodes: id 1 appears twice\n`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a node id missing from the config exits 2 naming the ids there", async () => {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-cli-" });
  try {
    const path = `${dir}/cluster.json`;
    await Deno.writeTextFile(path, JSON.stringify({ nodes: [{ id: 1, address: "127.0.0.1:7101" }] }));
    const r = await raftkv(["node", "--id", "7", "--config", path, "--data-dir", dir]);
    strictEqual(r.code, 2);
    strictEqual(
      r.stderr,
      `error: node id 7 is not in ${path} (ids: 1): a new node starts with --join --address HOST:PORT\n`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a node whose address is taken exits 1 with one line naming the address", async () => {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-cli-" });
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const address = `127.0.0.1:${(taken.addr as Deno.NetAddr).port}`;
    const path = `${dir}/cluster.json`;
    await Deno.writeTextFile(path, JSON.stringify({ nodes: [{ id: 1, address }] }));
    const r = await raftkv(["node", "--id", "1", "--config", path, "--data-dir", dir, "--quiet"]);
    strictEqual(r.code, 1);
    strictEqual(
      r.stderr,
      `error: node 1 cannot listen on ${address}: address already in use (is another node running there?)\n`,
    );
  } finally {
    taken.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("without a config or --node the client says where it looked and exits 2", async () => {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-cli-" });
  try {
    const r = await raftkv(["client", "get", "k"], { cwd: dir });
    strictEqual(r.code, 2);
    // The path it looked at, made absolute (the test's own INIT_CWD, from `deno task test`, does not apply).
    const real = await Deno.realPath(dir);
    ok(r.stderr.startsWith(`error: no cluster config: ${real}/cluster.json does not exist`), r.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a bad --timeout is a usage error naming the accepted units", async () => {
  const r = await raftkv(["client", "--node", "127.0.0.1:1", "--timeout", "5", "get", "k"]);
  strictEqual(r.code, 2);
  ok(r.stderr.includes("has no unit") && r.stderr.includes("500ms, 5s, 1m"), r.stderr);
});

Deno.test("one-shot set prints OK and get prints the value, or an empty line when absent", async () => {
  const node = await fakeLeader();
  try {
    const set = await raftkv(["client", "--node", node.address, "set", "name", "Jon Snow"]);
    deepStrictEqual([set.code, set.stdout, set.stderr], [0, "OK\n", ""]);
    const get = await raftkv(["client", "get", "name", "--node", node.address]);
    deepStrictEqual([get.code, get.stdout], [0, "Jon Snow\n"]);
    const absent = await raftkv(["client", "--node", node.address, "get", "nope"]);
    deepStrictEqual([absent.code, absent.stdout], [0, "\n"]);
    const bad = await raftkv(["client", "--node", node.address, "set", "", "v"]);
    deepStrictEqual([bad.code, bad.stderr], [1, "error: SET refused by node 1: key must not be empty\n"]);
  } finally {
    await node.server.close();
  }
});

Deno.test("the REPL reads piped commands line by line, says which node answered, and exits 2 after a bad line", async () => {
  const node = await fakeLeader(3);
  try {
    const r = await raftkv(["client", "--node", node.address], {
      stdin:
        'SET a hello big world\nGET a\nGET missing\nSET "k 2" "  padded  "\nGET "k 2"\nbogus\nexit\nGET a\n',
    });
    // An unknown command, as a one-shot usage error: 2 (src/cli/repl_exit_test.ts has the other codes).
    strictEqual(r.code, 2, r.stderr);
    const lines = r.stdout.trimEnd().split("\n");
    strictEqual(lines.length, 5, r.stdout);
    ok(/^OK {2}\(node 3, [\d.]+ ms\)$/.test(lines[0]), lines[0]);
    ok(/^"hello big world" {2}\(node 3, [\d.]+ ms\)$/.test(lines[1]), lines[1]);
    ok(/^"" {2}\(node 3, [\d.]+ ms; not found\)$/.test(lines[2]), lines[2]);
    ok(lines[3].startsWith("OK  (node 3"), lines[3]);
    ok(lines[4].startsWith('"  padded  "  (node 3'), lines[4]);
    strictEqual(
      r.stderr,
      'error: unknown command "bogus" (type help)\n' +
        "error: 1 of 6 commands failed; exit code 2, that of the first failure (line 6)\n",
    );
    strictEqual(node.data.get("k 2"), "  padded  ");
  } finally {
    await node.server.close();
  }
});

Deno.test("admin status shows reachable and unreachable nodes, as a table and as JSON", async () => {
  const node = await fakeLeader(1);
  const dir = await Deno.makeTempDir({ prefix: "raftkv-cli-" });
  try {
    const path = `${dir}/cluster.json`;
    const down = `127.0.0.1:${unusedPort()}`;
    await Deno.writeTextFile(
      path,
      JSON.stringify({ nodes: [{ id: 1, address: node.address }, { id: 2, address: down }] }),
    );
    const table = await raftkv(["admin", "status", "--config", path]);
    strictEqual(table.code, 0, table.stderr);
    const lines = table.stdout.trimEnd().split("\n");
    ok(lines[0].startsWith("ID  ADDRESS"), lines[0]);
    ok(/^ 1 +127\.0\.0\.1:\d+ +yes +leader +- +3 +1 +1 +1 +712 +0$/.test(lines[1]), lines[1]);
    ok(/^ 2 +127\.0\.0\.1:\d+ +no +- .*UNAVAILABLE/.test(lines[2]), lines[2]);
    strictEqual(lines[3], "leader: node 1 (term 3); 1 of 2 nodes reachable");

    const json = await raftkv(["admin", "status", "--config", path, "--json"]);
    strictEqual(json.code, 0);
    const rows = JSON.parse(json.stdout) as Record<string, unknown>[];
    strictEqual(rows.length, 2);
    for (
      const f of ["id", "address", "reachable", "role", "term", "leaderId", "commitIndex", "lastLogIndex"]
    ) ok(f in rows[0] && f in rows[1], f);
    deepStrictEqual(
      [rows[0].reachable, rows[0].role, rows[0].leaseRemainingMs, rows[0].peerRpcCount],
      [true, "leader", 712.4, 42],
    );
    deepStrictEqual([rows[1].id, rows[1].reachable, rows[1].role], [2, false, null]);
  } finally {
    await node.server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("admin status exits 1 when no node answers", async () => {
  const r = await raftkv(["admin", "status", "--node", `127.0.0.1:${unusedPort()}`, "--timeout", "1s"]);
  strictEqual(r.code, 1);
  ok(r.stderr.startsWith("error: no node answered"), r.stderr);
});

Deno.test("admin dump-log prints indexed entries with the commit marker", async () => {
  const node = await fakeLeader(1);
  try {
    const r = await raftkv(["admin", "dump-log", "--node", node.address]);
    strictEqual(r.code, 0, r.stderr);
    strictEqual(r.stdout, '1  NO-OP 1\n2  SET a "x y" 1\n---- commit index 2 ----\n3  SET b z 2\n');
  } finally {
    await node.server.close();
  }
});

Deno.test("add-node --replace with --learner exits 2 before contacting the cluster (a learner replaces no voter)", async () => {
  const r = await raftkv([
    "admin",
    "add-node",
    "--id",
    "6",
    "--address",
    "127.0.0.1:1",
    "--replace",
    "3",
    "--learner",
    "--node",
    "127.0.0.1:1",
    "--insecure",
  ]);
  strictEqual(r.code, 2, r.stderr);
  strictEqual(r.stderr, "error: --replace 3 needs a voter: drop --learner\n");
});
