/**
 * The streaming snapshot parser (a follower parses each InstallSnapshot chunk as it arrives): whatever the
 * pieces, it yields what the whole file holds, and refuses damage wherever it falls.
 */
import {
  encodeSnapshot,
  parseSnapshot,
  type SnapshotHeader,
  SnapshotParser,
  type SnapshotSession,
  type SnapshotSink,
  type SnapshotSource,
} from "./snapshot_file.ts";
import { assert, assertEquals, TRICKY_STRINGS } from "./testing.ts";
import { StorageError } from "./errors.ts";
import { encodeLines } from "./codec.ts";
import { Buffer } from "node:buffer";

function source(
  index: number,
  pairs: [string, string, number][],
  sessions: [string, SnapshotSession][] = [],
): SnapshotSource {
  let pos = 0;
  return {
    header: { index, term: 2, keys: pairs.length, sessions: sessions.length },
    sessions: () => sessions,
    nextPairs: (max) => {
      const out = pairs.slice(pos, pos + max);
      pos += out.length;
      return out;
    },
  };
}

interface Got {
  header?: SnapshotHeader;
  pairs: [string, string, number][];
  sessions: [string, SnapshotSession][];
}

function collector(): { got: Got; sink: SnapshotSink } {
  const got: Got = { pairs: [], sessions: [] };
  return {
    got,
    sink: {
      header: (h) => (got.header = h),
      pair: (k, v, version) => got.pairs.push([k, v, version]),
      session: (c, s) => got.sessions.push([c, s]),
    },
  };
}

/** Parses `bytes` pushed in pieces cut at `cuts` (byte offsets). */
function parseInPieces(bytes: Uint8Array, cuts: readonly number[]): { got: Got; header: SnapshotHeader } {
  const { got, sink } = collector();
  const p = new SnapshotParser("/x/snapshot.txt.recv", sink);
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    // A copy per piece, as a chunk off the wire is its own buffer.
    p.push(bytes.slice(from, cut));
    from = cut;
  }
  return { got, header: p.finish() };
}

function refusal(fn: () => unknown): StorageError {
  try {
    fn();
  } catch (e) {
    assert(e instanceof StorageError, `a StorageError, got ${e}`);
    assertEquals(e.code, "corrupt");
    return e;
  }
  throw new Error("expected a refusal");
}

const SESSION: SnapshotSession = {
  seq: 4,
  fingerprint: 77,
  lastIndex: 9,
  outcome: { succeeded: true, value: "a😀b", found: true, version: 9 },
};

/** Keys and values that need escaping, multi-byte UTF-8 (2, 3 and 4 bytes) and plain ASCII, mixed. */
const TRICKY_PAIRS: [string, string, number][] = TRICKY_STRINGS.flatMap((s, i) => [
  [`k${i}${s}`, s, i + 1] as [string, string, number],
  [`plain${i}`, `ascii value ${i}`, i + 2] as [string, string, number],
]);

Deno.test("a snapshot pushed in pieces cut at every byte parses to exactly what the whole file holds", () => {
  const bytes = encodeSnapshot(source(500, TRICKY_PAIRS, [["cli😀", SESSION]]));
  const whole = parseInPieces(bytes, []);
  assertEquals(whole.got.pairs, TRICKY_PAIRS);
  assertEquals(whole.got.sessions, [["cli😀", SESSION]]);
  assertEquals(whole.header.keys, TRICKY_PAIRS.length);
  // One cut anywhere (inside a line, inside a multi-byte character, right after a newline), then two cuts
  // close together (a piece holding no newline at all).
  for (let cut = 1; cut < bytes.length; cut++) {
    const { got } = parseInPieces(bytes, [cut]);
    assertEquals(got.pairs, TRICKY_PAIRS, `cut at ${cut}`);
    assertEquals(got.sessions, whole.got.sessions, `cut at ${cut}`);
  }
  for (let cut = 1; cut + 3 < bytes.length; cut += 7) {
    const { got } = parseInPieces(bytes, [cut, cut + 1, cut + 3]);
    assertEquals(got.pairs, TRICKY_PAIRS, `cuts at ${cut}, ${cut + 1}, ${cut + 3}`);
  }
});

Deno.test("pieces that are Node Buffer views into larger memory (as a frame off the wire is) parse like plain bytes", () => {
  const bytes = encodeSnapshot(source(500, TRICKY_PAIRS, [["cli😀", SESSION]]));
  const whole = parseInPieces(bytes, []);
  for (const size of [1, 7, 64, 1000, bytes.length]) {
    const { got, sink } = collector();
    const p = new SnapshotParser("/x/snapshot.txt.recv", sink);
    for (let from = 0; from < bytes.length; from += size) {
      // A view with bytes before and after it in the same memory: only the view's own bytes may be read.
      const piece = bytes.subarray(from, from + size);
      const memory = Buffer.alloc(piece.length + 20, 0x0a);
      memory.set(piece, 10);
      p.push(memory.subarray(10, 10 + piece.length));
    }
    assertEquals(p.finish(), whole.header, `pieces of ${size}`);
    assertEquals(got.pairs, TRICKY_PAIRS, `pieces of ${size}`);
    assertEquals(got.sessions, whole.got.sessions, `pieces of ${size}`);
  }
});

