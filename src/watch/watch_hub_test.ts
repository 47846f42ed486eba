import { KvStore } from "../kv/kv_store.ts";
import type { KvChange } from "../kv/kv_store.ts";
import { Watcher, WatchFeed, WatchHub } from "./mod.ts";

function assert(cond: unknown, msg = "assertion failed"): asserts cond {
  if (!cond) throw new Error(msg);
}
function assertEquals<T>(actual: T, expected: T, msg = ""): void {
  const a = JSON.stringify(actual), e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${msg}\nexpected ${e}\nactual   ${a}`);
}

function change(index: number, key: string, value = `v${index}`): KvChange {
  return { index, op: "set", key, value };
}

async function drain(w: Watcher): Promise<KvChange[]> {
  const out: KvChange[] = [];
  while (true) {
    const r = await Promise.race([w.next(), new Promise<"idle">((res) => setTimeout(() => res("idle"), 20))]);
    if (r === "idle" || "end" in r) return out;
    out.push(...r.events);
  }
}

Deno.test("a watcher from an old index catches up from the history, then receives live changes in order", async () => {
  const hub = new WatchHub({ firstIndex: 1 });
  hub.publish([change(1, "a/1"), change(2, "b/1"), change(3, "a/2")], 3);
  const w = hub.open({ key: "a/", prefix: true, fromIndex: 1 });
  assert(w instanceof Watcher);
  assertEquals((await drain(w)).map((c) => c.index), [1, 3]);
  hub.publish([change(5, "a/3"), change(6, "a")], 7);
  assertEquals((await drain(w)).map((c) => c.index), [5]);
  const exact = hub.open({ key: "a", prefix: false, fromIndex: 0 });
  assert(exact instanceof Watcher);
  hub.publish([change(8, "a"), change(9, "a/4")], 9);
  assertEquals((await drain(exact)).map((c) => c.index), [8]);
});

Deno.test("a start before the oldest retained index is refused as compacted, naming the oldest index", () => {
  const hub = new WatchHub({ firstIndex: 1, historyMax: 3 });
  hub.publish([1, 2, 3, 4, 5].map((i) => change(i, "k")), 5);
  assertEquals(hub.oldestIndex, 3);
  const r = hub.open({ key: "k", prefix: false, fromIndex: 2 });
  assert(!(r instanceof Watcher) && r.end.kind === "compacted");
  assert(
    r.end.kind === "compacted" && r.end.oldestIndex === 3 &&
      /oldest index available is 3/.test(r.end.message),
  );
  assert(hub.open({ key: "k", prefix: false, fromIndex: 3 }) instanceof Watcher);
  // Compaction (a snapshot) moves the oldest index too.
  hub.compactTo(5);
  const later = hub.open({ key: "k", prefix: false, fromIndex: 4 });
  assert(!(later instanceof Watcher) && later.end.kind === "compacted" && later.end.oldestIndex === 5);
});

Deno.test("a watcher that does not read is cut off with a reason once its buffer is full", async () => {
  const hub = new WatchHub({ firstIndex: 1, bufferMax: 4 });
  const w = hub.open({ key: "", prefix: true, fromIndex: 0 });
  assert(w instanceof Watcher);
  assertEquals(await drain(w), []); // now live
  hub.publish([1, 2, 3, 4, 5, 6].map((i) => change(i, "k")), 6);
  const r = await w.next();
  assert("end" in r && r.end.kind === "overloaded", JSON.stringify(r));
  assert(
    r.end.kind === "overloaded" && /cut off: 4 events waiting/.test(r.end.message) &&
      /resume from index 1/.test(r.end.message),
  );
  assertEquals(hub.watcherCount, 0);
});

Deno.test("the feed publishes a KvStore's changes only when flushed (after the entries are durable)", async () => {
  const kv = new KvStore();
  const hub = new WatchHub({ firstIndex: 1 });
  const feed = new WatchFeed(kv, hub);
  const w = hub.open({ key: "x", prefix: false, fromIndex: 1 });
  assert(w instanceof Watcher);
  kv.apply({ index: 1, term: 1, command: { op: "set", key: "x", value: "1", clientId: "", seq: 0 } });
  assertEquals(await drain(w), []);
  feed.flush();
  assertEquals((await drain(w)).map((c) => c.value), ["1"]);
  assertEquals(hub.lastIndex, 1);
});
