/**
 * The five scenarios of SPEC §5 (seeds/000_*), each on its own 5-node cluster of real processes.
 *
 *     deno test -A tests/integration/scenarios_test.ts
 *
 * @module
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { IT, LocalCluster, type LogLine, type NodeStatus, withCluster } from "./harness.ts";

/** op/key/value/term of each line, for comparing logs across nodes. */
function entries(lines: readonly LogLine[]): string[] {
  return lines.map((l) =>
    l.op === "SET" ? `SET ${JSON.stringify(l.key)} ${JSON.stringify(l.value)} ${l.term}` : `NO-OP ${l.term}`
  );
}

/** Resolves to true when `p` fails (rejects or answers ok:false), false when it succeeds. */
async function fails(p: Promise<{ ok: boolean }>): Promise<{ failed: boolean; why: string }> {
  try {
    const r = await p;
    return { failed: !r.ok, why: JSON.stringify(r) };
  } catch (e) {
    return { failed: true, why: e instanceof Error ? e.message : String(e) };
  }
}

function followersOf(c: LocalCluster, leader: NodeStatus): number[] {
  return c.ids.filter((id) => id !== leader.id);
}

Deno.test({
  name: "scenario 0: five nodes elect one leader and every node's logs.txt holds the NO-OP",
  ...IT,
  fn: async () => {
    await withCluster({ nodes: 5, name: "s0" }, async (c) => {
      const leader = await c.leader();
      const all = await c.waitFor(
        (s) =>
          [...s.values()].every((x) =>
            x && x.term === leader.term && x.leaderId === leader.id && x.commitIndex >= 1
          ) &&
          s,
        5000,
        `every node to follow leader ${leader.id} in term ${leader.term} and commit the NO-OP`,
      );
      const leaders = [...all.values()].filter((x) => x?.role === "leader");
      strictEqual(leaders.length, 1, `one leader:\n${LocalCluster.describe(all)}`);
      for (const id of c.ids) {
        const logs = await c.waitUntil(
          async () => {
            const l = await c.readLogs(id);
            return l.some((e) => e.op === "NO-OP" && e.term === leader.term) && l;
          },
          5000,
          `node ${id}'s logs.txt to hold NO-OP ${leader.term}`,
        );
        strictEqual(logs[0].op, "NO-OP", `node ${id}'s first log line: ${logs[0]?.raw}`);
      }
      await c.waitForDump(leader.id, `Node ${leader.id} became the leader for term ${leader.term}.`);
    });
  },
});

