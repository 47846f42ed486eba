/**
 * Negative controls: with one safety rule switched off (or clocks drifting beyond the budget) the simulator
 * must find a violation, within a bounded number of seeds. Each rule is tried with the targeted episode that
 * exposes it (see scenarios.ts); the random swarm finds them too (`deno task sim --break RULE`).
 */
import type { BreakRule, Episode } from "./options.ts";
import { drawOptions } from "./options.ts";
import { runSeed } from "./simulator.ts";
import { assert } from "./assert.ts";

const SEEDS_MAX = 40;

function firstCatch(
  breakRule: BreakRule,
  episodes: Episode[],
  preVote?: boolean,
): { seeds: number; names: string[] } | undefined {
  for (let i = 0; i < SEEDS_MAX; i++) {
    const r = runSeed(drawOptions(2_000_000 + i, { breakRule, episodes, durationScale: 0.5, preVote }), {
      stopAtFirstViolation: true,
    });
    if (r.violations.length > 0) return { seeds: i + 1, names: [...r.counts.keys()] };
  }
  return undefined;
}

const LEASE = ["two lease holders", "visible during another lease", "linearizability"];

const cases: [BreakRule, Episode[], string[], { preVote?: boolean }?][] = [
  ["lease-wait", ["takeover"], [...LEASE, "wait shorter than a promise"]],
  ["lease-anchor", ["takeover"], LEASE],
  ["restart-promise", ["takeover"], LEASE],
  ["commit-term", ["figure8"], [
    "leader completeness",
    "committed entry lost or changed",
    "state machine safety",
  ]],
  ["drift", ["isolateLeader", "takeover"], [...LEASE, "liveness", "wait shorter than a promise"]],
  // The margins (issue 14 part 9). Without PreVote a voter that just acked the leader grants its vote at once,
  // so the candidate's wait rests on the promises alone.
  ["promise-margin", ["driftTakeover"], LEASE, { preVote: false }],
  ["wait-margin", ["driftTakeover"], ["wait shorter than a promise"], { preVote: false }],
  ["transfer-revoke", ["transferCutOff"], LEASE],
  // Issue 11 part 5: voters restarted with a shorter lease promise only that, and peers do not refuse them.
  ["timing-mismatch", ["takeover"], LEASE],
  // Issue 11 part 4: a joint configuration that counts only its incoming voters.
  ["config-quorum", ["jointCutOff"], [
    ...LEASE,
    "leader completeness",
    "committed entry lost or changed",
    "state machine safety",
    "election safety",
  ]],
  // The node loop's clock-sanity check (issue 14 part 8) switched off: a leader whose clock stopped serves on.
  ["clock-check", ["stoppedClock"], LEASE],
  // Issue 16: a follower answers a ReadIndex read without waiting until it has applied the read index.
  ["read-index", ["chaos"], ["linearizability"]],
  ["snapshot-index", ["crashFollowers", "chaos"], [
    "core threw", // the core's invariant check: its commit index went back
    "commit index went backwards",
    "snapshot rolled back",
    "state machine safety",
    "linearizability",
  ]],
];

for (const [rule, episodes, expected, opts] of cases) {
  Deno.test(`with ${rule} broken, the ${episodes.join("/")} episodes find a violation within ${SEEDS_MAX} seeds`, () => {
    const found = firstCatch(rule, episodes, opts?.preVote);
    assert(found !== undefined, `${rule}: no violation in ${SEEDS_MAX} seeds`);
    assert(
      found.names.some((n) => expected.includes(n)),
      `${rule}: caught as ${found.names.join(", ")}, expected one of ${expected.join(", ")}`,
    );
    console.log(`${rule}: caught after ${found.seeds} seeds as ${found.names.join(", ")}`);
  });
}
