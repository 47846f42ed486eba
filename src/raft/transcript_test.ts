/**
 * Interaction transcripts for the lease rules (after etcd-io/raft's testdata): each file in testdata/ is a
 * sequence of commands, each followed by `----` and the exact output it must produce — the messages every
 * node sends, its notable events, write results, and status lines. A reader can follow a rule step by step;
 * a change of behaviour shows up as a diff. `REWRITE=1 deno test -A src/raft/transcript_test.ts` rewrites
 * the expected outputs (review the diff before committing it).
 *
 * Commands (one shared real time; each node's local clock is `rate·time`, rate 1 unless `rate` says so):
 *
 *     cluster n=3 [prevote=true] [break=RULE]   a fresh cluster (timings: h=100, E=1000-2000, D=800, ε=0.01)
 *     time T                                    advance real time to T ms (nothing else happens)
 *     rate N R                                  node N's clock runs at R from now on
 *     tick N                                    node N's timers fire at the current time
 *     campaign N                                real time moves to N's election deadline; N's timers fire
 *     deliver [from=N] [to=N] [drop]            step (or drop) the queued messages that match, in order
 *     read N KEY | propose N KEY=VALUE          a GET / a SET at node N
 *     transfer N TO | droplease N               leadership transfer / clock-sanity lease drop at node N
 *     restart N                                 node N crashes and restarts from its disk
 *     status N                                  role, term, lease, wait, promise, servingReads
 */
import { RaftCore } from "./core.ts";
import { DEFAULT_LIMITS } from "./config.ts";
import { describeEvent, describeMessage } from "./describe.ts";
import type { BrokenRule, SessionVerdict, StateMachine } from "./state_machine.ts";
import type { Entry, Message, NodeId } from "./types.ts";

class Kv implements StateMachine {
  readonly data = new Map<string, string>();
  apply(e: Entry): undefined {
    if (e.command.op === "set") this.data.set(e.command.key, e.command.value);
  }
  get(k: string): string | undefined {
    return this.data.get(k);
  }
  checkSession(): SessionVerdict {
    return { kind: "new" };
  }
}

interface Disk {
  term: number;
  votedFor: number;
  entries: Entry[];
  commit: number;
}

class Transcript {
  nowMs = 0;
  readonly nodes = new Map<NodeId, RaftCore>();
  readonly disks = new Map<NodeId, Disk>();
  /** Per node: local time = base + rate·(now − since). */
  readonly clocks = new Map<NodeId, { base: number; since: number; rate: number }>();
  queue: Message[] = [];
  #tag = 0;
  out: string[] = [];

  constructor(readonly n: number, readonly preVote: boolean, readonly broken?: BrokenRule) {
    for (let id = 1; id <= n; id++) {
      this.disks.set(id, { term: 0, votedFor: 0, entries: [], commit: 0 });
      this.clocks.set(id, { base: 0, since: 0, rate: 1 });
      this.start(id);
    }
  }

  local(id: NodeId): number {
    const c = this.clocks.get(id)!;
    return c.base + c.rate * (this.nowMs - c.since);
  }

  start(id: NodeId): void {
    const d = this.disks.get(id)!;
    this.nodes.set(
      id,
      new RaftCore(
        {
          heartbeatIntervalMs: 100,
          electionTimeoutMsMin: 1000,
          electionTimeoutMsMax: 2000,
          leaseDurationMs: 800,
          maxClockDrift: 0.01,
          ...DEFAULT_LIMITS,
          id,
          voterIds: [...Array(this.n).keys()].map((i) => i + 1),
          preVote: this.preVote,
        },
        { hardState: { term: d.term, votedFor: d.votedFor }, entries: [...d.entries], commitIndex: d.commit },
        new Kv(),
        () => 0, // election timeouts at their minimum: deterministic and easy to read
        this.local(id),
        { brokenRule: this.broken, checkInvariants: true },
      ),
    );
  }

  /** Persists and queues what node `id` produced, and prints it. */
  drain(id: NodeId): void {
    const core = this.nodes.get(id)!;
    while (core.hasReady()) {
      const r = core.ready();
      const d = this.disks.get(id)!;
      if (r.hardState) Object.assign(d, r.hardState);
      if (r.appendFrom !== undefined) d.entries = [...d.entries.slice(0, r.appendFrom - 1), ...r.entries];
      if (r.commitIndex !== undefined) d.commit = r.commitIndex;
      for (const ev of r.events) {
        if (ev.kind === "appendAccepted" || ev.kind === "heartbeat" || ev.kind === "committed") continue;
        this.out.push(`n${id}: ${describeEvent(id, ev)}`);
      }
      for (const m of r.messages) this.out.push(`  ${describeMessage(m)}`);
      for (const res of r.results) {
        this.out.push(
          `n${id}: result #${res.tag} index ${res.index} ${res.ok ? "ok" : JSON.stringify(res.refusal)}`,
        );
      }
      this.queue.push(...r.messages);
    }
  }

