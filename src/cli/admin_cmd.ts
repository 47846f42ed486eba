/**
 * `raftkv admin …`: operator commands.
 *
 * ```text
 * admin status          [--config F | --node A ...] [--json] [--timeout 2s]   table of every node; exit 0 if any answered
 * admin status --watch  [--interval 1s] [...]                               redraws the table in place until Ctrl-C
 * admin transfer-leader [--to N] [--config F] [--json] [--timeout 10s]     hand leadership over; prints the new leader
 * admin dump-log --id N [--config F] [--json] [--from I] [--max M]         the log of node N with the commit point
 * admin snapshot [--id N] [--config F] [--json] [--timeout 60s]           snapshot + compaction now (leader by default)
 * ```
 *
 * @module
 */
import { Command, Option, type OptionValues } from "@commander-js/extra-typings";
import {
  CliError,
  collectAddress,
  durationOption,
  EXIT_FAILURE,
  EXIT_USAGE,
  nodeLabel,
  nonNegativeIntOption,
  positiveIntOption,
  resolveCluster,
  type TlsCliOptions,
  withTlsOptions,
} from "./common.ts";
import { entryJson, renderLog } from "./dump_log.ts";
import { findLeader, renderStatusTable, statusJson, StatusReader } from "./status.ts";
import { watchStatus } from "./status_watch.ts";
import type { NodeAddress } from "../config/cluster_config.ts";
import { describeTransportError } from "../client/mod.ts";
import { type ClusterStub, type MembershipReply, TransportError } from "../transport/mod.ts";

function timeoutOption(defaultMs: number, shown: string) {
  return new Option("--timeout <duration>", "deadline of the calls (e.g. 500ms, 2s)")
    .default(defaultMs, shown)
    .argParser(durationOption);
}

const CONFIG_HELP = "cluster config (default: $RAFTKV_CONFIG or ./cluster.json)";
const NODE_HELP = "a node address instead of a config file (repeatable)";

/**
 * The options of a command that reaches the cluster, in this order: `--config`, `--node` (repeatable),
 * `--json` (saying what it prints) and `--timeout` (with its default). Generic over the command's types, so
 * the action still sees them typed (`o.config`, `o.node`, `o.json`, `o.timeout`) next to its own.
 */
export function withTargetOptions<A extends unknown[], O extends OptionValues, G extends OptionValues>(
  cmd: Command<A, O, G>,
  json: string,
  timeout: { readonly ms: number; readonly shown: string },
) {
  return cmd
    .option("--config <file>", CONFIG_HELP)
    .addOption(new Option("--node <host:port>", NODE_HELP).argParser(collectAddress))
    .option("--json", json)
    .addOption(timeoutOption(timeout.ms, timeout.shown));
}

function transportLine(e: unknown, what: string, timeoutMs: number): CliError {
  const why = e instanceof TransportError ? describeTransportError(e, timeoutMs) : String(e);
  return new CliError(`${what}: ${why}`, EXIT_FAILURE, { cause: e });
}

function statusCommand() {
  return withTargetOptions(
    withTlsOptions(new Command("status"))
      .description("show every node: role, term, leader, commit and last index, lease remaining"),
    "print a JSON array, one object per node",
    { ms: 2000, shown: "2s" },
  )
    .option("--watch", "redraw the table in place every --interval, with replication lag (Ctrl-C stops)")
    .addOption(
      new Option("--interval <duration>", "how often --watch polls").default(1000, "1s").argParser(
        durationOption,
      ),
    )
    .action(async (o) => {
      const target = await resolveCluster(o, "admin");
      const reader = new StatusReader(target.nodes, target.tls);
      if (o.watch) { // live view (status_watch.ts)
        try {
          const timeoutMs = Math.min(o.timeout, o.interval);
          return await watchStatus({
            reader,
            intervalMs: o.interval,
            timeoutMs,
            json: !!o.json,
            source: target.source,
          });
        } finally {
          reader.close();
        }
      }
      try {
        // Members added after bootstrap are not in the config file: ask them too (issue 11).
        const rows = await reader.readMembers(o.timeout);
        console.log(o.json ? JSON.stringify(statusJson(rows), null, 2) : renderStatusTable(rows));
        if (!rows.some((r) => r.status)) {
          throw new CliError(`no node answered (${rows.length} tried from ${target.source})`);
        }
      } finally {
        reader.close();
      }
    });
}

