/**
 * `raftkv cluster` and a node restarted by hand with the command it printed: Ctrl-C stops that node too, and a
 * node left over from an earlier run is named (pid, how to stop it) instead of a bare "address in use".
 */
import { ok, strictEqual } from "node:assert/strict";
import { IT } from "../integration/harness.ts";
import { consecutiveFreePorts, poll, REPO_PATH, spawn } from "./helpers.ts";

function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return false;
  }
}

/** The words of a shell command line as printed by `cluster` (words quoted with '…' when needed). */
function words(line: string): string[] {
  return [...line.matchAll(/'((?:[^']|'\\'')*)'|(\S+)/g)].map((m) => m[1] !== undefined ? m[1] : m[2]);
}

Deno.test(
  "a node restarted by hand from cluster's printed command is stopped by the cluster's Ctrl-C, and a leftover is explained",
  IT,
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "raftkv-leftover-" });
    const base = consecutiveFreePorts(3);
    const clusterArgs = ["run", "-A", `${REPO_PATH}/mod.ts`, "cluster", "--nodes", "3"]
      .concat(["--base-port", String(base), "--data-dir", dir]);
    let byHand: Deno.ChildProcess | undefined;
    try {
      const cluster = spawn(clusterArgs);
      await poll("the cluster to be up", () => cluster.out().includes("press Ctrl-C"), 60_000, 100);
      // Every node serves /metrics on the port printed next to it (gRPC port + 100 by default).
      for (let id = 1; id <= 3; id++) {
        const url = new RegExp(`node ${id} .* metrics (http://\\S+/metrics)`).exec(cluster.out())?.[1];
        strictEqual(url, `http://127.0.0.1:${base + 100 + id - 1}/metrics`, cluster.out());
        const body = await (await fetch(url!)).text();
        ok(body.includes(`raftkv_term{node="${id}"}`), body.slice(0, 500));
      }
      const pid2 = Number(/node 2 .* pid (\d+)/.exec(cluster.out())![1]);
      Deno.kill(pid2, "SIGKILL");
      const restart = await poll(
        "the restart hint",
        () => /restart it with: (.*)\n/.exec(cluster.out())?.[1],
        20_000,
      );
      const argv = words(restart);
      byHand = new Deno.Command(argv[0], {
        args: argv.slice(1),
        stdin: "null",
        stdout: "piped",
        stderr: "null",
      }).spawn();
      // Serving means its signal handlers are in place: a SIGTERM then is a graceful stop (exit 0).
      let handText = "";
      void (async () => {
        for await (const chunk of byHand!.stdout) handText += new TextDecoder().decode(chunk);
      })();
      await poll("the hand-started node to serve", () => handText.includes("serving on"), 30_000, 50);

      cluster.child.kill("SIGINT");
      const status = await cluster.child.status;
      strictEqual(status.code, 0, cluster.out());
      ok(/stopping node 2 \(pid \d+\), started outside this supervisor/.test(cluster.out()), cluster.out());
      const handStatus = await byHand.status;
      byHand = undefined;
      strictEqual(handStatus.code, 0, "the hand-started node was stopped gracefully (SIGTERM, exit 0)");

      // A leftover node (started by hand, no cluster running): the next `cluster` names it.
      const leftover = new Deno.Command(argv[0], {
        args: argv.slice(1),
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
      byHand = leftover;
      await poll(
        "the leftover node to take its folder",
        () => {
          const lock = Deno.readTextFileSync(`${dir}/logs_node_2/lock`).trim();
          return lock === `pid ${leftover.pid}` && alive(leftover.pid);
        },
        30_000,
        100,
      );
      await poll(
        "the leftover to listen",
        async () => {
          try {
            (await Deno.connect({ hostname: "127.0.0.1", port: base + 1 })).close();
            return true;
          } catch {
            return false;
          }
        },
        30_000,
        100,
      );
      const again = spawn(clusterArgs);
      const st = await again.child.status;
      strictEqual(st.code, 1, again.out());
      ok(
        again.out().includes(
          `a raftkv node left over from an earlier run still holds it (pid ${leftover.pid}`,
        ),
        again.out(),
      );
      ok(again.out().includes(`kill ${leftover.pid}`), again.out());
    } finally {
      if (byHand) {
        try {
          byHand.kill("SIGKILL");
        } catch { /* gone */ }
        await byHand.status;
      }
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "cluster keeps running while a node restarted by hand runs, after every node it started itself has exited",
  IT,
  async () => {
    // Kill a node, restart it by hand (as the README says), kill the others: `cluster` said "every node exited"
    // and stopped the hand-started node too, though it was running: one more kill took the whole cluster down.
    const dir = await Deno.makeTempDir({ prefix: "raftkv-handstarted-" });
    const base = consecutiveFreePorts(3);
    let byHand: Deno.ChildProcess | undefined;
    let cluster: ReturnType<typeof spawn> | undefined;
    try {
      cluster = spawn(["run", "-A", `${REPO_PATH}/mod.ts`, "cluster", "--nodes", "3"]
        .concat(["--base-port", String(base), "--data-dir", dir]));
      const out = cluster.out;
      await poll("the cluster to be up", () => out().includes("press Ctrl-C"), 60_000, 100);
      const pid = (id: number) => Number(new RegExp(`node ${id} .* pid (\\d+)`).exec(out())![1]);
      Deno.kill(pid(1), "SIGKILL");
      const restart = await poll(
        "the restart hint of node 1",
        () => /restart it with: (.* node --id 1 .*)\n/.exec(out())?.[1],
        20_000,
      );
      const argv = words(restart);
      byHand = new Deno.Command(argv[0], {
        args: argv.slice(1),
        stdin: "null",
        stdout: "piped",
        stderr: "null",
      })
        .spawn();
      let handText = "";
      void (async () => {
        for await (const chunk of byHand!.stdout) handText += new TextDecoder().decode(chunk);
      })();
      await poll("the hand-started node to serve", () => handText.includes("serving on"), 30_000, 50);
      Deno.kill(pid(2), "SIGKILL");
      Deno.kill(pid(3), "SIGKILL");
      await poll(
        "the note that node 1 still runs outside the supervisor",
        () => /node 1 runs outside it/.test(out()),
        20_000,
        50,
      );
      ok(alive(byHand.pid), "the hand-started node still runs");
      ok(!out().includes("every node exited"), out());
      cluster.child.kill("SIGINT");
      strictEqual((await cluster.child.status).code, 0, out());
      strictEqual((await byHand.status).code, 0, "Ctrl-C stopped the hand-started node gracefully");
      byHand = undefined;
    } finally {
      if (byHand) {
        try {
          byHand.kill("SIGKILL");
        } catch { /* gone */ }
        await byHand.status;
      }
      if (cluster) {
        try {
          cluster.child.kill("SIGKILL");
        } catch { /* gone */ }
        await cluster.child.status;
      }
      await Deno.remove(dir, { recursive: true });
    }
  },
);
