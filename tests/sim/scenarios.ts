/**
 * The fault schedule: a director runs "episodes" one after another during the fault phase, each picked by
 * the seed's episode weights (swarm testing), then heals the network and restarts every crashed node before
 * the next. Some episodes are random chaos; others are the scenarios known to expose lease and commit bugs,
 * steered with the oracle's knowledge of the cluster (who leads, when a node's election timer fires, the
 * moment a leader commits) the way an adversarial scheduler would:
 *
 * - `takeover`: a follower X cut off from leader L campaigns just as L (still holding its lease, still
 *   reachable by clients) is cut off from everyone; variants slow the followers' acks to L (a lease timed
 *   from ack arrival overstays) and crash+restart the voters X needs, which had just acked L (a restarted
 *   voter that forgets its promise lets X lead at once), possibly with a shorter configured lease (a voter
 *   that promises only its own shorter lease after the restart lets X lead too early);
 * - `driftTakeover`: clocks at the ends of the drift budget, then a takeover timed against the margins (rules 4
 *   and 5): the candidate campaigns long after its voters last promised the old leader its lease;
 * - `transferCutOff`: a transfer after which the old leader hears from nobody (rule 8: only the revocation
 *   stops it serving);
 * - `stoppedClock`: the leader's monotonic clock stops while it is frozen (issue 14 part 8);
 * - `figure8`: the pattern of Raft Figure 8 — a leader replicates to a minority and crashes, another leader
 *   appends at the same index and crashes, the first comes back and replicates its old entry to a majority
 *   (crashing at once if it commits it by counting replicas), the second comes back and overwrites it.
 *
 * The schedule never depends on `--break`: the same seed exercises the correct core and the broken one.
 *
 * @module
 */
import type { RaftTimings } from "../../src/raft/config.ts";
import type { Prng } from "./prng.ts";
import { type Episode, EPISODES } from "./options.ts";
import type { SimNode, Simulation } from "./simulator.ts";

export class Director {
  readonly episodesRun: string[] = [];
  #epoch = 0;
  #endMs = 0;

  constructor(private readonly sim: Simulation, private readonly rng: Prng) {}

  start(faultPhaseMs: number): void {
    this.#endMs = faultPhaseMs;
    this.sim.at(this.rng.range(300, 1500), () => this.#next());
    this.sim.at(faultPhaseMs, () => {
      this.#epoch++; // cancels the episode under way
      this.sim.trace(`EPISODE end of the fault phase: heal and restart everything`);
      this.#healAll();
    });
  }

  #next(): void {
    if (this.sim.nowMs >= this.#endMs) return;
    const w = this.sim.options.episodeWeights;
    const choices = EPISODES.filter((e) => w[e] > 0).map((e) => [e, w[e]] as const);
    const episode: Episode = choices.length === 0 ? "calm" : this.rng.weighted(choices);
    this.episodesRun.push(episode);
    const epoch = ++this.#epoch;
    const done = () => {
      if (epoch !== this.#epoch) return;
      this.#epoch++;
      this.#healAll();
      this.sim.at(this.sim.nowMs + this.rng.range(300, 1500), () => this.#next());
    };
    this.sim.trace(`EPISODE ${episode}`);
    this.#episode(episode, epoch, done);
  }

  /** Runs `f` after `delayMs` unless the episode that scheduled it is over. */
  #later(epoch: number, delayMs: number, f: () => void): void {
    this.sim.at(this.sim.nowMs + Math.max(0, delayMs), () => {
      if (epoch === this.#epoch) f();
    });
  }

  /** Polls `cond` every 5 ms for up to `timeoutMs`. */
  #waitFor(
    epoch: number,
    timeoutMs: number,
    cond: () => boolean,
    then: () => void,
    otherwise: () => void,
  ): void {
    const deadline = this.sim.nowMs + timeoutMs;
    const poll = () => {
      if (cond()) then();
      else if (this.sim.nowMs >= deadline) otherwise();
      else this.#later(epoch, 5, poll);
    };
    poll();
  }

  #healAll(): void {
    const sim = this.sim;
    sim.net.heal();
    for (const id of sim.ids) {
      const n = sim.nodes[id];
      n.crashHook = undefined;
      n.crashMidPersistHook = undefined;
      // A node running other timings (timingRestart) is restarted with the cluster's again.
      if (n.alive && n.timings !== undefined) sim.crash(id, "to run the cluster's timings again");
      if (!n.alive) sim.at(sim.nowMs + this.rng.range(0, 300), () => sim.restart(id));
    }
    sim.trace(`FAULT heal: every link restored`);
  }

  #others(id: number): number[] {
    return this.sim.ids.filter((x) => x !== id);
  }

