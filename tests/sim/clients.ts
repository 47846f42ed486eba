/**
 * Simulated clients: each issues one operation at a time (GET, SET, DELETE or CAS on a small key space,
 * written values unique; a CAS expects the value the client last saw for the key, or its absence), talks to the node it believes is leader, follows `notLeader` hints, retries on refusals and
 * timeouts (a retried SET keeps its session id and sequence number, so it applies once), and gives up at a
 * deadline. Every operation is recorded for the linearizability checker: a SET that gave up is "info" (it
 * may have applied) unless every attempt was refused before it could be appended ("fail").
 *
 * Clients live in real (oracle) time; their messages go through the simulated network.
 *
 * @module
 */
import type { CasExpect, Refusal, WriteOutcome } from "../../src/raft/types.ts";
import type { HistoryOp, OpKind } from "./linearizability.ts";
import type { Prng } from "./prng.ts";

export interface ClientRequest {
  readonly client: number;
  readonly opId: number;
  readonly attempt: number;
  readonly kind: OpKind;
  readonly key: string;
  /** SET and CAS: the value to write. */
  readonly value: string;
  /** CAS only. */
  readonly expect?: CasExpect;
  readonly clientId: string;
  readonly seq: number;
  /** GET only: `follower` asks any node for a ReadIndex read (issue 16); absent: a lease read at the leader. */
  readonly readMode?: "follower";
}

export type ClientReply =
  | { readonly kind: "read"; readonly value: string; readonly found: boolean }
  | { readonly kind: "written"; readonly outcome?: WriteOutcome }
  /** The node refused; `beforeAppend` when it was `propose`/`read` that refused (nothing was appended). */
  | { readonly kind: "refused"; readonly refusal: Refusal; readonly beforeAppend: boolean }
  /** A proposal was accepted and later lost (e.g. the leader stepped down): it may still commit. */
  | { readonly kind: "lost"; readonly refusal?: Refusal };

export interface ClientResponse {
  readonly client: number;
  readonly opId: number;
  readonly attempt: number;
  readonly node: number;
  readonly reply: ClientReply;
}

export interface ClientOptions {
  readonly keys: readonly string[];
  readonly thinkMsMax: number;
  readonly attemptTimeoutMs: number;
  readonly opDeadlineMs: number;
  readonly setChance: number;
  /** Share of GETs sent as follower (ReadIndex) reads to a random node (issue 16). */
  readonly followerReadChance?: number;
}

export type ClientTimer = "start" | "retry" | "attemptTimeout" | "deadline";

/** What a client needs from the simulator. */
export interface ClientHost {
  readonly nowMs: number;
  readonly nodeCount: number;
  send(req: ClientRequest, node: number): void;
  setTimer(client: number, atMs: number, what: ClientTimer, opId: number, attempt: number): void;
  trace(line: string): void;
}

interface MutableOp {
  id: number;
  client: number;
  kind: OpKind;
  key: string;
  value: string;
  expected?: string;
  succeeded?: boolean;
  current?: string;
  invokeMs: number;
  returnMs: number;
  outcome: "pending" | "ok" | "fail" | "info";
}

/** The history shared by all clients. */
export class History {
  readonly #ops: MutableOp[] = [];

  invoke(
    client: number,
    kind: OpKind,
    key: string,
    value: string,
    nowMs: number,
    expected?: string,
  ): MutableOp {
    const op: MutableOp = {
      id: this.#ops.length,
      client,
      kind,
      key,
      value,
      ...(expected !== undefined ? { expected } : {}),
      invokeMs: nowMs,
      returnMs: Infinity,
      outcome: "pending",
    };
    this.#ops.push(op);
    return op;
  }

  get size(): number {
    return this.#ops.length;
  }

  count(outcome: MutableOp["outcome"]): number {
    return this.#ops.filter((o) => o.outcome === outcome).length;
  }

  /** The history with every pending operation closed: a pending write is "info", a pending GET "fail". */
  finish(): HistoryOp[] {
    return this.#ops.map((o) => ({
      ...o,
      outcome: o.outcome === "pending" ? (o.kind === "get" ? "fail" : "info") : o.outcome,
      returnMs: o.outcome === "ok" ? o.returnMs : Infinity,
    }));
  }
}

