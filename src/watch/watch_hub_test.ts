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

Deno.test("an installed snapshot ends the watchers short of it as compacted, naming the index after it", async () => {
  const kv = new KvStore();
  const hub = new WatchHub({ firstIndex: 1 });
  const feed = new WatchFeed(kv, hub);
  const live = hub.open({ key: "", prefix: true, fromIndex: 0 });
  assert(live instanceof Watcher);
  kv.apply({ index: 1, term: 1, command: { op: "set", key: "a", value: "1", clientId: "", seq: 0 } });
  kv.apply({ index: 2, term: 1, command: { op: "set", key: "b", value: "2", clientId: "", seq: 0 } });
  // The leader's snapshot at 10 replaces the state (3..10 were never applied here).
  const r = kv.beginRestore(10);
  r.pair("a", "9", 9);
  r.commit();
  feed.restored(10);
  assertEquals(hub.oldestIndex, 11);
  assertEquals(hub.lastIndex, 10);
  // The live watcher is told that what follows its position is gone here (it must re-read, as for any
  // compacted watch), whatever it had not read yet.
  const end = await live.next();
  assert("end" in end && end.end.kind === "compacted" && end.end.oldestIndex === 11, JSON.stringify(end));
  assertEquals(hub.oldestIndex, 11);
  // The changes applied before the snapshot were published (history), then compacted with it.
  assertEquals(hub.lastIndex, 10);
  // A watch from now starts after the snapshot and sees what is applied next.
  const next = hub.open({ key: "", prefix: true, fromIndex: 0 });
  assert(next instanceof Watcher);
  assertEquals(next.nextIndex, 11);
  kv.apply({ index: 11, term: 2, command: { op: "set", key: "c", value: "3", clientId: "", seq: 0 } });
  feed.flush();
  assertEquals((await drain(next)).map((c) => c.index), [11]);
  const old = hub.open({ key: "", prefix: true, fromIndex: 5 });
  assert(!(old instanceof Watcher) && old.end.kind === "compacted" && old.end.oldestIndex === 11);
});

Deno.test("compacting within the published history leaves live watchers running", async () => {
  const hub = new WatchHub({ firstIndex: 1 });
  hub.publish([change(1, "k"), change(2, "k")], 2);
  const w = hub.open({ key: "k", prefix: false, fromIndex: 0 });
  assert(w instanceof Watcher);
  hub.compactTo(3);
  hub.publish([change(3, "k")], 3);
  assertEquals((await drain(w)).map((c) => c.index), [3]);
  assertEquals(w.ended, undefined);
});
