/**
 * The one behaviour suite every {@link LogStore} must pass. `registerLogStoreContract` registers its tests
 * (`Deno.test`) for a store factory; the file store and the memory store both run it.
 *
 * @module
 */

import type { Command, Entry, HardState } from "../raft/types.ts";
import type { LogStore } from "./log_store.ts";
import { assert, assertEquals, assertStorageError, prng, TRICKY_STRINGS } from "./testing.ts";

/** One empty place to keep a node's state, reopenable after close. */
export interface StoreLocation {
  /** Opens a store on the location. */
  open(): Promise<LogStore>;
  /** Removes the location (stores on it are closed by then). */
  dispose(): Promise<void>;
}

/** Makes fresh, empty locations. */
export type StoreHarness = () => Promise<StoreLocation>;

function set(key: string, value: string, clientId = "", seq = 0): Command {
  return { op: "set", key, value, clientId, seq };
}

function entries(from: number, terms: readonly number[], tag = "v"): Entry[] {
  return terms.map((term, i) => ({
    index: from + i,
    term,
    command: i % 3 === 0 ? { op: "noop" } : set(`k${from + i}`, `${tag} ${from + i}`, "c1", from + i),
  }));
}

/** Registers the contract tests, named `<name>: <sentence>`. */
export function registerLogStoreContract(name: string, harness: StoreHarness): void {
  const test = (title: string, fn: (loc: StoreLocation) => Promise<void>) =>
    Deno.test(`${name}: ${title}`, async () => {
      const loc = await harness();
      try {
        await fn(loc);
      } finally {
        await loc.dispose();
      }
    });

  test("a fresh store loads an empty log, term 0, no vote, commit 0 and no warnings", async (loc) => {
    const s = await loc.open();
    assertEquals(s.load(), {
      hardState: { term: 0, votedFor: 0 },
      entries: [],
      commitIndex: 0,
      warnings: [],
    });
    assertEquals(s.lastIndex, 0);
    await s.close();
  });

  test("tricky keys, values and client ids round-trip through save, close and reopen", async (loc) => {
    const s = await loc.open();
    const want: Entry[] = [{ index: 1, term: 1, command: { op: "noop" } }];
    for (const k of TRICKY_STRINGS) {
      for (const v of [TRICKY_STRINGS[(want.length * 7) % TRICKY_STRINGS.length], k]) {
        const i = want.length + 1;
        want.push({
          index: i,
          term: 2,
          command: set(k, v, TRICKY_STRINGS[i % TRICKY_STRINGS.length], i * 1000),
        });
      }
    }
    want.push({ index: want.length + 1, term: 3, command: set("max", "seq", "c", Number.MAX_SAFE_INTEGER) });
    want.push({ index: want.length + 1, term: 3, command: set("no", "session") });
    want.push({ index: want.length + 1, term: 3, command: set("seq", "only", "", 7) });
    await s.save({ hardState: { term: 3, votedFor: 1 }, appendFrom: 1, entries: want.slice(0, 10) });
    await s.save({ appendFrom: 11, entries: want.slice(10) });
    assertEquals(s.load().entries, want, "before reopen");
    await s.close();
    const r = await loc.open();
    assertEquals(r.load().entries, want, "after reopen");
    assertEquals(r.load().hardState, { term: 3, votedFor: 1 });
    await r.close();
  });

  test("the hard state and the entries survive close and reopen", async (loc) => {
    const s = await loc.open();
    await s.save({ hardState: { term: 1, votedFor: 2 }, entries: [] });
    await s.save({ appendFrom: 1, entries: entries(1, [1, 1, 1]) });
    await s.save({ hardState: { term: 4, votedFor: 0 }, appendFrom: 4, entries: entries(4, [4]) });
    await s.close();
    const r = await loc.open();
    const st = r.load();
    assertEquals(st.hardState, { term: 4, votedFor: 0 });
    assertEquals(st.entries, entries(1, [1, 1, 1, 4]));
    assertEquals(r.lastIndex, 4);
    await r.close();
  });

  test("the largest promised lease survives reopen and never shrinks when a smaller one is saved", async (loc) => {
    const s = await loc.open();
    await s.save({ hardState: { term: 1, votedFor: 2, promisedLeaseMs: 800 }, entries: [] });
    await s.save({ hardState: { term: 2, votedFor: 0, promisedLeaseMs: 400 }, entries: [] });
    await s.close();
    const r = await loc.open();
    assertEquals(r.load().hardState, { term: 2, votedFor: 0, promisedLeaseMs: 800 });
    await r.close();
  });

  test("appendFrom at or before the last index truncates there, then appends", async (loc) => {
    const s = await loc.open();
    await s.save({
      hardState: { term: 2, votedFor: 1 },
      appendFrom: 1,
      entries: entries(1, [1, 1, 1, 1, 1]),
    });
    await s.save({ appendFrom: 3, entries: entries(3, [2, 2], "new") });
    const want = [...entries(1, [1, 1]), ...entries(3, [2, 2], "new")];
    assertEquals(s.load().entries, want);
    await s.save({ appendFrom: 5, entries: entries(5, [2, 2, 2], "more") });
    want.push(...entries(5, [2, 2, 2], "more"));
    await s.close();
    const r = await loc.open();
    assertEquals(r.load().entries, want);
    await r.close();
  });

  test("appendFrom without entries truncates the log", async (loc) => {
    const s = await loc.open();
    await s.save({ hardState: { term: 1, votedFor: 1 }, appendFrom: 1, entries: entries(1, [1, 1, 1, 1]) });
    await s.save({ appendFrom: 2, entries: [] });
    assertEquals(s.lastIndex, 1);
    await s.close();
    const r = await loc.open();
    assertEquals(r.load().entries, entries(1, [1]));
    await r.close();
  });

  test("a save with a gap, a wrong index, a decreasing term or a lower hard-state term is rejected and changes nothing", async (loc) => {
    const s = await loc.open();
    await s.save({ hardState: { term: 3, votedFor: 1 }, appendFrom: 1, entries: entries(1, [1, 2]) });
    await assertStorageError(() => s.save({ appendFrom: 4, entries: entries(4, [3]) }), "invalid", "gap");
    await assertStorageError(() => s.save({ appendFrom: 3, entries: entries(4, [3]) }), "invalid", "index");
    await assertStorageError(() => s.save({ appendFrom: 3, entries: entries(3, [1]) }), "invalid", "term 1");
    await assertStorageError(() => s.save({ appendFrom: 3, entries: entries(3, [3, 2]) }), "invalid", "term");
    await assertStorageError(() => s.save({ appendFrom: 3, entries: entries(3, [0]) }), "invalid", "term");
    await assertStorageError(() => s.save({ appendFrom: 0, entries: [] }), "invalid", "appendFrom");
    await assertStorageError(() => s.save({ entries: entries(3, [3]) }), "invalid", "without appendFrom");
    await assertStorageError(
      () => s.save({ hardState: { term: 2, votedFor: 0 }, entries: [] }),
      "invalid",
      "term",
    );
    // The store is still usable and unchanged.
    assertEquals(s.load().entries, entries(1, [1, 2]));
    assertEquals(s.load().hardState, { term: 3, votedFor: 1 });
    await s.save({ appendFrom: 3, entries: entries(3, [3]) });
    assertEquals(s.lastIndex, 3);
    await s.close();
  });

  test("committed entries are never truncated, but may be rewritten as identical copies", async (loc) => {
    const s = await loc.open();
    await s.save({ hardState: { term: 2, votedFor: 1 }, appendFrom: 1, entries: entries(1, [1, 1, 2, 2]) });
    await s.save({ entries: [], commitIndex: 3 });
    await assertStorageError(() => s.save({ appendFrom: 3, entries: [] }), "invalid", "committed");
    await assertStorageError(
      () => s.save({ appendFrom: 2, entries: entries(2, [2, 2]) }),
      "invalid",
      "committed",
    );
    await s.save({ appendFrom: 2, entries: entries(2, [1, 2, 2, 2]) });
    assertEquals(s.lastIndex, 5);
    await s.save({ appendFrom: 4, entries: entries(4, [3]) }); // above the commit: fine
    assertEquals(s.lastIndex, 4);
    await s.close();
  });

  test("the commit index survives close and is never beyond the log", async (loc) => {
    const s = await loc.open();
    await s.save({
      hardState: { term: 1, votedFor: 1 },
      appendFrom: 1,
      entries: entries(1, [1, 1, 1, 1, 1]),
    });
    await s.save({ entries: [], commitIndex: 3 });
    assertEquals(s.load().commitIndex, 3);
    await s.close();
    let r = await loc.open();
    assertEquals(r.load().commitIndex, 3);
    await r.save({ entries: [], commitIndex: 99 });
    assertEquals(r.load().commitIndex, 5);
    await r.save({ entries: [], commitIndex: 2 }); // a lower report never lowers it
    await r.flush();
    await r.close();
    r = await loc.open();
    assertEquals(r.load().commitIndex, 5);
    await r.close();
  });

  test("a second open of the same location fails while the first is open and works after close", async (loc) => {
    const s = await loc.open();
    await assertStorageError(() => loc.open(), "locked");
    await s.save({ hardState: { term: 1, votedFor: 1 }, appendFrom: 1, entries: entries(1, [1]) });
    await s.close();
    const r = await loc.open();
    assertEquals(r.lastIndex, 1);
    await r.close();
  });

  test("calls after close fail as closed, and close is idempotent", async (loc) => {
    const s = await loc.open();
    await s.close();
    await s.close();
    await assertStorageError(() => s.save({ entries: [] }), "closed");
    await assertStorageError(() => s.flush(), "closed");
    await assertStorageError(() => s.load(), "closed");
  });

  test("saves issued without awaiting each other are applied in order", async (loc) => {
    const s = await loc.open();
    const all = entries(1, [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    await Promise.all(all.map((e) => s.save({ appendFrom: e.index, entries: [e] })));
    assertEquals(s.load().entries, all);
    await s.close();
  });

  test("a random sequence of saves matches a simple model across reopens", async (loc) => {
    const rnd = prng(12345);
    let s = await loc.open();
    let model: Entry[] = [];
    let hard: HardState = { term: 0, votedFor: 0 };
    let commit = 0;
    for (let step = 0; step < 300; step++) {
      const r = rnd();
      if (r < 0.1) {
        hard = { term: hard.term + 1, votedFor: Math.floor(rnd() * 4) };
        await s.save({ hardState: hard, entries: [] });
      } else if (r < 0.2 && model.length > commit) {
        const from = commit + 1 + Math.floor(rnd() * (model.length - commit));
        hard = { term: hard.term + 1, votedFor: 0 };
        const add = entries(from, Array.from({ length: Math.floor(rnd() * 4) }, () => hard.term), `s${step}`);
        await s.save({ hardState: hard, appendFrom: from, entries: add });
        model = [...model.slice(0, from - 1), ...add];
      } else if (r < 0.35) {
        commit = Math.min(model.length, commit + Math.floor(rnd() * 5));
        await s.save({ entries: [], commitIndex: commit });
      } else if (r < 0.4) {
        await s.close();
        s = await loc.open();
      } else {
        const term = Math.max(1, hard.term);
        if (hard.term === 0) hard = { term: 1, votedFor: 0 };
        const add = entries(
          model.length + 1,
          Array.from({ length: 1 + Math.floor(rnd() * 6) }, () => term),
          `a${step}`,
        );
        await s.save({ hardState: hard, appendFrom: model.length + 1, entries: add, commitIndex: commit });
        model.push(...add);
      }
      const st = s.load();
      assert(
        st.entries.length === model.length,
        `step ${step}: length ${st.entries.length} != ${model.length}`,
      );
      assertEquals(st.entries, model, `step ${step}`);
      assertEquals(st.hardState, hard, `step ${step}`);
      assertEquals(st.commitIndex, commit, `step ${step}`);
    }
    await s.close();
    const last = await loc.open();
    assertEquals(last.load().entries, model);
    assertEquals(last.load().commitIndex, commit);
    await last.close();
  });
}