Deno.test("a multi-byte character split between two pieces decodes whole, in a key and in a value", () => {
  const pairs: [string, string, number][] = [["ключ", "值😀", 3], ["😀", "ключ и 值", 4]];
  const bytes = encodeSnapshot(source(10, pairs));
  const text = new TextDecoder().decode(bytes);
  const enc = new TextEncoder();
  // Every cut inside each multi-byte character: its byte offset plus 1..len-1.
  let checked = 0;
  for (let i = 0; i < text.length; i++) {
    const cp = text.codePointAt(i)!;
    const len = enc.encode(String.fromCodePoint(cp)).length;
    if (len > 1) {
      const at = enc.encode(text.slice(0, i)).length;
      for (let k = 1; k < len; k++) {
        assertEquals(parseInPieces(bytes, [at + k]).got.pairs, pairs, `cut inside U+${cp.toString(16)}`);
        checked++;
      }
    }
    if (cp > 0xffff) i++;
  }
  assertEquals(checked, 19, "cuts inside the 2-, 3- and 4-byte characters of the four strings");
});

Deno.test("a flipped bit in a KV line is refused naming the line, wherever the pieces were cut", () => {
  const pairs: [string, string, number][] = [...Array(40).keys()].map((i) => [`key${i}`, `v${i}`, i + 1]);
  const good = encodeSnapshot(source(50, pairs));
  const text = new TextDecoder().decode(good);
  const cases: [string, string, number][] = [["a value", "v17 ", 19], ["a checksum", "#", 30], [
    "a version",
    " 33 ",
    34,
  ]];
  for (const [what, needle, line] of cases) {
    // The checksum case: a hex digit of line 30's checksum (the 30th `#`).
    const at = what === "a checksum"
      ? [...text.matchAll(/#/g)][line - 1].index! + 3
      : text.indexOf(needle) + 1;
    const bad = good.slice();
    bad[at] ^= 0x01;
    for (const cuts of [[], [at], [at - 5, at + 5], [1, 2, 3]]) {
      const e = refusal(() => parseInPieces(bad, cuts));
      assert(e.message.includes(`line ${line}:`), `${what}, cuts ${cuts}: ${e.message}`);
      assert(/checksum mismatch|malformed checksum/.test(e.message), `${what}: ${e.message}`);
      assert(e.message.includes("/x/snapshot.txt.recv"), e.message);
    }
  }
});

Deno.test("a KV line with a sound checksum but a broken shape is refused, not half-read", () => {
  const header = "SNAPSHOT format=2 index=9 term=1 keys=1 sessions=0";
  const cases: [string, string][] = [
    ["KV onlykey", "expected a space after the key"],
    ["KV k v", "expected a space after the value"],
    ["KV k v x", "missing or malformed version"],
    ['KV "unterminated v 3', "unterminated quoted key"],
    ["KV k v 3 extra", "unexpected text after the version"],
    ['KV k "bad \\q escape" 3', "bad escape in quoted value"],
  ];
  for (const [line, reason] of cases) {
    const bytes = encodeLines([header, line, "END"]);
    const e = refusal(() => parseInPieces(bytes, [bytes.length - 4]));
    assert(e.message.includes(`line 2: ${reason}`), `${line}: ${e.message}`);
  }
  // More KV lines than the header announces, and one before any header.
  const more = encodeLines([header, "KV a b 1", "KV c d 2", "END"]);
  assert(refusal(() => parseInPieces(more, [])).message.includes("line 3: more than the 1 keys"));
  const headless = encodeLines(["KV a b 1", header, "END"]);
  assert(refusal(() => parseInPieces(headless, [])).message.includes("line 1: the first line must be"));
});

Deno.test("a snapshot cut short in any piece is refused at finish, never taken as complete", () => {
  const bytes = encodeSnapshot(source(20, TRICKY_PAIRS.slice(0, 10)));
  for (let end = 0; end < bytes.length; end += 3) {
    const e = refusal(() => parseInPieces(bytes.slice(0, end), end > 10 ? [10] : []));
    assert(/truncated|empty file/.test(e.message), `cut at ${end}: ${e.message}`);
  }
});

Deno.test("the whole-buffer parse and the streaming parse agree on a large ASCII snapshot", () => {
  const pairs: [string, string, number][] = [...Array(20_000).keys()].map((i) => [
    `key${i}`,
    i % 97 === 0 ? `with space ${i}` : "v".repeat(i % 120),
    i + 1,
  ]);
  const bytes = encodeSnapshot(source(30_000, pairs));
  const a = collector();
  parseSnapshot(bytes, "/x/snapshot.txt", a.sink);
  const cuts = [];
  for (let c = 65_536; c < bytes.length; c += 65_536 + 17) cuts.push(c);
  const b = parseInPieces(bytes, cuts);
  assertEquals(b.got.pairs.length, pairs.length);
  assertEquals(b.got.pairs, a.got.pairs);
  assertEquals(a.got.pairs, pairs);
});