Deno.test({
  name:
    "scenario 1: three SETs reach every logs.txt and three GETs are answered by the leader with no peer RPC",
  ...IT,
  fn: async () => {
    await withCluster({ nodes: 5, name: "s1" }, async (c) => {
      const leader = await c.leader();
      const client = c.client();
      const kv: [string, string][] = [["name1", "Jon"], ["name2", "Arya"], ["city", "Winter fell"]];
      for (const [k, v] of kv) {
        await client.set(k, v);
      }
      for (const id of c.ids) {
        await c.waitUntil(
          async () => {
            const sets = (await c.readLogs(id)).filter((e) => e.op === "SET");
            return kv.every(([k, v]) => sets.some((e) => e.key === k && e.value === v));
          },
          5000,
          `node ${id}'s logs.txt to hold the 3 SETs`,
        );
      }

      // The GETs go straight to the leader, back to back, right after a heartbeat round: the leader's peer
      // RPC count may grow by at most the heartbeat rounds that fell in the window (n-1 RPCs each).
      const stub = c.stubOf(leader.id);
      const hb = c.timings.heartbeatIntervalMs;
      const n = c.ids.length;
      let measured: { delta: number; allowed: number; elapsedMs: number; getsMs: number } | undefined;
      for (let attempt = 0; attempt < 30 && !measured; attempt++) {
        const base = (await stub.status(500)).peerRpcCount;
        let before = base;
        const syncDeadline = performance.now() + 1000;
        while (before === base) { // a heartbeat round just went out
          ok(performance.now() < syncDeadline, "the leader's peerRpcCount did not move for 1 s");
          before = (await stub.status(500)).peerRpcCount;
        }
        const t0 = performance.now();
        const values: string[] = [];
        for (const [k] of kv) {
          const r = await stub.get(k, 1000);
          ok(r.ok, `GET ${k} at the leader: ${JSON.stringify(r)}`);
          values.push(r.value);
        }
        const getsMs = performance.now() - t0;
        const after = (await stub.status(500)).peerRpcCount;
        const elapsedMs = performance.now() - t0;
        deepStrictEqual(values, kv.map(([, v]) => v), "GET values");
        const allowed = (n - 1) * (Math.floor(elapsedMs / hb) + 1);
        if (elapsedMs < hb) {
          measured = { delta: after - before, allowed, elapsedMs, getsMs };
        } else {
          ok(
            after - before <= allowed,
            `peer RPCs grew by ${after - before} > ${allowed} in ${elapsedMs} ms`,
          );
        }
      }
      ok(
        measured,
        `could not fit 3 GETs within one heartbeat interval (${hb} ms) in 30 attempts (overloaded?)`,
      );
      const { delta, elapsedMs, getsMs } = measured;
      console.log(
        `scenario 1: 3 GETs at the leader took ${getsMs.toFixed(1)} ms; peer RPCs during the ` +
          `${elapsedMs.toFixed(1)} ms window: ${delta} (at most one heartbeat round = ${measured.allowed})`,
      );
      ok(
        delta <= measured.allowed,
        `the GETs caused peer RPCs: ${delta} > ${measured.allowed} in ${elapsedMs} ms`,
      );
      const getLine = `Node ${leader.id} (leader) received a GET request.`;
      await c.waitUntil(
        async () => (await c.readDump(leader.id)).filter((l) => l.includes(getLine)).length >= 3,
        5000,
        `the leader's dump.txt to show 3 × "${getLine}"`,
      );
    });
  },
});

Deno.test({
  name:
    "scenario 2: with one then two followers killed, SETs and GETs succeed and the restarted followers catch up",
  ...IT,
  fn: async () => {
    await withCluster({ nodes: 5, name: "s2" }, async (c) => {
      const leader = await c.leader();
      const [f1, f2] = followersOf(c, leader);
      const client = c.client();

      await c.kill(f1, "SIGKILL");
      await client.set("k1", "v1");
      strictEqual((await client.get("k1")).value, "v1");
      await c.kill(f2, "SIGKILL");
      await client.set("k2", "v2");
      await client.set("k3", "v3");
      strictEqual((await client.get("k2")).value, "v2");
      strictEqual((await client.get("k3")).value, "v3");
      strictEqual((await client.get("k1")).value, "v1");

      c.restart(f1);
      c.restart(f2);
      const now = await c.leader();
      if (now.id !== leader.id) {
        console.log(`scenario 2: leadership moved from ${leader.id} to ${now.id} meanwhile`);
      }
      const target = (await c.status(now.id))!;
      await c.waitFor(
        (s) =>
          [f1, f2].every((id) =>
            (s.get(id)?.leaderId ?? 0) !== 0 && s.get(id)!.lastLogIndex >= target.lastLogIndex &&
            s.get(id)!.commitIndex >= target.commitIndex
          ),
        10_000,
        `restarted followers ${f1}, ${f2} to reach index ${target.lastLogIndex} and commit ${target.commitIndex}`,
      );
      const want = entries(await c.readLogs(now.id)).slice(0, target.commitIndex);
      ok(want.filter((e) => e.startsWith("SET")).length === 3, `leader log: ${want.join(" | ")}`);
      for (const id of [f1, f2]) {
        await c.waitUntil(
          async () =>
            JSON.stringify(entries(await c.readLogs(id)).slice(0, want.length)) === JSON.stringify(want),
          5000,
          `node ${id}'s logs.txt to hold the leader's ${want.length} committed lines`,
        );
        await c.waitUntil(
          async () => Number((await c.readMetadata(id)).commitLength) >= target.commitIndex,
          5000,
          `node ${id}'s metadata.txt commitLength to reach ${target.commitIndex}`,
        );
      }
    });
  },
});

