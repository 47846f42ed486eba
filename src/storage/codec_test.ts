import type { Entry } from "../raft/types.ts";
import {
  checkLineChecksum,
  encodeEntryLines,
  encodeEntryText,
  encodeMetadata,
  encodeToken,
  isBareWord,
  parseEntryText,
  ParseFailure,
  parseMetadata,
} from "./codec.ts";
import { crc32, hex8, parseHex8 } from "./crc32.ts";
import { parseLog } from "./file_store.ts";
import { assert, assertEquals, prng, TRICKY_STRINGS } from "./testing.ts";

const enc = new TextEncoder();

Deno.test("crc32 matches the standard check value", () => {
  assertEquals(hex8(crc32(enc.encode("123456789"))), "cbf43926");
  assertEquals(hex8(crc32(new Uint8Array(0))), "00000000");
});

Deno.test("parseHex8 reads back what hex8 writes and refuses upper case, other bytes and a short range", () => {
  const rand = prng(7);
  for (const n of [0, 1, 0xf, 0x10, 0xdeadbeef, 0x7fffffff, 0x80000000, 0xffffffff]) {
    assertEquals(parseHex8(enc.encode(hex8(n)), 0), n);
  }
  for (let i = 0; i < 1000; i++) {
    const n = Math.floor(rand() * 0x100000000);
    assertEquals(parseHex8(enc.encode(`xx${hex8(n)}`), 2), n);
  }
  assertEquals(
    parseHex8(enc.encode("DEADBEEF"), 0),
    -1,
    "upper case: a bit flip must not read as the same value",
  );
  assertEquals(parseHex8(enc.encode("deadbeeg"), 0), -1);
  assertEquals(parseHex8(enc.encode("dead beef"), 0), -1);
  assertEquals(parseHex8(enc.encode("deadbee"), 0), -1, "seven digits");
  assertEquals(parseHex8(enc.encode("deadbeef"), 1), -1, "the range runs past the end");
});

