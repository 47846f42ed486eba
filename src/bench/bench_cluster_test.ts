/**
 * `raftkv bench` end to end: a real 3-node cluster on loopback (node processes), the CLI run as a process.
 */
import { ok, strictEqual } from "node:assert/strict";
import { freeRawPortOffset } from "../transport/raw/mod.ts";
import type { BenchSummary } from "./report.ts";

const MOD = new URL("../../mod.ts", import.meta.url).pathname;

function freePorts(n: number): number[] {
  const ls = Array.from({ length: n }, () => Deno.listen({ hostname: "127.0.0.1", port: 0 }));
  const ports = ls.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of ls) l.close();
  return ports;
}

async function raftkv(
  args: string[],
  timeoutMs: number,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MOD, ...args],
    env: { NO_COLOR: "1", RAFTKV_INSECURE: "1" }, // plain text, said explicitly
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs),
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test({
  name:
    "raftkv bench --ops 200 --concurrency 4 against a 3-node cluster: 200 ops, 0 errors (also with 2 processes)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "raftkv-bench-test-" });
    const ports = freePorts(3);
    const config = `${dir}/cluster.json`;
    await Deno.writeTextFile(
      config,
      JSON.stringify({
        clusterId: "bench-test",
        nodes: ports.map((p, i) => ({ id: i + 1, address: `127.0.0.1:${p}` })),
        rawPeerPortOffset: freeRawPortOffset(ports), // raw peer ports (the default) clear of other listeners
        heartbeatIntervalMs: 50,
        electionTimeoutMsMin: 300,
        electionTimeoutMsMax: 600,
        leaseDurationMs: 240,
      }),
    );
    const nodes = ports.map((_, i) =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          MOD,
          "node",
          "--id",
          String(i + 1),
          "--config",
          config,
          "--data-dir",
          dir,
          "--quiet",
          "--insecure",
        ],
        env: { NO_COLOR: "1" },
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn()
    );
    try {
      const one = await raftkv(
        ["bench", "--config", config, "--ops", "200", "--concurrency", "4", "--json"],
        40_000,
      );
      strictEqual(one.code, 0, one.stderr + one.stdout);
      const s = JSON.parse(one.stdout) as BenchSummary;
      strictEqual(s.ops, 200);
      strictEqual(s.errors, 0);
      strictEqual(s.GET.ops + s.SET.ops, 200);
      ok(s.GET.ok > 0 && s.SET.ok > 0, "both GETs and SETs ran");
      ok(s.SET.p50Ms > 0 && s.SET.p99Ms >= s.SET.p50Ms && s.SET.maxMs >= s.SET.p99Ms);
      ok(s.opsPerSec > 0);
      ok(ports.some((p) => s.target === `127.0.0.1:${p}`), `target ${s.target}`);

      const two = await raftkv(
        ["bench", "--config", config, "--ops", "200", "--concurrency", "4", "--processes", "2", "--json"],
        40_000,
      );
      strictEqual(two.code, 0, two.stderr + two.stdout);
      const m = JSON.parse(two.stdout) as BenchSummary;
      strictEqual(m.ops, 200);
      strictEqual(m.errors, 0);
      strictEqual(m.processes, 2);
    } finally {
      for (const n of nodes) {
        try {
          n.kill("SIGKILL");
        } catch {
          // gone
        }
      }
      await Promise.all(nodes.map((n) => n.status));
      await Deno.remove(dir, { recursive: true });
    }
  },
});
