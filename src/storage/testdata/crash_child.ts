/**
 * The writer killed by crash_test.ts: opens the store in `Deno.args[0]`, then saves batches forever, now and
 * then truncating its uncommitted tail under a new term. After each save resolves it prints
 * `<appendFrom> <lastIndex> <term> <commit>`; it never truncates at or below `<commit>`.
 *
 * @module
 */

import type { Entry } from "../../raft/types.ts";
import { FileLogStore } from "../file_store.ts";

/** The entry the child writes at `index` in `term` (the parent checks every entry against it). */
export function entryFor(index: number, term: number): Entry {
  if (index % 10 === 1) return { index, term, command: { op: "noop" } };
  return {
    index,
    term,
    command: {
      op: "set",
      key: `key ${index}`,
      value: `value ${index}\nterm ${term} ✓ ${"x".repeat(index % 997)}`,
      clientId: "crash",
      seq: index,
    },
  };
}

if (import.meta.main) {
  const store = await FileLogStore.open(Deno.args[0], 1, "crash", { commitHintIntervalMs: 5 });
  const st = store.load();
  let last = st.entries.length;
  let term = Math.max(1, st.hardState.term, last > 0 ? st.entries[last - 1].term : 0);
  let commit = st.commitIndex;
  if (st.hardState.term < term) await store.save({ hardState: { term, votedFor: 1 }, entries: [] });
  for (let batch = 1;; batch++) {
    let from = last + 1;
    let hardState: { term: number; votedFor: number } | undefined = undefined;
    if (batch % 7 === 0 && last > commit + 1) {
      from = Math.max(commit + 1, last - 1 - (batch % 3));
      term++;
      hardState = { term, votedFor: 1 + (batch % 3) };
    }
    // Mostly small batches; every fifth one large (~100 kB), so that a kill can land inside one write().
    const n = batch % 5 === 0 ? 200 : 1 + ((batch * 13) % 40);
    const entries: Entry[] = [];
    for (let i = 0; i < n; i++) entries.push(entryFor(from + i, term));
    await store.save({ hardState, appendFrom: from, entries, commitIndex: commit });
    last = from + n - 1;
    console.log(`${from} ${last} ${term} ${commit}`);
    commit = Math.max(commit, last - 5);
  }
}
