import { FrozenMap } from "./frozen_map.ts";
import { DEFAULT_KV_LIMITS, KvStore } from "./kv_store.ts";
import type { Entry } from "../raft/types.ts";
import type { SetCommand } from "../raft/state_machine.ts";

function assertEquals(actual: unknown, expected: unknown, msg = ""): void {
  const a = JSON.stringify(actual), e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${msg ? msg + ": " : ""}expected ${e}, got ${a}`);
}

function set(index: number, key: string, value: string, clientId = "", seq = 0): Entry {
  return { index, term: 1, command: { op: "set", key, value, clientId, seq } };
}

Deno.test("a frozen view keeps the values and keys of the freeze while the map is overwritten, grown and shrunk", () => {
  const m = new FrozenMap<string, number>();
  for (let i = 0; i < 10; i++) m.set(`k${i}`, i);
  const v = m.freeze();
  m.set("k0", 100); // overwrite before the view reads it
  m.delete("k1"); // delete before it is read
  m.set("new", 7); // a key born after the freeze
  const first = v.next(3);
  m.set("k1", 111); // re-created after deletion: moves to the end of the live order
  m.set("k5", 500); // overwritten after the freeze, read later
  m.delete("k9");
  const rest = [...v.next(4), ...v.next(100)];
  assertEquals(v.next(10), []);
  assertEquals([...first, ...rest], [...Array(10).keys()].map((i) => [`k${i}`, i]));
  v.close();
  assertEquals(m.get("k0"), 100);
  assertEquals(m.has("k9"), false);
  assertEquals(m.get("new"), 7);
  const again = m.freeze();
  assertEquals(again.size, 10); // k0..k8 and new (k9 deleted), k1 re-created
  again.close();
});

Deno.test("a second view while one is open is refused, and clear makes the open view unusable", () => {
  const m = new FrozenMap<string, number>([["a", 1]]);
  const v = m.freeze();
  let refused = false;
  try {
    m.freeze();
  } catch {
    refused = true;
  }
  assertEquals(refused, true, "second freeze");
  m.clear();
  let stale = false;
  try {
    v.next(1);
  } catch {
    stale = true;
  }
  assertEquals(stale, true, "view after clear");
  m.freeze().close(); // clear ended the view, so a new one opens
});

Deno.test("a KV snapshot taken mid-stream restores to exactly the state at its index, sessions included", () => {
  const limits = { ...DEFAULT_KV_LIMITS, sessionsMax: 10 };
  // Entry i (1-based) is a SET by client c<i % clients>, whose seqs run 1, 2, 3, ...
  const entry = (i: number, clients: number, tag: string): Entry => {
    const c = (i - 1) % clients;
    return set(i, `k${i % 20}`, `${tag}${i}`, `c${c}`, Math.floor((i - 1) / clients) + 1);
  };
  const kv = new KvStore(limits);
  for (let i = 1; i <= 50; i++) kv.apply(entry(i, 5, "v"));
  const snap = kv.snapshot();
  const at = kv.entries();
  // Writes after the snapshot must not leak into it.
  const tail: Entry[] = [];
  for (let i = 51; i <= 80; i++) tail.push(set(i, `k${i % 25}`, `late${i}`, "", 0));
  for (const e of tail) kv.apply(e);
  const sessions = snap.sessionEntries();
  const pairs: [string, string, number][] = [];
  for (let chunk = snap.nextPairs(7); chunk.length > 0; chunk = snap.nextPairs(7)) pairs.push(...chunk);
  snap.close();
  assertEquals(snap.index, 50);
  assertEquals(snap.keys, 20);
  assertEquals(sessions.length, 5);

  const copy = new KvStore(limits);
  const r = copy.beginRestore(snap.index);
  for (const [c, s] of sessions) r.session(c, s);
  for (const [k, v, version] of pairs) r.pair(k, v, version);
  assertEquals(copy.size, 0, "nothing changes before commit");
  r.commit();
  assertEquals(copy.appliedIndex, 50);
  assertEquals(copy.entries(), at);
  // The session table came along: each client's last SET (seq 10) is applied, seq 11 is not yet.
  assertEquals(copy.isApplied("c4", 10), true);
  assertEquals(copy.isApplied("c2", 11), false);
  assertEquals(copy.checkSession(entry(49, 5, "v").command as SetCommand).kind, "retry");
  // Replaying the entries after the snapshot gives the same state as the original.
  for (const e of tail) copy.apply(e);
  assertEquals(copy.entries(), kv.entries());
});

Deno.test("freezing a million keys pauses for tens of milliseconds at most", () => {
  const kv = new KvStore();
  for (let i = 1; i <= 1_000_000; i++) kv.apply(set(i, `key${i}`, "v"));
  const t0 = performance.now();
  const snap = kv.snapshot();
  const pauseMs = performance.now() - t0;
  snap.close();
  console.log(`freeze of 1,000,000 keys: ${pauseMs.toFixed(1)} ms`);
  if (pauseMs > 500) throw new Error(`freeze took ${pauseMs} ms`);
});

Deno.test("a KV snapshot carries each key's version and each session's kept outcome (DELETE, CAS)", () => {
  const kv = new KvStore();
  const e = (index: number, command: SetCommand): Entry => ({ index, term: 2, command });
  kv.apply(e(1, { op: "set", key: "a", value: "1", clientId: "c1", seq: 1 }));
  kv.apply(e(2, { op: "set", key: "b", value: "2", clientId: "c2", seq: 1 }));
  kv.apply(e(3, { op: "cas", key: "a", expect: { value: "1" }, value: "10", clientId: "c1", seq: 2 }));
  kv.apply(e(4, { op: "del", key: "b", clientId: "c2", seq: 2 })); // deleted: gone from the snapshot
  kv.apply(e(5, { op: "cas", key: "a", expect: { version: 1 }, value: "x", clientId: "c3", seq: 1 })); // fails
  kv.apply(e(6, { op: "set", key: "c", value: "3", clientId: "", seq: 0 }));
  const snap = kv.snapshot();
  // Changes after the freeze leave the snapshot as it was (a version too).
  kv.apply(e(7, { op: "set", key: "a", value: "late", clientId: "", seq: 0 }));
  kv.apply(e(8, { op: "del", key: "c", clientId: "", seq: 0 }));
  const pairs = snap.nextPairs(100);
  assertEquals(pairs, [["a", "10", 3], ["c", "3", 6]]);
  const sessions = snap.sessionEntries();
  snap.close();

  const copy = new KvStore();
  const r = copy.beginRestore(snap.index);
  for (const [c, s] of sessions) r.session(c, s);
  for (const [k, v, version] of pairs) r.pair(k, v, version);
  r.commit();
  assertEquals(copy.version("a"), 3);
  assertEquals(copy.version("c"), 6);
  assertEquals(copy.version("b"), 0);
  assertEquals(copy.list({ prefix: "", after: "", limit: 10, maxChars: 1000, withValues: true }), {
    items: [{ key: "a", value: "10", version: 3 }, { key: "c", value: "3", version: 6 }],
    more: false,
  });
  // A retry of each session's last write is answered with the outcome it had, not evaluated again.
  assertEquals(copy.outcomeOf("c1", 2), { succeeded: true, value: "10", found: true, version: 3 });
  assertEquals(copy.outcomeOf("c2", 2), { succeeded: true, value: "", found: false, version: 0 });
  assertEquals(copy.outcomeOf("c3", 1), { succeeded: false, value: "10", found: true, version: 3 });
  const retry: SetCommand = {
    op: "cas",
    key: "a",
    expect: { version: 1 },
    value: "x",
    clientId: "c3",
    seq: 1,
  };
  assertEquals(copy.checkSession(retry).kind, "retry");
  // A CAS on the restored version holds, as it would have on the original.
  copy.apply(e(7, { op: "cas", key: "a", expect: { version: 3 }, value: "y", clientId: "", seq: 0 }));
  assertEquals(copy.get("a"), "y");
  assertEquals(copy.version("a"), 7);
});

Deno.test("a snapshot pair whose version is beyond the snapshot's index is refused", () => {
  const r = new KvStore().beginRestore(5);
  let refused = false;
  try {
    r.pair("k", "v", 6);
  } catch {
    refused = true;
  }
  assertEquals(refused, true);
});