function transferCommand() {
  return withTargetOptions(
    withTlsOptions(new Command("transfer-leader"))
      .description("ask the leader to hand leadership to another node (the best follower unless --to)")
      .option("--to <id>", "the node that should lead", positiveIntOption),
    "print the result as JSON",
    { ms: 10_000, shown: "10s" },
  )
    .action(async (o) => {
      const target = await resolveCluster(o, "admin");
      const refuseUnknown = (members: readonly number[]) => {
        // A member added after bootstrap (issue 11) is in the leader's configuration, maybe not in the file.
        const ids = [...new Set([...target.nodes.map((n) => n.id), ...members])].sort((a, b) => a - b);
        if (o.to !== undefined && target.config && !ids.includes(o.to)) {
          throw new CliError(
            `--to ${o.to}: no such node in ${target.source} or the leader's membership (ids: ${
              ids.join(", ")
            })`,
            EXIT_USAGE,
          );
        }
      };
      const reader = new StatusReader(target.nodes, target.tls);
      try {
        const rows = await reader.readMembers(Math.min(o.timeout, 2000));
        const leader = findLeader(rows);
        if (!leader) {
          const answered = rows.filter((r) => r.status).length;
          throw new CliError(
            `no leader to transfer from: ${answered} of ${rows.length} nodes answered and none leads ` +
              `(an election may be under way; try again)`,
          );
        }
        refuseUnknown(leader.status!.membership?.members.map((m) => m.id) ?? []);
        const from = leader.status!.id;
        if (o.to === from) {
          console.log(
            o.json
              ? JSON.stringify({ ok: true, previousLeaderId: from, leaderId: from })
              : `node ${from} is already the leader`,
          );
          return;
        }
        let reply;
        try {
          reply = await reader.stub(leader.node.address).transferLeader(o.to ?? 0, o.timeout);
        } catch (e) {
          throw transportLine(e, `transfer request to ${nodeLabel(leader.node)} failed`, o.timeout);
        }
        if (!reply.ok) {
          throw new CliError(
            `node ${from} could not transfer leadership: ${reply.error || "no reason given"}`,
          );
        }
        const to = reader.nodes.find((n) => n.id === reply.newLeaderId);
        console.log(
          o.json
            ? JSON.stringify({ ok: true, previousLeaderId: from, leaderId: reply.newLeaderId })
            : `new leader: node ${reply.newLeaderId}${
              to ? ` (${to.address})` : ""
            }; previous leader: node ${from}`,
        );
      } finally {
        reader.close();
      }
    });
}

function snapshotCommand() {
  return withTargetOptions(
    withTlsOptions(new Command("snapshot"))
      .description("take a snapshot now and compact the log behind it, on the leader or on --id N")
      .option("--id <n>", "the node that takes it (default: the leader)", positiveIntOption),
    "print {ok, id, snapshotIndex, snapshotTerm}",
    { ms: 60_000, shown: "60s" },
  )
    .action(async (o) => {
      const target = await resolveCluster(o, "admin");
      const reader = new StatusReader(target.nodes, target.tls);
      try {
        let node = o.id === undefined ? undefined : await findMember(reader, o.id, o.timeout, target.source);
        if (node === undefined) {
          const leader = findLeader(await reader.readMembers(Math.min(o.timeout, 2000)));
          if (!leader) throw new CliError("no leader answered; name a node with --id N");
          node = leader.node;
        }
        let reply;
        try {
          reply = await reader.stub(node.address).snapshot(o.timeout);
        } catch (e) {
          throw transportLine(e, `snapshot request to ${nodeLabel(node)} failed`, o.timeout);
        }
        if (!reply.ok) {
          throw new CliError(`${nodeLabel(node)} took no snapshot: ${reply.error || "no reason given"}`);
        }
        console.log(
          o.json
            ? JSON.stringify({ ok: true, id: node.id, snapshotIndex: reply.index, snapshotTerm: reply.term })
            : `${
              nodeLabel(node)
            }: snapshot at index ${reply.index} (term ${reply.term}); log compacted behind it`,
        );
      } finally {
        reader.close();
      }
    });
}

/**
 * Node `id`: from the config, else among the members the nodes report (added after bootstrap, issue 11);
 * refuses an id that is neither.
 */
async function findMember(
  reader: StatusReader,
  id: number,
  timeoutMs: number,
  source: string,
): Promise<NodeAddress> {
  let node = reader.nodes.find((n) => n.id === id);
  if (node === undefined) {
    await reader.readMembers(Math.min(timeoutMs, 2000));
    node = reader.nodes.find((n) => n.id === id);
  }
  if (node === undefined) {
    throw new CliError(
      `--id ${id}: no such node in ${source} or the cluster's membership (ids: ${
        [...new Set(reader.nodes.map((n) => n.id))].sort((a, b) => a - b).join(", ")
      })`,
      EXIT_USAGE,
    );
  }
  return node;
}