interface CurrentOp {
  readonly record: MutableOp;
  readonly opId: number;
  readonly seq: number;
  readonly deadlineMs: number;
  /** A GET served as a follower (ReadIndex) read. */
  readonly follower: boolean;
  attempt: number;
  target: number;
  /** Attempts of a SET that may have been appended (sent, and not refused before appending). */
  readonly unresolved: Set<number>;
}

function describeRecord(r: MutableOp): string {
  switch (r.kind) {
    case "get":
      return r.outcome === "ok" ? `GET ${r.key} → ${JSON.stringify(r.value)}` : `GET ${r.key}`;
    case "set":
      return `SET ${r.key}=${r.value}`;
    case "delete":
      return `DEL ${r.key}`;
    case "cas":
      return `CAS ${r.key} ${JSON.stringify(r.expected)}→${r.value}` +
        (r.outcome !== "ok" ? "" : r.succeeded ? " held" : ` failed, saw ${JSON.stringify(r.current)}`);
  }
}

export class SimClient {
  #op: CurrentOp | undefined;
  #nextOpId = 1;
  #seq = 0;
  #leaderGuess: number;
  /** key → the value this client last saw there ("" = absent): what its CASes expect. */
  readonly #lastSeen = new Map<string, string>();
  readonly clientId: string;
  opsStarted = 0;

  constructor(
    readonly id: number,
    private readonly host: ClientHost,
    private readonly history: History,
    private readonly options: ClientOptions,
    private readonly rng: Prng,
  ) {
    this.clientId = `c${id}`;
    this.#leaderGuess = rng.int(1, host.nodeCount);
  }

  /** Schedules the first operation. */
  begin(): void {
    this.host.setTimer(this.id, this.host.nowMs + this.rng.range(0, 50), "start", this.#nextOpId, 0);
  }

  onTimer(what: ClientTimer, opId: number, attempt: number): void {
    if (what === "start") {
      if (this.#op === undefined && opId === this.#nextOpId) this.#start();
      return;
    }
    const op = this.#op;
    if (op === undefined || op.opId !== opId) return;
    if (what === "deadline") return this.#giveUp();
    if (attempt !== op.attempt) return;
    if (what === "attemptTimeout") {
      op.target = this.#otherNode(op.target);
      this.#attempt();
    } else this.#attempt();
  }

  onResponse(r: ClientResponse): void {
    const op = this.#op;
    if (op === undefined || op.opId !== r.opId) return;
    const reply = r.reply;
    switch (reply.kind) {
      case "read":
        if (!op.follower) this.#leaderGuess = r.node;
        return this.#complete(reply.found ? reply.value : "");
      case "written":
        this.#leaderGuess = r.node;
        if (op.record.kind === "cas") {
          if (!reply.outcome) throw new Error(`c${this.id}: a CAS acknowledged without its outcome`);
          op.record.succeeded = reply.outcome.succeeded;
          if (!reply.outcome.succeeded) op.record.current = reply.outcome.found ? reply.outcome.value : "";
        }
        return this.#complete(op.record.value);
      case "refused":
        if (reply.beforeAppend) op.unresolved.delete(r.attempt);
        if (r.attempt !== op.attempt) return; // a stale refusal: a newer attempt is out
        return this.#retryAfterRefusal(op, r.node, reply.refusal);
      case "lost":
        if (r.attempt !== op.attempt) return;
        if (reply.refusal) return this.#retryAfterRefusal(op, r.node, reply.refusal);
        op.target = this.#otherNode(r.node);
        return this.#retryIn(op, 1);
    }
  }

  #retryAfterRefusal(op: CurrentOp, node: number, refusal: Refusal): void {
    switch (refusal.kind) {
      case "notLeader":
        if (refusal.leaderId !== 0 && refusal.leaderId !== node) {
          op.target = refusal.leaderId;
          return this.#retryIn(op, this.rng.range(0.1, 2));
        }
        op.target = this.#otherNode(node);
        return this.#retryIn(op, this.rng.range(10, 60));
      case "notReady":
        op.target = node;
        return this.#retryIn(op, Math.min(refusal.retryAfterMs, 300) + this.rng.range(0, 5));
      case "transferring":
        op.target = refusal.leaderId !== 0 ? refusal.leaderId : node;
        return this.#retryIn(op, this.rng.range(5, 30));
      default:
        op.target = this.#otherNode(node);
        return this.#retryIn(op, this.rng.range(5, 30));
    }
  }

  #retryIn(op: CurrentOp, delayMs: number): void {
    op.attempt++; // invalidates the pending attempt timeout
    this.host.setTimer(this.id, this.host.nowMs + delayMs, "retry", op.opId, op.attempt);
  }

