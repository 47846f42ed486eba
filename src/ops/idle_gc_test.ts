import { strictEqual } from "node:assert/strict";
import { startIdleGc } from "./idle_gc.ts";

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("one collection when the commit index stops after a burst, none while it moves or after a trickle", async () => {
  let commit = 0, collections = 0;
  const stop = startIdleGc(() => commit, {
    everyMs: 5,
    quietMs: 20,
    burstEntriesMin: 100,
    gc: () => collections++,
    heapUsed: () => 0, // a small heap: the size rule has its own test
  });
  try {
    // A trickle (below the burst size) never collects, however long it is quiet.
    commit = 50;
    await tick(80);
    strictEqual(collections, 0, "no collection after 50 entries");
    // Writes flowing: the index moves at every look, no collection.
    for (let i = 0; i < 10; i++) {
      commit += 20;
      await tick(5);
    }
    // Quiet after the burst: exactly one collection, and not a second one while it stays quiet.
    await tick(120);
    strictEqual(collections, 1, "one collection once quiet after the burst");
  } finally {
    stop();
  }
});

Deno.test("the trim runs right after each idle collection, and never while writes flow", async () => {
  let commit = 0;
  const calls: string[] = [];
  const stop = startIdleGc(() => commit, {
    everyMs: 5,
    quietMs: 20,
    burstEntriesMin: 100,
    gc: () => calls.push(`gc@${commit}`),
    trim: () => calls.push(`trim@${commit}`),
    heapUsed: () => 0,
  });
  try {
    // Writes flowing for a while (the index moves at every look): neither runs.
    for (let i = 0; i < 15; i++) {
      commit += 20;
      await tick(5);
    }
    strictEqual(calls.filter((c) => c !== "gc@300" && c !== "trim@300").length, 0, calls.join(" "));
    await tick(120);
    strictEqual(calls.join(" "), "gc@300 trim@300", "one collection, then one trim, once quiet");
  } finally {
    stop();
  }
});

Deno.test("without a collector the trim still runs once quiet after a burst", async () => {
  let commit = 0, trims = 0;
  const stop = startIdleGc(() => commit, {
    everyMs: 5,
    quietMs: 20,
    burstEntriesMin: 100,
    trim: () => trims++,
  });
  try {
    commit = 500;
    await tick(120);
    strictEqual(trims, 1);
  } finally {
    stop();
  }
});

Deno.test("once a collection leaves a large live heap, later idle times skip it (seconds each) and still trim", async () => {
  let commit = 0, heap = 30 * 1024 * 1024;
  const calls: string[] = [];
  const stop = startIdleGc(() => commit, {
    everyMs: 5,
    quietMs: 20,
    burstEntriesMin: 100,
    gc: () => calls.push("gc"),
    trim: () => calls.push("trim"),
    heapUsed: () => heap,
  });
  try {
    commit = 500;
    await tick(120);
    strictEqual(calls.join(" "), "gc trim", "30 MiB live: collection then trim");
    heap = 200 * 1024 * 1024; // the state grew
    commit = 1000;
    await tick(120);
    strictEqual(calls.join(" "), "gc trim gc trim", "the collection that finds 200 MiB live still ran");
    commit = 1500;
    await tick(120);
    strictEqual(calls.join(" "), "gc trim gc trim trim", "then no more collections, the trim still");
  } finally {
    stop();
  }
});

Deno.test("with collectAtStart the first quiet moment after start collects and trims once, without a burst", async () => {
  let commit = 3; // a few entries: the first elections
  const calls: string[] = [];
  const stop = startIdleGc(() => commit, {
    everyMs: 5,
    quietMs: 20,
    burstEntriesMin: 100,
    gc: () => calls.push("gc"),
    trim: () => calls.push("trim"),
    heapUsed: () => 0,
    collectAtStart: true,
  });
  try {
    // Writes flowing from the start: nothing yet.
    for (let i = 0; i < 8; i++) {
      commit += 1;
      await tick(5);
    }
    await tick(120);
    strictEqual(calls.join(" "), "gc trim", "one collection and trim once quiet after start");
    commit += 50; // a trickle afterwards: no more
    await tick(120);
    strictEqual(calls.join(" "), "gc trim", "a trickle after it does not collect again");
  } finally {
    stop();
  }
});

Deno.test("without collectAtStart a quiet start does not collect", async () => {
  const calls: string[] = [];
  const stop = startIdleGc(() => 3, {
    everyMs: 5,
    quietMs: 20,
    burstEntriesMin: 100,
    gc: () => calls.push("gc"),
    trim: () => calls.push("trim"),
    heapUsed: () => 0,
  });
  try {
    await tick(120);
    strictEqual(calls.join(" "), "");
  } finally {
    stop();
  }
});