Deno.test("plain words stay bare and anything else becomes one printable JSON-quoted token", () => {
  assertEquals(encodeToken("Jon"), "Jon");
  assertEquals(encodeToken("ключ"), "ключ");
  assertEquals(encodeToken("😀"), "😀");
  assertEquals(encodeToken(""), '""');
  assertEquals(encodeToken("first name"), '"first name"');
  assertEquals(encodeToken("Jon Snow\nthe 2nd"), '"Jon Snow\\nthe 2nd"');
  assertEquals(encodeToken('say "hi"'), '"say \\"hi\\""');
  assertEquals(encodeToken("a\\b"), '"a\\\\b"');
  assertEquals(encodeToken("\u2028"), '"\\u2028"');
  assertEquals(encodeToken("\u00a0"), '"\\u00a0"');
  assertEquals(encodeToken("x\u007f"), '"x\\u007f"');
  assertEquals(encodeToken("\ud800"), '"\\ud800"');
  for (const s of TRICKY_STRINGS) {
    const t = encodeToken(s);
    if (t === s) assert(isBareWord(s) && !/[\s"\\]/.test(t), `bare ${JSON.stringify(t)}`);
    else assert(t.startsWith('"') && t.endsWith('"') && JSON.parse(t) === s, `quoted ${JSON.stringify(t)}`);
    assert(!/[\n\r\u2028\u2029\u0085]/.test(t), `token ${JSON.stringify(t)} spans lines`);
  }
});

function randomString(rnd: () => number): string {
  const pools = [
    () => String.fromCharCode(0x20 + Math.floor(rnd() * 95)),
    () => String.fromCharCode(Math.floor(rnd() * 0x20)),
    () => String.fromCharCode(Math.floor(rnd() * 0x10000)), // includes lone surrogates
    () => String.fromCodePoint(0x10000 + Math.floor(rnd() * 0x10000)),
    () => ' "\\#@=\n\t'[Math.floor(rnd() * 8)],
  ];
  let s = "";
  const n = Math.floor(rnd() * 12);
  for (let i = 0; i < n; i++) s += pools[Math.floor(rnd() * pools.length)]();
  return s;
}

Deno.test("random strings round-trip through entry lines, checksum included", () => {
  const rnd = prng(7);
  const entries: Entry[] = [];
  for (let i = 1; i <= 3000; i++) {
    entries.push(
      rnd() < 0.1 ? { index: i, term: i, command: { op: "noop" } } : {
        index: i,
        term: i,
        command: {
          op: "set",
          key: randomString(rnd),
          value: randomString(rnd),
          clientId: rnd() < 0.5 ? "" : randomString(rnd),
          seq: Math.floor(rnd() * 1e6),
        },
      },
    );
  }
  const { bytes, ends } = encodeEntryLines(entries);
  assertEquals(ends.length, entries.length);
  assertEquals(ends.at(-1), bytes.length);
  const parsed = parseLog(bytes, "/x/logs.txt", 0);
  assertEquals(parsed.warning, undefined);
  assertEquals(parsed.ends, ends);
  for (let i = 0; i < entries.length; i++) {
    const want = entries[i];
    const c = want.command;
    // A session with clientId "" and seq 0 is written as no session at all: same value.
    assertEquals(parsed.entries[i], want, `entry ${i + 1}: ${encodeEntryText(want)}`);
    if (c.op === "set") assert(encodeEntryText(want).startsWith("SET "));
  }
});

Deno.test("every line of a file is checked: one flipped byte anywhere is caught", () => {
  const { bytes, ends } = encodeEntryLines([
    { index: 1, term: 1, command: { op: "noop" } },
    { index: 2, term: 1, command: { op: "set", key: "k", value: "v w", clientId: "c", seq: 3 } },
  ]);
  for (let i = 0; i < ends[0] - 1; i++) {
    const copy = bytes.slice();
    copy[i] ^= 0x04;
    assert(checkLineChecksum(copy, 0, ends[0] - 1) !== null, `flip at ${i} not caught`);
  }
});

Deno.test("malformed entry texts are refused with a reason", () => {
  const bad = [
    "SET",
    "SET a",
    "SET a b",
    "SET a b x",
    "SET a b 0",
    "SET a  b 1",
    'SET "a b 1',
    'SET "\\q" b 1',
    "SET a b 1 extra",
    "SET a b 1 @c=x",
    "SET a b 1 @c=x s=",
    "NO-OP",
    "NO-OP x",
    "NO-OP 1 2",
    "DEL a",
    "DEL a 1 b",
    "CAS a b 1",
    "CAS a @v= b 1",
    "GET a 1",
    "",
    "SET a b 99999999999999999",
  ];
  for (const t of bad) {
    let failed = false;
    try {
      parseEntryText(t, 1);
    } catch (e) {
      failed = e instanceof ParseFailure;
    }
    assert(failed, `accepted ${JSON.stringify(t)}`);
  }
});

Deno.test("metadata round-trips, including a cluster id that needs quoting", () => {
  const m = { nodeId: 3, clusterId: "prod eu-1", hardState: { term: 12, votedFor: 5 }, commitLength: 400 };
  assertEquals(parseMetadata(encodeMetadata(m), "/m"), m);
});

Deno.test("metadata keeps the largest lease a node promised, as a duration in ms", () => {
  const m = {
    nodeId: 3,
    clusterId: "prod",
    hardState: { term: 12, votedFor: 5, promisedLeaseMs: 812.5 },
    commitLength: 400,
  };
  const text = encodeMetadata(m);
  assert(text.includes("promisedLeaseMs: 812.5\n"), text);
  assertEquals(parseMetadata(text, "/m"), m);
});

Deno.test("a bit flip that turns a checksum digit upper case is refused as corruption in a committed line", () => {
  const entries: Entry[] = [];
  for (let i = 1; i <= 40; i++) {
    entries.push({
      index: i,
      term: 1,
      command: { op: "set", key: `k${i}`, value: `v${i}`, clientId: "", seq: 0 },
    });
  }
  const { bytes, ends } = encodeEntryLines(entries);
  // A committed line (not the last) whose checksum has a letter a-f.
  const line = entries.findIndex((_, i) =>
    i < 30 && /[a-f]/.test(new TextDecoder().decode(bytes.subarray(ends[i] - 9, ends[i] - 1)))
  );
  assert(line >= 0, "no checksum with a letter in 30 lines");
  const damaged = bytes.slice();
  for (let at = ends[line] - 9; at < ends[line] - 1; at++) {
    if (damaged[at] >= 0x61 && damaged[at] <= 0x66) {
      damaged[at] ^= 0x20; // 'a'..'f' -> 'A'..'F'
      break;
    }
  }
  let refused = "";
  try {
    parseLog(damaged, "logs.txt", 35);
  } catch (e) {
    refused = e instanceof Error ? e.message : String(e);
  }
  assert(
    refused.includes(`line ${line + 1}`),
    `expected a refusal naming line ${line + 1}, got "${refused}"`,
  );
});

Deno.test("DEL and CAS lines are readable, carry the session like SET, and round-trip tricky strings", () => {
  const del: Entry = { index: 5, term: 3, command: { op: "del", key: "name1", clientId: "c1", seq: 4 } };
  assertEquals(encodeEntryText(del), "DEL name1 3 @c=c1 s=4");
  const cas: Entry = {
    index: 6,
    term: 3,
    command: { op: "cas", key: "n", expect: { value: "1" }, value: "2", clientId: "", seq: 0 },
  };
  assertEquals(encodeEntryText(cas), "CAS n 1 2 3");
  const absent: Entry = {
    index: 7,
    term: 4,
    command: { op: "cas", key: "lock", expect: { version: 0 }, value: "me", clientId: "c", seq: 1 },
  };
  assertEquals(encodeEntryText(absent), "CAS lock @absent me 4 @c=c s=1");
  const byVersion: Entry = {
    index: 8,
    term: 4,
    command: { op: "cas", key: "k", expect: { version: 17 }, value: "v", clientId: "", seq: 0 },
  };
  assertEquals(encodeEntryText(byVersion), "CAS k @v=17 v 4");
  // An expected value that looks like a marker is quoted, so it reads back as a value.
  const tricky: Entry = {
    index: 9,
    term: 4,
    command: { op: "cas", key: "k", expect: { value: "@absent" }, value: "@v=1", clientId: "", seq: 0 },
  };
  assertEquals(encodeEntryText(tricky), 'CAS k "@absent" @v=1 4');
  for (const e of [del, cas, absent, byVersion, tricky]) {
    assertEquals(parseEntryText(encodeEntryText(e), e.index), e);
  }
  for (const s of TRICKY_STRINGS) {
    if (s === "") continue;
    const e: Entry = {
      index: 1,
      term: 2,
      command: { op: "cas", key: s, expect: { value: s }, value: s, clientId: s, seq: 9 },
    };
    assertEquals(parseEntryText(encodeEntryText(e), 1), e);
    const d: Entry = { index: 1, term: 2, command: { op: "del", key: s, clientId: "", seq: 0 } };
    assertEquals(parseEntryText(encodeEntryText(d), 1), d);
  }
  let threw = false;
  try {
    parseEntryText("CAS k @bogus v 3", 1);
  } catch (e) {
    threw = e instanceof ParseFailure;
  }
  assert(threw, "an unknown @ marker in the expected position is refused");
});

Deno.test("a KV line encoded straight into a buffer is byte for byte the line encoded from its text", async () => {
  const { encodeSnapshotPairInto, encodeSnapshotPairText, encodeLines } = await import("./codec.ts");
  const versions = [
    0,
    1,
    9,
    10,
    99,
    100,
    999,
    1000,
    123456789,
    999999999999999,
    1e15,
    Number.MAX_SAFE_INTEGER,
  ];
  const strings = [...TRICKY_STRINGS, "key12", "v".repeat(300), "~!$%&'()*+,-./:;<=>?@[]^_`{|}", "x\u007f"];
  let i = 0;
  for (const key of strings) {
    for (const value of strings) {
      const version = versions[i++ % versions.length];
      const want = encodeLines([encodeSnapshotPairText(key, value, version)]);
      // Ample room; then less than the line needs (refused: -1, and the caller grows the buffer).
      const buf = new Uint8Array(7 + want.length * 3 + 64);
      const end = encodeSnapshotPairInto(key, value, version, buf, 7);
      assertEquals(buf.subarray(7, end), want, `${JSON.stringify(key)} ${JSON.stringify(value)} ${version}`);
      const tight = new Uint8Array(7 + want.length - 1);
      assertEquals(encodeSnapshotPairInto(key, value, version, tight, 7), -1, "no room: refused");
    }
  }
});
