/**
 * Concurrent GET/SET clients for a chaos run, all in the harness process, recording a {@linkcode History}.
 *
 * Each worker runs one operation at a time with its own small leader-following loop over `ClusterStub`
 * (not the client library, so the outcome of every attempt is known exactly):
 * - a reply `ok` completes the operation;
 * - `notLeader` (with or without a hint), `notReady`, `transferring`, and a refused connection mean this
 *   attempt had no effect; the worker follows the hint or the next node and tries again;
 * - a `timeout` reply, a deadline, a dropped connection or anything else may hide an appended SET: the
 *   attempt is *ambiguous*. Later attempts of the same SET keep its (clientId, seq), so it applies at most
 *   once.
 * At the operation's deadline a SET with an ambiguous attempt is `info`, otherwise `fail`. A GET that did
 * not succeed is `fail` when every attempt was refused and `info` otherwise (reads have no effect: the
 * checker drops both). After an `info` the worker continues as a new process with a new clientId.
 *
 * @module
 */
import type { ClusterStub } from "../../src/transport/client_stub.ts";
import type { CasReply, GetReply, ReplyCommon } from "../../src/transport/api.ts";
import type { CasExpect } from "../../src/raft/types.ts";
import { TransportError } from "../../src/transport/errors.ts";
import type { EventValue, Fn, History } from "./history.ts";
import type { Rng } from "./prng.ts";

export interface WorkerOptions {
  /** Fraction of GETs (the rest are writes: SET, DELETE or CAS). */
  readonly readFraction: number;
  /** Of the writes, the fraction that are DELETEs (default 0). */
  readonly deleteFraction?: number;
  /**
   * Of the writes, the fraction that are compare-and-sets (default 0), expecting the value the worker last
   * saw for the key (or its absence).
   */
  readonly casFraction?: number;
  readonly keys: readonly string[];
  /** Nodes this worker may dial (default: all). */
  readonly nodes?: readonly number[];
  /** Follow leader hints (default true). A worker pinned to one node sets false. */
  readonly followHints?: boolean;
  /** Pause between operations, uniform in [0, thinkMsMax]. */
  readonly thinkMsMax?: number;
  /**
   * Start every operation at a random node instead of the last known leader (then follow hints as usual):
   * reads reach every node, including an old leader cut off from its peers that still believes it leads.
   */
  readonly roam?: boolean;
  /**
   * Issue 16: GETs in this read mode, each at a random allowed node (default: the leader's lease read).
   * `follower` reads go into the linearizability history; `stale` ones (with `maxStalenessMs`) are checked
   * against their bound (`checkStaleReads`).
   */
  readonly readMode?: "follower" | "stale";
  readonly maxStalenessMs?: number;
}

export interface WorkloadOptions {
  /** Deadline of one operation, retries included. */
  readonly opTimeoutMs: number;
  /** Deadline of one attempt at one node. */
  readonly attemptTimeoutMs: number;
}

export const DEFAULT_WORKLOAD: WorkloadOptions = { opTimeoutMs: 1000, attemptTimeoutMs: 300 };

/** What the workload needs from the cluster: the node ids and a stub per node (dialled directly). */
export interface StubSource {
  readonly ids: readonly number[];
  stub(id: number): ClusterStub;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

type Outcome =
  | { kind: "ok"; node: number; value?: string; cas?: { succeeded: boolean; current: string } }
  | { kind: "fail" | "info"; error: string };

/** One operation as the workload sends it. */
export type Request =
  | {
    readonly f: "get";
    readonly key: string;
    readonly readMode?: "follower" | "stale";
    readonly maxStalenessMs?: number;
  }
  | { readonly f: "set"; readonly key: string; readonly value: string }
  | { readonly f: "delete"; readonly key: string }
  | { readonly f: "cas"; readonly key: string; readonly expected: string | null; readonly value: string };

/** A transport failure that certainly did not deliver the request (no connection was made). */
export function definitelyNotSent(e: TransportError): boolean {
  return e.codeName === "UNAVAILABLE" &&
    /No connection established|ECONNREFUSED|connect ECONN/i.test(e.details);
}

export class Workload {
  readonly history: History;
  readonly #cluster: StubSource;
  readonly #opts: WorkloadOptions;
  readonly #workers: Promise<void>[] = [];
  #stopped = false;
  #nextProcess = 0;
  #leaderGuess = 0;
  #valueCounter = 0;
  #closedForWrites = false;
  /** Final reads and other one-off operations use process numbers from here on. */
  static readonly SPECIAL_PROCESS_BASE = 1_000_000;
  #special = Workload.SPECIAL_PROCESS_BASE;

  constructor(cluster: StubSource, history: History, opts: WorkloadOptions = DEFAULT_WORKLOAD) {
    this.#cluster = cluster;
    this.history = history;
    this.#opts = opts;
  }

