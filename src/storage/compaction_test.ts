/**
 * Compaction and snapshots in the file store: logs.txt behind a BASE line, snapshot.txt renamed into place by
 * the save that compacts or installs, and the folder's consistency checked at open.
 */
import type { Entry } from "../raft/types.ts";
import { FileLogStore, ownSnapshotTmpPath } from "./file_store.ts";
import { encodeSnapshot, type SnapshotSource, writeSnapshotFile } from "./snapshot_file.ts";
import { assert, assertEquals, assertStorageError } from "./testing.ts";

const set = (index: number, term: number, key: string): Entry => ({
  index,
  term,
  command: { op: "set", key, value: `v${index}`, clientId: "", seq: 0 },
});

function source(index: number, term: number, pairs: [string, string][]): SnapshotSource {
  let done = false;
  return {
    header: { index, term, keys: pairs.length, sessions: 0 },
    sessions: () => [],
    nextPairs: () => (done ? [] : (done = true, pairs.map(([k, v]) => [k, v, index]))),
  };
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-compact-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const entries = (n: number, term = 1) => Array.from({ length: n }, (_, i) => set(i + 1, term, `k${i + 1}`));

Deno.test("a compaction rewrites logs.txt behind a BASE line and a reopen starts the log there", async () => {
  await withDir(async (dir) => {
    const s = await FileLogStore.open(dir, 1, "c");
    await s.save({
      hardState: { term: 1, votedFor: 1 },
      appendFrom: 1,
      entries: entries(10),
      commitIndex: 10,
    });
    await writeSnapshotFile(s.folder, source(8, 1, [["k", "v"]]), { rename: false });
    await s.save({
      entries: [],
      compactLog: { snapshot: { index: 8, term: 1 }, compactTo: { index: 6, term: 1 } },
    });
    await s.save({ appendFrom: 11, entries: [set(11, 2, "k11")] });
    const lines = (await Deno.readTextFile(s.logsPath)).split("\n");
    assert(/^BASE 6 1 #[0-9a-f]{8}$/.test(lines[0]), lines[0]);
    assertEquals(lines.length, 1 + 5 + 1, "BASE, entries 7..11, and the final newline");
    assertEquals(s.snapshot?.index, 8);
    await s.close();
    const r = await FileLogStore.open(dir, 1, "c");
    const l = r.load();
    assertEquals(l.logStart, { index: 6, term: 1 });
    assertEquals(l.snapshot?.index, 8);
    assertEquals(l.entries.map((e) => e.index), [7, 8, 9, 10, 11]);
    assertEquals(l.entries[4].term, 2);
    assertEquals(r.lastIndex, 11);
    await r.close();
  });
});

Deno.test("a received snapshot is checked, renamed into place and keeps the log after it when the log holds its last entry", async () => {
  await withDir(async (dir) => {
    const s = await FileLogStore.open(dir, 1, "c");
    await s.save({
      hardState: { term: 1, votedFor: 0 },
      appendFrom: 1,
      entries: entries(10),
      commitIndex: 4,
    });
    const bytes = encodeSnapshot(source(7, 1, [["a", "1"], ["b", "2"]]));
    const half = Math.floor(bytes.length / 2);
    await s.save({
      entries: [],
      snapshotChunk: { index: 7, term: 1, offset: 0, data: bytes.subarray(0, half), done: false },
    });
    await s.save({
      entries: [],
      snapshotChunk: { index: 7, term: 1, offset: half, data: bytes.subarray(half), done: true },
      installSnapshot: { index: 7, term: 1 },
    });
    assertEquals(s.snapshot, { index: 7, term: 1, sizeBytes: bytes.length });
    const l = s.load();
    assertEquals(l.logStart, { index: 7, term: 1 });
    assertEquals(l.entries.map((e) => e.index), [8, 9, 10]);
    await s.close();
  });
});

Deno.test("at open, a log that lacks the snapshot's last entry is superseded by it, with a warning", async () => {
  await withDir(async (dir) => {
    const s = await FileLogStore.open(dir, 1, "c");
    await s.save({ hardState: { term: 3, votedFor: 0 }, appendFrom: 1, entries: entries(5), commitIndex: 2 });
    const folder = s.folder;
    await s.close();
    // A crash after a snapshot from the leader was renamed into place, before the log was reset.
    await writeSnapshotFile(folder, source(20, 3, [["a", "1"]]));
    const r = await FileLogStore.open(dir, 1, "c");
    const l = r.load();
    assertEquals(l.logStart, { index: 20, term: 3 });
    assertEquals(l.entries, []);
    assert(l.warnings.some((w) => w.includes("superseded by the snapshot")), l.warnings.join("; "));
    assert((await Deno.readTextFile(r.logsPath)).startsWith("BASE 20 3 #"));
    await r.close();
  });
});

Deno.test("a log that starts after its snapshot ends, or a damaged snapshot, is refused naming the file and the way out", async () => {
  await withDir(async (dir) => {
    const s = await FileLogStore.open(dir, 1, "c");
    await s.save({
      hardState: { term: 1, votedFor: 0 },
      appendFrom: 1,
      entries: entries(10),
      commitIndex: 10,
    });
    await writeSnapshotFile(s.folder, source(8, 1, [["k", "v"]]), { rename: false });
    await s.save({
      entries: [],
      compactLog: { snapshot: { index: 8, term: 1 }, compactTo: { index: 8, term: 1 } },
    });
    const folder = s.folder;
    await s.close();
    const snap = `${folder}/snapshot.txt`;
    const good = await Deno.readFile(snap);
    const bad = good.slice();
    bad[bad.length - 20] ^= 1;
    await Deno.writeFile(snap, bad);
    await assertStorageError(() => FileLogStore.open(dir, 1, "c"), "corrupt", snap, "delete its folder");
    await Deno.remove(snap);
    await assertStorageError(
      () => FileLogStore.open(dir, 1, "c"),
      "corrupt",
      "starts after entry 8",
      "is missing",
      "delete its folder",
    );
    // An unfinished own snapshot (no rename yet) is a leftover: removed at open, the old state stands.
    await Deno.writeFile(snap, good);
    await Deno.writeTextFile(ownSnapshotTmpPath(folder, 9), "half a snapshot");
    const r = await FileLogStore.open(dir, 1, "c");
    assertEquals(r.load().snapshot?.index, 8);
    await r.close();
    let leftover = true;
    try {
      await Deno.stat(ownSnapshotTmpPath(folder, 9));
    } catch {
      leftover = false;
    }
    assertEquals(leftover, false);
  });
});
