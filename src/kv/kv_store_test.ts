import { type KvChange, KvStore } from "./kv_store.ts";
import type { Command, Entry } from "../raft/types.ts";

function assertEquals<T>(actual: T, expected: T, msg = ""): void {
  const a = JSON.stringify(actual), e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${msg}\nexpected ${e}\nactual   ${a}`);
}

let index = 0;
function entry(command: Command): Entry {
  return { index: ++index, term: 1, command };
}
/** Applies `e` and returns what it did (the outcome the core hands to the client). */
function applied(kv: KvStore, e: Entry) {
  const refusal = kv.apply(e);
  if (refusal) throw new Error(`refused: ${JSON.stringify(refusal)}`);
  return kv.lastOutcome();
}
function fresh(): KvStore {
  index = 0;
  return new KvStore();
}
const set = (key: string, value: string, clientId = "", seq = 0): Command => ({
  op: "set",
  key,
  value,
  clientId,
  seq,
});
const del = (key: string, clientId = "", seq = 0): Command => ({ op: "del", key, clientId, seq });
const cas = (
  key: string,
  expect: { value: string } | { version: number },
  value: string,
  clientId = "",
  seq = 0,
) => ({ op: "cas", key, expect, value, clientId, seq }) as const;

Deno.test("a delete removes the key, resets its version and says whether it existed", () => {
  const kv = fresh();
  applied(kv, entry(set("a", "1")));
  assertEquals(kv.version("a"), 1);
  assertEquals(applied(kv, entry(del("a"))), { succeeded: true, value: "", found: false, version: 0 });
  assertEquals(kv.get("a"), undefined);
  assertEquals(kv.version("a"), 0);
  assertEquals(applied(kv, entry(del("a")))?.succeeded, false);
});

Deno.test("a CAS holds only on the exact value, absence or version, and otherwise reports the current state", () => {
  const kv = fresh();
  assertEquals(applied(kv, entry(cas("k", { value: "" }, "x"))), {
    succeeded: false,
    value: "",
    found: false,
    version: 0,
  });
  assertEquals(applied(kv, entry(cas("k", { version: 0 }, "v1"))), {
    succeeded: true,
    value: "v1",
    found: true,
    version: 2,
  });
  assertEquals(applied(kv, entry(cas("k", { version: 0 }, "v2")))?.succeeded, false);
  assertEquals(applied(kv, entry(cas("k", { value: "nope" }, "v2"))), {
    succeeded: false,
    value: "v1",
    found: true,
    version: 2,
  });
  assertEquals(applied(kv, entry(cas("k", { version: 2 }, "v3")))?.version, 5);
  assertEquals(applied(kv, entry(cas("k", { value: "v3" }, "v4")))?.succeeded, true);
  assertEquals(kv.get("k"), "v4");
});

Deno.test("a retried CAS is answered with its first outcome, not evaluated again", () => {
  const kv = fresh();
  applied(kv, entry(set("k", "a")));
  const first = applied(kv, entry(cas("k", { value: "a" }, "b", "c1", 1)));
  assertEquals(first?.succeeded, true);
  // The same (clientId, seq) reaching the log again (a retry appended by a new leader): not re-evaluated
  // (it would now fail, since the value is "b"), and answered as the first time.
  assertEquals(applied(kv, entry(cas("k", { value: "a" }, "b", "c1", 1))), first);
  assertEquals(kv.outcomeOf("c1", 1), first);
  assertEquals(kv.duplicatesSkipped, 1);
  assertEquals(kv.get("k"), "b");
});

Deno.test("changes are reported for SET, DELETE of an existing key and a CAS that held, and nothing else", () => {
  const kv = fresh();
  const changes: KvChange[] = [];
  kv.onChange = (c) => changes.push(c);
  applied(kv, entry(set("a", "1")));
  applied(kv, entry({ op: "noop" }));
  applied(kv, entry(del("zz")));
  applied(kv, entry(cas("a", { value: "x" }, "2")));
  applied(kv, entry(cas("a", { value: "1" }, "2")));
  applied(kv, entry(del("a")));
  assertEquals(changes, [
    { index: 1, op: "set", key: "a", value: "1" },
    { index: 5, op: "cas", key: "a", value: "2" },
    { index: 6, op: "del", key: "a", value: "" },
  ]);
});

Deno.test("a listing is in key order under the prefix, pages with a continuation and stays under its size", () => {
  const kv = fresh();
  for (const k of ["b/2", "a", "b/1", "b/3", "c", "b", "b/10"]) applied(kv, entry(set(k, `v-${k}`)));
  const req = { prefix: "b/", after: "", limit: 2, maxChars: 1000, withValues: true };
  const p1 = kv.list(req);
  assertEquals(p1.items.map((i) => i.key), ["b/1", "b/10"]);
  assertEquals(p1.more, true);
  const p2 = kv.list({ ...req, after: "b/10" });
  assertEquals(p2.items.map((i) => i.key), ["b/2", "b/3"]);
  assertEquals(p2.more, false);
  assertEquals(kv.list({ ...req, prefix: "", limit: 100 }).items.length, 7);
  assertEquals(kv.list({ ...req, prefix: "", limit: 100, maxChars: 7 }).items.map((i) => i.key), ["a"]);
  assertEquals(kv.list({ ...req, withValues: false }).items[0], { key: "b/1", value: "", version: 3 });
  applied(kv, entry(del("b/1")));
  applied(kv, entry(set("b/0", "new")));
  assertEquals(kv.list(req).items.map((i) => i.key), ["b/0", "b/10"]);
});