  /** Starts a worker loop; it runs until {@linkcode stop}. */
  addWorker(rng: Rng, opts: WorkerOptions): void {
    this.#workers.push(this.#run(rng, opts));
  }

  /** Stops every worker after its current operation; resolves when all have completed. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.#workers);
  }

  /** One GET outside the workers (e.g. the final read-back), recorded in the history. */
  async readOnce(key: string, timeoutMs: number, nodes?: readonly number[]): Promise<Outcome> {
    const process = this.#special++;
    this.history.invoke(process, "get", key, null);
    const r = await this.#execute({ f: "get", key }, "", 0, { nodes, timeoutMs });
    this.#record(process, { f: "get", key }, r);
    return r;
  }

  /**
   * One write outside the workers with its own session (e.g. the CAS counter's increments), retried with the
   * same (clientId, seq) until its outcome is known or `giveUpAtMs` (performance.now) passes. It is ONE
   * operation of the history from its first attempt to its answer: a retry answered by the session reports
   * an effect that may date from an earlier attempt, so the attempts must not be recorded apart.
   */
  async writeUntilKnown(
    process: number,
    req: Exclude<Request, { f: "get" }>,
    clientId: string,
    seq: number,
    giveUpAtMs: number,
  ): Promise<Outcome> {
    this.history.invoke(process, req.f, req.key, eventValue(req));
    let ambiguous = false;
    while (true) {
      const r = await this.#execute(req, clientId, seq, {});
      if (r.kind === "info") ambiguous = true;
      if (r.kind === "ok" || performance.now() >= giveUpAtMs || this.#closedForWrites) {
        const final: Outcome = r.kind === "fail" && ambiguous ? { kind: "info", error: r.error } : r;
        this.#record(process, req, final);
        return final;
      }
      await sleep(20);
    }
  }

  /** Stops `writeUntilKnown` retrying (the run is over). */
  closeWrites(): void {
    this.#closedForWrites = true;
  }

  async #run(rng: Rng, opts: WorkerOptions): Promise<void> {
    let process = this.#nextProcess++;
    let clientId = `chaos-p${process}-${crypto.randomUUID().slice(0, 8)}`;
    let seq = 0;
    /** key → the value this worker last saw there (null: absent), what its CASes expect. */
    const lastSeen = new Map<string, string | null>();
    while (!this.#stopped) {
      const key = rng.pick(opts.keys);
      const isGet = rng.chance(opts.readFraction);
      const start = opts.roam || (isGet && opts.readMode !== undefined)
        ? rng.pick(opts.nodes ?? this.#cluster.ids)
        : undefined;
      let req: Request;
      if (isGet) {
        req = opts.readMode === undefined
          ? { f: "get", key }
          : { f: "get", key, readMode: opts.readMode, maxStalenessMs: opts.maxStalenessMs };
      } else {
        const w = rng.float();
        const value = `${process}-${++this.#valueCounter}`;
        req = w < (opts.deleteFraction ?? 0)
          ? { f: "delete", key }
          : w < (opts.deleteFraction ?? 0) + (opts.casFraction ?? 0)
          ? { f: "cas", key, expected: lastSeen.get(key) ?? null, value }
          : { f: "set", key, value };
      }
      if (req.f !== "get") seq++;
      this.history.invoke(
        process,
        req.f,
        key,
        eventValue(req),
        undefined,
        req.f === "get" && req.readMode !== undefined
          ? { readMode: req.readMode, ...(req.maxStalenessMs ? { maxStalenessMs: req.maxStalenessMs } : {}) }
          : {},
      );
      const r = await this.#execute(req, clientId, seq, { ...opts, start });
      this.#record(process, req, r);
      if (r.kind === "ok") lastSeen.set(key, seenAfter(req, r));
      if (r.kind === "info") {
        process = this.#nextProcess++;
        clientId = `chaos-p${process}-${crypto.randomUUID().slice(0, 8)}`;
        seq = 0;
      }
      // Always give timers a turn (a loop of instant answers would otherwise starve them).
      await sleep(rng.float() * (opts.thinkMsMax ?? 0));
    }
  }

  #record(process: number, req: Request, r: Outcome): void {
    const value = eventValue(req);
    if (r.kind !== "ok") {
      this.history.complete(process, r.kind, req.f, req.key, value, { error: r.error });
    } else if (req.f === "get") {
      this.history.complete(process, "ok", "get", req.key, r.value ?? "", { node: r.node });
    } else if (req.f === "cas" && r.cas && !r.cas.succeeded) {
      // The comparison failed: no effect, but a read of `current`.
      this.history.complete(process, "fail", "cas", req.key, value, {
        node: r.node,
        current: r.cas.current,
        error: "compare failed",
      });
    } else {
      this.history.complete(process, "ok", req.f, req.key, value, { node: r.node });
    }
  }

