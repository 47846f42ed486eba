/**
 * The raftkv {@linkcode LoadTarget}: one {@linkcode ClusterStub} (one gRPC channel) per node, shared by every
 * worker of the process, with no client-library retries in the way.
 *
 * - `leader` mode: every operation goes to the node that leads. A refusal naming another leader moves every
 *   worker there and the operation is sent again once (a redirect); any other refusal is an error.
 * - `any` mode: operations go to the nodes in turn. A `notLeader` refusal with a leader hint is followed once
 *   (a redirect); a refusal without one, or a second refusal, is an error.
 *
 * Each worker is its own client session (`bench-<random>-<worker>`, its own SET sequence), so exactly-once
 * bookkeeping works as for real clients and concurrent SETs are never mistaken for duplicates.
 *
 * @module
 */
import type { NodeAddress } from "../config/cluster_config.ts";
import {
  type CasReply,
  ClusterStub,
  type NodeStatus,
  type ReplyCommon,
  TransportError,
} from "../transport/mod.ts";
import { type LoadTarget, OpError } from "./load.ts";
import type { CertificateStore } from "../security/mod.ts";

/** Remembered (worker, key) values for CAS at most; forgetting them only makes the next CASes fail once. */
const CAS_SEEN_MAX = 100_000;

/**
 * `leader`: everything to the leader. `any`: everything round-robin over the nodes. `follower` / `stale`
 * (issue 16): GETs round-robin over the nodes as follower (ReadIndex) or bounded-stale reads, writes to the
 * leader.
 */
export type BenchMode = "leader" | "any" | "follower" | "stale";

export const BENCH_MODES: readonly BenchMode[] = ["leader", "any", "follower", "stale"];

/** The bound of `stale` GETs when none is given (`--max-staleness`). */
export const DEFAULT_BENCH_MAX_STALENESS_MS = 1000;

export interface RaftkvTargetOptions {
  readonly nodes: readonly NodeAddress[];
  readonly mode: BenchMode;
  /** Deadline of one attempt, ms. */
  readonly deadlineMs?: number;
  /** How long `prepare` waits for a leader that serves reads, ms. */
  readonly leaderWaitMs?: number;
  /** GET/SET as frames on a Client stream (default, what the client library does) or as unary calls. */
  readonly streams?: boolean;
  /** Mutual TLS with this (client) certificate; plain text when absent. */
  readonly tls?: CertificateStore;
  /** `stale` mode: the bound of each GET, ms (default DEFAULT_BENCH_MAX_STALENESS_MS). */
  readonly maxStalenessMs?: number;
}

const DEFAULT_DEADLINE_MS = 5000;

/** The node that leads in the highest term, among statuses (undefined when none does). */
export function leaderOf(statuses: readonly (NodeStatus | undefined)[]): NodeStatus | undefined {
  let best: NodeStatus | undefined;
  for (const s of statuses) {
    if (s?.role === "leader" && (!best || s.term > best.term)) best = s;
  }
  return best;
}

export class RaftkvTarget implements LoadTarget {
  readonly #stubs = new Map<string, ClusterStub>();
  readonly #addresses: string[];
  readonly #mode: BenchMode;
  readonly #deadlineMs: number;
  readonly #leaderWaitMs: number;
  readonly #streams: boolean;
  readonly #tls: CertificateStore | undefined;
  readonly #session = `bench-${crypto.randomUUID().slice(0, 8)}`;
  readonly #seqs = new Map<number, number>();
  /** worker + key → the value that worker last saw there (what its next CAS expects); bounded. */
  readonly #casSeen = new Map<string, string>();
  #leader: ClusterStub | undefined;
  readonly #maxStalenessMs: number;
  #rr = 0;
  redirects = 0;

  constructor(opts: RaftkvTargetOptions) {
    if (opts.nodes.length === 0) throw new RangeError("no node to benchmark");
    this.#addresses = opts.nodes.map((n) => n.address);
    this.#streams = opts.streams ?? true;
    this.#tls = opts.tls;
    for (const a of this.#addresses) {
      this.#stubs.set(a, new ClusterStub(a, {}, { streams: this.#streams, tls: this.#tls }));
    }
    this.#mode = opts.mode;
    this.#maxStalenessMs = opts.maxStalenessMs ?? DEFAULT_BENCH_MAX_STALENESS_MS;
    this.#deadlineMs = opts.deadlineMs ?? DEFAULT_DEADLINE_MS;
    this.#leaderWaitMs = opts.leaderWaitMs ?? 15_000;
  }

  /** The address of the node operations go to in `leader` mode (after `prepare`). */
  get leaderAddress(): string | undefined {
    return this.#leader?.address;
  }

