/**
 * Graceful stop, measured: a 3-node cluster of real processes with a client writing every 10 ms.
 *
 * 1. SIGTERM the leader: it hands leadership off (revoking its lease first) and exits 0; a new leader serves;
 *    polling every node's status every ~5 ms, no poll ever sees two nodes serving reads.
 * 2. Restart it, let it catch up, then kill -9 the (new) leader: the cluster fails over by election.
 *
 * Prints `handoff: write gap SIGTERM <x> ms, kill -9 <y> ms` (the longest interval between two successful
 * writes around each event). The values are printed, not asserted, apart from a loose sanity bound: they
 * depend on the machine's load.
 */
import { ok, strictEqual } from "node:assert/strict";
import { IT, LocalCluster, type NodeStatus, sleep } from "../integration/harness.ts";

const WRITE_EVERY_MS = 10;
const POLL_EVERY_MS = 5;
const WRITES_AROUND_EVENT = 20;

/** Writes key `handoff` every 10 ms (one at a time, each retried until it succeeds or 5 s pass). */
class Writer {
  /** performance.now() of each successful write's completion. */
  readonly successes: number[] = [];
  failures = 0;
  #stop = false;
  readonly done: Promise<void>;

  constructor(c: LocalCluster) {
    const client = c.client({ clientId: "handoff-writer", timeoutMs: 5000 });
    this.done = (async () => {
      for (let n = 1; !this.#stop; n++) {
        const t0 = performance.now();
        try {
          await client.set("handoff", String(n));
          this.successes.push(performance.now());
        } catch {
          this.failures++;
        }
        await sleep(Math.max(0, WRITE_EVERY_MS - (performance.now() - t0))); // pacing, not waiting
      }
    })();
  }

  /** Successful writes completed after `t`. */
  countAfter(t: number): number {
    return this.successes.filter((s) => s > t).length;
  }

  /** The longest interval between consecutive successful writes from the last one before `from` on. */
  gapSince(from: number): number {
    const before = this.successes.filter((s) => s <= from);
    const times = [
      before.length ? before[before.length - 1] : from,
      ...this.successes.filter((s) => s > from),
    ];
    let gap = 0;
    for (let i = 1; i < times.length; i++) gap = Math.max(gap, times[i] - times[i - 1]);
    return gap;
  }

  async stop(): Promise<void> {
    this.#stop = true;
    await this.done;
  }
}

/** Polls every node's status every ~5 ms and records any poll where two nodes serve reads. */
class ServingPoller {
  polls = 0;
  readonly violations: string[] = [];
  #stop = false;
  readonly done: Promise<void>;

  constructor(c: LocalCluster) {
    this.done = (async () => {
      while (!this.#stop) {
        const t0 = performance.now();
        const all = await Promise.all(c.ids.map((id) => c.status(id, 100)));
        this.polls++;
        const serving = all.filter((s): s is NodeStatus => s?.servingReads === true);
        if (serving.length > 1) {
          this.violations.push(
            `at ${t0.toFixed(1)} ms: ` +
              serving.map((s) => `node ${s.id} (${s.role}, term ${s.term}, lease ${s.leaseRemainingMs} ms)`)
                .join(
                  " and ",
                ),
          );
        }
        await sleep(Math.max(0, POLL_EVERY_MS - (performance.now() - t0)));
      }
    })();
  }

  async stop(): Promise<void> {
    this.#stop = true;
    await this.done;
  }
}

Deno.test({
  name:
    "a SIGTERMed leader hands off and exits 0 with never two nodes serving, and the write gaps are measured",
  ...IT,
  fn: async () => {
    const c = await LocalCluster.start({ nodes: 3, name: "handoff" });
    let writer: Writer | undefined, poller: ServingPoller | undefined;
    try {
      writer = new Writer(c);
      poller = new ServingPoller(c);
      await c.waitUntil(() => writer!.countAfter(0) >= WRITES_AROUND_EVENT, 10_000, "the first writes");

      // 1. SIGTERM the leader.
      const first = await c.leader();
      const others1 = c.ids.filter((id) => id !== first.id);
      const pollsBefore = poller.polls;
      const tTerm = performance.now();
      const status = await c.kill(first.id, "SIGTERM");
      strictEqual(status.code, 0, `node ${first.id} exited ${status.code} after SIGTERM\n${await c.tails()}`);
      const second = await c.leader(10_000, others1);
      const tServed = performance.now();
      await c.waitUntil(
        () => writer!.countAfter(tServed) >= WRITES_AROUND_EVENT,
        10_000,
        "writes after the hand-off",
      );
      const gapTerm = writer.gapSince(tTerm);
      ok(poller.polls > pollsBefore, "the status poller ran during the hand-off");
      const dump = await c.readDump(first.id);
      ok(
        dump.some((l) => l.includes(`handed leadership to Node ${second.id}`)),
        `node ${first.id}'s dump.txt should record the hand-off:\n${dump.slice(-10).join("\n")}`,
      );

      // 2. Bring it back, let it catch up, then kill -9 the new leader.
      c.restart(first.id);
      const commit = (await c.status(second.id))?.commitIndex ?? 0;
      await c.waitForReplication(commit, c.ids, 10_000);
      const leader2 = await c.leader();
      const others2 = c.ids.filter((id) => id !== leader2.id);
      const tKill = performance.now();
      await c.kill(leader2.id, "SIGKILL");
      await c.leader(10_000, others2);
      const tServed2 = performance.now();
      await c.waitUntil(
        () => writer!.countAfter(tServed2) >= WRITES_AROUND_EVENT,
        10_000,
        "writes after the failover",
      );
      const gapKill = writer.gapSince(tKill);

      await writer.stop();
      await poller.stop();
      console.log(`handoff: write gap SIGTERM ${gapTerm.toFixed(0)} ms, kill -9 ${gapKill.toFixed(0)} ms`);
      console.log(
        `handoff: ${writer.successes.length} writes ok, ${writer.failures} gave up; ${poller.polls} status polls`,
      );
      strictEqual(
        poller.violations.length,
        0,
        `two nodes served reads at once:\n${poller.violations.join("\n")}`,
      );
      ok(gapTerm < 2000, `the SIGTERM write gap (${gapTerm.toFixed(0)} ms) is beyond the 2 s sanity bound`);
      ok(gapKill < 5000, `the kill -9 write gap (${gapKill.toFixed(0)} ms) is beyond the 5 s sanity bound`);
    } finally {
      await writer?.stop();
      await poller?.stop();
      await c.stop();
    }
  },
});