  #otherNode(node: number): number {
    const n = this.host.nodeCount;
    if (n === 1) return node;
    const k = this.rng.int(1, n - 1);
    return ((node - 1 + k) % n) + 1;
  }

  #start(): void {
    const o = this.options;
    const opId = this.#nextOpId++;
    let kind: OpKind = this.rng.chance(o.setChance) ? "set" : "get";
    if (kind === "set") {
      const r = this.rng.float();
      kind = r < 0.2 ? "delete" : r < 0.5 ? "cas" : "set";
    }
    const key = this.rng.pick(o.keys);
    const seq = kind === "get" ? 0 : ++this.#seq;
    const value = kind === "set" || kind === "cas" ? `${this.clientId}-${seq}` : "";
    const expected = kind === "cas" ? (this.#lastSeen.get(key) ?? "") : undefined;
    const now = this.host.nowMs;
    const record = this.history.invoke(this.id, kind, key, value, now, expected);
    this.opsStarted++;
    // Follower reads go to any node: the point is that followers serve them (drawn only when enabled, so
    // seeds without them keep their draws).
    const follower = kind === "get" && (o.followerReadChance ?? 0) > 0 &&
      this.rng.chance(o.followerReadChance!);
    this.#op = {
      record,
      opId,
      seq,
      deadlineMs: now + o.opDeadlineMs,
      follower,
      attempt: 0,
      target: follower ? this.rng.int(1, this.host.nodeCount) : this.#leaderGuess,
      unresolved: new Set(),
    };
    this.host.trace(`c${this.id} invokes ${describeRecord(record)}`);
    this.host.setTimer(this.id, now + o.opDeadlineMs, "deadline", opId, 0);
    this.#attempt();
  }

  #attempt(): void {
    const op = this.#op!;
    if (this.host.nowMs >= op.deadlineMs) return this.#giveUp();
    op.attempt++;
    const r = op.record;
    if (r.kind !== "get") op.unresolved.add(op.attempt);
    this.host.send({
      client: this.id,
      opId: op.opId,
      attempt: op.attempt,
      kind: r.kind,
      key: r.key,
      value: r.kind === "get" ? "" : r.value,
      ...(r.kind === "cas" ? { expect: r.expected === "" ? { version: 0 } : { value: r.expected! } } : {}),
      clientId: this.clientId,
      seq: op.seq,
      ...(op.follower ? { readMode: "follower" as const } : {}),
    }, op.target);
    this.host.setTimer(
      this.id,
      this.host.nowMs + this.options.attemptTimeoutMs,
      "attemptTimeout",
      op.opId,
      op.attempt,
    );
  }

  #complete(value: string): void {
    const op = this.#op!;
    op.record.outcome = "ok";
    op.record.returnMs = this.host.nowMs;
    const rec = op.record;
    if (rec.kind === "get") rec.value = value;
    const seen = rec.kind === "get"
      ? value
      : rec.kind === "delete"
      ? ""
      : rec.kind === "set" || rec.succeeded
      ? rec.value
      : rec.current!;
    this.#lastSeen.set(rec.key, seen);
    this.host.trace(`c${this.id} ok ${describeRecord(rec)}`);
    this.#finish();
  }

  #giveUp(): void {
    const op = this.#op!;
    const maybe = op.record.kind !== "get" && op.unresolved.size > 0;
    op.record.outcome = maybe ? "info" : "fail";
    this.host.trace(
      `c${this.id} gives up (${op.record.outcome}) on ${op.record.kind.toUpperCase()} ${op.record.key}`,
    );
    this.#finish();
  }

  #finish(): void {
    this.#op = undefined;
    this.host.setTimer(
      this.id,
      this.host.nowMs + this.rng.range(0, this.options.thinkMsMax),
      "start",
      this.#nextOpId,
      0,
    );
  }
}
