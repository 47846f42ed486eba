/**
 * Issue 11, "done when", with real processes: a 5-node cluster loses a VM for good (its leader, SIGKILL, its
 * folder deleted) while clients write and read; a new VM replaces it with the two operator commands of
 * docs/operations.md §7:
 *
 * ```sh
 * raftkv node --id 6 --address HOST:PORT --join --config cluster.json --data-dir DIR   # on the new VM
 * raftkv admin add-node --id 6 --address HOST:PORT --replace 3 --config cluster.json   # from anywhere
 * ```
 *
 * Then `admin transfer-leader --to 6`. Asserted: node 6 is a voter and the dead node no member; node 6
 * leads and serves the right values; every operation that did not succeed overlapped one of the two
 * elections (the crash, the transfer), and there are few of them; the whole history (the chaos harness's
 * workload and checker) is linearizable. Waits on observed state only.
 *
 * @module
 */
import { ok as assert } from "node:assert/strict";
import { IT, withCluster } from "./harness.ts";
import { freePorts } from "../ops/helpers.ts";
import { issueCert } from "../../src/security/mod.ts";
import { checkHistory, History } from "../chaos/history.ts";
import { Workload } from "../chaos/workload.ts";
import { Rng } from "../chaos/prng.ts";
import type { NodeStatus } from "../../src/transport/api.ts";

const KEYS = ["a", "b", "c", "d"];
/** Margin around an election window in which a failed or unknown operation is blamed on the election. */
const ELECTION_MARGIN_MS = 1500;

