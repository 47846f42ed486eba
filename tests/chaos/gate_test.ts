import { deepStrictEqual as assertEquals, ok as assert, strictEqual } from "node:assert/strict";
import type { ChaosCluster } from "./cluster.ts";
import { ReplacementError } from "./cluster.ts";
import {
  type ConfigurationView,
  judgeConfiguration,
  type LeaderView,
  PROCESS_FAULTS,
  ProcessFaultGate,
  type UnfinishedReplacement,
} from "./gate.ts";
import { FAULT_KINDS, type FaultKind, Nemesis, type Step } from "./nemesis.ts";
import { baselineRate, checkedBetween, judgeRun, operationsFloor, OPS_FLOOR_MIN } from "./run.ts";
import type { HistoryEvent } from "./history.ts";

/** The leader's view of a configuration with these voters (and learners), committed. */
function leaderWith(voters: number[], learners: number[] = [], extra: Partial<LeaderView> = {}): LeaderView {
  return {
    id: voters[0],
    commitIndex: 10,
    membershipIndex: 5,
    membership: {
      members: [
        ...voters.map((id) => ({ id, voter: true })),
        ...learners.map((id) => ({ id, voter: false })),
      ],
    },
    ...extra,
  };
}

function view(leader: LeaderView | undefined, members: number[], answering = members): ConfigurationView {
  return { leader, members, answering: new Set(answering) };
}

Deno.test("a committed configuration whose voters are the harness's members, every one answering, is whole", () => {
  assertEquals(judgeConfiguration(view(leaderWith([1, 2, 3, 4, 5]), [1, 2, 3, 4, 5])), { whole: true });
});

Deno.test("a replaced node still a voter makes the configuration not whole", () => {
  // Node 3 was killed for good, node 6 started and added, the removal of 3 never committed.
  const v = judgeConfiguration(view(leaderWith([1, 2, 3, 4, 5, 6]), [1, 2, 4, 5, 6]));
  assertEquals(v, { whole: false, reason: "voter 3 is no longer run by the harness (replaced)" });
});

Deno.test("a successor that is still a learner, or not added at all, makes the configuration not whole", () => {
  const learner = judgeConfiguration(view(leaderWith([1, 2, 4, 5], [6]), [1, 2, 4, 5, 6]));
  assertEquals(learner, { whole: false, reason: "member 6 is not a voter yet" });
  const absent = judgeConfiguration(view(leaderWith([1, 2, 4, 5]), [1, 2, 4, 5, 6]));
  assertEquals(absent, { whole: false, reason: "member 6 is not a voter yet" });
});

Deno.test("a joint configuration, or one not committed yet, is not whole", () => {
  const joint = leaderWith([1, 2, 4, 5, 6]);
  const jointView = view(
    { ...joint, membership: { ...joint.membership!, outgoingVoters: [1, 2, 3, 4, 5] } },
    [1, 2, 4, 5, 6],
  );
  assert(!judgeConfiguration(jointView).whole);
  const uncommitted = leaderWith([1, 2, 3, 4, 5], [], { commitIndex: 4, membershipIndex: 5 });
  const v = judgeConfiguration(view(uncommitted, [1, 2, 3, 4, 5]));
  assertEquals(v, { whole: false, reason: "the configuration at index 5 is not committed yet (leader 1)" });
});

Deno.test("a voter that does not answer, or no leader at all, makes the configuration not whole", () => {
  const silent = judgeConfiguration(view(leaderWith([1, 2, 3, 4, 5]), [1, 2, 3, 4, 5], [1, 2, 4, 5]));
  assertEquals(silent, { whole: false, reason: "voter 3 does not answer" });
  assertEquals(judgeConfiguration(view(undefined, [1, 2, 3, 4, 5])), { whole: false, reason: "no leader" });
});

Deno.test("the process faults are exactly the kinds that stop a node's process", () => {
  const process = FAULT_KINDS.filter((k) => PROCESS_FAULTS.has(k));
  assertEquals(process, ["kill", "kill-leader", "pause", "pause-leader", "clock-skew", "wipe", "replace"]);
});

