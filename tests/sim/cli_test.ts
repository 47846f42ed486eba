/**
 * `deno task sim` end to end: the sweep's summary line and exit codes, and a replay's description.
 */
import { assert, assertEquals } from "./assert.ts";

const MAIN = new URL("./main.ts", import.meta.url).pathname;

async function sim(...args: string[]): Promise<{ code: number; out: string }> {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", MAIN, ...args],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  });
  const r = await cmd.output();
  return { code: r.code, out: new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr) };
}

Deno.test("a sweep prints its seed range first and a summary line last, and exits 0 without violations", async () => {
  const { code, out } = await sim("--seeds", "3", "--start-seed", "1", "--scale", "0.3");
  const lines = out.trim().split("\n");
  assert(lines[0].startsWith("sim: seeds 1..3 (3)"), out);
  assert(/^sim: 3 seeds, 0 violations, [0-9.]+ seeds\/min/.test(lines.at(-1)!), out);
  assertEquals(code, 0, out);
});

Deno.test("a sweep with a rule broken names the failing seed with its replay command and exits 1", async () => {
  const { code, out } = await sim(
    "--seeds",
    "20",
    "--start-seed",
    "2000000",
    "--break",
    "restart-promise",
    "--episodes",
    "takeover",
    "--scale",
    "0.5",
  );
  assert(
    /^seed \d+ \(\d nodes\): [a-z ]+ at [0-9.]+ms: .*\[replay: deno task sim --seed \d+ --break restart-promise/m
      .test(out),
    out,
  );
  assert(/sim: break restart-promise caught after \d+ seeds/.test(out), out);
  assertEquals(code, 1, out);
});

Deno.test("a replay prints the settings and one line per event with --verbose", async () => {
  const { code, out } = await sim("--seed", "5", "--scale", "0.1", "--verbose");
  assert(out.startsWith("seed 5: "), out.slice(0, 200));
  assert(
    /AppendEntries t\d+ prev=/.test(out) && /became the leader for term/.test(out),
    "no messages or events",
  );
  assert(out.trim().endsWith("no violation"), out.slice(-300));
  assertEquals(code, 0);
});