  async #execute(
    req: Request,
    clientId: string,
    seq: number,
    opts: { nodes?: readonly number[]; followHints?: boolean; timeoutMs?: number; start?: number },
  ): Promise<Outcome> {
    const allowed = opts.nodes ?? this.#cluster.ids;
    const follow = opts.followHints ?? true;
    const deadline = performance.now() + (opts.timeoutMs ?? this.#opts.opTimeoutMs);
    let target = opts.start !== undefined && allowed.includes(opts.start)
      ? opts.start
      : allowed.includes(this.#leaderGuess)
      ? this.#leaderGuess
      : allowed[0];
    let ambiguous = false;
    let lastError = "no attempt";
    let sinceBackoff = 0;
    for (let attempt = 0; attempt < 200; attempt++) {
      const remaining = deadline - performance.now();
      if (remaining <= 5) break;
      const attemptMs = Math.min(remaining, this.#opts.attemptTimeoutMs);
      let next: number | undefined;
      let waitMs = 0;
      try {
        const stub = this.#cluster.stub(target);
        const key = req.key;
        const reply: ReplyCommon = req.f === "get"
          ? await stub.get(
            key,
            attemptMs,
            req.readMode === undefined ? {} : { readMode: req.readMode, maxStalenessMs: req.maxStalenessMs },
          )
          : req.f === "set"
          ? await stub.set(key, req.value, clientId, seq, attemptMs)
          : req.f === "delete"
          ? await stub.delete(key, clientId, seq, attemptMs)
          : await stub.cas(
            { key, expect: casExpect(req.expected), value: req.value, clientId, seq },
            attemptMs,
          );
        if (reply.ok) {
          this.#leaderGuess = target;
          const cas = req.f === "cas" ? (reply as CasReply) : undefined;
          return {
            kind: "ok",
            node: reply.nodeId || target,
            value: req.f === "get" ? (reply as GetReply).value : undefined,
            ...(cas ? { cas: { succeeded: cas.succeeded, current: cas.found ? cas.value : "" } } : {}),
          };
        }
        lastError = `node ${target}: ${reply.error}${reply.errorMessage ? ` (${reply.errorMessage})` : ""}`;
        switch (reply.error) {
          case "notLeader":
            if (
              follow && reply.leaderId > 0 && reply.leaderId !== target && allowed.includes(reply.leaderId)
            ) {
              next = reply.leaderId;
            }
            break;
          case "notReady":
          case "transferring":
            waitMs = Math.min(Math.max(reply.retryAfterMs, 5), 50);
            next = target;
            if (follow && reply.leaderId > 0 && allowed.includes(reply.leaderId)) next = reply.leaderId;
            break;
          case "invalidArgument":
            return { kind: "fail", error: lastError };
          case "tooStale":
          case "overloaded":
            break; // a read elsewhere: nothing was done
          default: // timeout, internal: the SET may have been appended
            ambiguous = true;
            if (
              follow && reply.leaderId > 0 && reply.leaderId !== target && allowed.includes(reply.leaderId)
            ) {
              next = reply.leaderId;
            }
        }
      } catch (e) {
        const te = e instanceof TransportError ? e : undefined;
        lastError = `node ${target}: ${te ? `${te.codeName} ${te.details}` : String(e)}`;
        if (!te || !definitelyNotSent(te)) ambiguous = true;
      }
      if (next === undefined) {
        const i = allowed.indexOf(target);
        next = allowed[(i + 1) % allowed.length];
        if (++sinceBackoff >= allowed.length) {
          sinceBackoff = 0;
          waitMs = Math.max(waitMs, 20);
        }
      }
      target = next;
      if (waitMs > 0) await sleep(Math.min(waitMs, Math.max(0, deadline - performance.now())));
    }
    return { kind: ambiguous ? "info" : "fail", error: lastError };
  }
}

/** The history's `value` of a request: SET the value, CAS `[expected, new]`, GET and DELETE null. */
export function eventValue(req: Request): EventValue {
  return req.f === "set" ? req.value : req.f === "cas" ? [req.expected, req.value] : null;
}

function casExpect(expected: string | null): CasExpect {
  return expected === null ? { version: 0 } : { value: expected };
}

/** What a completed request says the key holds now (null: absent). */
function seenAfter(req: Request, r: Extract<Outcome, { kind: "ok" }>): string | null {
  switch (req.f) {
    case "get":
      return r.value === "" || r.value === undefined ? null : r.value;
    case "set":
      return req.value;
    case "delete":
      return null;
    case "cas":
      return r.cas?.succeeded ? req.value : (r.cas?.current || null);
  }
}

export type { Fn };
