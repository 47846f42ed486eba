import { openDump } from "./dump.ts";
import { assert, assertEquals } from "./testing.ts";

const LINE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (.*)$/;

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-dump-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function messages(path: string): string[] {
  return Deno.readTextFileSync(path).split("\n").slice(0, -1).map((l) => {
    const m = LINE.exec(l);
    assert(m !== null, `not a timestamped line: ${JSON.stringify(l)}`);
    return m[1];
  });
}

Deno.test("dump lines are '<ISO time> <message>' in logs_node_<id>/dump.txt, in order, none lost at close", async () => {
  await withDir(async (dir) => {
    const dump = await openDump(dir, 2, { console: false });
    assertEquals(dump.path, `${dir}/logs_node_2/dump.txt`);
    dump.info("Node 2 election timer timed out, Starting election.");
    const want = ["Node 2 election timer timed out, Starting election."];
    for (let i = 0; i < 5000; i++) {
      const m = i % 2
        ? `Leader 2 sending heartbeat & Renewing Lease`
        : `Node 2 (leader) committed the entry SET k${i} ${"v".repeat(i % 300)} to the state machine.`;
      dump.info(m);
      want.push(m);
    }
    dump.warn("Leader 2 lease renewal failed. Stepping Down.");
    want.push("WARNING Leader 2 lease renewal failed. Stepping Down.");
    await dump.close();
    assertEquals(messages(dump.path), want);
  });
});

Deno.test("a message with newlines or braces stays one literal line", async () => {
  await withDir(async (dir) => {
    const dump = await openDump(dir, 1);
    dump.info('SET {key} "a\nb"\r');
    await dump.close();
    assertEquals(messages(dump.path), ['SET {key} "a\\nb"\\r']);
  });
});

Deno.test("dumps of several nodes can be open in one process, and reopening appends", async () => {
  await withDir(async (dir) => {
    const a = await openDump(dir, 1);
    const b = await openDump(dir, 2);
    let failed = false;
    try {
      await openDump(dir, 1);
    } catch {
      failed = true;
    }
    assert(failed, "a second dump of node 1 in the same process is refused");
    a.info("one");
    b.info("two");
    await a.close();
    b.info("two again"); // node 2 still logs after node 1 closed
    a.info("ignored after close");
    await b.close();
    const a2 = await openDump(dir, 1);
    a2.info("one again");
    await a2.close();
    assertEquals(messages(a.path), ["one", "one again"]);
    assertEquals(messages(b.path), ["two", "two again"]);
  });
});

Deno.test("with console on, each line is also echoed with the node id", async () => {
  await withDir(async (dir) => {
    const seen: string[] = [];
    const original = console.info;
    console.info = (...args: unknown[]) => void seen.push(args.join(" "));
    try {
      const dump = await openDump(dir, 3, { console: true });
      dump.info("Node 3 became the leader for term 1.");
      await dump.close();
    } finally {
      console.info = original;
    }
    assertEquals(seen.length, 1);
    assert(/^\S+Z node3 Node 3 became the leader for term 1\.$/.test(seen[0]), seen[0]);
  });
});

Deno.test("a dump line is in dump.txt as soon as the code that logged it yields, before any close", async () => {
  await withDir(async (dir) => {
    const dump = await openDump(dir, 4);
    try {
      dump.info("Node 4 became the leader for term 2.");
      dump.info("Leader 4 sending heartbeat & Renewing Lease");
      await Promise.resolve();
      // What a kill -9 right now would leave behind: the file as the kernel has it.
      assertEquals(messages(dump.path), [
        "Node 4 became the leader for term 2.",
        "Leader 4 sending heartbeat & Renewing Lease",
      ]);
    } finally {
      await dump.close();
    }
  });
});
