import { deepStrictEqual } from "node:assert/strict";
import { loadHistory, saveHistory } from "./repl.ts";

Deno.test("REPL history survives a save and a load, newest first in memory, oldest first on disk", async () => {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-history-" });
  try {
    const path = `${dir}/.raftkv_history`;
    saveHistory(path, ["GET b", "SET b 2", "SET a 1"]);
    deepStrictEqual(await Deno.readTextFile(path), "SET a 1\nSET b 2\nGET b\n");
    deepStrictEqual(loadHistory(path), ["GET b", "SET b 2", "SET a 1"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("REPL history problems are ignored: a missing file loads as empty, an unwritable path is skipped", () => {
  deepStrictEqual(loadHistory("/nonexistent/dir/.raftkv_history"), []);
  deepStrictEqual(loadHistory(undefined), []);
  saveHistory("/nonexistent/dir/.raftkv_history", ["SET a 1"]); // must not throw
});
