import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { utf8Length } from "./raft_node.ts";

Deno.test("utf8Length counts the bytes TextEncoder writes, lone surrogates included", () => {
  const enc = new TextEncoder();
  for (
    const s of ["", "abc", "é", "日本語", "😀", "a\ud800b", "\udc00", "x😀y\ud83d", "\ud83d\ude00\ud83d"]
  ) {
    assertEquals(utf8Length(s), enc.encode(s).length, JSON.stringify(s));
  }
});
