/**
 * The simulated disk: what a crash leaves of unsynced writes, what recovery (the file store's own logic) makes
 * of it, and that the default seed mix meets the disk faults.
 */
import type { Entry } from "../../src/raft/types.ts";
import { assert } from "./assert.ts";
import { type DiskHost, type DiskOptions, SimDisk } from "./disk.ts";
import { drawOptions } from "./options.ts";
import { Prng } from "./prng.ts";
import { runSeed } from "./simulator.ts";

const QUIET: DiskOptions = {
  latencyMsMin: 1,
  latencyMsMax: 1,
  fsyncFailChance: 0,
  enospcChance: 0,
  bitFlips: 0,
};

/** A host whose scheduled completions run when `flush` is called. */
class Host implements DiskHost {
  nowMs = 0;
  faultsOn = true;
  readonly pending: (() => void)[] = [];
  schedule(_atMs: number, run: () => void): void {
    this.pending.push(run);
  }
  flush(): void {
    while (this.pending.length > 0) this.pending.shift()!();
  }
}

const entry = (index: number, term = 1): Entry => ({
  index,
  term,
  command: { op: "set", key: `k${index}`, value: `value ${index}`, clientId: "c", seq: index },
});

function saveEntries(disk: SimDisk, host: Host, from: number, to: number, commitIndex?: number): void {
  const { store } = disk.store ? { store: disk.store } : disk.open(host, () => 1);
  const entries = [];
  for (let i = from; i <= to; i++) entries.push(entry(i));
  let done = false;
  store.save({ hardState: { term: 1, votedFor: 1 }, appendFrom: from, entries, commitIndex }, (e) => {
    assert(e === undefined, String(e));
    done = true;
  });
  host.flush();
  assert(done, "the save completed");
}

Deno.test("a synced save survives a crash; an unsynced one is kept, lost or torn, and recovery cuts a torn tail", () => {
  const outcomes = new Set<string>();
  for (let seed = 1; seed <= 60 && outcomes.size < 3; seed++) {
    const host = new Host();
    const disk = new SimDisk(1, QUIET, new Prng(seed), () => {});
    saveEntries(disk, host, 1, 5);
    // An unsynced save of entries 6..9: its completion never runs before the crash.
    disk.store!.save({ appendFrom: 6, entries: [6, 7, 8, 9].map((i) => entry(i)) }, () => {});
    const what = disk.crash();
    const { loaded } = disk.open(host, () => 2);
    assert(loaded.entries.length >= 5, `synced entries survive (${loaded.entries.length}, ${what})`);
    for (let i = 0; i < loaded.entries.length; i++) assert(loaded.entries[i].index === i + 1, "no hole");
    if (what.includes("torn") && loaded.warnings.some((w) => w.includes("torn"))) outcomes.add("torn");
    else if (what.includes("kept")) outcomes.add(loaded.entries.length === 9 ? "kept" : "?");
    else if (what.includes("lost")) outcomes.add(loaded.entries.length === 5 ? "lost" : "?");
  }
  assert(!outcomes.has("?"), `an outcome did not match what recovery found: ${[...outcomes]}`);
  assert(outcomes.size === 3, `kept, lost and torn all seen: ${[...outcomes]}`);
});

Deno.test("a bit flipped in a committed record makes the node refuse to start, naming the file and line", () => {
  const host = new Host();
  const disk = new SimDisk(1, QUIET, new Prng(7), () => {});
  saveEntries(disk, host, 1, 20, 20);
  // The commit hint reaches metadata.txt with the next hard-state change (or lazily).
  disk.store!.save({ hardState: { term: 2, votedFor: 0 }, entries: [] }, () => {});
  host.flush();
  disk.crash();
  assert(disk.flipCommittedBit(), "a committed record to damage");
  let refused = "";
  try {
    disk.open(host, () => 2);
  } catch (e) {
    refused = e instanceof Error ? e.message : String(e);
  }
  assert(/corrupt entry in n1\/logs\.txt line \d+/.test(refused), `refused with "${refused}"`);
});

Deno.test("a failed fsync is reported to the driver and the save is not applied", () => {
  const host = new Host();
  const disk = new SimDisk(1, { ...QUIET, fsyncFailChance: 1 }, new Prng(3), () => {});
  const { store } = disk.open(host, () => 1);
  let error: Error | undefined;
  store.save({ hardState: { term: 1, votedFor: 1 }, appendFrom: 1, entries: [entry(1)] }, (e) => (error = e));
  host.flush();
  assert(error !== undefined && /fsync/.test(error.message), `fsync failure reported: ${error}`);
  assert(store.state.lastIndex === 0, "the failed save is not recorded as durable");
});

Deno.test("the default seed mix meets fail-stops, torn tails and refused starts within a few seeds", () => {
  const seen = { failStops: 0, tornTails: 0, refusals: 0 };
  for (let seed = 1; seed <= 40; seed++) {
    const r = runSeed(drawOptions(9_000_000 + seed, { durationScale: 0.5 }), { stopAtFirstViolation: true });
    assert(r.violations.length === 0, `seed ${9_000_000 + seed}: ${r.violations.map((v) => v.name)}`);
    seen.failStops += r.stats.disk.failStops;
    seen.tornTails += r.stats.disk.tornTails;
    seen.refusals += r.stats.disk.refusals;
    if (seen.failStops > 0 && seen.tornTails > 0 && seen.refusals > 0) break;
  }
  assert(seen.failStops > 0 && seen.tornTails > 0 && seen.refusals > 0, JSON.stringify(seen));
});
