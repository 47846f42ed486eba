/**
 * Running many seeds: one seed's outcome as a compact, structured-clone-friendly summary (so worker threads
 * can hand it back), and the one-line rendering the CLI prints for a failing seed.
 *
 * @module
 */
import { drawOptions, type OptionOverrides } from "./options.ts";
import { runSeed } from "./simulator.ts";

export interface SeedOutcome {
  readonly seed: number;
  readonly nodes: number;
  /** Violation name → count. */
  readonly counts: Record<string, number>;
  /** The first violation: name and description. */
  readonly first?: { readonly name: string; readonly atMs: number; readonly detail: string };
  readonly linearizabilityUnknown: boolean;
  readonly opsOk: number;
  readonly leadersElected: number;
  readonly events: number;
  readonly wallMs: number;
}

export function runOne(seed: number, overrides: OptionOverrides): SeedOutcome {
  const started = performance.now();
  const options = drawOptions(seed, overrides);
  const r = runSeed(options, { stopAtFirstViolation: true });
  const first = r.violations[0];
  return {
    seed,
    nodes: options.nodeCount,
    counts: Object.fromEntries(r.counts),
    first: first && { name: first.name, atMs: first.atMs, detail: first.detail },
    linearizabilityUnknown: r.linearizability?.ok === "unknown",
    opsOk: r.stats.opsOk,
    leadersElected: r.stats.leadersElected,
    events: r.stats.events,
    wallMs: performance.now() - started,
  };
}

export function describeFailure(o: SeedOutcome, overrides: OptionOverrides): string {
  const f = o.first!;
  const detail = f.detail.length > 400 ? `${f.detail.slice(0, 400)}…` : f.detail;
  const replay = [`--seed ${o.seed}`];
  if (overrides.nodes !== undefined) replay.push(`--nodes ${overrides.nodes}`);
  if (overrides.breakRule !== undefined) replay.push(`--break ${overrides.breakRule}`);
  if (overrides.durationScale !== undefined) replay.push(`--scale ${overrides.durationScale}`);
  if (overrides.episodes !== undefined) replay.push(`--episodes ${overrides.episodes.join(",")}`);
  if (overrides.preVote !== undefined) replay.push(`--prevote ${overrides.preVote ? "on" : "off"}`);
  return `seed ${o.seed} (${o.nodes} nodes): ${f.name} at ${f.atMs.toFixed(3)}ms: ${detail} ` +
    `[replay: deno task sim ${replay.join(" ")} --verbose]`;
}