  run(line: string): string {
    this.out = [];
    const [cmd, ...args] = line.trim().split(/\s+/);
    const kv = new Map(args.filter((a) => a.includes("=")).map((a) => a.split("=") as [string, string]));
    const num = (i: number) => Number(args[i]);
    const node = () => this.nodes.get(num(0))!;
    switch (cmd) {
      case "time":
        this.nowMs = num(0);
        break;
      case "rate": {
        const id = num(0);
        this.clocks.set(id, { base: this.local(id), since: this.nowMs, rate: num(1) });
        break;
      }
      case "tick":
        node().tick(this.local(num(0)));
        this.drain(num(0));
        break;
      case "campaign": {
        const id = num(0), c = this.clocks.get(id)!;
        this.nowMs = Math.max(this.nowMs, c.since + (node().nextWakeMs() - c.base) / c.rate);
        this.out.push(`time ${this.nowMs.toFixed(1)}`);
        node().tick(Math.max(this.local(id), node().nextWakeMs()));
        this.drain(id);
        break;
      }
      case "deliver": {
        const from = kv.get("from"), to = kv.get("to"), drop = args.includes("drop");
        const match = (m: Message) =>
          (from === undefined || m.from === Number(from)) && (to === undefined || m.to === Number(to));
        const batch = this.queue.filter(match);
        this.queue = this.queue.filter((m) => !match(m));
        for (const m of batch) {
          if (drop) {
            this.out.push(`dropped ${describeMessage(m)}`);
            continue;
          }
          this.out.push(`n${m.to} <- ${describeMessage(m)}`);
          this.nodes.get(m.to)!.step(this.local(m.to), m);
          this.drain(m.to);
        }
        break;
      }
      case "read": {
        const r = node().read(this.local(num(0)), args[1]);
        this.out.push(
          r.ok ? `value ${JSON.stringify(r.value)} found=${r.found}` : `refused ${JSON.stringify(r.refusal)}`,
        );
        this.drain(num(0));
        break;
      }
      case "propose": {
        const [key, value] = args[1].split("=");
        const tag = ++this.#tag;
        const r = node().propose(this.local(num(0)), { op: "set", key, value, clientId: "", seq: 0 }, tag);
        this.out.push(r.ok ? `accepted #${tag} at index ${r.index}` : `refused ${JSON.stringify(r.refusal)}`);
        this.drain(num(0));
        break;
      }
      case "transfer":
        this.out.push(JSON.stringify(node().transferLeadership(this.local(num(0)), num(1))));
        this.drain(num(0));
        break;
      case "droplease":
        node().dropLease(this.local(num(0)), "transcript");
        this.drain(num(0));
        break;
      case "restart":
        this.queue = this.queue.filter((m) => m.to !== num(0) && m.from !== num(0));
        this.start(num(0));
        this.drain(num(0));
        break;
      case "status": {
        const id = num(0), s = node().status(this.local(id));
        this.out.push(
          `n${id} ${s.role} t${s.term} leader=${s.leaderId} commit=${s.commitIndex} ` +
            `lease=${s.leaseRemainingMs.toFixed(1)}ms wait=${s.leaseWaitRemainingMs.toFixed(1)}ms ` +
            `promise=${s.promiseRemainingMs.toFixed(1)}ms serving=${s.servingReads}`,
        );
        break;
      }
      default:
        throw new Error(`unknown command: ${line}`);
    }
    return this.out.join("\n");
  }
}

/** Runs one transcript file; returns the text it should contain. */
function replay(text: string): string {
  let t: Transcript | undefined;
  const out: string[] = [];
  for (const block of text.split("\n\n")) {
    const lines = block.split("\n");
    const comments = lines.filter((l) => l.startsWith("#"));
    const rest = lines.filter((l) => !l.startsWith("#"));
    if (rest.length === 0 || rest[0].trim() === "") {
      if (comments.length > 0) out.push(comments.join("\n"));
      continue;
    }
    const cmd = rest[0];
    let produced: string;
    if (cmd.startsWith("cluster")) {
      const kv = new Map(cmd.split(/\s+/).slice(1).map((a) => a.split("=") as [string, string]));
      t = new Transcript(Number(kv.get("n")), kv.get("prevote") === "true", kv.get("break") as BrokenRule);
      produced = "";
    } else {
      if (!t) throw new Error(`"${cmd}" before any "cluster"`);
      produced = t.run(cmd);
    }
    out.push([...comments, cmd, "----", ...(produced ? [produced] : [])].join("\n"));
  }
  return out.join("\n\n") + "\n";
}

const DIR = new URL("./testdata/", import.meta.url);
for (
  const e of [...Deno.readDirSync(DIR)].filter((e) => e.name.endsWith(".txt")).sort((a, b) =>
    a.name < b.name ? -1 : 1
  )
) {
  Deno.test(`the lease transcript ${e.name} replays exactly`, () => {
    const url = new URL(e.name, DIR);
    const text = Deno.readTextFileSync(url);
    const actual = replay(text);
    if (Deno.env.get("REWRITE") === "1") {
      Deno.writeTextFileSync(url, actual);
      return;
    }
    if (actual !== text) {
      const a = actual.split("\n"), x = text.split("\n");
      const i = a.findIndex((l, k) => l !== x[k]);
      throw new Error(
        `${e.name} differs from line ${i + 1}:\nexpected: ${x[i]}\nactual:   ${a[i]}\n(REWRITE=1 to accept)`,
      );
    }
  });
}