  #episode(episode: Episode, epoch: number, done: () => void): void {
    const sim = this.sim, rng = this.rng, lease = sim.options.timings.leaseDurationMs;
    const later = (ms: number, f: () => void) => this.#later(epoch, ms, f);
    const withLeader = (serving: boolean, then: (leader: number) => void) =>
      this.#waitFor(
        epoch,
        4000,
        () => (serving ? sim.servingLeaderId() : sim.leaderId()) !== 0,
        () => then(serving ? sim.servingLeaderId() : sim.leaderId()),
        done,
      );
    switch (episode) {
      case "calm":
        return later(rng.range(1000, 3000), done);

      case "chaos": {
        const until = sim.nowMs + rng.range(2000, 6000);
        const step = () => {
          if (sim.nowMs >= until) return done();
          this.#randomFault(epoch);
          later(rng.exponential(sim.options.chaosMeanGapMs), step);
        };
        return step();
      }

      case "isolateLeader":
        return withLeader(false, (l) => {
          const mode = rng.pick(["both", "outbound", "inbound"] as const);
          sim.net.isolate(l, mode !== "outbound", mode !== "inbound");
          sim.trace(`FAULT isolate leader n${l} (${mode}); cuts: ${sim.net.describeCuts()}`);
          later(rng.range(800, 3000), done);
        });

      case "takeover":
        return withLeader(true, (l) => this.#takeover(epoch, l, done));

      case "figure8":
        return withLeader(true, (l) => this.#figure8(epoch, l, done));

      case "pauseLeader":
        return withLeader(false, (l) => {
          const ms = lease + rng.range(50, 2500);
          sim.pause(l, ms);
          later(ms + 300, done);
        });

      case "crashLeader":
        return withLeader(false, (l) => {
          sim.crash(l, "(leader)");
          const down = rng.pick([rng.range(0, 50), rng.range(50, 2500)]);
          sim.at(sim.nowMs + down, () => sim.restart(l));
          later(down + 500, done);
        });

      case "transfer":
        return withLeader(true, (l) => {
          const to = rng.chance(0.5) ? 0 : rng.pick(this.#others(l));
          sim.transfer(l, to);
          later(rng.range(500, 2000), done);
        });

      case "driftTakeover":
        return withLeader(true, (l) => this.#driftTakeover(epoch, l, done));

      case "transferCutOff":
        return withLeader(true, (l) => {
          // Let the followers catch up (no new entries at L), hand over, then cut everything into L: the
          // candidate's vote request never reaches L, so only the revocation keeps L from serving on.
          sim.net.clientBlocked.add(l);
          later(rng.range(20, 60), () => {
            sim.transfer(l, 0);
            sim.net.isolate(l, true, false);
            sim.net.clientBlocked.delete(l);
            sim.trace(`FAULT after the transfer n${l} hears from nobody; cuts: ${sim.net.describeCuts()}`);
            later(rng.range(1500, 2500), done);
          });
        });

      case "stoppedClock":
        return withLeader(true, (l) => {
          const ms = rng.range(1.5 * lease, 3000);
          sim.freezeClock(l, ms);
          later(ms + rng.range(300, 800), done);
        });

      case "membership":
        return withLeader(true, () => this.#membership(epoch, done));

      case "jointCutOff":
        return withLeader(true, (l) => this.#jointCutOff(epoch, l, done));

      case "crashFollowers":
        return withLeader(true, (l) => {
          const victims = rng.shuffle(this.#others(l)).slice(0, rng.int(1, sim.quorum - 1));
          for (const v of victims) sim.crash(v, "right after acking the leader");
          for (const v of victims) sim.at(sim.nowMs + rng.range(0.5, 50), () => sim.restart(v));
          later(1000, done);
        });
    }
  }

  /**
   * Membership changes interleaved with random faults (issue 11 part 7): spares join as learners (promoted
   * automatically or by hand), voters are removed (the leader too) or replaced by a learner in one joint
   * change, learners are removed; a removed node is shut down for good some time after its removal commits
   * (until then it lingers, outside the configuration, still able to campaign).
   */
  #membership(epoch: number, done: () => void): void {
    const sim = this.sim, rng = this.rng;
    const until = sim.nowMs + rng.range(3000, 8000);
    const retireWhenRemoved = (victim: number) => {
      this.#waitFor(
        epoch,
        6000,
        () => {
          const latest = sim.latestMembership();
          return latest.committed && latest.membership.outgoingVoters === undefined &&
            !latest.membership.members.some((m) => m.id === victim);
        },
        () => this.#later(epoch, rng.range(0, 1500), () => sim.retire(victim, "(removed from the cluster)")),
        () => {},
      );
    };
    // The driver answers after its disk write when one is under way: the retirement follows the answer.
    const retireIfOk = (victim: number) => (r: { ok: boolean }) => {
      if (r.ok) retireWhenRemoved(victim);
    };
    const change = () => {
      const leader = sim.leaderId();
      if (leader === 0) return;
      const latest = sim.latestMembership().membership;
      const voters = latest.members.filter((m) => m.voter).map((m) => m.id);
      const learners = latest.members.filter((m) => !m.voter).map((m) => m.id);
      const spares = sim.ids.filter((id) =>
        sim.nodes[id].joins && !sim.nodes[id].retired && !latest.members.some((m) => m.id === id)
      );
      const kind = rng.weighted(
        [
          ["add", spares.length > 0 && voters.length + learners.length < 7 ? 3 : 0],
          ["remove", voters.length > 3 ? 2 : 0],
          ["replace", learners.length > 0 ? 3 : 0],
          ["promote", learners.length > 0 ? 1 : 0],
          ["removeLearner", learners.length > 0 ? 0.5 : 0],
          ["none", 0.1],
        ] as const,
      );
      switch (kind) {
        case "add": {
          const id = rng.pick(spares);
          sim.changeMembership(leader, { kind: "add", id, address: `n${id}:7000`, promote: rng.chance(0.6) });
          return;
        }
        case "remove": {
          const victim = rng.pick(voters);
          sim.changeMembership(leader, { kind: "remove", id: victim }, retireIfOk(victim));
          return;
        }
        case "replace": {
          const victim = rng.pick(voters);
          sim.changeMembership(
            leader,
            { kind: "replace", id: rng.pick(learners), removeId: victim },
            retireIfOk(victim),
          );
          return;
        }
        case "promote":
          sim.changeMembership(leader, { kind: "promote", id: rng.pick(learners) });
          return;
        case "removeLearner": {
          const victim = rng.pick(learners);
          sim.changeMembership(leader, { kind: "remove", id: victim }, retireIfOk(victim));
          return;
        }
        case "none":
          return;
      }
    };
    const step = () => {
      if (sim.nowMs >= until) return done();
      if (rng.chance(0.5)) change();
      else this.#randomFault(epoch);
      this.#later(epoch, rng.exponential(sim.options.chaosMeanGapMs * 2), step);
    };
    step();
  }

  /**
   * Leader L adds spare Y as a learner and waits for it to catch up; then L and Y, with voters making a
   * majority of the new configuration (old voters minus X, plus Y) but not of the old, are cut off from the
   * rest, and L starts the joint change replacing X by Y. Counting only the new configuration (the
   * `config-quorum` break) L commits and leases on its side while the old voters elect a leader of their own.
   */
  #jointCutOff(epoch: number, l: number, done: () => void): void {
    const sim = this.sim, rng = this.rng;
    const latest = sim.latestMembership().membership;
    const spares = sim.ids.filter((id) =>
      sim.nodes[id].alive && sim.nodes[id].joins && !latest.members.some((m) => m.id === id)
    );
    const voters = latest.members.filter((m) => m.voter).map((m) => m.id);
    if (spares.length === 0 || voters.length % 2 === 0 || !voters.includes(l)) return done();
    const y = rng.pick(spares);
    // The driver answers after its disk write when one is under way: wait for the answer (bounded).
    let added: boolean | undefined;
    sim.changeMembership(l, { kind: "add", id: y, address: `n${y}:7000`, promote: false }, (r) => {
      added = r.ok;
    });
    const caughtUp = () => {
      const leader = sim.nodes[l].core, learner = sim.nodes[y].core;
      return leader !== undefined && learner !== undefined && leader.role === "leader" &&
        leader.commitIndex >= (leader.status(0).membershipIndex ?? 0) &&
        learner.commitIndex >= leader.commitIndex;
    };
    const cutOff = () => {
      const x = rng.pick(voters.filter((v) => v !== l));
      const newMajority = Math.floor(voters.length / 2) + 1;
      const side = [l, y, ...rng.shuffle(voters.filter((v) => v !== l && v !== x)).slice(0, newMajority - 2)];
      const rest = sim.ids.filter((id) => !side.includes(id));
      sim.net.partition(side, rest);
      sim.trace(`FAULT joint cut-off: n${side.join(",n")} | n${rest.join(",n")}; replace n${x} by n${y}`);
      sim.changeMembership(l, { kind: "replace", id: y, removeId: x });
      this.#later(epoch, rng.range(1500, 3000), done);
    };
    this.#waitFor(epoch, 500, () => added !== undefined, () => {
      if (added) this.#waitFor(epoch, 4000, caughtUp, cutOff, done);
      else done();
    }, done);
  }

  #randomFault(epoch: number): void {
    const sim = this.sim, rng = this.rng, net = sim.net;
    const live = sim.live();
    const ids = sim.ids;
    const pair = () => {
      const [a, b] = rng.shuffle(ids);
      return [a, b] as const;
    };
    const kind = rng.weighted(
      [
        ["crash", 2],
        ["pause", 1],
        ["cutBoth", 2],
        ["cutOne", 2],
        ["partition", 1],
        ["isolateLeader", 1],
        ["healLinks", 1],
        ["transfer", 1],
        ["lossBurst", 0.5],
        ["slowLink", 1],
        ["crashBeforeSend", 1],
        ["crashMidPersist", 1],
      ] as const,
    );
    switch (kind) {
      case "crash": {
        if (live.length === 0) return;
        const n = rng.pick(live);
        sim.crash(n.id);
        const down = rng.pick([rng.range(1, 50), rng.range(50, 2500)]);
        sim.at(sim.nowMs + down, () => sim.restart(n.id));
        return;
      }
      case "pause": {
        if (live.length === 0) return;
        sim.pause(rng.pick(live).id, sim.options.timings.leaseDurationMs + rng.range(10, 1500));
        return;
      }
      case "cutBoth": {
        const [a, b] = pair();
        net.cutBoth(a, b);
        break;
      }
      case "cutOne": {
        const [a, b] = pair();
        net.cut(a, b);
        break;
      }
      case "partition": {
        const shuffled = rng.shuffle(ids);
        const k = rng.int(1, ids.length - 1);
        net.partition(shuffled.slice(0, k), shuffled.slice(k));
        break;
      }
      case "isolateLeader": {
        const l = sim.leaderId();
        if (l !== 0) net.isolate(l, rng.chance(0.7), rng.chance(0.7));
        break;
      }
      case "healLinks":
        net.heal();
        break;
      case "transfer": {
        const l = sim.leaderId();
        if (l !== 0) sim.transfer(l, rng.chance(0.5) ? 0 : rng.pick(this.#others(l)));
        return;
      }
      case "lossBurst":
        net.lossBurst = rng.range(0.1, 0.5);
        this.#later(epoch, rng.range(100, 1000), () => (net.lossBurst = 0));
        break;
      case "slowLink": {
        const [a, b] = pair();
        net.slow(a, b, rng.range(10, 300));
        break;
      }
      case "crashBeforeSend": {
        if (live.length === 0) return;
        const n = rng.pick(live);
        const down = rng.range(1, 500);
        n.crashHook = (node, r) => {
          if (r.messages.length === 0) return false;
          sim.at(sim.nowMs + down, () => sim.restart(node.id));
          return true;
        };
        sim.trace(`FAULT n${n.id} will crash after persisting its next Ready, before sending it`);
        return;
      }
      case "crashMidPersist": {
        // Aimed at the leader: only its Readys send AppendEntries before their log write is durable.
        const leader = live.find((n) => n.core?.role === "leader");
        if (leader === undefined) return;
        const stuckMs = rng.range(0, 50);
        const down = stuckMs + rng.range(1, 500);
        leader.crashMidPersistHook = (node) => {
          sim.at(sim.nowMs + down, () => sim.restart(node.id));
          return stuckMs;
        };
        sim.trace(
          `FAULT n${leader.id} will crash with its next appends sent and their log write not durable`,
        );
        return;
      }
    }
    sim.trace(`FAULT ${kind}; cuts: ${net.describeCuts()}`);
  }

  /**
   * Follower X loses leader L (cut both ways, and from the voters outside X's future majority), then just
   * before X's election timer fires L is cut off from every node while it still holds its lease. Variants:
   * the followers' acks to L are slow (in flight when L is cut off); the voters X needs crash and restart
   * just before X campaigns; and (without PreVote) a node D, cut off until its term is ahead, reconnects
   * while X waits out L's lease, so X steps down in the middle of its wait.
   */
  #takeover(epoch: number, l: number, done: () => void): void {
    const sim = this.sim, rng = this.rng, net = sim.net;
    const later = (ms: number, f: () => void) => this.#later(epoch, ms, f);
    const others = rng.shuffle(this.#others(l));
    const x = others[0];
    const voters = others.slice(1, sim.quorum); // with X: a majority without L
    const outside = others.slice(sim.quorum);
    const restartVoters = rng.chance(0.5);
    const slowAcks = rng.chance(0.5);
    // The voters come back configured with a shorter lease (an operator lowering leaseDurationMs node by node).
    const timingRestart = restartVoters && rng.chance(0.5);
    const t = sim.options.timings;
    const shorter: RaftTimings = {
      ...t,
      leaseDurationMs: Math.max(2 * t.heartbeatIntervalMs, Math.floor(t.leaseDurationMs / 2)),
    };
    const disruptor = !sim.options.preVote && outside.length > 0 && rng.chance(0.5) ? outside[0] : 0;
    const termOf = (id: number) => sim.nodes[id].core?.term ?? 0;

    const begin = () => {
      if (sim.servingLeaderId() !== l) return done();
      // Clients cannot reach L for a while, so its log stops growing and X, cut off from L below, stays as
      // up to date as the voters (else they would refuse X for its log, not for the lease).
      net.clientBlocked.add(l);
      sim.trace(`FAULT clients cannot reach n${l}`);
      later(rng.range(20, 50), () => {
        net.cutBoth(l, x);
        for (const o of outside) net.cutBoth(x, o);
        if (slowAcks) { for (const f of this.#others(l)) net.slow(f, l, rng.range(30, 300)); }
        const marginMs = rng.range(3, 25);
        const wakeMs = sim.nextWakeRealMs(x);
        const fireAtMs = Math.max(
          sim.nowMs + (slowAcks ? 350 : 1),
          Number.isFinite(wakeMs) ? wakeMs - marginMs : 0,
        );
        sim.trace(
          `FAULT takeover: leader n${l}, candidate n${x}, voters ${voters.map((v) => `n${v}`).join(",")}` +
            `${restartVoters ? ` (crash+restart${timingRestart ? " with a shorter lease" : ""})` : ""}` +
            `${slowAcks ? ", slow acks" : ""}` +
            `${disruptor ? `, disruptor n${disruptor}` : ""}; L cut off at ${fireAtMs.toFixed(3)}`,
        );
        later(fireAtMs - sim.nowMs, () => {
          net.isolate(l);
          net.clientBlocked.delete(l);
          sim.trace(`FAULT isolate n${l} (clients reach it again); cuts: ${net.describeCuts()}`);
          if (restartVoters) {
            for (const v of voters) sim.crash(v, "right after acking the leader");
            const upMs = rng.range(0.2, Math.max(0.5, marginMs * 0.8));
            for (const v of voters) {
              sim.at(sim.nowMs + upMs, () => sim.restart(v, "restarts", timingRestart ? shorter : undefined));
            }
          }
          if (disruptor) {
            const waiting = () => {
              const core = sim.nodes[x].core;
              return core !== undefined && core.role === "leader" &&
                core.status(sim.nodes[x].local(sim.nowMs)).leaseWaitRemainingMs > 0;
            };
            this.#waitFor(epoch, 4000, waiting, () => {
              later(rng.range(0, 60), () => {
                for (const id of [x, ...voters]) net.connect(disruptor, id);
                sim.trace(
                  `FAULT n${disruptor} (term ${
                    termOf(disruptor)
                  }) reconnects while n${x} waits out the lease`,
                );
              });
            }, () => {});
          }
          later(rng.range(1500, 3000), done);
        });
      });
    };

    if (disruptor === 0) return begin();
    net.isolate(disruptor);
    sim.trace(`FAULT takeover: n${disruptor} cut off until its term is ahead of ${termOf(l)}`);
    this.#waitFor(epoch, 8000, () => termOf(disruptor) >= termOf(l) + 2, begin, done);
  }

  /**
   * The margins of rules 4 and 5 at the ends of the drift budget ε. Leader L's clock is put at the slow end.
   * Variant "promise": every other clock at the fast end, so a follower's promise of `D` on its clock ends
   * `D·ε/(1+ε)` before L's lease, and only the promise margin makes up for it. Variant "wait": the voters at
   * the slow end and candidate X at the fast end, so X's wait, timed on its clock from the voters' reported
   * durations, is short by up to a factor 1+ε without the wait margin (seen by the rule-5 check,
   * lease_rules.ts). Then X (cut off from L) campaigns a large part of a lease after L was cut off, while its
   * voters' last promises to L still run: without PreVote they grant at once.
   */
  #driftTakeover(epoch: number, l: number, done: () => void): void {
    const sim = this.sim, rng = this.rng, net = sim.net;
    const later = (ms: number, f: () => void) => this.#later(epoch, ms, f);
    const eps = sim.options.timings.maxClockDrift, lease = sim.options.timings.leaseDurationMs;
    const others = rng.shuffle(this.#others(l));
    const x = others[0];
    const variant = rng.pick(["promise", "wait"] as const);
    sim.nodes[l].clock.setRate(sim.nowMs, 1);
    for (const o of others) {
      sim.nodes[o].clock.setRate(sim.nowMs, variant === "promise" || o === x ? 1 + eps : 1);
    }
    net.clientBlocked.add(l);
    later(rng.range(20, 50), () => {
      net.cutBoth(l, x);
      const wakeMs = sim.nextWakeRealMs(x);
      const aheadMs = rng.range(0.4, 0.95) * lease;
      const cutAtMs = Math.max(sim.nowMs + 1, Number.isFinite(wakeMs) ? wakeMs - aheadMs : 0);
      sim.trace(
        `FAULT drift takeover (${variant}): leader n${l} at rate 1, candidate n${x}; L cut off at ` +
          `${cutAtMs.toFixed(3)}, ${aheadMs.toFixed(0)}ms before n${x} campaigns`,
      );
      later(cutAtMs - sim.nowMs, () => {
        net.isolate(l);
        net.clientBlocked.delete(l);
        sim.trace(`FAULT isolate n${l} (clients reach it again); cuts: ${net.describeCuts()}`);
        later(rng.range(1500, 3000), done);
      });
    });
  }

  /** Raft Figure 8, steered: see the module comment. */
  #figure8(epoch: number, a: number, done: () => void): void {
    const sim = this.sim, rng = this.rng, net = sim.net;
    const later = (ms: number, f: () => void) => this.#later(epoch, ms, f);
    const term = sim.nodes[a].core!.term;
    const others = rng.shuffle(this.#others(a));
    const minority = [a, ...others.slice(0, sim.quorum - 2)];
    const rest = others.slice(sim.quorum - 2);
    // (a) A replicates a few entries to a minority only.
    net.partition(minority, rest);
    const entries = rng.int(1, 8);
    for (let i = 0; i < entries; i++) sim.directorPropose(a);
    sim.trace(
      `FAULT figure8 (a): leader n${a} of term ${term} replicates ${entries} entries to ${
        minority.map((m) => `n${m}`).join(",")
      } only`,
    );
    later(rng.range(20, 60), () => {
      // (b) The minority crashes; the rest elects a leader B, which crashes as soon as it has appended its
      // NO-OP (persisted, not sent).
      for (const m of minority) sim.crash(m, "(figure 8: minority holding uncommitted entries)");
      let b = 0;
      for (const id of rest) {
        sim.nodes[id].crashHook = (node: SimNode) => {
          if (node.core!.role !== "leader" || node.core!.term <= term) return false;
          b = node.id;
          return true;
        };
      }
      this.#waitFor(epoch, 6000, () => b !== 0, () => {
        for (const id of rest) sim.nodes[id].crashHook = undefined;
        sim.trace(`FAULT figure8 (c): n${b} crashed with its NO-OP unsent; the minority restarts`);
        // (c) The minority comes back and, with the rest minus B, elects C; C replicates the old entries. If
        // it commits one of an earlier term by counting replicas, it crashes right there.
        net.heal();
        for (const m of minority) sim.restart(m);
        let c = 0;
        for (const id of sim.ids) {
          if (id === b) continue;
          sim.nodes[id].crashHook = (node: SimNode, r) => {
            const core = node.core!;
            if (r.commitIndex === undefined || core.role !== "leader") return false;
            if (core.termAt(r.commitIndex)! >= core.term) return false;
            c = node.id;
            return true;
          };
        }
        this.#waitFor(epoch, 4000, () => c !== 0, () => {
          for (const id of sim.ids) sim.nodes[id].crashHook = undefined;
          // (d) B comes back; the minority's other members stay cut off, so B and the rest form a majority
          // and B's NO-OP overwrites the entry C committed.
          for (const m of minority) if (m !== c) net.isolate(m);
          sim.trace(`FAULT figure8 (d): n${c} committed an old-term entry and crashed; n${b} restarts`);
          sim.restart(b);
          later(rng.range(2000, 3000), done);
        }, done);
      }, done);
    });
  }
}