  async prepare(): Promise<void> {
    const until = performance.now() + this.#leaderWaitMs;
    let last = "no node answered";
    while (performance.now() < until) {
      const statuses = await Promise.all(
        this.#addresses.map((a) =>
          this.#stubs.get(a)!.status(1000).catch((e) => {
            last = `${a}: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}`;
            return undefined;
          })
        ),
      );
      const leader = leaderOf(statuses);
      if (leader?.servingReads) {
        this.#leader = this.#stubFor(leader.address) ??
          this.#stubs.get(this.#addresses[statuses.indexOf(leader)]);
        // Warm the channel(s) the run will use with one real call each.
        const warm = this.#mode === "leader" ? [this.#leader!] : [...this.#stubs.values()];
        // Follower and stale GETs: wait until every node serves one (a follower needs a leader's word first).
        if (this.#mode === "follower" || this.#mode === "stale") {
          const served = await Promise.all(
            [...this.#stubs.values()].map((s) =>
              s.get("key0", this.#deadlineMs, this.#readOptions()).then((r) => r.ok, () => false)
            ),
          );
          if (!served.every((ok) => ok)) {
            last = `not every node serves ${this.#mode} reads yet`;
            await new Promise((r) => setTimeout(r, 100));
            continue;
          }
        }
        await Promise.all(warm.map((s) => s.get("key0", this.#deadlineMs).catch(() => undefined)));
        return;
      }
      if (leader) last = `node ${leader.id} leads but does not serve reads yet`;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new OpError("noLeader", `no leader serving reads within ${this.#leaderWaitMs} ms (${last})`);
  }

  get(key: string, _worker: number): Promise<void> {
    if (this.#mode === "follower" || this.#mode === "stale") {
      return this.#op((stub) => stub.get(key, this.#deadlineMs, this.#readOptions()), this.#next());
    }
    return this.#op((stub) => stub.get(key, this.#deadlineMs));
  }

  #readOptions(): { readMode: "follower" | "stale"; maxStalenessMs?: number } {
    return this.#mode === "stale"
      ? { readMode: "stale", maxStalenessMs: this.#maxStalenessMs }
      : { readMode: "follower" };
  }

  set(key: string, value: string, worker: number): Promise<void> {
    const seq = (this.#seqs.get(worker) ?? 0) + 1;
    this.#seqs.set(worker, seq);
    const clientId = `${this.#session}-${worker}`;
    return this.#op((stub) => stub.set(key, value, clientId, seq, this.#deadlineMs));
  }

  delete(key: string, worker: number): Promise<void> {
    const seq = (this.#seqs.get(worker) ?? 0) + 1;
    this.#seqs.set(worker, seq);
    const clientId = `${this.#session}-${worker}`;
    return this.#op((stub) => stub.delete(key, clientId, seq, this.#deadlineMs));
  }

  /** CAS from what this worker last saw at `key` (absent at first); a comparison that fails teaches it. */
  async cas(key: string, value: string, worker: number): Promise<void> {
    const seq = (this.#seqs.get(worker) ?? 0) + 1;
    this.#seqs.set(worker, seq);
    const clientId = `${this.#session}-${worker}`;
    const seenKey = `${worker}\u0000${key}`;
    const seen = this.#casSeen.get(seenKey);
    const expect = seen === undefined ? { version: 0 } : { value: seen };
    let reply: CasReply | undefined;
    await this.#op(async (
      stub,
    ) => (reply = await stub.cas({ key, expect, value, clientId, seq }, this.#deadlineMs)));
    if (this.#casSeen.size > CAS_SEEN_MAX) this.#casSeen.clear();
    if (reply!.succeeded) this.#casSeen.set(seenKey, value);
    else if (reply!.found) this.#casSeen.set(seenKey, reply!.value);
    else this.#casSeen.delete(seenKey);
  }

  close(): void {
    for (const s of this.#stubs.values()) s.close();
  }

  #stubFor(address: string): ClusterStub | undefined {
    if (!address) return undefined;
    let s = this.#stubs.get(address);
    if (!s) {
      s = new ClusterStub(address, {}, { streams: this.#streams, tls: this.#tls });
      this.#stubs.set(address, s);
    }
    return s;
  }

  /** Where a write goes: the leader, except in `any` mode (the nodes in turn). */
  #pick(): ClusterStub {
    if (this.#mode !== "any" && this.#leader) return this.#leader;
    return this.#next();
  }

  /** The next node in turn. */
  #next(): ClusterStub {
    const a = this.#addresses[this.#rr];
    this.#rr = (this.#rr + 1) % this.#addresses.length;
    return this.#stubs.get(a)!;
  }

  async #op(call: (stub: ClusterStub) => Promise<ReplyCommon>, at?: ClusterStub): Promise<void> {
    const first = at ?? this.#pick();
    const reply = await this.#attempt(first, call);
    if (reply.ok) return;
    if (reply.error === "notLeader" || reply.error === "transferring") {
      const hint = this.#stubFor(reply.leaderAddress);
      if (hint && hint !== first) {
        if (this.#mode !== "any" && at === undefined) this.#leader = hint;
        const again = await this.#attempt(hint, call);
        if (again.ok) {
          this.redirects++;
          return;
        }
        throw new OpError(again.error);
      }
    }
    throw new OpError(reply.error);
  }

  async #attempt(
    stub: ClusterStub,
    call: (stub: ClusterStub) => Promise<ReplyCommon>,
  ): Promise<ReplyCommon> {
    try {
      return await call(stub);
    } catch (e) {
      if (e instanceof TransportError) throw new OpError(e.codeName, e.message);
      throw e;
    }
  }
}