/** A scripted cluster for the gate: a fake clock, a configuration the test changes, repairs that obey it. */
function scripted(initial: ConfigurationView) {
  const s = {
    nowMs: 0,
    current: initial,
    /** What the next repair does: finish (and make the configuration whole) or throw. */
    repairWorks: true,
    repairs: [] as string[],
    logs: [] as string[],
  };
  const whole = view(leaderWith([1, 2, 4, 5, 6]), [1, 2, 4, 5, 6]);
  const gate = new ProcessFaultGate({
    view: () => Promise.resolve(s.current),
    finish: (r: UnfinishedReplacement, budgetMs: number) => {
      s.repairs.push(`${r.dead}->${r.successor} within ${budgetMs}`);
      s.nowMs += 1000;
      if (!s.repairWorks) return Promise.reject(new Error("add-node 6 not done in time"));
      s.current = whole;
      return Promise.resolve();
    },
    now: () => s.nowMs,
    sleep: (ms) => {
      s.nowMs += ms;
      return Promise.resolve();
    },
    log: (l) => s.logs.push(l),
  }, { waitMs: 2000, repairBudgetMs: 60_000, pollMs: 500 });
  return { s, gate, whole };
}

Deno.test("network faults are never held back, and process faults run at once on a whole configuration", async () => {
  const { s, gate } = scripted(view(leaderWith([1, 2, 3, 4, 5]), [1, 2, 3, 4, 5]));
  for (const kind of FAULT_KINDS) strictEqual(await gate.admit(kind), undefined, kind);
  strictEqual(s.nowMs, 0, "no waiting");
  s.current = view(undefined, [1, 2, 3, 4, 5]);
  for (const kind of FAULT_KINDS.filter((k) => !PROCESS_FAULTS.has(k))) {
    strictEqual(await gate.admit(kind), undefined, `${kind} runs without a leader known`);
  }
  assertEquals(gate.heldBack, []);
});

Deno.test("after a replacement runs out of its budget, process faults are held back until a repair finishes it", async () => {
  // Node 3 killed for good, node 6 started as its successor, the change never committed: 3 is still a voter.
  const { s, gate } = scripted(view(leaderWith([1, 2, 3, 4, 5]), [1, 2, 4, 5, 6]));
  gate.replacementFailed(3, 6, "add-node 6 not done in time");
  s.repairWorks = false;
  const reason = await gate.admit("kill", 100_000);
  assertEquals(
    reason,
    "configuration not whole: voter 3 is no longer run by the harness (replaced) (unfinished replacement 3 → 6)",
  );
  assertEquals(gate.heldBack.map((h) => h.kind), ["kill"]);
  strictEqual(await gate.admit("replace", 100_000), reason, "a second replacement is held back too");
  strictEqual(await gate.admit("partition-halves", 100_000), undefined, "network faults go on");
  assertEquals(gate.unfinished.map((r) => [r.dead, r.successor, r.attempts]), [[3, 6, 3]]);
  strictEqual(gate.unfinished[0].lastError, "add-node 6 not done in time");
  // The next repair finishes it: the configuration is whole again, and process faults run again.
  s.repairWorks = true;
  strictEqual(await gate.admit("kill-leader", 100_000), undefined);
  strictEqual(gate.unfinished.length, 0);
  assert(gate.replacements[0].finishedAtMs !== undefined);
  strictEqual(gate.heldBack.length, 2, "the two held back steps stay on record");
});

Deno.test("a repair gets the replacement's budget, cut to what is left of the fault phase but never below 5 s", async () => {
  const { s, gate } = scripted(view(leaderWith([1, 2, 3, 4, 5]), [1, 2, 4, 5, 6]));
  gate.replacementFailed(3, 6, "timeout");
  s.repairWorks = false;
  await gate.admit("delay", Infinity);
  await gate.admit("delay", s.nowMs + 20_000);
  await gate.admit("delay", s.nowMs + 1_000);
  assertEquals(s.repairs, ["3->6 within 60000", "3->6 within 20000", "3->6 within 5000"]);
});

