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
import type { GetReply, SetReply } from "../../src/transport/api.ts";
import { TransportError } from "../../src/transport/errors.ts";
import type { History } from "./history.ts";
import type { Rng } from "./prng.ts";

export interface WorkerOptions {
  /** Fraction of GETs (the rest are SETs). */
  readonly readFraction: number;
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
  | { kind: "ok"; node: number; value?: string }
  | { kind: "fail" | "info"; error: string };

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
    const r = await this.#execute("get", key, "", "", 0, { nodes, timeoutMs });
    this.#record(process, "get", key, null, r);
    return r;
  }

  async #run(rng: Rng, opts: WorkerOptions): Promise<void> {
    let process = this.#nextProcess++;
    let clientId = `chaos-p${process}-${crypto.randomUUID().slice(0, 8)}`;
    let seq = 0;
    while (!this.#stopped) {
      const key = rng.pick(opts.keys);
      const isGet = rng.chance(opts.readFraction);
      const start = opts.roam ? rng.pick(opts.nodes ?? this.#cluster.ids) : undefined;
      if (isGet) {
        this.history.invoke(process, "get", key, null);
        const r = await this.#execute("get", key, "", "", 0, { ...opts, start });
        this.#record(process, "get", key, null, r);
        if (r.kind === "info") {
          process = this.#nextProcess++;
          clientId = `chaos-p${process}-${crypto.randomUUID().slice(0, 8)}`;
          seq = 0;
        }
      } else {
        const value = `${process}-${++this.#valueCounter}`;
        seq++;
        this.history.invoke(process, "set", key, value);
        const r = await this.#execute("set", key, value, clientId, seq, { ...opts, start });
        this.#record(process, "set", key, value, r);
        if (r.kind === "info") {
          process = this.#nextProcess++;
          clientId = `chaos-p${process}-${crypto.randomUUID().slice(0, 8)}`;
          seq = 0;
        }
      }
      // Always give timers a turn (a loop of instant answers would otherwise starve them).
      await sleep(rng.float() * (opts.thinkMsMax ?? 0));
    }
  }

  #record(process: number, f: "get" | "set", key: string, setValue: string | null, r: Outcome): void {
    if (r.kind === "ok") {
      this.history.complete(process, "ok", f, key, f === "get" ? (r.value ?? "") : setValue, {
        node: r.node,
      });
    } else {
      this.history.complete(process, r.kind, f, key, setValue, { error: r.error });
    }
  }

  async #execute(
    f: "get" | "set",
    key: string,
    value: string,
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
        const reply: GetReply | SetReply = f === "get"
          ? await stub.get(key, attemptMs)
          : await stub.set(key, value, clientId, seq, attemptMs);
        if (reply.ok) {
          this.#leaderGuess = target;
          return {
            kind: "ok",
            node: reply.nodeId || target,
            value: f === "get" ? (reply as GetReply).value : undefined,
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
    return {
      kind: f === "set" && ambiguous ? "info" : (f === "get" && ambiguous ? "info" : "fail"),
      error: lastError,
    };
  }
}
