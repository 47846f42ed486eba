import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { parseReplLine } from "./repl_parse.ts";

Deno.test("SET takes the rest of the line as the value, spaces inside kept", () => {
  deepStrictEqual(parseReplLine("SET name Jon"), { kind: "set", key: "name", value: "Jon" });
  deepStrictEqual(parseReplLine("SET greeting hello   big world  "), {
    kind: "set",
    key: "greeting",
    value: "hello   big world",
  });
  deepStrictEqual(parseReplLine("  set   k  v"), { kind: "set", key: "k", value: "v" });
});

Deno.test("quoted keys and values keep their exact text and JSON escapes", () => {
  deepStrictEqual(parseReplLine('SET "my key" "  padded  "'), {
    kind: "set",
    key: "my key",
    value: "  padded  ",
  });
  deepStrictEqual(parseReplLine('SET k "line1\\nline2 \\"q\\""'), {
    kind: "set",
    key: "k",
    value: 'line1\nline2 "q"',
  });
  deepStrictEqual(parseReplLine('SET k ""'), { kind: "set", key: "k", value: "" });
  deepStrictEqual(parseReplLine('GET "my key"'), { kind: "get", key: "my key" });
});

Deno.test("a value that only starts with a quote is taken literally", () => {
  deepStrictEqual(parseReplLine('SET k "hi" she said'), { kind: "set", key: "k", value: '"hi" she said' });
  deepStrictEqual(parseReplLine('SET k say "hi"'), { kind: "set", key: "k", value: 'say "hi"' });
});

Deno.test("SET <key> --value-file <file> names a file, as the one-shot client set does", () => {
  deepStrictEqual(parseReplLine("SET k --value-file v.txt"), { kind: "setFile", key: "k", file: "v.txt" });
  deepStrictEqual(parseReplLine('set "my key" --value-file "/tmp/a b.bin"  '), {
    kind: "setFile",
    key: "my key",
    file: "/tmp/a b.bin",
  });
  // Quoted, or not a word of its own, it is text like any other value.
  deepStrictEqual(parseReplLine('SET k "--value-file x"'), {
    kind: "set",
    key: "k",
    value: "--value-file x",
  });
  deepStrictEqual(parseReplLine("SET k --value-files x"), {
    kind: "set",
    key: "k",
    value: "--value-files x",
  });
  for (const bad of ["SET k --value-file", "SET k --value-file a b"]) {
    const r = parseReplLine(bad);
    strictEqual(r.kind, "error", bad);
    strictEqual(
      (r as { message: string }).message.startsWith("usage: SET <key> --value-file <file>"),
      true,
      bad,
    );
  }
});

Deno.test("GET takes exactly one key", () => {
  deepStrictEqual(parseReplLine("get name"), { kind: "get", key: "name" });
  strictEqual(parseReplLine("GET a b").kind, "error");
  deepStrictEqual(parseReplLine("GET"), { kind: "error", message: "usage: GET <key>" });
});

Deno.test("missing values, unterminated quotes and unknown commands are errors with a hint", () => {
  strictEqual(parseReplLine("SET k").kind, "error");
  strictEqual(parseReplLine("SET").kind, "error");
  deepStrictEqual(parseReplLine('SET "k v'), {
    kind: "error",
    message: 'unterminated quoted string (missing closing ")',
  });
  const bad = parseReplLine('SET k "bad \\q"');
  strictEqual(bad.kind === "error" && bad.message.startsWith("bad escape"), true);
  deepStrictEqual(parseReplLine("DROP k"), { kind: "error", message: 'unknown command "DROP" (type help)' });
});

Deno.test("help, exit, blank lines and comments", () => {
  strictEqual(parseReplLine("help").kind, "help");
  strictEqual(parseReplLine("?").kind, "help");
  strictEqual(parseReplLine("EXIT").kind, "exit");
  strictEqual(parseReplLine("quit").kind, "exit");
  strictEqual(parseReplLine("").kind, "empty");
  strictEqual(parseReplLine("   ").kind, "empty");
  strictEqual(parseReplLine("# a comment").kind, "empty");
});

Deno.test("DEL, CAS (value, @absent, @v=N, a quoted @ value), LIST and WATCH parse; bad forms say the usage", () => {
  deepStrictEqual(parseReplLine('DEL "my key"'), { kind: "del", key: "my key" });
  deepStrictEqual(parseReplLine("cas n 1 2"), { kind: "cas", key: "n", expect: { value: "1" }, value: "2" });
  deepStrictEqual(parseReplLine("CAS lock @absent me"), {
    kind: "cas",
    key: "lock",
    expect: { version: 0 },
    value: "me",
  });
  deepStrictEqual(parseReplLine("CAS k @v=17 x"), {
    kind: "cas",
    key: "k",
    expect: { version: 17 },
    value: "x",
  });
  deepStrictEqual(parseReplLine('CAS k "@absent" "a b"'), {
    kind: "cas",
    key: "k",
    expect: { value: "@absent" },
    value: "a b",
  });
  strictEqual(parseReplLine("CAS k @bogus x").kind, "error");
  strictEqual(parseReplLine("CAS k only").kind, "error");
  deepStrictEqual(parseReplLine("LIST"), { kind: "list", prefix: "" });
  deepStrictEqual(parseReplLine("list cfg/"), { kind: "list", prefix: "cfg/" });
  deepStrictEqual(parseReplLine("WATCH cfg/* 12"), {
    kind: "watch",
    key: "cfg/",
    prefix: true,
    fromIndex: 12,
  });
  deepStrictEqual(parseReplLine('WATCH "a*"'), { kind: "watch", key: "a*", prefix: false, fromIndex: 0 });
  deepStrictEqual(parseReplLine("WATCH *"), { kind: "watch", key: "", prefix: true, fromIndex: 0 });
  strictEqual(parseReplLine("WATCH k x").kind, "error");
  strictEqual(parseReplLine("DEL").kind, "error");
});
