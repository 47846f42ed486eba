import { deepStrictEqual as assertEquals } from "node:assert/strict";
import type { KvChange } from "../../src/kv/kv_store.ts";
import { parseLogLine } from "../integration/harness.ts";
import type { NodeLogs } from "./logs_check.ts";
import { checkWatcher, committedChanges, type WatchRecord } from "./watch_check.ts";

/** A node whose logs.txt holds `lines` from index `start + 1`, with `snapshot` at `start` when given. */
function node(
  id: number,
  start: number,
  lines: string[],
  commitLength: number,
  snapshot?: NodeLogs["snapshot"],
) {
  return {
    id,
    start,
    entries: lines.map((l, i) => parseLogLine(`${l} #00000000`, start + i + 1)),
    commitLength,
    dump: [],
    ...(snapshot ? { snapshot } : {}),
  };
}

function watcher(events: KvChange[], gaps: { from: number; to: number }[] = []): WatchRecord {
  return { name: "w", prefix: "", fromIndex: 1, events, connects: [], gaps };
}

const set = (index: number, key: string, value: string): KvChange => ({ index, op: "set", key, value });

Deno.test("watch check: a compacted log is replayed from its snapshot, so a DELETE there is a change", () => {
  // Node 1 compacted up to 2 (snapshot at 3 holds a=1 set at 2); node 2 holds the whole log but less of it.
  const n1 = node(1, 2, ["SET b 2 1", "DEL a 1", "CAS b 2 3 1"], 5, {
    index: 3,
    sessions: [],
    pairs: [["a", "1", 2], ["b", "2", 3]],
  });
  const n2 = node(2, 0, ["NO-OP 1", "SET a 1 1"], 2);
  const known = committedChanges([n1, n2]);
  assertEquals(known.knownFrom, 4);
  assertEquals(known.changes, [
    { index: 4, op: "del", key: "a", value: "" },
    { index: 5, op: "cas", key: "b", value: "3" },
  ]);
  // Events before the snapshot are checked for order only; from it on, exactly the changes.
  const ok = watcher([set(2, "a", "1"), set(3, "b", "2"), ...known.changes]);
  assertEquals(checkWatcher(ok, known), []);
  const missed = watcher([set(2, "a", "1"), known.changes[1]]);
  assertEquals(checkWatcher(missed, known).length, 1);
});

Deno.test("watch check: a gap the cluster declared compacted may be skipped, any other may not", () => {
  const n = node(1, 0, ["NO-OP 1", "SET a 1 1", "SET a 2 1", "SET a 3 1"], 4);
  const known = committedChanges([n]);
  assertEquals(known.knownFrom, 1);
  assertEquals(checkWatcher(watcher([set(2, "a", "1"), set(4, "a", "3")], [{ from: 3, to: 4 }]), known), []);
  assertEquals(checkWatcher(watcher([set(2, "a", "1"), set(4, "a", "3")]), known).length, 1);
  assertEquals(checkWatcher(watcher([set(3, "a", "2")], [{ from: 1, to: 4 }]), known).length, 1);
});
