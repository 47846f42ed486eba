import {
  readSnapshotFile,
  type SnapshotHeader,
  type SnapshotSession,
  type SnapshotSource,
  writeSnapshotFile,
} from "./snapshot_file.ts";
import { SNAPSHOT_FILE } from "./paths.ts";
import { assert, assertEquals, assertStorageError, TRICKY_STRINGS } from "./testing.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-snap-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function source(
  index: number,
  term: number,
  pairs: [string, string][],
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
    pairs: [] as [string, string][],
    sessions: [] as [string, SnapshotSession][],
  };
  const h = await readSnapshotFile(path, {
    header: (x) => got.header = x,
    pair: (k, v) => got.pairs.push([k, v]),
    session: (c, s) => got.sessions.push([c, s]),
  });
  return { ...got, returned: h };
}

Deno.test("a snapshot of tricky keys, values and sessions round-trips through snapshot.txt", async () => {
  await withDir(async (dir) => {
    const pairs: [string, string][] = TRICKY_STRINGS.map((
      k,
      i,
    ) => [k + i, TRICKY_STRINGS[(i * 7) % TRICKY_STRINGS.length]]);
    const sessions: [string, SnapshotSession][] = TRICKY_STRINGS.slice(0, 5).map((
      c,
      i,
    ) => [c, { seq: i * 1000 + 1, fingerprint: 4_000_000_000 - i, lastIndex: 1000 + i }]);
    const size = await writeSnapshotFile(dir, source(1234, 7, pairs, sessions), { pairsPerChunk: 3 });
    const path = `${dir}/${SNAPSHOT_FILE}`;
    assertEquals((await Deno.stat(path)).size, size);
    const got = await read(path);
    assertEquals(got.returned, { index: 1234, term: 7, keys: pairs.length, sessions: 5 });
    assertEquals(got.pairs, pairs);
    assertEquals(got.sessions, sessions);
    const lines = (await Deno.readTextFile(path)).split("\n");
    assert(/^SNAPSHOT format=1 index=1234 term=7 keys=\d+ sessions=5 #[0-9a-f]{8}$/.test(lines[0]), lines[0]);
    assert(lines.some((l) => /^KV "first name\d+" .+ #[0-9a-f]{8}$/.test(l)), "a quoted key is on one line");
    assertEquals(lines.at(-2)?.startsWith("END #"), true);
    assertEquals(lines.at(-1), "");
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), [SNAPSHOT_FILE], "no temp file left");
  });
});

Deno.test("a missing snapshot reads as none, and a new snapshot replaces the old one whole", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/${SNAPSHOT_FILE}`;
    assertEquals(await readSnapshotFile(path, { header() {}, pair() {}, session() {} }), null);
    await writeSnapshotFile(dir, source(10, 1, [["a", "1"], ["b", "2"]], []));
    await writeSnapshotFile(
      dir,
      source(20, 2, [["c", "3"]], [["cli", { seq: 4, fingerprint: 7, lastIndex: 19 }]]),
    );
    const got = await read(path);
    assertEquals(got.returned, { index: 20, term: 2, keys: 1, sessions: 1 });
    assertEquals(got.pairs, [["c", "3"]]);
  });
});

Deno.test("a damaged snapshot is refused naming the file, the line and how to recover", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/${SNAPSHOT_FILE}`;
    const pairs: [string, string][] = [...Array(50).keys()].map((i) => [`key${i}`, `value${i}`]);
    await writeSnapshotFile(dir, source(99, 3, pairs, [["c", { seq: 1, fingerprint: 2, lastIndex: 3 }]]));
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
    const s = source(5, 1, [["a", "1"]], []);
    const lying: SnapshotSource = { ...s, header: { ...s.header, keys: 2 } };
    await assertStorageError(() => writeSnapshotFile(dir, lying), "invalid", "gave 1 pairs, header says 2");
    assertEquals([...Deno.readDirSync(dir)].length, 0);
  });
});
