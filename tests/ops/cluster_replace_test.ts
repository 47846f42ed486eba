/**
 * `raftkv cluster` run again on its folder after `admin add-node --replace` (docs/operations.md §7): it starts
 * the members of the cluster's configuration (the new node, with --join) and names the replaced node instead
 * of restarting it from its stale folder.
 */
import { ok, strictEqual } from "node:assert/strict";
import { IT } from "../integration/harness.ts";
import { consecutiveFreePorts, poll, REPO_PATH, run, spawn } from "./helpers.ts";

Deno.test(
  "cluster run again after node 3 was replaced by node 4 starts 1, 2 and 4, and names 3 instead of restarting it",
  IT,
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "raftkv-replaced-" });
    const base = consecutiveFreePorts(4, 30000);
    const mod = `${REPO_PATH}/mod.ts`;
    const clusterArgs = ["run", "-A", mod, "cluster", "--nodes", "3", "--base-port", String(base)]
      .concat(["--data-dir", dir]);
    const config = `${dir}/cluster.json`;
    const address4 = `127.0.0.1:${base + 3}`;
    const children: Deno.ChildProcess[] = [];
    try {
      const first = spawn(clusterArgs);
      children.push(first.child);
      await poll("the cluster to be up", () => first.out().includes("press Ctrl-C"), 60_000, 100);
      // The replacement, as docs/operations.md §7 does it, in the same data dir.
      const cert = await run(Deno.execPath(), [
        "run",
        "-A",
        mod,
        "certs",
        "issue",
        "--dir",
        `${dir}/certs`,
        "--node",
        "4",
      ]);
      strictEqual(cert.code, 0, cert.stderr);
      const node4 = spawn(["run", "-A", mod, "node", "--id", "4", "--config", config, "--data-dir", dir]
        .concat(["--join", "--address", address4, "--quiet"]));
      children.push(node4.child);
      const add = await run(Deno.execPath(), [
        "run",
        "-A",
        mod,
        "admin",
        "add-node",
        "--id",
        "4",
        "--address",
        address4,
        "--replace",
        "3",
        "--config",
        config,
        "--timeout",
        "60s",
      ], { timeoutMs: 90_000 });
      strictEqual(add.code, 0, add.stdout + add.stderr);
      first.child.kill("SIGINT");
      strictEqual((await first.child.status).code, 0, first.out());
      node4.child.kill("SIGTERM");
      await node4.child.status;

      const again = spawn(clusterArgs);
      children.push(again.child);
      await poll("the cluster to be up again", () => again.out().includes("press Ctrl-C"), 60_000, 100);
      const out = again.out();
      ok(
        /warning: node 3 is not started: it was removed from the cluster \(.* has members 1, 2, 4\)/.test(
          out,
        ),
        out,
      );
      ok(new RegExp(`node 4  ${address4.replaceAll(".", "\\.")} .* pid \\d+`).test(out), out);
      ok(!/ node 3 {2}127\.0\.0\.1:\d+/.test(out), out);
      ok(/leader: node [124] /.test(out), out);
      again.child.kill("SIGINT");
      strictEqual((await again.child.status).code, 0, again.out());
    } finally {
      for (const c of children) {
        try {
          c.kill("SIGKILL");
        } catch { /* gone */ }
        await c.status;
      }
      await Deno.remove(dir, { recursive: true });
    }
  },
);
