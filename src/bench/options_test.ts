import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import { CommanderError } from "@commander-js/extra-typings";
import { parseBenchArgs } from "../cli/bench_cmd.ts";
import { CliError } from "../cli/common.ts";
import { split } from "./fork.ts";
import { childArgs, DEFAULT_DURATION_MS, parseRatio } from "./options.ts";
import { makeValue } from "./load.ts";

Deno.test("bench defaults: 16 in flight for 10 s, half GETs, 1000 keys, 100-byte values, leader mode", async () => {
  const o = await parseBenchArgs([]);
  strictEqual(o.concurrency, 16);
  strictEqual(o.durationMs, DEFAULT_DURATION_MS);
  strictEqual(o.ops, undefined);
  strictEqual(o.readRatio, 0.5);
  strictEqual(o.keys, 1000);
  strictEqual(o.valueSize, 100);
  strictEqual(o.mode, "leader");
  strictEqual(o.json, false);
  strictEqual(o.processes, 1);
  strictEqual(o.timeoutMs, 5000);
  strictEqual(o.child, false);
});

Deno.test("bench options parse: durations, counts, ratio, mode, nodes", async () => {
  const o = await parseBenchArgs([
    "--node",
    "127.0.0.1:7101",
    "--node",
    "127.0.0.1:7102",
    "--concurrency",
    "64",
    "--duration",
    "1m30s",
    "--read-ratio",
    ".9",
    "--keys",
    "10",
    "--value-size",
    "0",
    "--mode",
    "any",
    "--json",
    "--processes",
    "4",
  ]);
  deepStrictEqual(o.node, ["127.0.0.1:7101", "127.0.0.1:7102"]);
  strictEqual(o.concurrency, 64);
  strictEqual(o.durationMs, 90_000);
  strictEqual(o.readRatio, 0.9);
  strictEqual(o.keys, 10);
  strictEqual(o.valueSize, 0);
  strictEqual(o.mode, "any");
  strictEqual(o.json, true);
  strictEqual(o.processes, 4);
  const n = await parseBenchArgs(["--ops", "200", "-c", "4"]);
  strictEqual(n.ops, 200);
  strictEqual(n.durationMs, undefined);
  ok(n.timeLimitMs >= 60_000);
});

Deno.test("bench refuses bad combinations and values", async () => {
  await rejects(parseBenchArgs(["--ops", "10", "--duration", "1s"]), CliError);
  await rejects(parseBenchArgs(["--processes", "8", "--concurrency", "4"]), CliError);
  await rejects(parseBenchArgs(["--ops", "2", "--processes", "3", "--concurrency", "3"]), CliError);
  await rejects(parseBenchArgs(["--duration", "10m", "--time-limit", "1m"]), CliError);
  await rejects(parseBenchArgs(["--max-staleness", "1s"]), CliError); // only with --mode stale
  for (
    const bad of [
      ["--read-ratio", "1.5"],
      ["--read-ratio", "x"],
      ["--concurrency", "0"],
      ["--duration", "10"],
      ["--mode", "nearest"],
      ["--node", "nohostport"],
      ["--ops", "-3"],
      ["--value-size", "1.5"],
    ]
  ) {
    await rejects(parseBenchArgs(bad), CommanderError, bad.join(" "));
  }
  throws(() => parseRatio("-0.1"), RangeError);
  strictEqual(parseRatio("1"), 1);
});

Deno.test("children get their share of workers and ops, and distinct worker numbers", async () => {
  deepStrictEqual(split(10, 3), [4, 3, 3]);
  deepStrictEqual(split(2, 4), [1, 1, 0, 0]);
  const o = await parseBenchArgs(["--ops", "201", "--concurrency", "10", "--processes", "3"]);
  const all = [0, 1, 2].map((i) => childArgs(o, i, 3, "/x/cluster.json"));
  const val = (args: string[], flag: string) => args[args.indexOf(flag) + 1];
  deepStrictEqual(all.map((a) => val(a, "--concurrency")), ["4", "3", "3"]);
  deepStrictEqual(all.map((a) => val(a, "--ops")), ["67", "67", "67"]);
  deepStrictEqual(all.map((a) => val(a, "--worker-base")), ["0", "4", "7"]);
  ok(all.every((a) => a.includes("--child") && val(a, "--config") === "/x/cluster.json"));
  // a child's arguments parse back to the same settings
  const back = await parseBenchArgs(all[1]);
  strictEqual(back.child, true);
  strictEqual(back.concurrency, 3);
  strictEqual(back.ops, 67);
  strictEqual(back.workerBase, 4);
  const d = await parseBenchArgs(["--duration", "2s", "--node", "127.0.0.1:1", "-c", "2", "-p", "2"]);
  const c = await parseBenchArgs(childArgs(d, 0, 2));
  strictEqual(c.durationMs, 2000);
  deepStrictEqual(c.node, ["127.0.0.1:1"]);
});

Deno.test("values have the requested size and differ between workers", () => {
  strictEqual(makeValue(100, 1).length, 100);
  strictEqual(makeValue(0, 1), "");
  ok(makeValue(32, 1) !== makeValue(32, 2));
  ok(/^[a-z0-9]+$/.test(makeValue(500, 7)));
});
