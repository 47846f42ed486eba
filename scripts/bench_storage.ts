/**
 * Storage micro-benchmark: appends through FileLogStore (group commit, one fdatasync per batch), the load time of
 * a 1,000,000-entry logs.txt, and the cost of a dump.txt line.
 *
 *   NO_COLOR=1 deno run -A scripts/bench_storage.ts [--dir /path/on/the/disk/to/measure]
 *
 * Figures only: nothing is asserted. fsync cost depends entirely on the disk.
 *
 * @module
 */

import type { Entry } from "../src/raft/types.ts";
import { FileLogStore } from "../src/storage/file_store.ts";
import { openDump } from "../src/storage/dump.ts";

const dirArg = Deno.args.indexOf("--dir");
const base = dirArg >= 0 ? Deno.args[dirArg + 1] : undefined;
const root = await Deno.makeTempDir({ prefix: "raftkv-bench-", dir: base });

function entry(index: number, term: number): Entry {
  return index % 100 === 1 ? { index, term, command: { op: "noop" } } : {
    index,
    term,
    command: {
      op: "set",
      key: `user:${index % 5000}`,
      value: `value ${index}`,
      clientId: "c-7f3a",
      seq: index,
    },
  };
}

async function appendMany(dir: string, total: number, batch: number): Promise<number> {
  const s = await FileLogStore.open(dir, 1, "bench");
  await s.save({ hardState: { term: 1, votedFor: 1 }, entries: [] });
  const t0 = performance.now();
  for (let from = 1; from <= total; from += batch) {
    const es: Entry[] = [];
    for (let i = from; i < from + batch && i <= total; i++) es.push(entry(i, 1));
    await s.save({ appendFrom: from, entries: es, commitIndex: from - 1 });
  }
  const ms = performance.now() - t0;
  await s.close();
  return ms;
}

try {
  // 1. 100k entries in batches of 100.
  const appendMs = await appendMany(`${root}/a`, 100_000, 100);
  console.log(
    `append: 100000 entries in batches of 100 (1000 saves, one fdatasync each): ${appendMs.toFixed(0)} ms, ` +
      `${Math.round(100_000 / (appendMs / 1000))} entries/s, ${(appendMs / 1000).toFixed(3)} ms per save`,
  );

  // 2. Load a 1,000,000-entry log.
  const buildMs = await appendMany(`${root}/b`, 1_000_000, 10_000);
  const size = (await Deno.stat(`${root}/b/logs_node_1/logs.txt`)).size;
  const t0 = performance.now();
  const s = await FileLogStore.open(`${root}/b`, 1, "bench");
  const st = s.load();
  const loadMs = performance.now() - t0;
  console.log(
    `load: ${st.entries.length} entries (${(size / 1e6).toFixed(1)} MB logs.txt, written in ${
      buildMs.toFixed(0)
    } ms) ` +
      `opened, checked and parsed in ${loadMs.toFixed(0)} ms`,
  );
  // A truncation near the end of the big log costs one ftruncate, not a rewrite.
  const t1 = performance.now();
  await s.save({ hardState: { term: 2, votedFor: 1 }, appendFrom: 999_990, entries: [entry(999_990, 2)] });
  console.log(
    `truncate 11 entries of 1000000 and append 1 (with a term change): ${
      (performance.now() - t1).toFixed(1)
    } ms`,
  );
  await s.close();

  // 3. dump.txt lines.
  const dump = await openDump(root, 9);
  const n = 20_000;
  const t2 = performance.now();
  for (let i = 0; i < n; i++) dump.info(`Leader 9 sending heartbeat & Renewing Lease (${i})`);
  const logMs = performance.now() - t2;
  const t3 = performance.now();
  await dump.close();
  console.log(
    `dump: ${n} lines at ${((logMs * 1000) / n).toFixed(1)} µs per line on the caller, ` +
      `close (flush + dispose) ${(performance.now() - t3).toFixed(0)} ms`,
  );
} finally {
  await Deno.remove(root, { recursive: true });
}
