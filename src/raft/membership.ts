/**
 * Cluster membership (issue 11): the configuration a node uses, its quorums, and the changes a leader may
 * make. A configuration is a log entry (`{ op: "config" }`); a node uses the latest one in its log, committed
 * or not (Raft thesis §4.1), and the bootstrap configuration (cluster.json) while its log has none.
 *
 * Changes of the voter set go through joint consensus (thesis §4.3): the leader appends a joint configuration
 * (`outgoingVoters` set: the old voters; `members`: the new ones), in which every decision — an election, a
 * commit, a lease — needs a majority of the old voters **and** a majority of the new; once that entry commits,
 * it appends the new configuration alone. Learners (non-voting members) receive the log and count for
 * nothing; adding or removing a learner changes no quorum and is a single entry.
 *
 * @module
 */
import type { NodeId, SnapshotConfig } from "./types.ts";

/** One member of the cluster. */
export interface Member {
  readonly id: NodeId;
  /** host:port its peers and clients reach it at ("" when unknown, e.g. a bootstrap without addresses). */
  readonly address: string;
  /** A voter counts in quorums; a learner only receives the log. */
  readonly voter: boolean;
  /** Learner only: promoted to voter by the leader once it is close to the leader's log. */
  readonly promote?: boolean;
}

/** A configuration as it travels in the log (plain data, JSON-friendly). */
export interface Membership {
  /** Every member (the incoming voters and the learners). */
  readonly members: readonly Member[];
  /** Joint consensus only: the voters of the outgoing configuration, still in force until the next entry. */
  readonly outgoingVoters?: readonly NodeId[];
}

/** A majority of `n` voters. */
function majority(n: number): number {
  return Math.floor(n / 2) + 1;
}

/** The `k`-th largest of `values` (1-based), -Infinity when there are fewer. */
function kthLargest(values: number[], k: number): number {
  if (values.length < k) return -Infinity;
  values.sort((a, b) => b - a);
  return values[k - 1];
}

/** A configuration with its quorum rules. Immutable. */
export class Configuration {
  /** The incoming voters (all voters outside a joint phase). */
  readonly voters: readonly NodeId[];
  /** The outgoing voters during a joint phase, else undefined. */
  readonly outgoing: readonly NodeId[] | undefined;
  /** Every member and outgoing voter (who receives the log). */
  readonly everyone: readonly NodeId[];

  /**
   * `onlyIncoming`: the `config-quorum` negative control — a joint configuration counts only its incoming
   * voters (unsafe).
   */
  constructor(readonly membership: Membership, onlyIncoming = false) {
    this.voters = membership.members.filter((m) => m.voter).map((m) => m.id);
    this.outgoing = onlyIncoming ? undefined : membership.outgoingVoters;
    const all = new Set<NodeId>(membership.members.map((m) => m.id));
    for (const id of membership.outgoingVoters ?? []) all.add(id);
    this.everyone = [...all].sort((a, b) => a - b);
  }

  /** The voter sets whose majorities every decision needs (one, or two in a joint phase). */
  get voterSets(): readonly (readonly NodeId[])[] {
    return this.outgoing === undefined ? [this.voters] : [this.voters, this.outgoing];
  }

  get isJoint(): boolean {
    return this.membership.outgoingVoters !== undefined;
  }

  /** A voter of any configuration in force (may campaign, is asked for votes). */
  isVoter(id: NodeId): boolean {
    return this.voters.includes(id) || (this.outgoing?.includes(id) ?? false);
  }

  member(id: NodeId): Member | undefined {
    return this.membership.members.find((m) => m.id === id);
  }

  /** True iff `granted` holds a majority of every voter set (an election won). */
  hasQuorum(granted: ReadonlySet<NodeId>): boolean {
    return this.voterSets.every((set) => set.filter((id) => granted.has(id)).length >= majority(set.length));
  }