/** Finds the leader (from the config's nodes and the members the nodes report) and runs `call` on it. */
async function atLeader<T>(
  o: { config?: string; node?: string[]; timeout: number } & TlsCliOptions,
  what: string,
  call: (reader: StatusReader, leaderAddress: string) => Promise<T>,
): Promise<T> {
  const target = await resolveCluster(o, "admin");
  const reader = new StatusReader(target.nodes, target.tls);
  try {
    const rows = await reader.readMembers(Math.min(o.timeout, 2000));
    const leader = findLeader(rows);
    if (!leader) {
      const answered = rows.filter((r) => r.status).length;
      throw new CliError(
        `${what}: no leader: ${answered} of ${rows.length} nodes answered and none leads ` +
          `(an election may be under way, or a majority is down; try again)`,
      );
    }
    try {
      return await call(reader, leader.node.address);
    } catch (e) {
      if (e instanceof CliError) throw e;
      throw transportLine(e, `${what} at ${nodeLabel(leader.node)} failed`, o.timeout);
    }
  } finally {
    reader.close();
  }
}

/** Polls the leader's status until node `id` is a voter of a committed, non-joint configuration. */
async function waitVoter(
  o: { config?: string; node?: string[]; timeout: number } & TlsCliOptions,
  id: number,
): Promise<void> {
  const target = await resolveCluster(o, "admin");
  const reader = new StatusReader(target.nodes, target.tls);
  const end = performance.now() + o.timeout;
  try {
    while (performance.now() < end) {
      const st = findLeader(await reader.readMembers(2000))?.status;
      const m = st?.membership;
      if (
        st && m && !m.outgoingVoters && m.members.some((x) => x.id === id && x.voter) &&
        st.commitIndex >= (st.membershipIndex ?? 0)
      ) return;
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    reader.close();
  }
  throw new CliError(
    `node ${id} was added but is not a voter yet after ${o.timeout} ms (still catching up?); ` +
      `run the same command again to keep waiting (a larger --timeout for a large state)`,
  );
}

function addNodeCommand() {
  return withTargetOptions(
    withTlsOptions(new Command("add-node"))
      .description(
        "add a node (started with raftkv node --join) as a learner; it is promoted to voter once caught up",
      )
      .requiredOption("--id <n>", "the new node's id (never one a removed node had)", positiveIntOption)
      .requiredOption("--address <host:port>", "where the new node listens")
      .option("--learner", "keep it a learner (no vote), e.g. a read replica or a node to promote later")
      .option("--wait", "return only once the node is a voter (the leader promotes it when caught up)")
      .addOption(
        new Option(
          "--replace <id>",
          "replace a dead voter: once the new node is a voter (implies --wait), remove this one",
        ).argParser(positiveIntOption),
      ),
    "print the result as JSON",
    { ms: 15_000, shown: "15s" },
  )
    .action(async (o) => {
      if (o.replace !== undefined && o.learner) {
        throw new CliError(`--replace ${o.replace} needs a voter: drop --learner`, EXIT_USAGE);
      }
      if (o.replace !== undefined) {
        // Each step waits out elections and changes in progress; a rerun finds what is done and goes on.
        const end = performance.now() + o.timeout;
        const index = await changeUntilDone(
          o,
          `add-node ${o.id}`,
          (stub, ms) => stub.addNode(o.id, o.address, false, ms),
          (error) => error.startsWith(`node ${o.id} is already a `),
          end,
        );
        await waitVoter({ ...o, timeout: Math.max(1000, end - performance.now()) }, o.id);
        const removed = await changeUntilDone(
          o,
          `remove-node ${o.replace}`,
          (stub, ms) => stub.removeNode(o.replace!, ms),
          (error) => error.includes(`node ${o.replace} is not a member`),
          end,
        );
        console.log(
          o.json
            ? JSON.stringify({ ok: true, id: o.id, index, removed: o.replace, removedIndex: removed })
            : `node ${o.id} (${o.address}) is a voter; node ${o.replace} ${
              removed === 0
                ? "was no member (removed before)"
                : `removed (configuration committed at index ${removed})`
            }; stop its process if it still runs`,
        );
        return;
      }
      const reply = await atLeader(
        o,
        `add-node ${o.id}`,
        (reader, address) => reader.stub(address).addNode(o.id, o.address, o.learner ?? false, o.timeout),
      );
      if (!reply.ok) throw new CliError(`add-node ${o.id} refused: ${reply.error}`);
      if (o.wait && !o.learner) await waitVoter(o, o.id);
      console.log(
        o.json
          ? JSON.stringify({ ok: true, id: o.id, index: reply.index })
          : `node ${o.id} (${o.address}) added as a learner at index ${reply.index}${
            o.learner ? "" : "; it becomes a voter once caught up (see admin status)"
          }`,
      );
    });
}

/**
 * `add-node --replace`: one membership call at the leader, retried through what passes with time (an
 * election, a leader gone mid-call, a change in progress, an entry not committed in time) until `endMs`.
 * `already`: the refusal that says the change is in (a rerun of the command, or an attempt whose reply was
 * lost); the result's index is then 0.
 */
async function changeUntilDone(
  o: { config?: string; node?: string[]; timeout: number } & TlsCliOptions,
  what: string,
  call: (stub: ClusterStub, deadlineMs: number) => Promise<MembershipReply>,
  already: (error: string) => boolean,
  endMs: number,
): Promise<number> {
  for (;;) {
    const left = Math.max(1000, endMs - performance.now());
    let reply: MembershipReply;
    try {
      reply = await atLeader(
        { ...o, timeout: left },
        what,
        (reader, address) => call(reader.stub(address), left),
      );
    } catch (e) {
      // No leader now, or the leader went away during the call: an election, not a reason to stop half-way.
      if (!(e instanceof CliError) || performance.now() >= endMs) throw e;
      await new Promise((r) => setTimeout(r, 200));
      continue;
    }
    if (reply.ok) return reply.index;
    if (already(reply.error)) return 0;
    if (
      !/not the leader|in progress|not committed in time|entry of its term/.test(reply.error) ||
      performance.now() >= endMs
    ) {
      throw new CliError(`${what} refused: ${reply.error}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

function removeNodeCommand() {
  return withTargetOptions(
    withTlsOptions(new Command("remove-node"))
      .description("remove a member (a voter through a joint configuration); stop its process afterwards")
      .requiredOption("--id <n>", "the node to remove", positiveIntOption),
    "print the result as JSON",
    { ms: 15_000, shown: "15s" },
  )
    .action(async (o) => {
      const reply = await atLeader(
        o,
        `remove-node ${o.id}`,
        (reader, address) => reader.stub(address).removeNode(o.id, o.timeout),
      );
      if (!reply.ok) throw new CliError(`remove-node ${o.id} refused: ${reply.error}`);
      console.log(
        o.json
          ? JSON.stringify({ ok: true, id: o.id, index: reply.index })
          : `node ${o.id} removed (configuration committed at index ${reply.index}); its process may be stopped`,
      );
    });
}

function dumpLogCommand() {
  return withTlsOptions(new Command("dump-log"))
    .description("print the log of one node, one entry per line, with a marker at the commit index")
    .option("--id <n>", "the node whose log to print", positiveIntOption)
    .option("--config <file>", CONFIG_HELP)
    .addOption(
      new Option("--node <host:port>", "the node's address instead of --id and a config file").argParser(
        collectAddress,
      ),
    )
    .option("--from <index>", "first index to print", nonNegativeIntOption, 1)
    .option("--max <count>", "at most this many entries (0: the node's limit)", nonNegativeIntOption, 0)
    .option("--json", "print {id, address, commitIndex, entries: [...]}")
    .addOption(timeoutOption(5000, "5s"))
    .action(async (o) => {
      const target = await resolveCluster(o, "admin");
      let node;
      const addresses = o.node ?? [];
      if (addresses.length > 0) {
        if (addresses.length > 1) throw new CliError("dump-log reads one node: give one --node", EXIT_USAGE);
        node = target.nodes[0];
      } else {
        if (o.id === undefined) throw new CliError("dump-log needs --id N (or --node host:port)", EXIT_USAGE);
        const members = new StatusReader(target.nodes, target.tls);
        try {
          node = await findMember(members, o.id, o.timeout, target.source);
        } finally {
          members.close();
        }
      }
      const reader = new StatusReader([node], target.tls);
      try {
        let reply;
        try {
          reply = await reader.stub(node.address).dumpLog(o.from, o.max, o.timeout);
        } catch (e) {
          throw transportLine(e, `${nodeLabel(node)} (${node.address}) did not answer`, o.timeout);
        }
        if (o.json) {
          console.log(JSON.stringify(
            {
              id: node.id || null,
              address: node.address,
              commitIndex: reply.commitIndex,
              entries: reply.entries.map(entryJson),
            },
            null,
            2,
          ));
        } else {
          console.log(renderLog(reply.entries, reply.commitIndex));
        }
      } finally {
        reader.close();
      }
    });
}

export function adminCommand() {
  const admin = new Command("admin").description("operator commands: status, transfer-leader, dump-log");
  admin.addCommand(statusCommand());
  admin.addCommand(transferCommand());
  admin.addCommand(dumpLogCommand());
  admin.addCommand(snapshotCommand());
  admin.addCommand(addNodeCommand());
  admin.addCommand(removeNodeCommand());
  return admin;
}
