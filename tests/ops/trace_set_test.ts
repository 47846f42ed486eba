import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { metricSum, parseMetrics } from "../../scripts/trace_set.ts";

const REPO = decodeURIComponent(new URL("../../", import.meta.url).pathname).replace(/\/$/, "");

Deno.test("metrics text is parsed into samples and summed by name and labels", () => {
  const m = parseMetrics([
    "# HELP raftkv_client_request_duration_seconds client GET/SET",
    "# TYPE raftkv_client_request_duration_seconds histogram",
    'raftkv_client_request_duration_seconds_sum{op="set",outcome="ok"} 0.5',
    'raftkv_client_request_duration_seconds_sum{op="set",outcome="notLeader"} 0.25',
    'raftkv_client_request_duration_seconds_sum{op="get",outcome="ok"} 4',
    "raftkv_entries_committed_total 12",
    "",
  ].join("\n"));
  assertEquals(m.size, 4);
  assertEquals(metricSum(m, "raftkv_client_request_duration_seconds_sum", { op: "set" }), 0.75);
  assertEquals(metricSum(m, "raftkv_client_request_duration_seconds_sum", { op: "set", outcome: "ok" }), 0.5);
  assertEquals(metricSum(m, "raftkv_client_request_duration_seconds_sum"), 4.75);
  assertEquals(metricSum(m, "raftkv_entries_committed_total"), 12);
  assertEquals(metricSum(m, "raftkv_entries_committed"), 0);
});

Deno.test("trace_set reports a cluster's SETs from the client, the leader's metrics and dump.txt", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${REPO}/scripts/trace_set.ts`, "--sets", "3", "--warmup", "5"],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert(out.success, `${text}\n${new TextDecoder().decode(out.stderr)}`);
  assert(/^3 SETs, 1 in flight, to the leader \(node [123]\)/m.test(text), text);
  assert(/^client round trip µs: p50 \d+, min \d+, max \d+$/m.test(text), text);
  // The leader's handler saw exactly the 3 traced SETs (the warm-up is before the first scrape).
  assert(/answer \(raftkv_client_request_duration_seconds, SET\): 3 requests, mean \d+ µs/.test(text), text);
  assert(/µs outside the node's handler/.test(text), text);
  // The leader committed the 3 entries and fsynced at least once per SET.
  const leaderLine = text.split("\n").find((l) => / \(leader\): /.test(l));
  assert(
    leaderLine && /: ([3-9]|\d\d+) fsyncs, mean \d+ µs/.test(leaderLine) &&
      /3 entries committed/.test(leaderLine),
    text,
  );
  assertEquals(text.split("\n").filter((l) => /^node [123]( \(leader\))?: \d+ fsyncs/.test(l)).length, 3);
  // dump.txt: the leader received the first traced SET within the window.
  assert(/^ {2}\+\d+ ms {2}node [123]: Node [123] \(leader\) received a SET request\.$/m.test(text), text);
});
