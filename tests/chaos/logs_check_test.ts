import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { parseLogLine } from "../integration/harness.ts";
import type { HistoryEvent } from "./history.ts";
import { checkLogs, type NodeLogs } from "./logs_check.ts";

function node(id: number, lines: string[], commitLength: number, dump: string[] = []): NodeLogs {
  return { id, entries: lines.map((l, i) => parseLogLine(`${l} #00000000`, i + 1)), commitLength, dump };
}

const acked = (key: string, value: string): HistoryEvent => ({
  process: 0,
  type: "ok",
  f: "set",
  key,
  value,
  time: 1,
});

Deno.test("logs check: agreeing committed prefixes, uncommitted tails may differ", () => {
  const r = checkLogs([
    node(1, ["NO-OP 1", "SET a 1 1", "SET b 2 1"], 3),
    node(2, ["NO-OP 1", "SET a 1 1", "SET x 9 2"], 2),
    node(3, ["NO-OP 1"], 1),
  ], [acked("a", "1"), acked("b", "2")]);
  assertEquals(r.anomalies, []);
  assertEquals([r.referenceNode, r.committedLength], [1, 3]);
});

Deno.test("logs check: a diverged committed prefix, a commit beyond the log, a lost SET", () => {
  const r = checkLogs([
    node(1, ["NO-OP 1", "SET a 1 1", "SET b 2 1"], 3),
    node(2, ["NO-OP 1", "SET a 7 1"], 2),
    node(3, ["NO-OP 1"], 4),
  ], [acked("a", "1"), acked("c", "3")]);
  assertEquals(r.anomalies.map((a) => a.kind).sort(), [
    "acked-set-lost",
    "commit-beyond-log",
    "committed-prefix-diverged",
  ]);
});

Deno.test("logs check: two nodes became leader in one term (dump.txt)", () => {
  const r = checkLogs([
    node(1, [], 0, ["2026-01-01T00:00:00.000Z Node 1 became the leader for term 2."]),
    node(2, [], 0, ["2026-01-01T00:00:01.000Z Node 2 became the leader for term 2."]),
    node(3, [], 0, ["2026-01-01T00:00:02.000Z Node 3 became the leader for term 3."]),
  ], []);
  assertEquals(r.anomalies.map((a) => a.kind), ["two-leaders-one-term"]);
  assertEquals(r.terms, 2);
});

Deno.test("logs check: a node replaced for good keeps an old short log; writes compacted elsewhere are not lost", () => {
  const compacted = (id: number, lines: string[], start: number, commitLength: number): NodeLogs => ({
    id,
    entries: lines.map((l, i) => parseLogLine(`${l} #00000000`, start + i + 1)),
    start,
    commitLength,
    dump: [],
  });
  const config = `CONFIG ${
    JSON.stringify(JSON.stringify({ members: [{ id: 1, address: "a", voter: true }] }))
  } 1`;
  const nodes = [
    node(3, ["NO-OP 1", "SET a 1 1"], 1), // retired: committed only index 1
    compacted(1, ["SET c 3 1", config], 3, 5),
    compacted(2, ["SET c 3 1"], 3, 4),
  ];
  // "a"=1 and "b"=2 (index 2, 3) are compacted on every live node: not provably lost.
  assertEquals(checkLogs(nodes, [acked("a", "1"), acked("b", "2"), acked("c", "3")]).anomalies, []);
  // With node 3's committed prefix covering 1..2 and node 1 from 3 on, every index is held: "b" is lost.
  const covered = [node(3, ["NO-OP 1", "SET a 1 1"], 2), compacted(1, ["SET x 9 1", config], 2, 4)];
  assertEquals(checkLogs(covered, [acked("a", "1"), acked("b", "2")]).anomalies.map((a) => a.kind), [
    "acked-set-lost",
  ]);
});
