/**
 * Durability of the logs folder with real processes: kill -9 under load, a torn tail, a corrupted middle
 * line, a retried SET, and a follower catching up 10,000 entries (SPEC §3, §4).
 *
 *     deno test -A tests/integration/durability_test.ts
 *
 * @module
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { IT, type LogLine, withCluster } from "./harness.ts";

function entries(lines: readonly LogLine[]): string[] {
  return lines.map((l) =>
    l.op === "SET" ? `SET ${JSON.stringify(l.key)} ${JSON.stringify(l.value)} ${l.term}` : `NO-OP ${l.term}`
  );
}

/** Runs `fn` over `items` with at most `limit` calls in flight. */
async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

Deno.test({
  name:
    "durability: kill -9 of the leader during a write burst loses no acknowledged SET and its log reloads",
  ...IT,
  fn: async () => {
    await withCluster({ nodes: 5, name: "burst" }, async (c) => {
      const leader = await c.leader();
      const acked = new Map<string, string>();
      let errors = 0;
      let stop = false;
      let tKill: number | undefined, resumedMs: number | undefined;
      const writers = Array.from({ length: 8 }, async (_, w) => {
        const client = c.client({ clientId: `burst-${w}` });
        for (let i = 0; !stop; i++) {
          const key = `w${w}-${i}`, value = `v${i}-${w}`;
          try {
            const r = await client.set(key, value, { timeoutMs: 4000 });
            acked.set(key, value);
            if (tKill !== undefined && resumedMs === undefined && r.nodeId !== leader.id) {
              resumedMs = performance.now() - tKill;
            }
          } catch {
            errors++;
          }
        }
      });
      try {
        await c.waitUntil(() => acked.size >= 300, 20_000, "300 acknowledged SETs before the crash");
        const atKill = acked.size;
        const t0 = performance.now();
        tKill = t0;
        await c.kill(leader.id, "SIGKILL");
        await c.waitUntil(
          () => acked.size >= atKill + 300,
          20_000,
          "300 more acknowledged SETs after the crash",
        );
        console.log(
          `durability: leader ${leader.id} killed at ${atKill} acks; writes resumed at the new leader ` +
            `${resumedMs?.toFixed(0)} ms after the kill -9; 300 more acked within ${
              (performance.now() - t0).toFixed(0)
            } ms`,
        );
        c.restart(leader.id);
        await c.waitFor(
          (s) => s.get(leader.id)?.role === "follower",
          10_000,
          `node ${leader.id} back as a follower`,
        );
        const atRestart = acked.size;
        await c.waitUntil(
          () => acked.size >= atRestart + 100,
          20_000,
          "100 more acknowledged SETs after the restart",
        );
      } finally {
        stop = true;
        await Promise.all(writers);
      }
      console.log(
        `durability: ${acked.size} SETs acknowledged, ${errors} failed (not acknowledged) during the burst`,
      );

      // Every acknowledged SET is readable from the cluster.
      const reader = c.client({ clientId: "burst-reader" });
      const missing: string[] = [];
      await pool([...acked], 16, async ([k, v]) => {
        const got = (await reader.get(k, { timeoutMs: 10_000 })).value;
        if (got !== v) missing.push(`${k}: want ${v} got ${JSON.stringify(got)}`);
      });
      deepStrictEqual(missing, [], `acknowledged SETs missing: ${missing.slice(0, 10).join("; ")}`);

      // The restarted node caught up, and its logs.txt parses and matches the leader's committed prefix.
      const now = await c.leader();
      const target = (await c.status(now.id))!;
      await c.waitFor(
        (s) => (s.get(leader.id)?.commitIndex ?? 0) >= target.commitIndex,
        20_000,
        `node ${leader.id} to commit up to ${target.commitIndex}`,
      );
      const want = entries(await c.readLogs(now.id)).slice(0, target.commitIndex);
      await c.waitUntil(
        async () =>
          JSON.stringify(entries(await c.readLogs(leader.id)).slice(0, want.length)) === JSON.stringify(want),
        10_000,
        `node ${leader.id}'s logs.txt to hold the ${want.length} committed entries`,
      );
      const restarted = await c.readLogs(leader.id);
      const keys = new Set(restarted.filter((e) => e.op === "SET").map((e) => e.key));
      const absent = [...acked.keys()].filter((k) => !keys.has(k));
      deepStrictEqual(absent.slice(0, 10), [], `acknowledged keys absent from node ${leader.id}'s logs.txt`);
      const sessions = restarted.filter((e) => e.op === "SET").map((e) => `${e.clientId}/${e.seq}`);
      console.log(
        `durability: node ${leader.id}'s logs.txt: ${restarted.length} lines, ` +
          `${
            sessions.length - new Set(sessions).size
          } re-appended retries (same session and seq, applied once)`,
      );
      for (let i = 1; i < restarted.length; i++) {
        ok(
          restarted[i].term >= restarted[i - 1].term,
          `terms never decrease: line ${i + 1}: ${restarted[i].raw}`,
        );
      }
    });
  },
});

