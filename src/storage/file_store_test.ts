import type { Entry } from "../raft/types.ts";
import { encodeEntryLines, encodeMetadata } from "./codec.ts";
import { FileLogStore } from "./file_store.ts";
import { registerLogStoreContract } from "./log_store_contract.ts";
import { assert, assertEquals, assertStorageError } from "./testing.ts";

registerLogStoreContract("FileLogStore", async () => {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-store-" });
  return {
    open: () => FileLogStore.open(dir, 1, "test"),
    dispose: () => Deno.remove(dir, { recursive: true }),
  };
});

const noop = (index: number, term: number): Entry => ({ index, term, command: { op: "noop" } });
const set = (index: number, term: number, key: string, value: string, clientId = "", seq = 0): Entry => ({
  index,
  term,
  command: { op: "set", key, value, clientId, seq },
});

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-store-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Writes a folder with the given entries (term 9, committed `commit`) through a store, then closes it. */
async function seed(dir: string, entries: Entry[], commit = 0): Promise<FileLogStore> {
  const s = await FileLogStore.open(dir, 2, "c");
  await s.save({ hardState: { term: 9, votedFor: 2 }, appendFrom: 1, entries, commitIndex: commit });
  await s.close();
  return s;
}

const text = (path: string) => Deno.readTextFileSync(path);
const lines = (path: string) => text(path).split("\n").slice(0, -1);