  /**
   * The highest value that a majority of every voter set has reached, `valueOf` giving each voter's (its
   * match index for a commit, the send time of its newest acknowledged heartbeat for a lease). The minimum
   * over the sets; -Infinity when a set has no majority with a value (e.g. an empty set).
   */
  quorumValue(valueOf: (id: NodeId) => number): number {
    let out = Infinity;
    for (const set of this.voterSets) {
      const v = kthLargest(set.map(valueOf), majority(set.length));
      out = Math.min(out, set.length === 0 ? -Infinity : v);
    }
    return out;
  }

  /** One line for logs and status: `voters 1,2,3 learners 4 (joint with 1,2,5)`. */
  describe(): string {
    const learners = this.membership.members.filter((m) => !m.voter).map((m) => m.id);
    return `voters ${this.voters.join(",") || "none"}` +
      (learners.length > 0 ? ` learners ${learners.join(",")}` : "") +
      (this.membership.outgoingVoters ? ` (joint with ${this.membership.outgoingVoters.join(",")})` : "");
  }
}

/** The bootstrap configuration: every listed node a voter. */
export function bootstrapMembership(voters: readonly { id: NodeId; address: string }[]): Membership {
  return { members: voters.map((v) => ({ id: v.id, address: v.address, voter: true })) };
}

/** What an operator may ask of the leader. */
export type MembershipChange =
  /** Add a node as a learner; `promote`: make it a voter once it is caught up. */
  | { readonly kind: "add"; readonly id: NodeId; readonly address: string; readonly promote: boolean }
  /** Remove a voter (through joint consensus) or a learner (at once). */
  | { readonly kind: "remove"; readonly id: NodeId }
  /** Make a learner a voter (the leader does it itself for learners added with `promote`). */
  | { readonly kind: "promote"; readonly id: NodeId }
  /** Replace voter `removeId` by learner `id` in one joint change (a dead VM's successor, once caught up). */
  | { readonly kind: "replace"; readonly id: NodeId; readonly removeId: NodeId };

export type ChangeResult =
  | { readonly ok: true; readonly index: number; readonly membership: Membership }
  | { readonly ok: false; readonly reason: string };

/**
 * The configuration entry that applies `change` to `current` (not joint), or the reason it is refused.
 * `everUsed`: ids that appeared in any configuration of the log (never reuse a removed node's id: it may
 * have voted in the current term and forgotten it). `aliveVoters`: voters the leader heard from recently (and
 * itself), for the "no majority alive" refusal.
 */
export function planChange(
  current: Configuration,
  change: MembershipChange,
  everUsed: ReadonlySet<NodeId>,
  aliveVoters: ReadonlySet<NodeId>,
): Membership | string {
  const members = current.membership.members;
  const existing = current.member(change.id);
  switch (change.kind) {
    case "add": {
      if (!Number.isInteger(change.id) || change.id < 1) {
        return `node id ${change.id} must be a positive integer`;
      }
      if (existing) return `node ${change.id} is already a ${existing.voter ? "voter" : "learner"}`;
      if (everUsed.has(change.id)) {
        return `node id ${change.id} was a member before: give the new node a fresh id`;
      }
      if (change.address === "") return "the new node needs an address (host:port)";
      const clash = members.find((m) => m.address === change.address);
      if (clash) return `address ${change.address} is already in use by node ${clash.id}`;
      return {
        members: [...members, {
          id: change.id,
          address: change.address,
          voter: false,
          promote: change.promote,
        }],
      };
    }
    case "remove": {
      if (!existing) return `node ${change.id} is not a member`;
      if (!existing.voter) return { members: members.filter((m) => m.id !== change.id) };
      const voters = current.voters.filter((id) => id !== change.id);
      if (voters.length === 0) return `node ${change.id} is the last voter`;
      const alive = voters.filter((id) => aliveVoters.has(id)).length;
      if (alive < majority(voters.length)) {
        return `removing node ${change.id} would leave ${alive} of ${voters.length} remaining voters reachable, ` +
          `fewer than the majority of ${majority(voters.length)} the cluster needs`;
      }
      return { members: members.filter((m) => m.id !== change.id), outgoingVoters: current.voters };
    }
    case "promote": {
      if (!existing) return `node ${change.id} is not a member`;
      if (existing.voter) return `node ${change.id} is already a voter`;
      return {
        members: members.map((m) => (m.id === change.id ? { id: m.id, address: m.address, voter: true } : m)),
        outgoingVoters: current.voters,
      };
    }
    case "replace": {
      if (!existing) return `node ${change.id} is not a member`;
      if (existing.voter) return `node ${change.id} is already a voter`;
      const gone = current.member(change.removeId);
      if (!gone?.voter) return `node ${change.removeId} is not a voter`;
      const voters = [...current.voters.filter((id) => id !== change.removeId), change.id];
      const alive = voters.filter((id) => aliveVoters.has(id)).length;
      if (alive < majority(voters.length)) {
        return `replacing node ${change.removeId} by node ${change.id} would leave ${alive} of ${voters.length} voters reachable, ` +
          `fewer than the majority of ${majority(voters.length)} the cluster needs`;
      }
      return {
        members: members.filter((m) => m.id !== change.removeId).map((m) =>
          m.id === change.id ? { id: m.id, address: m.address, voter: true } : m
        ),
        outgoingVoters: current.voters,
      };
    }
  }
}

