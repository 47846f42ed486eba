/**
 * One formatter for entries, messages and events, used by dump.txt, the simulator's transcripts, the admin
 * log dump and tests (after etcd's DescribeEntry/DescribeMessage).
 *
 * Event lines keep the assignment's wording (SPEC §4) so a reader of dump.txt finds what the seed asked for.
 *
 * @module
 */
import { Configuration } from "./membership.ts";
import type { Command, Entry, Message, NodeId, RaftEvent } from "./types.ts";

/** A string as one token: bare when it is a plain word, JSON-quoted otherwise (spaces, newlines, empty). */
export function token(s: string): string {
  return /^[\x21-\x7e]+$/.test(s) && !s.includes('"') && !s.includes("\\") ? s : JSON.stringify(s);
}

/** UTF-8 length of `s` in bytes (without encoding it). */
export function utf8Bytes(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/**
 * `token(s)`, or, when `s` is longer than `maxBytes` UTF-8 bytes, its first characters as a token followed by
 * `…(<bytes> bytes)`: a dump line stays short and still says how big the field was.
 */
export function shortToken(s: string, maxBytes: number): string {
  if (s.length <= maxBytes / 4 || utf8Bytes(s) <= maxBytes) return token(s);
  let cut = 0, bytes = 0;
  while (cut < s.length) {
    const c = s.charCodeAt(cut);
    const w = c < 0x80 ? 1 : c < 0x800 ? 2 : c >= 0xd800 && c <= 0xdbff ? 4 : 3;
    if (bytes + w > maxBytes) break;
    bytes += w;
    cut += w === 4 ? 2 : 1;
  }
  return `${token(s.slice(0, cut))}…(${utf8Bytes(s)} bytes)`;
}

/**
 * `NO-OP`, `SET key value`, `DEL key` or `CAS key expected new` (the log's wording, without the term). With
 * `fieldMaxBytes`, long keys and values are cut (see {@link shortToken}).
 */
export function describeCommand(c: Command, fieldMaxBytes = Infinity): string {
  const t = (s: string) => shortToken(s, fieldMaxBytes);
  switch (c.op) {
    case "noop":
      return "NO-OP";
    case "config":
      return `CONFIG ${new Configuration(c.membership).describe()}`;
    case "set":
      return `SET ${t(c.key)} ${t(c.value)}`;
    case "del":
      return `DEL ${t(c.key)}`;
    case "cas": {
      const expected = "version" in c.expect
        ? (c.expect.version === 0 ? "@absent" : `@v=${c.expect.version}`)
        : (c.expect.value.startsWith("@") ? JSON.stringify(c.expect.value) : t(c.expect.value));
      return `CAS ${t(c.key)} ${expected} ${t(c.value)}`;
    }
  }
}

/** The operation's name as the dump's request lines say it: `SET`, `DEL`, `CAS` (or `NO-OP`). */
export function commandName(c: Command): string {
  return c.op === "noop" ? "NO-OP" : c.op.toUpperCase();
}

/** `SET name1 Jon 1` / `NO-OP 1`: command then term, as in logs.txt. */
export function describeEntry(e: Entry): string {
  return `${describeCommand(e.command)} ${e.term}`;
}

function describeEntries(entries: readonly Entry[]): string {
  if (entries.length === 0) return "[]";
  if (entries.length <= 3) return `[${entries.map((e) => `${e.index}:${describeEntry(e)}`).join(", ")}]`;
  return `[${entries[0].index}..${entries[entries.length - 1].index} (${entries.length})]`;
}

export function describeMessage(m: Message): string {
  const head = `${m.from}->${m.to} ${m.type} t${m.term}`;
  switch (m.type) {
    case "RequestVote":
      return `${head}${m.preVote ? " pre" : ""} last=${m.lastLogIndex}/t${m.lastLogTerm}` +
        (m.revokedLeaseTerm ? ` revoked<=t${m.revokedLeaseTerm}` : "");
    case "RequestVoteResponse":
      return `${head}${m.preVote ? " pre" : ""} ${m.voteGranted ? "granted" : "denied"}` +
        (m.leaseRemainingMs > 0 ? ` lease=${m.leaseRemainingMs.toFixed(1)}ms@t${m.leaseTerm}` : "");
    case "AppendEntries":
      return `${head} prev=${m.prevLogIndex}/t${m.prevLogTerm} ${describeEntries(m.entries)} ` +
        `commit=${m.leaderCommit} lease=${m.leaseDurationMs}ms seq=${m.seq}`;
    case "AppendEntriesResponse":
      return m.success
        ? `${head} ok match=${m.matchIndex} seq=${m.seq}`
        : `${head} reject hint=${m.conflictIndex}/t${m.conflictTerm} seq=${m.seq}`;
    case "TimeoutNow":
      return head;
    case "InstallSnapshot":
      return `${head} snap=${m.lastIncludedIndex}/t${m.lastIncludedTerm} bytes=${m.offset}+${m.length}/${m.sizeBytes}`;
    case "InstallSnapshotResponse":
      return `${head} snap=${m.lastIncludedIndex} have=${m.offset} match=${m.matchIndex}`;
    case "ReadIndex":
      return `${head} id=${m.id}`;
    case "ReadIndexResponse":
      return m.readIndex > 0
        ? `${head} id=${m.id} index=${m.readIndex}`
        : `${head} id=${m.id} refused leader=${m.leaderId} retry=${m.retryAfterMs}ms`;
  }
}

/**
 * The dump.txt line for an event of node `id` (the assignment's wording where it has one). Keys and values
 * longer than `fieldMaxBytes` are cut, with their length shown.
 */
export function describeEvent(id: NodeId, ev: RaftEvent, fieldMaxBytes = Infinity): string {
  switch (ev.kind) {
    case "electionTimeout":
      return `Node ${id} election timer timed out, Starting election.`;
    case "transferElection":
      return `Node ${id} was asked by Leader ${ev.from} to take over (planned transfer, no timeout), ` +
        `Starting election.`;
    case "becameLeader":
      return `Node ${id} became the leader for term ${ev.term}.`;
    case "leaseWaitStarted":
      return `New Leader waiting for Old Leader Lease to timeout. (${Math.ceil(ev.waitMs)} ms)`;
    case "leaseWaitEnded":
      return `Node ${id} (leader) finished waiting out the old leader's lease in term ${ev.term}.`;
    case "heartbeat":
      return `Leader ${id} sending heartbeat & Renewing Lease`;
    case "leaseRenewalFailed":
      return `Leader ${id} lease renewal failed. Stepping Down.`;
    case "steppedDown":
      return `${id} Stepping down (${ev.reason})`;
    case "voteGranted":
      return `Vote granted for Node ${ev.candidate} in term ${ev.term}.`;
    case "voteDenied":
      return `Vote denied for Node ${ev.candidate} in term ${ev.term}. (${ev.reason})`;
    case "appendAccepted":
      return `Node ${id} accepted AppendEntries RPC from ${ev.leader}.`;
    case "appendRejected":
      return `Node ${id} rejected AppendEntries RPC from ${ev.leader}. (${ev.reason})`;
    case "committed":
      return `Node ${id} (${ev.role === "leader" ? "leader" : "follower"}) committed the entry ` +
        `${describeCommand(ev.entry.command, fieldMaxBytes)} to the state machine.`;
    case "transferStarted":
      return `Leader ${id} revoked its lease and is handing leadership to Node ${ev.to} (term ${ev.term}).`;
    case "transferAborted":
      return `Leader ${id} could not hand leadership to Node ${ev.to} in time (term ${ev.term}).`;
    case "leaderConnectionLost":
      return `Node ${id} lost its connection to Leader ${ev.leader} (reset, term ${ev.term}), Starting PreVote soon.`;
    case "leaseDropped":
      return `Leader ${id} dropped its lease until it is renewed (term ${ev.term}): ${ev.reason}`;
    case "snapshotTaken":
      return `Node ${id} took a snapshot at index ${ev.index} (term ${ev.term}); log compacted up to ${ev.compactedTo}.`;
    case "snapshotSending":
      return `Leader ${id} is sending its snapshot at index ${ev.index} (${ev.sizeBytes} bytes) to Node ${ev.to}.`;
    case "snapshotInstalled":
      return `Node ${id} installed the snapshot at index ${ev.index} (term ${ev.term}) from leader ${ev.leader}.`;
    case "configAppended":
      return `Leader ${id} appended configuration at index ${ev.index} (term ${ev.term}): ${ev.describe}`;
  }
}