Deno.test("a process fault waits a while for a voter that is still starting instead of being held back", async () => {
  const { s, gate } = scripted(view(leaderWith([1, 2, 3, 4, 5]), [1, 2, 3, 4, 5], [1, 2, 4, 5]));
  const admitted = gate.admit("wipe", Infinity);
  // The gate polls every 500 ms of its clock; node 3 answers before its 2 s wait is over.
  s.current = view(leaderWith([1, 2, 3, 4, 5]), [1, 2, 3, 4, 5]);
  strictEqual(await admitted, undefined);
  // A voter that stays silent for the whole wait holds the step back; the wait stops at the phase's end, but
  // gives an election 2 s even there.
  s.current = view(leaderWith([1, 2, 3, 4, 5]), [1, 2, 3, 4, 5], [1, 2, 4, 5]);
  let t0 = s.nowMs;
  strictEqual(await gate.admit("pause", Infinity), "configuration not whole: voter 3 does not answer");
  strictEqual(s.nowMs - t0, 2000, "the whole wait (2 s in this gate)");
  t0 = s.nowMs;
  strictEqual(await gate.admit("pause", t0 + 500), "configuration not whole: voter 3 does not answer");
  strictEqual(s.nowMs - t0, 2000, "2 s even when the phase ends sooner");
});

/** A stand-in for ChaosCluster with what the nemesis's kill, replace and partition steps use. */
function fakeCluster(replaceWorks: () => boolean) {
  const events: string[] = [];
  let members = [1, 2, 3, 4, 5];
  let next = 6;
  const cluster = {
    get ids() {
      return members;
    },
    resolve: (id: number) => id,
    isRunning: (id: number) => members.includes(id),
    rate: () => 1,
    kill: (id: number) => {
      events.push(`kill ${id}`);
      return Promise.resolve();
    },
    spawn: (id: number) => events.push(`spawn ${id}`),
    replace: (dead: number) => {
      const id = next++;
      members = [...members.filter((x) => x !== dead), id];
      events.push(`replace ${dead} by ${id}`);
      return replaceWorks()
        ? Promise.resolve(id)
        : Promise.reject(new ReplacementError(dead, id, `add-node ${id} not done in time`));
    },
    net: {
      partition: (sides: number[][]) => events.push(`partition ${sides.map((x) => x.join(",")).join("|")}`),
      heal: () => events.push("heal"),
    },
  };
  return { cluster: cluster as unknown as ChaosCluster, events, members: () => members };
}

function step(kind: FaultKind, picks = [0, 0.9, 0]): Step {
  return {
    kind,
    holdMs: 0,
    quietMs: 0,
    picks,
    order: [1, 2, 3, 4, 5],
    linkMode: "drop",
    healCut: true,
    outbound: false,
    delayMs: 5,
    delayNodes: 0,
    rate: 1,
  };
}

Deno.test("after a failed replacement the nemesis kills no node until the configuration is whole again, and partitions go on", async () => {
  const fake = fakeCluster(() => false);
  let whole = false;
  let repaired = false;
  const gate = new ProcessFaultGate({
    view: () =>
      Promise.resolve(
        whole
          ? view(leaderWith(fake.members()), fake.members())
          : view(leaderWith([1, 2, 3, 4, 5]), fake.members()),
      ),
    finish: () => repaired ? Promise.resolve() : Promise.reject(new Error("still not committed")),
    now: () => performance.now(),
    sleep: () => Promise.resolve(),
    log: () => {},
  }, { waitMs: 0 });
  const nemesis = new Nemesis(fake.cluster, () => 1, () => {}, gate);
  await nemesis.runStep(step("replace"));
  await nemesis.runStep(step("kill"));
  await nemesis.runStep(step("replace"));
  await nemesis.runStep(step("partition-halves"));
  assertEquals(fake.events, ["replace 1 by 6", "partition 1,2|3,4,5", "heal"]);
  assertEquals(nemesis.records.map((r) => [r.kind, r.heldBack !== undefined]), [
    ["replace", false],
    ["kill", true],
    ["replace", true],
    ["partition-halves", false],
  ]);
  assertEquals(nemesis.counts().replace, 0, "an unfinished replacement is not counted as applied");
  assertEquals(nemesis.counts().kill, 0);
  // The repair finishes the replacement: it counts, and the next kill runs.
  repaired = true;
  whole = true;
  await nemesis.runStep(step("kill"));
  assertEquals(fake.events.slice(3), ["kill 2", "spawn 2"]);
  assertEquals(nemesis.counts().replace, 1, "a replacement finished by a repair counts");
  assertEquals(nemesis.counts().kill, 1);
});