Deno.test({
  name:
    "scenario 3: after kill -9 of the leader a new one is elected, serves SET and GET, and the old leader rejoins as a follower",
  ...IT,
  fn: async () => {
    await withCluster({ nodes: 5, name: "s3" }, async (c) => {
      const old = await c.leader();
      const client = c.client();
      await client.set("before", "crash");
      await c.waitForReplication((await c.status(old.id))!.commitIndex);

      const t0 = performance.now();
      await c.kill(old.id, "SIGKILL");
      const others = followersOf(c, old);
      const fresh = await c.leader(10_000, others);
      const failoverMs = performance.now() - t0;
      await client.set("after1", "a");
      const firstWriteMs = performance.now() - t0;
      await client.set("after2", "b");
      strictEqual((await client.get("after1")).value, "a");
      strictEqual((await client.get("after2")).value, "b");
      strictEqual((await client.get("before")).value, "crash");
      console.log(
        `scenario 3: failover after kill -9 of leader ${old.id}: new leader ${fresh.id} serving reads after ` +
          `${failoverMs.toFixed(0)} ms; first SET acknowledged after ${firstWriteMs.toFixed(0)} ms ` +
          `(election timeout ${c.timings.electionTimeoutMsMin}-${c.timings.electionTimeoutMsMax} ms, lease ${c.timings.leaseDurationMs} ms)`,
      );
      ok(fresh.term > old.term, `term grew: ${old.term} -> ${fresh.term}`);

      c.restart(old.id);
      const target = (await c.status(fresh.id))!;
      const s = await c.waitFor(
        (s) => {
          const o = s.get(old.id);
          return o && o.role === "follower" && o.leaderId === fresh.id &&
            o.lastLogIndex >= target.lastLogIndex &&
            o.commitIndex >= target.commitIndex && s;
        },
        10_000,
        `old leader ${old.id} to rejoin as a follower of ${fresh.id} at index ${target.lastLogIndex}`,
      );
      strictEqual([...s.values()].filter((x) => x?.role === "leader").length, 1, "one leader");
      const want = entries(await c.readLogs(fresh.id)).slice(0, target.commitIndex);
      for (const [k, v] of [["before", "crash"], ["after1", "a"], ["after2", "b"]]) {
        ok(
          want.some((e) => e.startsWith(`SET ${JSON.stringify(k)} ${JSON.stringify(v)} `)),
          `committed log has ${k}=${v}`,
        );
      }
      for (const id of c.ids) {
        await c.waitUntil(
          async () =>
            JSON.stringify(entries(await c.readLogs(id)).slice(0, want.length)) === JSON.stringify(want),
          5000,
          `node ${id}'s logs.txt to start with the ${want.length} committed entries`,
        );
      }
    });
  },
});

