import {
  readSnapshotFile,
  type SnapshotHeader,
  type SnapshotSession,
  type SnapshotSource,
  writeSnapshotFile,
} from "./snapshot_file.ts";
import { SNAPSHOT_FILE } from "./paths.ts";
import { encodeLines } from "./codec.ts";
import { assert, assertEquals, assertStorageError, TRICKY_STRINGS } from "./testing.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-snap-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A session record whose last write was a SET of `value` at `lastIndex`. */
function session(seq: number, fingerprint: number, lastIndex: number, value = "v"): SnapshotSession {
  return {
    seq,
    fingerprint,
    lastIndex,
    outcome: { succeeded: true, value, found: true, version: lastIndex },
  };
}

function source(
  index: number,
  term: number,
  pairs: [string, string, number][],
  sessions: [string, SnapshotSession][],
): SnapshotSource {
  let pos = 0;
  return {
    header: { index, term, keys: pairs.length, sessions: sessions.length },
    sessions: () => sessions,
    nextPairs: (max) => {
      const out = pairs.slice(pos, pos + max);
      pos += out.length;
      return out;
    },
  };
}

async function read(path: string) {
  const got = {
    header: undefined as SnapshotHeader | undefined,
    pairs: [] as [string, string, number][],
    sessions: [] as [string, SnapshotSession][],
  };
  const h = await readSnapshotFile(path, {
    header: (x) => got.header = x,
    pair: (k, v, version) => got.pairs.push([k, v, version]),
    session: (c, s) => got.sessions.push([c, s]),
  });
  return { ...got, returned: h };
}

Deno.test("a snapshot of tricky keys, values and sessions round-trips through snapshot.txt", async () => {
  await withDir(async (dir) => {
    const pairs: [string, string, number][] = TRICKY_STRINGS.map((
      k,
      i,
    ) => [k + i, TRICKY_STRINGS[(i * 7) % TRICKY_STRINGS.length], 1 + i * 37]);
    // Each kind of outcome a session keeps: a SET, a DELETE of a missing key, a CAS that failed on a value.
    const outcomes = [
      { succeeded: true, value: TRICKY_STRINGS[3], found: true, version: 1001 },
      { succeeded: false, value: "", found: false, version: 0 },
      { succeeded: false, value: TRICKY_STRINGS[1], found: true, version: 977 },
      { succeeded: true, value: "", found: false, version: 0 },
      { succeeded: true, value: "x", found: true, version: 1004 },
    ];
    const sessions: [string, SnapshotSession][] = TRICKY_STRINGS.slice(0, 5).map((
      c,
      i,
    ) => [c, {
      seq: i * 1000 + 1,
      fingerprint: 4_000_000_000 - i,
      lastIndex: 1000 + i,
      outcome: outcomes[i],
    }]);
    const size = await writeSnapshotFile(dir, source(1234, 7, pairs, sessions), { pairsPerChunk: 3 });
    const path = `${dir}/${SNAPSHOT_FILE}`;
    assertEquals((await Deno.stat(path)).size, size);
    const got = await read(path);
    assertEquals(got.returned, { index: 1234, term: 7, keys: pairs.length, sessions: 5 });
    assertEquals(got.pairs, pairs);
    assertEquals(got.sessions, sessions);
    const lines = (await Deno.readTextFile(path)).split("\n");
    assert(/^SNAPSHOT format=2 index=1234 term=7 keys=\d+ sessions=5 #[0-9a-f]{8}$/.test(lines[0]), lines[0]);
    assert(
      lines.some((l) => /^KV "first name\d+" .+ \d+ #[0-9a-f]{8}$/.test(l)),
      "a quoted key is on one line",
    );
    assert(lines.some((l) => /^SESSION " " 1001 3999999999 1001 failed absent 0 "" #/.test(l)), "an outcome");
    assertEquals(lines.at(-2)?.startsWith("END #"), true);
    assertEquals(lines.at(-1), "");
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), [SNAPSHOT_FILE], "no temp file left");
  });
});

Deno.test("a missing snapshot reads as none, and a new snapshot replaces the old one whole", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/${SNAPSHOT_FILE}`;
    assertEquals(await readSnapshotFile(path, { header() {}, pair() {}, session() {} }), null);
    await writeSnapshotFile(dir, source(10, 1, [["a", "1", 3], ["b", "2", 9]], []));
    await writeSnapshotFile(dir, source(20, 2, [["c", "3", 17]], [["cli", session(4, 7, 19)]]));
    const got = await read(path);
    assertEquals(got.returned, { index: 20, term: 2, keys: 1, sessions: 1 });
    assertEquals(got.pairs, [["c", "3", 17]]);
    assertEquals(got.sessions, [["cli", session(4, 7, 19)]]);
  });
});

Deno.test("a damaged snapshot is refused naming the file, the line and how to recover", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/${SNAPSHOT_FILE}`;
    const pairs: [string, string, number][] = [...Array(50).keys()].map((
      i,
    ) => [`key${i}`, `value${i}`, i + 1]);
    await writeSnapshotFile(dir, source(99, 3, pairs, [["c", session(1, 2, 3)]]));
    const good = await Deno.readFile(path);
    const text = new TextDecoder().decode(good);
    const noop = { header() {}, pair() {}, session() {} };
    const cases: [string, Uint8Array, string][] = [
      [
        "a flipped byte",
        (() => {
          const b = good.slice();
          b[text.indexOf("value17")] ^= 0x01;
          return b;
        })(),
        "line 20: checksum mismatch",
      ],
      ["a truncated file", good.slice(0, text.indexOf("KV key30")), "missing END line"],
      ["a torn last line", good.slice(0, good.length - 3), "incomplete last line"],
      [
        "a lost line",
        new TextEncoder().encode(text.replace(/KV key7 .*\n/, "")),
        "END after 1 sessions and 49 keys",
      ],
      ["an empty file", new Uint8Array(0), "line 1: empty file"],
    ];
    for (const [what, bytes, reason] of cases) {
      await Deno.writeFile(path, bytes);
      const e = await assertStorageError(
        () => readSnapshotFile(path, noop),
        "corrupt",
        path,
        reason,
        "delete its folder",
      );
      assertEquals(e.path, path, what);
    }
  });
});

