/**
 * A node refuses to start on a damaged folder (never guessing around it), and the refusal says how to recover:
 * wipe the folder while the rest of the cluster is healthy, and the node is rebuilt from the leader.
 */
import { ok, strictEqual } from "node:assert/strict";
import { parseClusterConfig } from "../../src/config/cluster_config.ts";
import { FileLogStore } from "../../src/storage/mod.ts";
import { memoryCa } from "../../src/security/certs.ts";
import { freePorts, REPO_PATH, run } from "./helpers.ts";

async function damagedFolder(damage: (folder: string) => Promise<void>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-refusal-" });
  const port = freePorts(1)[0];
  const config = parseClusterConfig({ clusterId: "t", nodes: [{ id: 1, address: `127.0.0.1:${port}` }] });
  await Deno.writeTextFile(`${dir}/cluster.json`, JSON.stringify(config));
  const store = await FileLogStore.open(dir, 1, "t");
  const entries = [1, 2, 3].map((i) => ({
    index: i,
    term: 1,
    command: { op: "set" as const, key: `k${i}`, value: `value ${i}`, clientId: "", seq: 0 },
  }));
  await store.save({ hardState: { term: 1, votedFor: 1 }, appendFrom: 1, entries, commitIndex: 3 });
  await store.close(); // writes the commit hint: all three lines are committed
  await damage(`${dir}/logs_node_1`);
  return dir;
}

const CASES: [string, (folder: string) => Promise<void>][] = [
  ["a corrupt committed line", async (f) => {
    const text = await Deno.readTextFile(`${f}/logs.txt`);
    await Deno.writeTextFile(`${f}/logs.txt`, text.replace("value 2", "value X"));
  }],
  ["a truncated committed line", async (f) => {
    const text = await Deno.readTextFile(`${f}/logs.txt`);
    await Deno.writeTextFile(`${f}/logs.txt`, text.slice(0, text.length - 5));
  }],
  ["a missing metadata.txt", async (f) => {
    await Deno.remove(`${f}/metadata.txt`);
  }],
];

for (const [what, damage] of CASES) {
  Deno.test(`a node refuses to start on ${what}, naming the file and how to recover`, async () => {
    const dir = await damagedFolder(damage);
    try {
      const r = await run(Deno.execPath(), [
        "run",
        "-A",
        `${REPO_PATH}/mod.ts`,
        "node",
        "--id",
        "1",
        "--config",
        `${dir}/cluster.json`,
        "--data-dir",
        dir,
        "--insecure",
      ], { timeoutMs: 60_000 });
      strictEqual(r.code, 1, r.stdout + r.stderr);
      ok(/logs\.txt|metadata\.txt/.test(r.stderr), `names the file: ${r.stderr}`);
      ok(r.stderr.includes("To recover:"), r.stderr);
      ok(r.stderr.includes(`move ${dir}/logs_node_1 aside`), r.stderr);
      ok(r.stderr.includes("rest of the cluster is healthy"), r.stderr);
      strictEqual(r.stderr.trim().split("\n").length, 1, "one line");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("a node refuses to start when the CA that issued its certificate has expired, naming the file and the date", async () => {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-refusal-ca-" });
  try {
    const day = 24 * 3600 * 1000;
    const caNotAfter = new Date(Math.floor((Date.now() - 3 * day) / 1000) * 1000);
    const ca = await memoryCa({ notBefore: new Date(Date.now() - 400 * day), notAfter: caNotAfter });
    const pair = await ca.issue({ role: "node", nodeId: 1 }); // itself valid for two years
    await Deno.writeTextFile(`${dir}/ca.crt`, ca.caCert);
    await Deno.writeTextFile(`${dir}/node-1.crt`, pair.cert);
    await Deno.writeTextFile(`${dir}/node-1.key`, pair.key);
    const port = freePorts(1)[0];
    await Deno.writeTextFile(
      `${dir}/cluster.json`,
      JSON.stringify({ clusterId: "t", nodes: [{ id: 1, address: `127.0.0.1:${port}` }] }),
    );
    const r = await run(Deno.execPath(), [
      "run",
      "-A",
      `${REPO_PATH}/mod.ts`,
      "node",
      "--id",
      "1",
      "--config",
      `${dir}/cluster.json`,
      "--data-dir",
      dir,
      ...["--cacert", `${dir}/ca.crt`, "--cert", `${dir}/node-1.crt`, "--key", `${dir}/node-1.key`],
    ], { timeoutMs: 60_000 });
    strictEqual(r.code, 2, r.stdout + r.stderr);
    ok(
      r.stderr.includes(
        `the CA certificate ${dir}/ca.crt (CN=raftkv cluster CA) expired on ${caNotAfter.toISOString()}`,
      ),
      r.stderr,
    );
    strictEqual(r.stderr.trim().split("\n").length, 1, "one line");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