Deno.test({
  name: "durability: a torn last line of logs.txt is dropped with a warning and the node rejoins",
  ...IT,
  fn: async () => {
    await withCluster({ nodes: 3, name: "torn" }, async (c) => {
      const leader = await c.leader();
      const client = c.client();
      for (let i = 0; i < 5; i++) await client.set(`t${i}`, `v${i}`);
      const f = c.ids.find((id) => id !== leader.id)!;
      await c.waitForReplication((await c.status(leader.id))!.lastLogIndex);
      await c.kill(f, "SIGKILL");
      const before = await c.readLogs(f);
      const file = await Deno.open(c.logsPath(f), { append: true });
      await file.write(new TextEncoder().encode("SET torn-key half-a-val"));
      file.close();

      c.restart(f);
      const warning = await c.waitForDump(f, /torn/i, 10_000);
      console.log(`durability: torn tail warning: ${warning}`);
      ok(warning.includes("logs.txt"), `the warning names the file: ${warning}`);
      for (let i = 5; i < 8; i++) await client.set(`t${i}`, `v${i}`);
      const target = (await c.status(leader.id))!;
      await c.waitFor(
        (s) => s.get(f)?.role === "follower" && s.get(f)!.lastLogIndex >= target.lastLogIndex,
        10_000,
        `node ${f} to rejoin at index ${target.lastLogIndex}`,
      );
      const text = await Deno.readTextFile(c.logsPath(f));
      ok(!text.includes("torn-key"), "the torn line is gone");
      ok(text.endsWith("\n"), "logs.txt ends with a complete line");
      const logs = await c.readLogs(f);
      deepStrictEqual(entries(logs).slice(0, before.length), entries(before), "the complete lines survived");
      await c.waitUntil(
        async () =>
          JSON.stringify(entries(await c.readLogs(f))) ===
            JSON.stringify(entries(await c.readLogs(leader.id))),
        5000,
        `node ${f}'s logs.txt to equal the leader's`,
      );
      ok(c.isRunning(f));
    });
  },
});

Deno.test({
  name:
    "durability: a corrupted middle line of logs.txt stops the node with an error naming the file and line",
  ...IT,
  fn: async () => {
    await withCluster({ nodes: 3, name: "corrupt" }, async (c) => {
      const leader = await c.leader();
      const client = c.client();
      for (let i = 0; i < 6; i++) await client.set(`key${i}`, `value${i}`);
      const f = c.ids.find((id) => id !== leader.id)!;
      await c.waitForReplication((await c.status(leader.id))!.lastLogIndex);
      await c.kill(f, "SIGKILL");
      const text = await Deno.readTextFile(c.logsPath(f));
      const lines = text.split("\n");
      const n = lines.length - 1;
      ok(n >= 5, `enough lines: ${n}`);
      const idx = Math.floor(n / 2); // 0-based, neither the first nor the last line
      const line = lines[idx];
      ok(line.startsWith("SET key"), `a SET line in the middle: ${line}`);
      lines[idx] = line.replace("SET key", "SET kez"); // one character flipped
      await Deno.writeTextFile(c.logsPath(f), lines.join("\n"));
      const lineNo = idx + 1;

      c.restart(f);
      const st = await c.exitStatus(f, 15_000);
      const { stdout, stderr } = await c.output(f);
      const out = stdout + stderr;
      ok(st, `the node must stop on a corrupt middle line; it still runs. Output:\n${out}`);
      ok(st.code !== 0, `non-zero exit, got ${st.code}`);
      const msg = out.split("\n").find((l) =>
        l.includes("logs.txt") && new RegExp(`line ${lineNo}\\b`).test(l)
      );
      ok(msg, `output names logs.txt and line ${lineNo}:\n${out}`);
      console.log(`durability: corrupt line ${lineNo}: exit ${st.code}: ${msg.trim()}`);
    });
  },
});

Deno.test({
  name: "durability: a SET retried with the same client id and sequence number is applied and logged once",
  ...IT,
  fn: async () => {
    await withCluster({ nodes: 3, name: "retry" }, async (c) => {
      const leader = await c.leader();
      const stub = c.stubOf(leader.id);
      const cid = "retry-client";
      const r1 = await stub.set("dup", "one", cid, 1, 2000);
      ok(r1.ok, JSON.stringify(r1));
      const r2 = await stub.set("dup", "one", cid, 1, 2000);
      ok(r2.ok, `the retry is acknowledged too: ${JSON.stringify(r2)}`);
      // Two copies of seq 2 in flight at once, then seq 3; a late retry of seq 2 must not overwrite seq 3.
      const [a, b] = await Promise.all([
        stub.set("dup", "two", cid, 2, 2000),
        stub.set("dup", "two", cid, 2, 2000),
      ]);
      ok(a.ok && b.ok, `${JSON.stringify(a)} ${JSON.stringify(b)}`);
      ok((await stub.set("dup", "three", cid, 3, 2000)).ok);
      const late = await stub.set("dup", "two", cid, 2, 2000);
      console.log(
        `durability: late retry of seq 2 answered ${JSON.stringify({ ok: late.ok, error: late.error })}`,
      );
      const g = await stub.get("dup", 1000);
      strictEqual(g.value, "three", "a late retry does not overwrite a later write");

      const last = (await c.status(leader.id))!.lastLogIndex;
      await c.waitForReplication(last);
      for (const id of c.ids) {
        const sets = await c.waitUntil(
          async () => {
            const s = (await c.readLogs(id)).filter((e) => e.op === "SET" && e.key === "dup");
            return s.some((e) => e.value === "three") && s;
          },
          5000,
          `node ${id}'s logs.txt to hold dup=three`,
        );
        deepStrictEqual(
          sets.map((e) => e.value),
          ["one", "two", "three"],
          `node ${id}: each SET once:\n${sets.map((e) => e.raw).join("\n")}`,
        );
      }
    });
  },
});

