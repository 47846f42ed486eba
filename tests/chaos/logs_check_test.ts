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
