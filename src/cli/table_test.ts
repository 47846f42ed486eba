import { strictEqual } from "node:assert/strict";
import { formatTable } from "./table.ts";

Deno.test("a table pads columns to the widest cell and right-aligns numbers", () => {
  const out = formatTable(
    [{ header: "ID", align: "right" }, { header: "ROLE" }, { header: "TERM", align: "right" }],
    [["1", "leader", "12"], ["10", "follower", "3"]],
  );
  strictEqual(out, ["ID  ROLE      TERM", " 1  leader      12", "10  follower     3"].join("\n"));
});

Deno.test("a table line never ends with spaces", () => {
  const out = formatTable([{ header: "A" }, { header: "NOTE" }], [["x", ""], ["yy", "down"]]);
  strictEqual(out, ["A   NOTE", "x", "yy  down"].join("\n"));
});