Deno.test({
  name: "durability: a follower restarted 10,000 entries behind catches up in seconds",
  ...IT,
  fn: async () => {
    // Catch-up from the log: a threshold above the 10,000 entries written, so no snapshot compacts them
    // (the default, 10,000, would; InstallSnapshot has its own tests in snapshot_test.ts).
    await withCluster(
      { nodes: 3, name: "catchup", extraConfig: { snapshotThresholdEntries: 1_000_000 } },
      async (c) => {
        const leader = await c.leader();
        const f = c.ids.find((id) => id !== leader.id)!;
        await c.kill(f, "SIGKILL");
        const base = (await c.status(f)) ?? undefined;
        strictEqual(base, undefined);

        const N = 10_000;
        let leaderId = leader.id;
        let retried = 0;
        /** One SET, retried with the same session and sequence number (so it applies once) until it commits. */
        const setOnce = async (key: string, value: string, clientId: string, seq: number) => {
          const deadline = performance.now() + 20_000;
          while (true) {
            const target = leaderId;
            try {
              const r = await c.stubOf(target).set(key, value, clientId, seq, 5000);
              if (r.ok) return;
              if (r.leaderId && r.leaderId !== target) leaderId = r.leaderId;
            } catch { /* unreachable or deadline: look for the leader */ }
            retried++;
            ok(performance.now() < deadline, `SET ${key} did not commit within 20 s`);
            if (leaderId === target) leaderId = (await c.leader(10_000)).id;
          }
        };
        const t0 = performance.now();
        // 64 sessions, each writing its share in order (a session's sequence numbers must grow).
        let next = 0;
        await Promise.all(Array.from({ length: 64 }, async (_, w) => {
          let seq = 0;
          for (let i = next++; i < N; i = next++) await setOnce(`c${i}`, `value-${i}`, `catchup-${w}`, ++seq);
        }));
        const writeMs = performance.now() - t0;
        console.log(
          `durability: wrote ${N} SETs with 64 in flight in ${(writeMs / 1000).toFixed(1)} s ` +
            `(${(N / (writeMs / 1000)).toFixed(0)} SET/s, ${retried} retried)`,
        );
        const target = await c.leader();
        const leaderSets = (await c.readLogs(target.id)).filter((e) => e.op === "SET");
        strictEqual(new Set(leaderSets.map((e) => e.key)).size, N, "every key written");
        strictEqual(
          leaderSets.length,
          N,
          `each SET logged once (${leaderSets.length} SET lines for ${N} keys)`,
        );
        const fLogs = (await c.readLogs(f)).length;
        const behind = target.lastLogIndex - fLogs;
        ok(behind >= N, `follower ${f} is ${behind} entries behind`);

        const t1 = performance.now();
        c.restart(f);
        const up = await c.waitFor((s) => s.get(f), 20_000, `node ${f} to answer after the restart`);
        const tUp = performance.now();
        await c.waitFor(
          (s) =>
            (s.get(f)?.lastLogIndex ?? 0) >= target.lastLogIndex &&
            s.get(f)!.commitIndex >= target.commitIndex,
          20_000,
          `node ${f} to catch up to index ${target.lastLogIndex}`,
        );
        const t2 = performance.now();
        const totalS = (t2 - t1) / 1000, syncS = (t2 - tUp) / 1000;
        console.log(
          `durability: follower ${f} restarted ${behind} entries behind: caught up ${
            totalS.toFixed(2)
          } s after ` +
            `the restart (${
              (behind / totalS).toFixed(0)
            } entries/s including process start-up); it answered ` +
            `status after ${
              ((tUp - t1) / 1000).toFixed(2)
            } s already at index ${up.lastLogIndex}, and took ` +
            `${syncS.toFixed(2)} s more for the remaining ${target.lastLogIndex - up.lastLogIndex} entries`,
        );
        ok(totalS < 20, `caught up in ${totalS.toFixed(1)} s`);
        const logs = await c.waitUntil(
          async () => {
            const l = await c.readLogs(f);
            return l.length >= target.lastLogIndex && l;
          },
          5000,
          `node ${f}'s logs.txt to hold ${target.lastLogIndex} lines`,
        );
        strictEqual(logs.filter((e) => e.op === "SET").length >= N, true);
      },
    );
  },
});
