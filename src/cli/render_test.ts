import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import type { Entry } from "../raft/types.ts";
import type { NodeStatus } from "../transport/mod.ts";
import { entryJson, renderLog } from "./dump_log.ts";
import { formatGetAnswer, formatSetAnswer } from "./repl.ts";
import { renderStatusTable, statusJson, unlistedMembers } from "./status.ts";

const set = (index: number, key: string, value: string, term = 1): Entry => ({
  index,
  term,
  command: { op: "set", key, value, clientId: "c", seq: index },
});

Deno.test("the log dump puts the commit marker after the last committed entry", () => {
  const entries: Entry[] = [{ index: 1, term: 1, command: { op: "noop" } }, set(2, "k", "v")];
  for (let i = 3; i <= 10; i++) entries.push(set(i, `k${i}`, "v", 2));
  const out = renderLog(entries, 9).split("\n");
  strictEqual(out[0], " 1  NO-OP 1");
  strictEqual(out[1], " 2  SET k v 1");
  strictEqual(out[9], "---- commit index 9 ----");
  strictEqual(out[10], "10  SET k10 v 2");
});

Deno.test("the log dump marks the commit point before the entries when none shown is committed", () => {
  strictEqual(renderLog([set(5, "a", "b")], 3), "---- commit index 3 ----\n5  SET a b 1");
  strictEqual(renderLog([set(5, "a", "b")], 7), "5  SET a b 1\n---- commit index 7 ----");
  strictEqual(renderLog([], 0), "(no entries)\n---- commit index 0 ----");
});

Deno.test("the log dump writes non-ASCII keys and values plainly, as logs.txt does", () => {
  const out = renderLog([set(1, "ключ", "naïve café 🎉")], 1).split("\n");
  strictEqual(out[0], '1  SET ключ "naïve café 🎉" 1');
  strictEqual(renderLog([set(1, "città", "ünïcode")], 0).split("\n")[1], "1  SET città ünïcode 1");
});

Deno.test("log entries as JSON carry op, key, value and the text form", () => {
  deepStrictEqual(entryJson(set(2, "my key", "v")), {
    index: 2,
    term: 1,
    op: "SET",
    key: "my key",
    value: "v",
    clientId: "c",
    seq: 2,
    text: 'SET "my key" v 1',
  });
  deepStrictEqual(entryJson({ index: 1, term: 4, command: { op: "noop" } }), {
    index: 1,
    term: 4,
    op: "NO-OP",
    text: "NO-OP 4",
  });
});

Deno.test("REPL answers show the node and the latency; odd values are quoted", () => {
  strictEqual(formatSetAnswer({ nodeId: 3, index: 4, latencyMs: 2.14 }), "OK  (node 3, 2.1 ms)");
  strictEqual(
    formatGetAnswer({ value: "Jon", found: true, nodeId: 1, latencyMs: 12.6 }),
    "Jon  (node 1, 13 ms)",
  );
  strictEqual(
    formatGetAnswer({ value: "a b", found: true, nodeId: 1, latencyMs: 1 }),
    '"a b"  (node 1, 1.0 ms)',
  );
  strictEqual(
    formatGetAnswer({ value: "", found: false, nodeId: 2, latencyMs: 1 }),
    '""  (node 2, 1.0 ms; not found)',
  );
});

const STATUS: NodeStatus = {
  id: 2,
  address: "127.0.0.1:7102",
  role: "leader",
  term: 7,
  votedFor: 2,
  leaderId: 2,
  commitIndex: 12,
  lastLogIndex: 13,
  lastLogTerm: 7,
  leaseRemainingMs: 640.7,
  leaseWaitRemainingMs: 0,
  servingReads: true,
  promiseRemainingMs: 0,
  peerRpcCount: 5,
  version: "0.1.0",
};

Deno.test("the status table shows unreachable nodes and a summary line", () => {
  const out = renderStatusTable([
    { node: { id: 1, address: "127.0.0.1:7101" }, error: "UNAVAILABLE (connection refused)" },
    { node: { id: 2, address: "127.0.0.1:7102" }, status: STATUS },
  ]);
  strictEqual(
    out,
    [
      "ID  ADDRESS         REACHABLE  ROLE    VOTER  TERM  LEADER  COMMIT  LAST  LEASE_MS  LEASE_WAIT_MS  NOTE",
      " 1  127.0.0.1:7101  no         -       -         -       -       -     -         -              -  UNAVAILABLE (connection refused)",
      " 2  127.0.0.1:7102  yes        leader  -         7       2      12    13       641              0",
      "leader: node 2 (term 7); 1 of 2 nodes reachable",
    ].join("\n"),
  );
});

Deno.test("the status shows every member's role and voter flag by the leader's configuration (issue 11)", () => {
  const membership = {
    members: [
      { id: 2, address: "127.0.0.1:7102", voter: true },
      { id: 3, address: "127.0.0.1:7103", voter: true },
      { id: 4, address: "127.0.0.1:7104", voter: false, promote: true },
    ],
  };
  const follower = { ...STATUS, role: "follower" as const, servingReads: false };
  const rows = [
    { node: { id: 1, address: "127.0.0.1:7101" }, status: { ...follower, id: 1 } },
    { node: { id: 2, address: "127.0.0.1:7102" }, status: { ...STATUS, membership, membershipIndex: 9 } },
    { node: { id: 3, address: "127.0.0.1:7103" }, status: { ...follower, id: 3 } },
    { node: { id: 4, address: "127.0.0.1:7104" }, status: { ...follower, id: 4 } },
  ];
  const json = statusJson(rows);
  deepStrictEqual(json.map((r) => [r.id, r.role, r.voter]), [
    [1, "removed", false],
    [2, "leader", true],
    [3, "follower", true],
    [4, "learner", false],
  ]);
  const table = renderStatusTable(rows).split("\n");
  ok(/^ 4 +127\.0\.0\.1:7104 +yes +learner +no /.test(table[4]), table[4]);
});