Deno.test({
  name:
    "a dead VM is replaced by a fresh node with two commands while clients see failures only in elections",
  ...IT,
  fn: async () => {
    await withCluster({ nodes: 5, name: "replace" }, async (c) => {
      const REPLACE_ID = 6;
      const [port] = freePorts(1).filter((p) => ![...c.addresses.values()].includes(`127.0.0.1:${p}`));
      const address = `127.0.0.1:${port}`;
      // The client's view: the members it may dial (it learns the new node's address once it is added).
      let members: number[] = [...c.ids];
      const addressOf = (id: number) => id === REPLACE_ID ? address : c.addresses.get(id)!;
      const source = {
        get ids() {
          return members;
        },
        stub: (id: number) => c.stub(addressOf(id)),
      };
      const history = new History();
      const workload = new Workload(source, history, { opTimeoutMs: 2000, attemptTimeoutMs: 700 });
      const rng = new Rng("replace-node");
      for (let w = 0; w < 4; w++) {
        workload.addWorker(rng.fork(`w${w}`), {
          keys: KEYS,
          readFraction: 0.5,
          deleteFraction: 0.1,
          casFraction: 0.3,
          thinkMsMax: 20,
          roam: w === 3,
        });
      }
      const okCount = () => history.events.filter((e) => e.type === "ok").length;
      const windows: { what: string; fromMs: number; toMs: number }[] = [];
      // Elections as observed: every node polled every ~50 ms; an interval without a node serving reads, or
      // in which the serving leader changed, is an election (planned ones above, and any the machine's load
      // causes: a leader starved of CPU loses its lease).
      const observed: { fromMs: number; toMs: number }[] = [];
      let polling = true;
      const poller = (async () => {
        let prev: { t: number; leader: string } | undefined;
        while (polling) {
          const t = performance.now();
          const ids = members;
          const all = await Promise.all(ids.map(async (id) => {
            try {
              return await c.stub(addressOf(id)).status(300);
            } catch {
              return undefined;
            }
          }));
          // A poll that a majority did not answer (a status call slow under load) neither shows nor rules
          // out an election: the next answered poll tells (a new term, or still none serving).
          if (all.filter((x) => x !== undefined).length * 2 <= ids.length) continue;
          const serving = all.filter((x) => x?.servingReads).map((x) => `${x!.id}/${x!.term}`).sort().join(
            ",",
          );
          if (prev && (serving === "" || serving !== prev.leader)) observed.push({ fromMs: prev.t, toMs: t });
          prev = { t, leader: serving };
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
      let vm: Deno.ChildProcess | undefined;
      try {
        await c.waitUntil(() => okCount() >= 100, 20_000, "100 operations before the crash");

        // The VM of the leader dies for good: SIGKILL, its disk gone.
        const dead = (await c.leader()).id;
        const crashAt = performance.now();
        await c.kill(dead, "SIGKILL");
        await Deno.remove(c.nodeDir(dead), { recursive: true });
        members = members.filter((id) => id !== dead);
        await c.leader(20_000, members);
        windows.push({ what: `election after node ${dead} died`, fromMs: crashAt, toMs: performance.now() });
        const okAfterCrash = okCount();
        await c.waitUntil(() => okCount() >= okAfterCrash + 50, 20_000, "operations under the new leader");

        // Command 1, on the new VM (with TLS its certificate was issued first, docs/operations.md).
        if (c.tls) await issueCert(c.certsDir, { role: "node", nodeId: REPLACE_ID });
        const vmDir = `${c.dir}/vm6`;
        await Deno.mkdir(vmDir);
        const vmArgs = [
          "run",
          "-A",
          `${c.entry[0]}`,
          "node",
          "--id",
          String(REPLACE_ID),
          "--address",
          address,
          "--join",
          "--config",
          c.configPath,
          "--data-dir",
          vmDir,
          "--quiet",
          ...(c.tls ? [] : ["--insecure"]),
        ];
        const startVm = (stdout: "null" | "piped") =>
          new Deno.Command(Deno.execPath(), {
            args: vmArgs,
            env: { NO_COLOR: "1" },
            stdin: "null",
            stdout,
            stderr: "inherit",
          })
            .spawn();
        vm = startVm("null");
        const newStatus = async (): Promise<NodeStatus | undefined> => {
          try {
            return await c.stub(address).status(500);
          } catch {
            return undefined;
          }
        };
        await c.waitUntil(newStatus, 20_000, "the new node answering");

        // Command 2, from anywhere: add it, wait for its promotion, remove the dead one.
        const t0 = performance.now();
        const add = await c.runCli([
          "admin",
          "add-node",
          "--id",
          String(REPLACE_ID),
          "--address",
          address,
          "--replace",
          String(dead),
          "--config",
          c.configPath,
          "--timeout",
          "60s",
          "--json",
        ], 90_000);
        assert(add.code === 0, `add-node --replace failed (${add.code}): ${add.stdout}${add.stderr}`);
        const reply = JSON.parse(add.stdout);
        assert(reply.ok && reply.removed === dead, add.stdout);
        console.log(
          `add-node --replace ${dead}: ${Math.round(performance.now() - t0)} ms (${add.stdout.trim()})`,
        );
        members = [...members, REPLACE_ID];
        // The same command again (as after a timeout): it finds the work done and says so.
        const again = await c.runCli([
          "admin",
          "add-node",
          "--id",
          String(REPLACE_ID),
          "--address",
          address,
          "--replace",
          String(dead),
          "--config",
          c.configPath,
          "--json",
        ], 60_000);
        assert(again.code === 0, `add-node --replace again: ${again.stdout}${again.stderr}`);
        assert(JSON.parse(again.stdout).removedIndex === 0, again.stdout);

        const st = await c.leader(10_000, members.filter((id) => id !== REPLACE_ID));
        const voters = st.membership!.members.filter((m) => m.voter).map((m) => m.id).sort();
        const want = [...members].sort();
        assert(JSON.stringify(voters) === JSON.stringify(want), `voters ${voters}, want ${want}`);
        assert(!st.membership!.outgoingVoters, "the joint phase was left");
        assert(!st.membership!.members.some((m) => m.id === dead), `node ${dead} is no member`);

        // Leadership to the new node.
        const transferAt = performance.now();
        let tr = await c.runCli([
          "admin",
          "transfer-leader",
          "--to",
          String(REPLACE_ID),
          "--config",
          c.configPath,
        ], 30_000);
        // Under load an election may be running just then: the command says so; wait for a leader, again.
        for (let i = 0; i < 5 && tr.code !== 0 && tr.stderr.includes("no leader"); i++) {
          await c.leader(20_000, members.filter((id) => id !== REPLACE_ID));
          tr = await c.runCli([
            "admin",
            "transfer-leader",
            "--to",
            String(REPLACE_ID),
            "--config",
            c.configPath,
          ], 30_000);
        }
        assert(tr.code === 0, `transfer-leader failed: ${tr.stdout}${tr.stderr}`);
        await c.waitUntil(
          async () => {
            const s = await newStatus();
            return s?.role === "leader" && s.servingReads;
          },
          20_000,
          "node 6 leading and serving reads",
        );
        windows.push({ what: "transfer to node 6", fromMs: transferAt, toMs: performance.now() });
        // The operator's commands still work with cluster.json listing only the bootstrap nodes: they find the
        // new leader through the members its followers report (`admin status` said "leader: none known" and
        // `admin snapshot`, `transfer-leader`, `add-node`, `remove-node` "no leader" while node 6 led).
        await c.waitUntil(
          async () => {
            const st = await c.runCli(["admin", "status", "--config", c.configPath, "--json"], 30_000);
            return st.code === 0 &&
              JSON.parse(st.stdout).some((r: { id: number; role: string }) =>
                r.id === REPLACE_ID && r.role === "leader"
              );
          },
          20_000,
          "admin status --config (bootstrap nodes only) showing node 6 as the leader",
        );
        await c.waitUntil(
          async () => {
            const snap = await c.runCli(["admin", "snapshot", "--config", c.configPath, "--json"], 60_000);
            return snap.code === 0 && JSON.parse(snap.stdout).id === REPLACE_ID;
          },
          20_000,
          "admin snapshot --config taken at the leader, node 6",
        );
        const byNew = () => history.events.filter((e) => e.type === "ok" && e.node === REPLACE_ID).length;
        await c.waitUntil(() => byNew() >= 100, 30_000, "100 operations answered by node 6");
        await workload.stop();

        // Node 6 serves the right values: a read of every key through it alone, checked with the history.
        for (const key of KEYS) {
          const r = await workload.readOnce(key, 10_000, [REPLACE_ID]);
          assert(
            r.kind === "ok" && r.node === REPLACE_ID,
            `final read of ${key} at node 6: ${JSON.stringify(r)}`,
          );
        }
        const verdict = checkHistory(history.events);
        assert(verdict.result.ok === true, `history: ${JSON.stringify(verdict.result).slice(0, 2000)}`);
        assert(verdict.problems.length === 0, verdict.problems.join("; "));

        // Failed operations: only while an election ran (each overlaps a window, with a margin).
        const invokes = new Map<number, number>();
        const bad: { process: number; fromMs: number; toMs: number; type: string; error?: string }[] = [];
        for (const e of history.events) {
          if (e.type === "invoke") invokes.set(e.process, e.time);
          else if (e.type === "info" || (e.type === "fail" && e.error !== "compare failed")) {
            bad.push({
              process: e.process,
              fromMs: invokes.get(e.process)!,
              toMs: e.time,
              type: e.type,
              error: e.error,
            });
          }
        }
        polling = false;
        await poller;
        const elections = [...windows, ...observed.map((o) => ({ what: "observed", ...o }))];
        const outside = bad.filter((b) =>
          !elections.some((w) =>
            b.toMs >= w.fromMs - ELECTION_MARGIN_MS && b.fromMs <= w.toMs + ELECTION_MARGIN_MS
          )
        );
        // Observed elections apart from the two planned ones (the machine's load).
        const near = (a: { fromMs: number; toMs: number }, b: { fromMs: number; toMs: number }) =>
          a.toMs >= b.fromMs - ELECTION_MARGIN_MS && a.fromMs <= b.toMs + ELECTION_MARGIN_MS;
        const unplanned = observed.filter((o) => !windows.some((w) => near(o, w))).length;
        // The failed-operation window of each election: from the first failed call to the last failed answer.
        const failedWindow = (w: { fromMs: number; toMs: number }) => {
          const hit = bad.filter((b) => near(b, w));
          return hit.length === 0
            ? "none"
            : `${hit.length} in ${
              (Math.max(...hit.map((b) => b.toMs)) - Math.min(...hit.map((b) => b.fromMs))).toFixed(0)
            } ms`;
        };
        // The longest time without a completed write (SET/DELETE/CAS that held), during each window and
        // during the replacement (the window between the two elections).
        const writes = history.events.filter((e) => e.type === "ok" && e.f !== "get").map((e) => e.time);
        const gap = (from: number, to: number) => {
          const ts = [from, ...writes.filter((t) => t > from && t < to), to];
          return Math.max(...ts.slice(1).map((t, i) => t - ts[i]));
        };
        console.log(
          `replace: longest write gap ${
            gap(windows[0].fromMs, windows[0].toMs + 2000).toFixed(0)
          } ms around the ` +
            `crash, ${
              gap(windows[0].toMs + 2000, windows[1].fromMs).toFixed(0)
            } ms during the replacement, ` +
            `${gap(windows[1].fromMs, windows[1].toMs + 2000).toFixed(0)} ms around the transfer`,
        );
        console.log(
          `replace: ${verdict.checked} operations checked, ${bad.length} failed or unknown (${
            bad.filter((b) => b.type === "info").length
          } unknown); ${
            windows.map((w) => `${w.what}: ${(w.toMs - w.fromMs).toFixed(0)} ms, failed ${failedWindow(w)}`)
              .join("; ")
          }; ${unplanned} other elections observed (load)`,
        );
        assert(
          outside.length === 0,
          `operations failed outside any election: ${JSON.stringify(outside.slice(0, 5))}`,
        );
        assert(
          bad.length <= 20 + 10 * unplanned,
          `too many failed operations (${bad.length}): ${JSON.stringify(bad.slice(0, 5))}`,
        );
        assert(verdict.checked >= 300, `only ${verdict.checked} operations checked`);

        // Its systemd unit keeps --join: restarted with it, node 6 knows it is a member (its log holds its
        // addition) and does not tell the operator to add it again.
        vm.kill("SIGTERM");
        await vm.status;
        vm = startVm("piped");
        const restarted = vm;
        let said = "";
        const reading = restarted.stdout.pipeThrough(new TextDecoderStream()).pipeTo(
          new WritableStream({ write: (chunk) => void (said += chunk) }),
        );
        await c.waitUntil(
          () => said.includes(`node ${REPLACE_ID} is a member`) || said.includes("waits to be added"),
          20_000,
          "node 6 saying whether it is a member after its restart with --join",
        );
        restarted.kill("SIGTERM");
        await restarted.status;
        await reading.catch(() => {});
        vm = undefined;
        assert(said.includes(`node ${REPLACE_ID} is a member of the cluster (voter`), said);
        assert(!said.includes("waits to be added"), said);
      } finally {
        polling = false;
        await poller;
        await workload.stop().catch(() => {});
        if (vm) {
          try {
            vm.kill("SIGKILL");
          } catch { /* gone */ }
          await vm.status;
        }
      }
    });
  },
});