Deno.test({
  name:
    "scenario 4: with three followers killed the leader serves a GET within its lease, refuses the SET, then steps down",
  ...IT,
  fn: async () => {
    await withCluster({ nodes: 5, name: "s4" }, async (c) => {
      const leader = await c.leader();
      const client = c.client();
      await client.set("lease-key", "lease-value");
      await c.waitForReplication((await c.status(leader.id))!.commitIndex);
      const stub = c.stubOf(leader.id);
      // Kill right after a renewal, so the GET below has (almost) the whole lease ahead of it.
      await c.waitUntil(
        async () => (await stub.status(500)).leaseRemainingMs >= c.timings.leaseDurationMs - 40,
        5000,
        "a fresh lease renewal",
      );
      const victims = followersOf(c, leader).slice(0, 3);
      const tKill = performance.now();
      await c.killMany(victims);
      const tGet = performance.now();
      const r = await stub.get("lease-key", 1000);
      const getMs = performance.now() - tGet;
      console.log(
        `scenario 4: GET sent ${(tGet - tKill).toFixed(0)} ms after killing followers ${
          victims.join(",")
        }, ` +
          `answered in ${getMs.toFixed(1)} ms: ${r.ok ? JSON.stringify(r.value) : r.error}`,
      );
      ok(r.ok, `GET within the lease must be served: ${JSON.stringify(r)}`);
      strictEqual(r.value, "lease-value");

      const tSet = performance.now();
      const set = await fails(stub.set("lease-key", "lost", "scenario4", 1, 1000));
      const setMs = performance.now() - tSet;
      ok(set.failed, `SET without a majority must fail, got ${set.why}`);
      ok(setMs < 2000, `SET failed in ${setMs.toFixed(0)} ms`);
      console.log(`scenario 4: SET failed after ${setMs.toFixed(0)} ms: ${set.why}`);

      const stepDown = `Leader ${leader.id} lease renewal failed. Stepping Down.`;
      const stepLine = await c.waitForDump(leader.id, stepDown, 5000);
      const dump = await c.readDump(leader.id);
      const stepIdx = dump.indexOf(stepLine);
      const getIdx = dump.findLastIndex((l) =>
        l.includes(`Node ${leader.id} (leader) received a GET request.`)
      );
      ok(
        getIdx >= 0 && getIdx < stepIdx,
        `the GET was received before the step-down:\n${dump.slice(-15).join("\n")}`,
      );
      const st = await c.waitFor(
        (s) => s.get(leader.id) && s.get(leader.id)!.role !== "leader" && s.get(leader.id),
        3000,
        `node ${leader.id} to stop being leader`,
      );
      strictEqual(st.servingReads, false);
      const after = await fails(stub.get("lease-key", 1000));
      ok(after.failed, `GET after the step-down must fail, got ${after.why}`);
    });
  },
});

Deno.test({
  name: "scenario 5: with only two followers alive, GET and SET fail cleanly and promptly",
  ...IT,
  fn: async () => {
    await withCluster({ nodes: 5, name: "s5" }, async (c) => {
      const leader = await c.leader();
      const followers = followersOf(c, leader);
      const survivors = followers.slice(0, 2);
      await c.killMany([leader.id, ...followers.slice(2)]);
      const tKill = performance.now();

      // Directly at each survivor: refused at once.
      for (const id of survivors) {
        const stub = c.stubOf(id);
        const t0 = performance.now();
        const g = await fails(stub.get("k", 1000));
        const s = await fails(stub.set("k", "v", "scenario5", 1, 1000));
        const ms = performance.now() - t0;
        ok(g.failed, `GET at follower ${id} must fail: ${g.why}`);
        ok(s.failed, `SET at follower ${id} must fail: ${s.why}`);
        ok(ms < 2500, `node ${id} answered GET+SET in ${ms.toFixed(0)} ms`);
      }

      // The one-shot CLI: non-zero exit within --timeout plus ~2 s, one line on stderr.
      const [a, b] = survivors.map((id) => c.addresses.get(id)!);
      const runs = [
        ["--node", a, "set", "k", "v"],
        ["--node", b, "get", "k"],
        ["--config", c.configPath, "set", "k", "v"],
        ["--config", c.configPath, "get", "k"],
      ];
      for (const args of runs) {
        const what = args.join(" ").replace(c.configPath, "cluster.json");
        const r = await c.runCli(["client", "--timeout", "1s", ...args]);
        console.log(
          `scenario 5: CLI ${what} exited ${r.code} after ${r.ms.toFixed(0)} ms: ${r.stderr.trim()}`,
        );
        ok(r.code !== 0, `CLI ${what} must fail: stdout=${r.stdout} stderr=${r.stderr}`);
        ok(r.ms < 1000 + 2500, `CLI ${what} took ${r.ms.toFixed(0)} ms (timeout 1 s)`);
        const lines = r.stderr.trim().split("\n").filter((l) => l.trim() !== "");
        strictEqual(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
        strictEqual(r.stdout.trim(), "", "nothing on stdout");
      }

      // No leader can be elected by two of five: watch them for three maximal election timeouts.
      const watchUntil = tKill + 3 * c.timings.electionTimeoutMsMax;
      do {
        const s = await c.statusAll();
        for (const id of survivors) {
          ok(s.get(id), `survivor ${id} answers status`);
          ok(s.get(id)!.role !== "leader", `no leader with 2 of 5:\n${LocalCluster.describe(s)}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      } while (performance.now() < watchUntil);
    });
  },
});
