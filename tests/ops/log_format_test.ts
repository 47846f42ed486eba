/**
 * `raftkv node --log-format json`: the operational log on stdout is JSON lines (for journald or a log agent),
 * while dump.txt keeps the assignment's plain text.
 */
import { ok, strictEqual } from "node:assert/strict";
import { freePorts, poll, REPO_PATH } from "./helpers.ts";

Deno.test("with --log-format json every stdout line of a node is a JSON object, and dump.txt stays text", async () => {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-logjson-" });
  const port = freePorts(1)[0];
  await Deno.writeTextFile(
    `${dir}/cluster.json`,
    JSON.stringify({ clusterId: "j", nodes: [{ id: 1, address: `127.0.0.1:${port}` }] }),
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${REPO_PATH}/mod.ts`, "node", "--id", "1", "--config", `${dir}/cluster.json`]
      .concat(["--data-dir", dir, "--log-format", "json", "--insecure"]),
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  const pump = (async () => {
    const dec = new TextDecoder();
    for await (const c of child.stdout) out += dec.decode(c, { stream: true });
  })();
  const errText = new Response(child.stderr).text();
  try {
    await poll("the node to become leader", () => out.includes("became the leader for term"), 30_000, 50);
  } finally {
    child.kill("SIGTERM");
    strictEqual((await child.status).code, 0, await errText);
    await pump;
  }
  try {
    const lines = out.trimEnd().split("\n");
    ok(lines.length >= 3, out);
    for (const l of lines) {
      const j = JSON.parse(l); // throws on a non-JSON line
      ok(
        typeof j["@timestamp"] === "string" && typeof j.message === "string" && typeof j.level === "string",
        l,
      );
      strictEqual(j.node, 1, l);
    }
    ok(lines.some((l) => JSON.parse(l).message.startsWith("node 1 serving on")), "the start-up line too");
    const dump = await Deno.readTextFile(`${dir}/logs_node_1/dump.txt`);
    ok(/^\d{4}-\d\d-\d\dT[\d:.]+Z Node 1 became the leader for term \d+\.$/m.test(dump), dump);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