Deno.test("a source whose counts disagree with its header is refused and leaves no file", async () => {
  await withDir(async (dir) => {
    const s = source(5, 1, [["a", "1", 1]], []);
    const lying: SnapshotSource = { ...s, header: { ...s.header, keys: 2 } };
    await assertStorageError(() => writeSnapshotFile(dir, lying), "invalid", "gave 1 pairs, header says 2");
    assertEquals([...Deno.readDirSync(dir)].length, 0);
  });
});

Deno.test("the configuration in force at the snapshot's index round-trips through its CONFIG line", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/${SNAPSHOT_FILE}`;
    const config = {
      index: 7,
      membership: {
        members: [
          { id: 1, address: "10.0.0.1:7101", voter: true },
          { id: 4, address: "10.0.0.4:7101", voter: false, promote: true },
        ],
        outgoingVoters: [1, 2, 3],
      },
      everUsed: [1, 2, 3, 4],
    };
    const src = source(20, 2, [["c", "3", 17]], [["cli", session(4, 7, 19)]]);
    await writeSnapshotFile(dir, { ...src, header: { ...src.header, config } });
    const text = await Deno.readTextFile(path);
    assert(text.split("\n")[1].startsWith("CONFIG "), `the CONFIG line follows the header:\n${text}`);
    const got = await read(path);
    assertEquals(got.returned, { index: 20, term: 2, keys: 1, sessions: 1, config });
    assertEquals(got.pairs, [["c", "3", 17]]);
    // Without one (an older file), the header has no configuration.
    await writeSnapshotFile(dir, source(21, 2, [], []));
    assertEquals((await read(path)).returned?.config, undefined);
  });
});

Deno.test("a version-1 snapshot (KV without versions, SESSION with its seq only) is still read", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/${SNAPSHOT_FILE}`;
    await Deno.writeFile(
      path,
      encodeLines([
        "SNAPSHOT format=1 index=40 term=2 keys=2 sessions=2",
        "SESSION cli-a 7",
        "SESSION cli-b 3 12345 38 succeeded found 38 v",
        'KV name "Jon Snow"',
        "KV other x 39",
        "END",
      ]),
    );
    const got = await read(path);
    assertEquals(got.returned, { index: 40, term: 2, keys: 2, sessions: 2 });
    // A key without a version counts as changed at the snapshot's index.
    assertEquals(got.pairs, [["name", "Jon Snow", 40], ["other", "x", 39]]);
    assertEquals(got.sessions, [
      // No fingerprint: a retry of that write is refused as stale, never applied twice.
      ["cli-a", {
        seq: 7,
        fingerprint: 0,
        lastIndex: 40,
        outcome: { succeeded: true, found: true, version: 0, value: "" },
      }],
      ["cli-b", session(3, 12345, 38)],
    ]);
  });
});

Deno.test("a snapshot of a newer format is refused, naming the version this build reads", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/${SNAPSHOT_FILE}`;
    await Deno.writeFile(path, encodeLines(["SNAPSHOT format=3 index=40 term=2 keys=0 sessions=0", "END"]));
    await assertStorageError(
      () => readSnapshotFile(path, { header() {}, pair() {}, session() {} }),
      "corrupt",
      path,
      "line 1: unsupported format version 3 (this build reads 1 to 2)",
      "delete its folder",
    );
  });
});

Deno.test("a large snapshot is fdatasynced in steps while it is written, not only at its end", async () => {
  await withDir(async (dir) => {
    const pairs: [string, string, number][] = [];
    for (let i = 0; i < 20_000; i++) pairs.push([`key${i}`, "v".repeat(100), i + 1]);
    const syncs: number[] = [];
    const proto = Deno.FsFile.prototype;
    const syncData = proto.syncData;
    proto.syncData = async function (this: Deno.FsFile) {
      syncs.push((await this.stat()).size);
      return syncData.call(this);
    };
    let size: number;
    try {
      size = await writeSnapshotFile(dir, source(7, 2, pairs, []), { syncEveryBytes: 256 * 1024 });
    } finally {
      proto.syncData = syncData;
    }
    // ~2.6 MB in 256 KiB steps: one fdatasync per step, each after at least one more step was written.
    assert(
      syncs.length >= Math.floor(size / (256 * 1024)) - 1,
      `${syncs.length} fdatasyncs for ${size} bytes`,
    );
    for (let i = 1; i < syncs.length; i++) {
      assert(syncs[i] - syncs[i - 1] >= 256 * 1024, `step ${i}: ${syncs}`);
    }
    assertEquals((await read(`${dir}/${SNAPSHOT_FILE}`)).pairs, pairs);
  });
});
