/**
 * Targeted scenarios that once found core bugs, kept as regression tests (each names the replay command).
 */
import { drawOptions } from "./options.ts";
import { runSeed } from "./simulator.ts";
import { assertEquals } from "./assert.ts";

Deno.test("a new leader that steps down during its lease wait acknowledges no write the old leader's reads miss", () => {
  // Takeover with a disruptor (scenarios.ts): X wins while L, cut off, still holds its lease and serves reads;
  // X commits client SETs while it waits L's lease out, then a node with a higher term makes X step down.
  // Its held acknowledgements must not go out then (rule 7): L would still answer reads without those SETs.
  // Found as: deno task sim --seed 261 --episodes takeover --verbose
  const failures: string[] = [];
  for (let seed = 3_000_000; seed < 3_000_020; seed++) {
    const overrides = { nodes: 5, preVote: false, episodes: ["takeover" as const], durationScale: 0.5 };
    const r = runSeed(drawOptions(seed, overrides), { stopAtFirstViolation: true });
    for (const v of r.violations) {
      failures.push(
        `${v.name}: ${v.detail} [deno task sim --seed ${seed} --nodes 5 --prevote off --episodes takeover --scale 0.5 --verbose]`,
      );
    }
  }
  assertEquals(failures, []);
});