Deno.test("a leader added after bootstrap is found through its followers when cluster.json does not list it", () => {
  // Node 6 replaced node 4 (add-node --replace) and then took over (transfer-leader --to 6); the file still
  // lists 1..5. The followers report the configuration: node 6 must be asked too, or no leader is found.
  const old = { members: [1, 2, 3, 4, 5].map((id) => ({ id, address: `127.0.0.1:710${id}`, voter: true })) };
  const now = {
    members: [1, 2, 3, 5, 6].map((id) => ({ id, address: `127.0.0.1:710${id}`, voter: true })),
  };
  const follower = { ...STATUS, role: "follower" as const, leaderId: 6, servingReads: false };
  const rows = [
    { node: { id: 1, address: "127.0.0.1:7101" }, status: { ...follower, id: 1, membership: old } },
    {
      node: { id: 2, address: "127.0.0.1:7102" },
      status: { ...follower, id: 2, membership: now, membershipIndex: 58 },
    },
    {
      node: { id: 3, address: "127.0.0.1:7103" },
      status: { ...follower, id: 3, membership: now, membershipIndex: 58 },
    },
    { node: { id: 4, address: "127.0.0.1:7104" }, error: "UNAVAILABLE (connection refused)" },
  ];
  const five = {
    node: { id: 5, address: "127.0.0.1:7105" },
    status: { ...follower, id: 5, membership: old },
  };
  deepStrictEqual(unlistedMembers([...rows, five]), [{ id: 6, address: "127.0.0.1:7106" }]);
  // With a leader among the answers, its configuration is the one that counts (as before).
  const withLeader = [...rows, {
    node: { id: 5, address: "127.0.0.1:7105" },
    status: { ...STATUS, id: 5, membership: old, membershipIndex: 0 },
  }];
  deepStrictEqual(unlistedMembers(withLeader), []);
});

Deno.test("status JSON has the documented fields, null for a node that did not answer", () => {
  const [down, up] = statusJson([
    { node: { id: 1, address: "a:1" }, error: "UNAVAILABLE" },
    { node: { id: 2, address: "127.0.0.1:7102" }, status: STATUS },
  ]);
  deepStrictEqual(
    { id: down.id, reachable: down.reachable, role: down.role, term: down.term, error: down.error },
    { id: 1, reachable: false, role: null, term: null, error: "UNAVAILABLE" },
  );
  for (
    const f of [
      "id",
      "address",
      "reachable",
      "role",
      "term",
      "leaderId",
      "commitIndex",
      "lastLogIndex",
      "leaseRemainingMs",
      "leaseWaitRemainingMs",
      "peerRpcCount",
      "servingReads",
    ]
  ) ok(f in up, f);
  strictEqual(up.leaseRemainingMs, 640.7);
});

Deno.test("status JSON reports the node certificate's whole days left, and null for a node without TLS", () => {
  const day = 24 * 3600 * 1000;
  const rows = statusJson([
    {
      node: { id: 1, address: "127.0.0.1:7101" },
      status: { ...STATUS, id: 1, certificateExpiresInMs: 729.9 * day },
    },
    { node: { id: 2, address: "127.0.0.1:7102" }, status: STATUS },
    {
      node: { id: 3, address: "127.0.0.1:7103" },
      status: { ...STATUS, id: 3, certificateExpiresInMs: 0.5 * day },
    },
    { node: { id: 4, address: "127.0.0.1:7104" }, error: "UNAVAILABLE" },
    { node: { id: 5, address: "127.0.0.1:7105" }, status: { ...STATUS, id: 5, certificateExpiresInMs: -2 } },
  ]);
  deepStrictEqual(rows.map((r) => r.certificateExpiresInDays), [729, null, 0, null, -1]);
  // Added, not renamed: the documented fields are all still there.
  for (const f of ["id", "address", "reachable", "role", "term", "leaderId", "commitIndex", "lastLogIndex"]) {
    ok(f in rows[0], f);
  }
  strictEqual(rows[0].leaseRemainingMs, 640.7);
});

Deno.test("the status table notes a node certificate only when it expires within 30 days", () => {
  const day = 24 * 3600 * 1000;
  const row = (id: number, ms: number | undefined) => ({
    node: { id, address: `127.0.0.1:710${id}` },
    status: { ...STATUS, id, ...(ms === undefined ? {} : { certificateExpiresInMs: ms }) },
  });
  const quiet = renderStatusTable([row(1, 30 * day), row(2, 400 * day), row(3, undefined)]);
  ok(!quiet.includes("NOTE") && !quiet.includes("certificate"), quiet);
  const lines = renderStatusTable([row(1, 30 * day - 1), row(2, 400 * day), row(3, 1.5 * day), row(4, -5)])
    .split("\n");
  ok(lines[0].endsWith("NOTE"), lines[0]);
  ok(lines[1].endsWith("certificate expires in 29 days"), lines[1]);
  ok(!lines[2].includes("certificate"), lines[2]);
  ok(lines[3].endsWith("certificate expires in 1 day"), lines[3]);
  ok(lines[4].endsWith("certificate EXPIRED"), lines[4]);
});
