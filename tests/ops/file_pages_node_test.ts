/**
 * A real node (spawned as the test harness runs it: `deno run -A` with the release's V8 flags) gives back its
 * executable's cold pages once it is quiet after start (src/ops/file_pages.ts, src/ops/idle_gc.ts
 * `collectAtStart`): its RssFile falls from the ~56–60 MiB the executable keeps mapped after start-up to well
 * under 45 MiB (24–29 MiB in docs/benchmarks.md), and it keeps serving writes and reads afterwards.
 */
import { ok, strictEqual } from "node:assert/strict";
import { LocalCluster } from "../integration/harness.ts";
import { poll } from "./helpers.ts";

function rssFileKb(pid: number): number {
  return Number(/RssFile:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))?.[1] ?? NaN);
}

Deno.test({
  name: "a quiet node releases its executable's cold pages and keeps serving",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const c = await LocalCluster.start({ nodes: 1, name: "file-pages", insecure: true });
    try {
      const pid = Number(Deno.readTextFileSync(`${c.nodeDir(1)}/lock`).trim().slice(4));
      ok(pid > 0, "the node's pid from its lock file");
      let lowest = Infinity;
      await poll(
        "RssFile under 45 MiB",
        () => {
          lowest = Math.min(lowest, rssFileKb(pid));
          return lowest < 45 * 1024;
        },
        30_000,
        250,
      ).catch((e) => {
        throw new Error(`${e.message} (lowest RssFile ${lowest} KiB)`);
      });
      // Code and data fault back in: the node still answers.
      const set = await c.runCli(["client", "--config", c.configPath, "set", "k", "v"]);
      strictEqual(set.code, 0, set.stderr);
      const get = await c.runCli(["client", "--config", c.configPath, "get", "k"]);
      strictEqual(get.code, 0, get.stderr);
      strictEqual(get.stdout.trim(), "v");
    } finally {
      await c.stop();
    }
  },
});
