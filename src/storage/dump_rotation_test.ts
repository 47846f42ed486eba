import { describeEvent } from "../raft/describe.ts";
import { openDump } from "./dump.ts";
import { assert, assertEquals } from "./testing.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-dump-rot-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function sizes(folder: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const e of Deno.readDirSync(folder)) {
    if (e.name.startsWith("dump.txt")) out.set(e.name, Deno.statSync(`${folder}/${e.name}`).size);
  }
  return out;
}

Deno.test("dump.txt is rotated by size and never keeps more than maxFiles old files, the newest lines last", async () => {
  await withDir(async (dir) => {
    const maxBytes = 8192, maxFiles = 3;
    const dump = await openDump(dir, 4, { maxBytes, maxFiles });
    const folder = `${dir}/logs_node_4`;
    let total = 0;
    for (let i = 0; i < 4000; i++) {
      dump.info(`Leader 4 sending heartbeat & Renewing Lease ${i}`);
      total += 70;
      if (i % 50 === 0) {
        await Promise.resolve(); // let the batch go out, as the node loop does between turns
        for (const [name, size] of sizes(folder)) assert(size <= maxBytes, `${name} is ${size} bytes`);
      }
    }
    await dump.close();
    const files = sizes(folder);
    assert(total > (1 + maxFiles) * maxBytes, "the test wrote enough to rotate several times");
    assertEquals([...files.keys()].sort(), ["dump.txt", "dump.txt.1", "dump.txt.2", "dump.txt.3"]);
    for (const [name, size] of files) assert(size <= maxBytes, `${name} is ${size} bytes > ${maxBytes}`);
    const newest = Deno.readTextFileSync(`${folder}/dump.txt`).trimEnd().split("\n").at(-1)!;
    assert(newest.endsWith("Renewing Lease 3999"), newest);
    const older = Deno.readTextFileSync(`${folder}/dump.txt.1`).trimEnd().split("\n").at(-1)!;
    const n = Number(older.split(" ").at(-1));
    const first = Number(Deno.readTextFileSync(`${folder}/dump.txt`).split("\n")[0].split(" ").at(-1));
    assertEquals(first, n + 1, "dump.txt continues where dump.txt.1 stops");
  });
});

Deno.test("a 60 KB value is cut in its dump line, which keeps the assignment's wording and shows the byte length", () => {
  const value = "é".repeat(30_000); // 60,000 UTF-8 bytes
  const line = describeEvent(2, {
    kind: "committed",
    role: "leader",
    entry: { index: 7, term: 3, command: { op: "set", key: "big", value, clientId: "", seq: 0 } },
  }, 128);
  assert(line.startsWith("Node 2 (leader) committed the entry SET big "), line);
  assert(line.endsWith("…(60000 bytes) to the state machine."), line);
  assert(line.length < 200, `line is ${line.length} characters`);
  const short = describeEvent(2, {
    kind: "committed",
    role: "follower",
    entry: { index: 8, term: 3, command: { op: "set", key: "name1", value: "Jon", clientId: "", seq: 0 } },
  }, 128);
  assertEquals(short, "Node 2 (follower) committed the entry SET name1 Jon to the state machine.");
});

Deno.test("a planned transfer's election is logged as such, not as an election timer timeout", () => {
  const line = describeEvent(3, { kind: "transferElection", from: 1, term: 4 });
  assert(!line.includes("timed out"), line);
  assert(line.includes("Leader 1") && line.includes("Starting election"), line);
});
