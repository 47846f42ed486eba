/**
 * dump.txt stays within its configured bound on a running cluster, idle and under writes with large values:
 * every file ≤ dumpMaxBytes, at most dumpMaxFiles rotated files, and large values cut in the lines.
 *
 * The idle phase lasts RAFTKV_DUMP_IDLE_S seconds (default 6, enough for several rotations at the small bound
 * used here); set it higher for a soak run.
 */
import { ok, strictEqual } from "node:assert/strict";
import { IT, type LocalCluster, withCluster } from "../integration/harness.ts";
import { poll } from "./helpers.ts";

const MAX_BYTES = 16_384;
const MAX_FILES = 2;
const IDLE_S = Number(Deno.env.get("RAFTKV_DUMP_IDLE_S") ?? "6");

/** Every dump file of every node, with its size; fails on a bound crossed. */
function checkBound(c: LocalCluster, phase: string): Map<string, number> {
  const all = new Map<string, number>();
  for (const id of c.ids) {
    const files = [...Deno.readDirSync(c.nodeDir(id))].filter((e) => e.name.startsWith("dump.txt"));
    ok(files.length <= 1 + MAX_FILES, `${phase}: node ${id} keeps ${files.map((f) => f.name)}`);
    for (const f of files) {
      const size = Deno.statSync(`${c.nodeDir(id)}/${f.name}`).size;
      ok(size <= MAX_BYTES, `${phase}: node ${id} ${f.name} is ${size} bytes > ${MAX_BYTES}`);
      all.set(`${id}/${f.name}`, size);
    }
  }
  return all;
}

Deno.test(
  "dump.txt stays under its configured bound through an idle run and a write-heavy run",
  IT,
  async () => {
    await withCluster({
      nodes: 3,
      name: "dump-bound",
      extraConfig: { dumpMaxBytes: MAX_BYTES, dumpMaxFiles: MAX_FILES, maxValueBytes: 100_000 },
    }, async (c) => {
      await c.leader();
      // Idle: heartbeats only (20 a second at the harness's timings), checked as it goes.
      const idleUntil = performance.now() + IDLE_S * 1000;
      while (performance.now() < idleUntil) {
        checkBound(c, "idle");
        await new Promise((r) => setTimeout(r, 250));
      }
      await poll(
        "an idle rotation on every node",
        () => {
          const files = checkBound(c, "idle");
          return c.ids.every((id) => files.has(`${id}/dump.txt.1`));
        },
        30_000,
        100,
      );

      // Write-heavy: 60 KB values, many at once.
      const client = c.client();
      const big = "v".repeat(60_000);
      for (let round = 0; round < 6; round++) {
        await Promise.all(Array.from({ length: 10 }, (_, i) => client.set(`big${round}-${i}`, big)));
        checkBound(c, `writes, round ${round}`);
      }
      const folder = c.nodeDir(c.ids[0]);
      const dump = [...Deno.readDirSync(folder)].filter((e) => e.name.startsWith("dump.txt"))
        .flatMap((e) => Deno.readTextFileSync(`${folder}/${e.name}`).split("\n"));
      const line = dump.find((l) => l.includes("committed the entry SET big"));
      ok(line, "a committed SET line is in the kept dump files");
      ok(line.endsWith("…(60000 bytes) to the state machine."), line);
      ok(line.length < 400, `the line is ${line.length} characters`);
      // Keep checking while the heartbeats go on until every node has used all its rotated files.
      await poll(
        "every node to fill its rotated files",
        () => {
          const files = checkBound(c, "after the writes");
          return c.ids.every((id) => files.has(`${id}/dump.txt.${MAX_FILES}`));
        },
        60_000,
        100,
      );
      strictEqual((await client.get("big5-9")).value, big, "the value itself is whole");
    });
  },
);