/** The configuration that ends a joint phase: the incoming one alone. */
export function leaveJoint(joint: Membership): Membership {
  return { members: joint.members };
}

/** A configuration from JSON (a logs.txt CONFIG line, the wire), checked for shape; throws an Error saying why. */
export function parseMembership(json: string): Membership {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    throw new Error("the configuration is not JSON");
  }
  const bad = (): never => {
    throw new Error("malformed configuration (expected {members: [{id, address, voter}], outgoingVoters?})");
  };
  const o = v as { members?: unknown; outgoingVoters?: unknown };
  if (typeof o !== "object" || o === null || !Array.isArray(o.members)) bad();
  const members = (o.members as unknown[]).map((m): Member => {
    const x = m as { id?: unknown; address?: unknown; voter?: unknown; promote?: unknown };
    if (
      typeof x !== "object" || x === null || !Number.isSafeInteger(x.id) || (x.id as number) < 1 ||
      typeof x.address !== "string" || typeof x.voter !== "boolean" ||
      (x.promote !== undefined && typeof x.promote !== "boolean")
    ) return bad();
    const out: Member = { id: x.id as number, address: x.address, voter: x.voter };
    return x.promote === undefined ? out : { ...out, promote: x.promote as boolean };
  });
  if (o.outgoingVoters === undefined) return { members };
  if (
    !Array.isArray(o.outgoingVoters) ||
    !o.outgoingVoters.every((id) => Number.isSafeInteger(id) && (id as number) >= 1)
  ) bad();
  return { members, outgoingVoters: o.outgoingVoters as number[] };
}

/** A snapshot's configuration as one JSON text (snapshot.txt's CONFIG line, InstallSnapshot's config_json). */
export function encodeSnapshotConfig(c: SnapshotConfig): string {
  return JSON.stringify({ index: c.index, membership: c.membership, everUsed: c.everUsed });
}

/** The inverse of {@link encodeSnapshotConfig}, checked for shape; throws an Error saying why. */
export function parseSnapshotConfig(json: string): SnapshotConfig {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    throw new Error("the snapshot's configuration is not JSON");
  }
  const o = v as { index?: unknown; membership?: unknown; everUsed?: unknown };
  if (
    typeof o !== "object" || o === null || !Number.isSafeInteger(o.index) || (o.index as number) < 0 ||
    !Array.isArray(o.everUsed) || !o.everUsed.every((id) => Number.isSafeInteger(id) && id >= 1)
  ) {
    throw new Error("malformed snapshot configuration (expected {index, membership, everUsed: [ids]})");
  }
  return {
    index: o.index as number,
    membership: parseMembership(JSON.stringify(o.membership)),
    everUsed: o.everUsed as NodeId[],
  };
}