Deno.test("logs.txt lines start with the assignment's form and end with the session and a checksum", async () => {
  await withDir(async (dir) => {
    const s = await seed(dir, [
      noop(1, 1),
      set(2, 1, "name1", "Jon"),
      set(3, 3, "first name", "Jon Snow\nthe 2nd", "client-7", 42),
      set(4, 3, "empty", ""),
      set(5, 3, "ключ", "😀"),
    ]);
    const ls = lines(s.logsPath);
    assertEquals(ls.length, 5);
    assert(/^NO-OP 1 #[0-9a-f]{8}$/.test(ls[0]), ls[0]);
    assert(/^SET name1 Jon 1 #[0-9a-f]{8}$/.test(ls[1]), ls[1]);
    assert(/^SET "first name" "Jon Snow\\nthe 2nd" 3 @c=client-7 s=42 #[0-9a-f]{8}$/.test(ls[2]), ls[2]);
    assert(/^SET empty "" 3 #[0-9a-f]{8}$/.test(ls[3]), ls[3]);
    assert(/^SET ключ 😀 3 #[0-9a-f]{8}$/.test(ls[4]), ls[4]);
  });
});

Deno.test("metadata.txt is human-readable key: value lines", async () => {
  await withDir(async (dir) => {
    const s = await seed(dir, [noop(1, 1), noop(2, 1)], 2);
    const m = text(s.metadataPath);
    for (const l of ["format: 1", "nodeId: 2", "clusterId: c", "term: 9", "votedFor: 2", "commitLength: 2"]) {
      assert(m.split("\n").includes(l), `missing ${l} in\n${m}`);
    }
    assert(/\nchecksum: [0-9a-f]{8}\n$/.test(m), m);
  });
});

Deno.test("a torn last line without newline is dropped with a warning and the rest loads", async () => {
  await withDir(async (dir) => {
    const s = await seed(dir, [noop(1, 1), set(2, 1, "a", "b"), set(3, 2, "c", "d")], 1);
    const before = Deno.statSync(s.logsPath).size;
    const half = new TextEncoder().encode('SET "half a li');
    await Deno.writeFile(s.logsPath, half, { append: true });
    const r = await FileLogStore.open(dir, 2, "c");
    const st = r.load();
    assertEquals(st.entries.length, 3);
    assertEquals(st.warnings.length, 1);
    assert(st.warnings[0].includes(`torn last line 4 of ${r.logsPath}`), st.warnings[0]);
    assertEquals(Deno.statSync(r.logsPath).size, before, "the torn bytes are cut off");
    await r.save({ appendFrom: 4, entries: [set(4, 9, "after", "repair")] });
    await r.close();
    const again = await FileLogStore.open(dir, 2, "c");
    assertEquals(again.load().warnings, []);
    assertEquals(again.load().entries[3], set(4, 9, "after", "repair"));
    await again.close();
  });
});

Deno.test("a complete last line failing its checksum is dropped with a warning", async () => {
  await withDir(async (dir) => {
    const s = await seed(dir, [noop(1, 1), set(2, 1, "a", "b"), set(3, 2, "c", "d")], 2);
    const t = text(s.logsPath);
    await Deno.writeTextFile(s.logsPath, t.slice(0, -3) + (t.at(-3) === "0" ? "1" : "0") + t.slice(-2));
    const r = await FileLogStore.open(dir, 2, "c");
    assertEquals(r.load().entries.length, 2);
    assert(r.load().warnings[0].includes("line 3") && r.load().warnings[0].includes("checksum mismatch"));
    await r.close();
  });
});

Deno.test("a corrupted middle line stops the load with an error naming the file and the line", async () => {
  await withDir(async (dir) => {
    const s = await seed(dir, [noop(1, 1), set(2, 1, "name1", "Jon"), set(3, 2, "c", "d"), noop(4, 3)]);
    await Deno.writeTextFile(s.logsPath, text(s.logsPath).replace("Jon", "Jan"));
    const e = await assertStorageError(
      () => FileLogStore.open(dir, 2, "c"),
      "corrupt",
      `corrupt entry in ${s.logsPath} line 2: checksum mismatch`,
    );
    assertEquals(e.line, 2);
    assertEquals(e.path, s.logsPath);
    // The lock is released after a failed open.
    await Deno.writeTextFile(s.logsPath, text(s.logsPath).replace("Jan", "Jon"));
    (await FileLogStore.open(dir, 2, "c")).close();
  });
});

Deno.test("a line with a valid checksum but a decreasing term or an unknown operation is refused by line", async () => {
  await withDir(async (dir) => {
    const s = await seed(dir, [noop(1, 1), noop(2, 1)]);
    const dec = new TextDecoder();
    const good = dec.decode(encodeEntryLines([noop(1, 1), noop(2, 3)]).bytes);
    const backwards = dec.decode(encodeEntryLines([noop(3, 2), noop(4, 3)]).bytes);
    await Deno.writeTextFile(s.logsPath, good + backwards);
    await assertStorageError(
      () => FileLogStore.open(dir, 2, "c"),
      "corrupt",
      `${s.logsPath} line 3: term 2 after term 3`,
    );
    await Deno.writeTextFile(s.logsPath, good + "DEL x 3 #00000000\n" + backwards);
    await assertStorageError(() => FileLogStore.open(dir, 2, "c"), "corrupt", `${s.logsPath} line 3`);
    await Deno.writeTextFile(s.logsPath, good + "\n" + backwards);
    await assertStorageError(() => FileLogStore.open(dir, 2, "c"), "corrupt", "line 3: missing checksum");
  });
});

Deno.test("a torn last line holding a committed entry is corruption, not a torn write", async () => {
  await withDir(async (dir) => {
    const s = await seed(dir, [noop(1, 1), noop(2, 1)], 2);
    const t = text(s.logsPath);
    await Deno.writeTextFile(s.logsPath, t.slice(0, -1)); // drop the final newline
    await assertStorageError(() => FileLogStore.open(dir, 2, "c"), "corrupt", "line 2", "committed");
  });
});

Deno.test("a folder of another node id or another cluster is refused", async () => {
  await withDir(async (dir) => {
    const s = await seed(dir, [noop(1, 1)]);
    await assertStorageError(() => FileLogStore.open(dir, 2, "other"), "foreign", s.metadataPath, "cluster");
    // Copy node 2's folder to where node 3 looks.
    await Deno.mkdir(`${dir}/logs_node_3`);
    await Deno.copyFile(s.metadataPath, `${dir}/logs_node_3/metadata.txt`);
    await assertStorageError(
      () => FileLogStore.open(dir, 3, "c"),
      "foreign",
      `${dir}/logs_node_3/metadata.txt belongs to node 2, not node 3`,
    );
  });
});

Deno.test("a second open of the same folder fails with a clear error while the first holds the lock", async () => {
  await withDir(async (dir) => {
    const s = await FileLogStore.open(dir, 2, "c");
    await assertStorageError(
      () => FileLogStore.open(dir, 2, "c"),
      "locked",
      `${s.folder} is in use by process ${Deno.pid}`,
      "lock",
    );
    await s.close();
    await (await FileLogStore.open(dir, 2, "c")).close();
  });
});

Deno.test("a second process cannot open a folder that this process holds", async () => {
  await withDir(async (dir) => {
    const s = await FileLogStore.open(dir, 2, "c");
    const code = `import { FileLogStore } from ${
      JSON.stringify(new URL("./file_store.ts", import.meta.url).href)
    };
      try { await FileLogStore.open(${JSON.stringify(dir)}, 2, "c"); console.log("opened"); }
      catch (e) { console.log(e.code + ": " + e.message); }`;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--no-config", code],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const said = new TextDecoder().decode(out.stdout).trim();
    assert(said.startsWith("locked: ") && said.includes(`process ${Deno.pid}`), said);
    await s.close();
  });
});

Deno.test("metadata that fails to parse stops the open with the file and line", async () => {
  await withDir(async (dir) => {
    const s = await seed(dir, [noop(1, 1)]);
    const m = text(s.metadataPath);
    await Deno.writeTextFile(s.metadataPath, m.replace("term: 9", "term: nine"));
    await assertStorageError(
      () => FileLogStore.open(dir, 2, "c"),
      "corrupt",
      `corrupt metadata in ${s.metadataPath} line`,
      "checksum mismatch",
    );
    // A hand-made file with a correct checksum but a bad value is refused at the value's line.
    const bad = encodeMetadata({
      nodeId: 2,
      clusterId: "c",
      hardState: { term: 9, votedFor: 2 },
      commitLength: 0,
    })
      .replace(/\nchecksum: .*\n$/, "\n").replace("votedFor: 2", "votedFor: -1");
    const { crc32, hex8 } = await import("./crc32.ts");
    await Deno.writeTextFile(
      s.metadataPath,
      `${bad}checksum: ${hex8(crc32(new TextEncoder().encode(bad)))}\n`,
    );
    const e = await assertStorageError(() => FileLogStore.open(dir, 2, "c"), "corrupt", "line 6", "votedFor");
    assertEquals(e.line, 6);
    await Deno.writeTextFile(s.metadataPath, "format: 1\nnodeId 2\n");
    await assertStorageError(() => FileLogStore.open(dir, 2, "c"), "corrupt", "line 2", "key: value");
  });
});

Deno.test("missing metadata next to a non-empty log is refused", async () => {
  await withDir(async (dir) => {
    const s = await seed(dir, [noop(1, 1)]);
    await Deno.remove(s.metadataPath);
    await assertStorageError(() => FileLogStore.open(dir, 2, "c"), "corrupt", "missing");
  });
});

Deno.test("a metadata rewrite leaves no .tmp file behind, and a stale one is removed on open", async () => {
  await withDir(async (dir) => {
    const s = await FileLogStore.open(dir, 2, "c");
    for (let t = 1; t <= 5; t++) await s.save({ hardState: { term: t, votedFor: t }, entries: [] });
    const names = () => [...Deno.readDirSync(s.folder)].map((e) => e.name).sort();
    assertEquals(names(), ["lock", "logs.txt", "metadata.txt"]);
    await s.close();
    await Deno.writeTextFile(`${s.metadataPath}.tmp`, "half-written garbage");
    const r = await FileLogStore.open(dir, 2, "c");
    assertEquals(names(), ["lock", "logs.txt", "metadata.txt"]);
    assertEquals(r.load().hardState, { term: 5, votedFor: 5 });
    await r.close();
  });
});

Deno.test("the commit index is written lazily but never claims entries that are not on disk", async () => {
  await withDir(async (dir) => {
    const s = await FileLogStore.open(dir, 2, "c", { commitHintIntervalMs: 60_000 });
    await s.save({ hardState: { term: 1, votedFor: 2 }, appendFrom: 1, entries: [noop(1, 1), noop(2, 1)] });
    await s.save({ entries: [], commitIndex: 2 });
    assert(text(s.metadataPath).includes("commitLength: 0\n"), "a commit-only change waits");
    await s.save({
      hardState: { term: 2, votedFor: 0 },
      appendFrom: 3,
      entries: [noop(3, 2)],
      commitIndex: 3,
    });
    // Written with the hard state, before the entry 3 was appended: only what was on disk then.
    assert(text(s.metadataPath).includes("commitLength: 2\n"), text(s.metadataPath));
    await s.flush();
    assert(text(s.metadataPath).includes("commitLength: 3\n"), "flush writes it");
    await s.close();
  });
});

Deno.test("once the interval has passed, a commit-only change is written in the background after the save", async () => {
  await withDir(async (dir) => {
    const s = await FileLogStore.open(dir, 2, "c", { commitHintIntervalMs: 0 });
    await s.save({ hardState: { term: 1, votedFor: 2 }, appendFrom: 1, entries: [noop(1, 1)] });
    await s.save({ entries: [], commitIndex: 1 });
    await s.save({ entries: [] }); // queued behind the background metadata write
    assert(text(s.metadataPath).includes("commitLength: 1\n"));
    await s.close();
  });
});

Deno.test("the last commit index of a burst is written once the interval has passed, with no further save", async () => {
  await withDir(async (dir) => {
    const s = await FileLogStore.open(dir, 2, "c", { commitHintIntervalMs: 50 });
    await s.save({ hardState: { term: 1, votedFor: 2 }, appendFrom: 1, entries: [noop(1, 1), noop(2, 1)] });
    await s.save({ entries: [], commitIndex: 1 });
    await s.save({ entries: [], commitIndex: 2 }); // within the interval of the write above: deferred
    const until = performance.now() + 5000;
    while (!text(s.metadataPath).includes("commitLength: 2\n")) {
      assert(performance.now() < until, `commitLength never reached 2: ${text(s.metadataPath)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    await s.close();
  });
});