Deno.test("the verdict is anomaly whatever else happened, then incomplete, then pass", () => {
  strictEqual(judgeRun([{ kind: "not-linearizable" }], ["replacement never finished"]), "anomaly");
  strictEqual(judgeRun([{ kind: "stale-lease" }], []), "anomaly");
  strictEqual(judgeRun([], ["fault kinds never applied: replace"]), "incomplete");
  strictEqual(judgeRun([], []), "pass");
});

Deno.test("the operations floor scales with the baseline throughput and never drops below its minimum", () => {
  strictEqual(operationsFloor(200, 90_000), 1800, "a tenth of 200/s over 90 s");
  strictEqual(operationsFloor(50, 90_000), 500, "a tenth of 50/s over 90 s is 450: the minimum holds");
  strictEqual(operationsFloor(0, 90_000), OPS_FLOOR_MIN);
  strictEqual(OPS_FLOOR_MIN, 500);
  const ev = (process: number, type: HistoryEvent["type"], time: number, f: HistoryEvent["f"] = "get") => ({
    process,
    type,
    f,
    key: "k",
    value: null,
    time,
  });
  const events = [
    ev(1, "invoke", 1),
    ev(1, "ok", 2),
    ev(2, "invoke", 3, "set"),
    ev(2, "info", 5, "set"),
    ev(3, "invoke", 4),
    ev(3, "info", 6), // a GET of unknown outcome constrains nothing
    ev(4, "invoke", 6, "cas"),
    ev(4, "fail", 7, "cas"),
    { ...ev(5, "invoke", 1), readMode: "stale" as const, maxStalenessMs: 1000 },
    ev(5, "ok", 3), // a bounded-stale read is not checked for linearizability
  ] as HistoryEvent[];
  strictEqual(checkedBetween(events, 0, 10), 2, "the ok GET and the SET of unknown outcome");
  strictEqual(checkedBetween(events, 0, 5), 1, "completions in [from, to)");
});

Deno.test("the baseline is the run's 90th percentile second of checked operations, so stalls and bursts do not move it", () => {
  const ok = (time: number): HistoryEvent => ({
    process: 1,
    type: "ok",
    f: "get",
    key: "k",
    value: null,
    time,
  });
  // 10 whole seconds from t = 1000: 8 seconds with 10 operations, one stalled (0), one burst (100).
  const events: HistoryEvent[] = [];
  for (let s = 0; s < 10; s++) {
    const n = s === 3 ? 0 : s === 7 ? 100 : 10;
    for (let i = 0; i < n; i++) events.push(ok(1000 + s * 1000 + i));
  }
  events.push(ok(500), ok(11_500)); // outside the span
  strictEqual(baselineRate(events, 1000, 11_000), 10);
  strictEqual(baselineRate(events, 1000, 11_000, 1), 100, "the highest second");
  strictEqual(baselineRate(events, 1000, 11_000, 0), 0, "the stalled second");
  strictEqual(baselineRate(events, 1000, 1500), 0, "no whole second");
  strictEqual(baselineRate(events, NaN, NaN), 0, "a run that never started its traffic");
});
