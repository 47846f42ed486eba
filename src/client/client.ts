/**
 * {@linkcode RaftkvClient}: SET and GET against a raftkv cluster, with leader discovery, bounded retries and
 * exactly-once SETs (SPEC §3).
 *
 * How a request finds its way:
 * - It starts at the last known leader, or else tries the nodes in turn.
 * - `notLeader` with a hint: go to the hinted node at once (at most one hop per node per round, so two nodes
 *   pointing at each other cannot loop). Without a hint: try the next node.
 * - `notReady` / `transferring`: wait the advised `retryAfterMs` (bounded to 5–500 ms), then retry there.
 * - Unreachable nodes are skipped; once every node has been tried in a round, back off (exponential with
 *   jitter, 50 → 500 ms) and start a new round.
 * - Each attempt has its own deadline, `min(remaining, attemptTimeoutMs)`; at the overall deadline the request
 *   fails with {@linkcode NoLeaderError} or {@linkcode TimeoutError}. `invalidArgument` fails at once with
 *   {@linkcode InvalidArgumentError} (retrying cannot help). A loop, never recursion.
 *
 * Exactly-once: the client has a random `clientId` and a sequence counter starting at 1; one SET keeps its
 * `(clientId, seq)` across all its retries, and the state machine applies a given pair once. SETs of one
 * client run one at a time (a session is a sequence: a SET that reaches the log after a later one of its
 * session is refused as stale, see src/kv/README.md). GETs run concurrently.
 * - `staleSequence`: another process uses this client id; fails with {@linkcode StaleSequenceError}, not
 *   retried (nothing was applied).
 * - `sessionExpired`: the cluster forgot the session. The client starts a new one (new `clientId`, seq 1);
 *   if no earlier attempt of the SET can have been applied it is retried once in the new session, otherwise
 *   it fails with {@linkcode SessionExpiredError} (the outcome is unknown; retrying could apply it twice).
 *
 * @module
 */
import type { NodeAddress } from "../config/cluster_config.ts";
import {
  type CasReply,
  ClusterStub,
  type DeleteReply,
  type GetReply,
  type KeyValue,
  type ListReply,
  type ReadMode,
  type ReplyCommon,
  RpcCode,
  type SetReply,
  type WatchEvent,
} from "../transport/mod.ts";
import type { CasExpect } from "../raft/types.ts";
import { isRequestTooLarge, TransportError } from "../transport/mod.ts";
import { backoffMs, type BackoffOptions } from "./backoff.ts";
import type { CertificateStore } from "../security/mod.ts";
import {
  AccessDeniedError,
  ClientClosedError,
  InvalidArgumentError,
  NoLeaderError,
  NotRaftkvError,
  RequestTooLargeError,
  SessionExpiredError,
  StaleSequenceError,
  TimeoutError,
} from "./errors.ts";

export interface RaftkvClientOptions {
  /** Every node of the cluster. An id of 0 means "unknown" (learned from the node's first reply). */
  readonly nodes: readonly NodeAddress[];
  /** Overall deadline of one request, in ms (default 5000). */
  readonly timeoutMs?: number;
  /** Deadline of one attempt at one node, in ms (default 2000; never more than what is left). */
  readonly attemptTimeoutMs?: number;
  /** Session id for exactly-once SETs (default: `crypto.randomUUID()`). */
  readonly clientId?: string;
  readonly backoff?: BackoffOptions;
  /** [0, 1) source for back-off jitter (default Math.random). */
  readonly random?: () => number;
  /** Called after every attempt (tracing, `--verbose`). */
  readonly onAttempt?: (event: AttemptEvent) => void;
  /** Mutual TLS with this certificate (client or admin); plain text when absent. */
  readonly tls?: CertificateStore;
}

/** One attempt at one node, as reported to `onAttempt`. */
export interface AttemptEvent {
  readonly op: Op;
  /** `3` or, when the id is unknown, the address. */
  readonly node: string;
  /** `ok`, an error kind (`notLeader`, …) or a transport failure (`UNAVAILABLE (connection refused)`, …). */
  readonly outcome: string;
  readonly detail: string;
  readonly ms: number;
}

export interface SetResult {
  /** The node (the leader) that committed the SET. */
  readonly nodeId: number;
  /** Its log index (0 when the node did not say, e.g. for a duplicate). */
  readonly index: number;
  /** From the call to the answer, retries included. */
  readonly latencyMs: number;
}

/** The operations of the client, as attempts and errors name them. */
export type Op = "SET" | "GET" | "DELETE" | "CAS" | "LIST";

export interface DeleteResult extends SetResult {
  /** The key existed (and is gone now). */
  readonly deleted: boolean;
}

export interface CasResult extends SetResult {
  /** The comparison held and the new value was written. */
  readonly succeeded: boolean;
  /** When not succeeded: the key's current value ("" when absent), whether it exists, and its version. */
  readonly value: string;
  readonly found: boolean;
  readonly version: number;
}

export interface ListOptions extends RequestOptions {
  /** Continuation: only keys after this one (the `next` of a previous page). */
  readonly after?: string;
  /** Keys per page (the node caps it; default 100). */
  readonly limit?: number;
  readonly withValues?: boolean;
}

export interface ListResult {
  readonly items: readonly KeyValue[];
  /** Set when more keys follow: pass it as `after` to get the next page. */
  readonly next?: string;
  readonly nodeId: number;
  readonly latencyMs: number;
}

export interface WatchOptions {
  /** Watch every key starting with `key` instead of `key` alone. */
  readonly prefix?: boolean;
  /** First log index wanted (0 or absent: from now). */
  readonly fromIndex?: number;
  /** Stops the watch. */
  readonly signal?: AbortSignal;
  /** How long to keep trying to (re)connect before giving up (default: the client's timeout). */
  readonly reconnectTimeoutMs?: number;
  /** Called when the stream (re)starts at a node. */
  readonly onConnect?: (info: { nodeId: number; startIndex: number }) => void;
}

/** A watch stream ended by the cluster in a way a retry cannot fix (e.g. the start index was compacted). */
export class WatchError extends Error {
  override readonly name = "WatchError";
  constructor(
    readonly kind: string,
    message: string,
    /** For `compacted`: the oldest index the node still had. */
    readonly oldestIndex: number,
  ) {
    super(message);
  }
}

export interface GetResult {
  /** "" when the key does not exist. */
  readonly value: string;
  readonly found: boolean;
  /** Log index of the key's last change (0 when it does not exist); always set by `RaftkvClient.get`. */
  readonly version?: number;
  readonly nodeId: number;
  readonly latencyMs: number;
}

/** Per-request overrides. */
export interface RequestOptions {
  readonly timeoutMs?: number;
}

/**
 * How a GET is served (issue 16). `leader` (default): by the leader under its lease. `follower`: by any node
 * after it has applied the leader's read index (ReadIndex; linearizable, spreads reads over the nodes).
 * `stale`: by any node that can show its state is at most `maxStalenessMs` old (not linearizable).
 */
export interface GetOptions extends RequestOptions {
  readonly readMode?: ReadMode;
  /** `stale` only: the bound in ms (> 0). */
  readonly maxStalenessMs?: number;
  /**
   * `follower`/`stale`: the node to ask first (by id; default: the nodes in turn, one per GET). Another node
   * is tried when it refuses (no leader known, too stale, overloaded) or cannot be reached.
   */
  readonly nodeId?: number;
}

export const DEFAULT_TIMEOUT_MS = 5000;
export const DEFAULT_ATTEMPT_TIMEOUT_MS = 2000;
/** An attempt this long (or the whole attempt budget, if shorter) gives a live node time to answer. */
const FAIR_ATTEMPT_MS = 250;
/** Bounds applied to a node's `retryAfterMs` advice. */
const RETRY_AFTER_MIN_MS = 5;
const RETRY_AFTER_MAX_MS = 500;

interface Target {
  id: number;
  readonly address: string;
}

function isWrite(op: Op): boolean {
  return op === "SET" || op === "DELETE" || op === "CAS";
}

function label(t: Target): string {
  return t.id > 0 ? String(t.id) : t.address;
}

function nodeName(t: Target): string {
  return t.id > 0 ? `node ${t.id}` : t.address;
}

/**
 * What a refusal of access says (UNAUTHENTICATED / PERMISSION_DENIED from a node, or a TLS handshake the node
 * refused: no certificate, another CA, expired), or undefined for any other failure. Retrying cannot help.
 */
export function accessDenied(e: TransportError): string | undefined {
  if (e.code === RpcCode.UNAUTHENTICATED || e.code === RpcCode.PERMISSION_DENIED) return e.details;
  if (e.code !== RpcCode.UNAVAILABLE) return undefined;
  const alert =
    /(CertificateRequired|UnknownCa|UnknownCA|BadCertificate|CertificateExpired|CertificateUnknown|certificate has expired|unable to verify|self[- ]signed|expected node|presented|Hostname\/IP does not match|ERR_TLS_CERT_ALTNAME_INVALID|CERT_HAS_EXPIRED|UNABLE_TO_VERIFY_LEAF_SIGNATURE|DEPTH_ZERO_SELF_SIGNED_CERT|InvalidCertificate|UnknownIssuer|NotValidYet|Expired)/i
      .exec(e.details);
  return alert ? `TLS refused (${alert[1]}): ${e.details.replace(/\s*Resolution note:.*$/s, "")}` : undefined;
}

/** True when a transport failure says the address is not a raftkv node (another protocol answered). */
export function isForeignProtocol(e: TransportError): boolean {
  if (e.code === RpcCode.UNIMPLEMENTED) return true;
  // An HTTP body read as a gRPC frame: its first bytes make an absurd length.
  if (e.code === RpcCode.RESOURCE_EXHAUSTED) return /larger than max/i.test(e.details);
  if (e.code !== RpcCode.INTERNAL && e.code !== RpcCode.UNKNOWN && e.code !== RpcCode.UNAVAILABLE) {
    return false;
  }
  return /without gRPC status|Protocol error|content-type|Received HTTP status|write after end|unimplemented/i
    .test(e.details);
}

/** True when the call never reached a node's handler (nothing listening, no connection, another protocol). */
export function neverConnected(e: TransportError): boolean {
  if (isForeignProtocol(e)) return true;
  if (e.code === RpcCode.UNAVAILABLE) return /No connection established|ECONNREFUSED/i.test(e.details);
  if (e.code === RpcCode.DEADLINE_EXCEEDED) return !/remote_addr=/.test(e.details);
  return false;
}

/** A short, single-line account of a transport failure, e.g. `UNAVAILABLE (connection refused)`. */
export function describeTransportError(e: TransportError, attemptMs: number): string {
  const d = e.details.replace(/\s+/g, " ").trim();
  if (e.code === RpcCode.UNAVAILABLE) {
    if (/ECONNREFUSED/.test(d)) return "UNAVAILABLE (connection refused)";
    if (isForeignProtocol(e)) return "UNAVAILABLE (the connection was closed: not a raftkv node?)";
    // TLS on one side only (Deno 2.8.3's wording): say so, since every node may be up.
    if (/wrong version number|InvalidContentType/i.test(d)) {
      return "UNAVAILABLE (TLS handshake failed: the node speaks plain text; was it started with --insecure?)";
    }
    if (/Last error: Failed to connect \(/.test(d)) {
      return "UNAVAILABLE (Failed to connect: the port accepted the connection but no session followed; a node " +
        "that requires TLS does that to a plain-text client: drop --insecure / RAFTKV_INSECURE)";
    }
    const last = /Last error: (?:Error: )?(.*?)(?: \(\d{4}-[^)]*\))?\.? Resolution note/.exec(d)?.[1];
    return last ? `UNAVAILABLE (${last})` : "UNAVAILABLE";
  }
  if (e.code === RpcCode.DEADLINE_EXCEEDED) {
    return neverConnected(e)
      ? `DEADLINE_EXCEEDED (no connection within ${Math.round(attemptMs)} ms)`
      : `DEADLINE_EXCEEDED (no answer within ${Math.round(attemptMs)} ms)`;
  }
  if (isForeignProtocol(e)) return `${e.codeName} (not a raftkv node? ${d.slice(0, 100)})`;
  return d ? `${e.codeName} (${d.slice(0, 160)})` : e.codeName;
}

/** A client of one raftkv cluster. Create one per session; `close()` it when done. */
export class RaftkvClient {
  #clientId: string;
  readonly #targets: Target[];
  readonly #timeoutMs: number;
  readonly #attemptTimeoutMs: number;
  readonly #backoff: BackoffOptions;
  readonly #random: () => number;
  readonly #onAttempt: ((e: AttemptEvent) => void) | undefined;
  readonly #stubs = new Map<string, ClusterStub>();
  readonly #tls: CertificateStore | undefined;
  readonly #sleepers = new Set<() => void>();
  #leader: Target | undefined;
  #seq = 0;
  #setChain: Promise<unknown> = Promise.resolve();
  #rr = 0;
  /** Follower and stale reads: the node the next one starts at (spreads them over the nodes). */
  #spread = 0;
  #closed = false;

  constructor(opts: RaftkvClientOptions) {
    this.#tls = opts.tls;
    if (opts.nodes.length === 0) throw new RangeError("RaftkvClient needs at least one node address");
    this.#targets = opts.nodes.map((n) => ({ id: n.id, address: n.address }));
    this.#timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#attemptTimeoutMs = opts.attemptTimeoutMs ?? DEFAULT_ATTEMPT_TIMEOUT_MS;
    if (!(this.#timeoutMs > 0)) throw new RangeError(`timeoutMs must be positive, got ${this.#timeoutMs}`);
    if (!(this.#attemptTimeoutMs > 0)) {
      throw new RangeError(`attemptTimeoutMs must be positive, got ${this.#attemptTimeoutMs}`);
    }
    this.#clientId = opts.clientId ?? crypto.randomUUID();
    this.#backoff = opts.backoff ?? {};
    this.#random = opts.random ?? Math.random;
    this.#onAttempt = opts.onAttempt;
  }

  /** The session id SETs carry (a new one after the cluster expired the session). */
  get clientId(): string {
    return this.#clientId;
  }

  /** The sequence number of the latest SET this client started (0 before the first). */
  get seq(): number {
    return this.#seq;
  }

  /** The node this client currently believes leads (undefined when it does not know). */
  get leader(): NodeAddress | undefined {
    return this.#leader ? { id: this.#leader.id, address: this.#leader.address } : undefined;
  }

  /** Writes `key = value`; resolves once the SET is committed on a majority and applied. */
  set(key: string, value: string, opts: RequestOptions = {}): Promise<SetResult> {
    return this.#write<SetReply, SetResult>(
      "SET",
      opts,
      (stub, clientId, seq, ms) => stub.set(key, value, clientId, seq, ms),
      (_, base) => base,
    );
  }

  /** Removes `key` (exactly once, like SET); `deleted` says whether it existed. */
  delete(key: string, opts: RequestOptions = {}): Promise<DeleteResult> {
    return this.#write<DeleteReply, DeleteResult>(
      "DELETE",
      opts,
      (stub, clientId, seq, ms) => stub.delete(key, clientId, seq, ms),
      (r, base) => ({ ...base, deleted: r.deleted }),
    );
  }

  /**
   * Compare-and-set (linearizable, exactly once): writes `value` iff `key` holds `expect` — `{ value: v }`
   * (the key exists with exactly v), `{ version: n }` (its version is n), or `{ version: 0 }` (it is absent).
   * A CAS that did not hold resolves with `succeeded: false` and the key's current value and version.
   */
  cas(key: string, expect: CasExpect, value: string, opts: RequestOptions = {}): Promise<CasResult> {
    return this.#write<CasReply, CasResult>(
      "CAS",
      opts,
      (stub, clientId, seq, ms) => stub.cas({ key, expect, value, clientId, seq }, ms),
      (r, base) => ({ ...base, succeeded: r.succeeded, value: r.value, found: r.found, version: r.version }),
    );
  }

  /** One page of the keys under `prefix`, in key order (served under the leader's lease, like GET). */
  async list(prefix: string, opts: ListOptions = {}): Promise<ListResult> {
    const t0 = performance.now();
    const req = {
      prefix,
      after: opts.after ?? "",
      limit: opts.limit ?? 0,
      withValues: opts.withValues ?? false,
    };
    const { reply } = await this.#run<ListReply>(
      "LIST",
      opts.timeoutMs ?? this.#timeoutMs,
      (stub, ms) => stub.list(req, ms),
    );
    return {
      items: reply.items,
      ...(reply.more ? { next: reply.nextAfter } : {}),
      nodeId: reply.nodeId,
      latencyMs: performance.now() - t0,
    };
  }

  /**
   * Committed changes to `key` (or every key under it, with `prefix`), in commit order, each once. Any node
   * may serve it; after a disconnect, a node stopping or a watcher cut off as slow, the stream resumes at
   * another node from the index after the last event seen, so events are neither lost nor repeated. Ends
   * when `signal` aborts; throws {@linkcode WatchError} when the cluster no longer has the history asked for
   * (`compacted`, with the oldest index available), and a client error when no node answers in time.
   */
  async *watch(key: string, opts: WatchOptions = {}): AsyncGenerator<WatchEvent> {
    let from = opts.fromIndex ?? 0;
    const budgetMs = opts.reconnectTimeoutMs ?? this.#timeoutMs;
    let failingSince: number | undefined;
    let rounds = 0;
    let lastError = "";
    const tried: string[] = [];
    let target: Target | undefined = undefined;
    while (!opts.signal?.aborted && !this.#closed) {
      target = target ?? this.#targets[this.#rr++ % this.#targets.length];
      if (!tried.includes(label(target))) tried.push(label(target));
      let progressed = false;
      try {
        for await (
          const r of this.#stub(target.address).watch(
            { key, prefix: opts.prefix ?? false, fromIndex: from },
            opts.signal,
          )
        ) {
          if (r.error === "compacted" || r.error === "invalidArgument") {
            throw new WatchError(
              r.error,
              `watch refused by node ${r.nodeId}: ${r.errorMessage}`,
              r.oldestIndex,
            );
          }
          if (r.error !== "none") {
            lastError = `node ${r.nodeId}: ${r.error} (${r.errorMessage})`;
            break;
          }
          if (r.events.length === 0) {
            if (from === 0) from = r.startIndex; // "now" is pinned at the first node: resume from there
            failingSince = undefined;
            rounds = 0;
            opts.onConnect?.({ nodeId: r.nodeId, startIndex: r.startIndex });
            continue;
          }
          for (const e of r.events) {
            if (e.index < from) continue; // never twice
            from = e.index + 1;
            progressed = true;
            yield e;
          }
        }
      } catch (e) {
        if (e instanceof WatchError) throw e;
        if (!(e instanceof TransportError)) throw e;
        lastError = `${nodeName(target)}: ${describeTransportError(e, 0)}`;
      }
      if (opts.signal?.aborted || this.#closed) return;
      // The stream ended or failed: try another node (the next one), after a back-off when nothing came.
      target = this.#targets[this.#rr++ % this.#targets.length];
      if (progressed) failingSince = undefined;
      failingSince ??= performance.now();
      if (performance.now() - failingSince > budgetMs) {
        throw new NoLeaderError({
          op: "WATCH",
          elapsedMs: performance.now() - failingSince,
          tried,
          lastError,
        });
      }
      await this.#sleep(backoffMs(rounds++, this.#backoff, this.#random));
    }
  }

  /** A write of this client's session: one at a time, one seq for all its retries. */
  #write<R extends SetReply, T>(
    op: Op,
    opts: RequestOptions,
    call: (stub: ClusterStub, clientId: string, seq: number, deadlineMs: number) => Promise<R>,
    result: (reply: R, base: SetResult) => T,
  ): Promise<T> {
    const run = this.#setChain.then(async () => {
      const t0 = performance.now();
      for (let session = 0;; session++) {
        const seq = ++this.#seq;
        const clientId = this.#clientId;
        try {
          const { reply } = await this.#run<R>(
            op,
            opts.timeoutMs ?? this.#timeoutMs,
            (stub, ms) => call(stub, clientId, seq, ms),
          );
          return result(reply, {
            nodeId: reply.nodeId,
            index: reply.index,
            latencyMs: performance.now() - t0,
          });
        } catch (e) {
          if (!(e instanceof SessionExpiredError)) throw e;
          // The cluster forgot this session: later writes need a new one. Retry this write in it only when no
          // attempt of it can have been applied (else it could apply twice), and only once.
          if (this.#clientId === clientId) {
            this.#clientId = crypto.randomUUID();
            this.#seq = 0;
          }
          if (e.maybeApplied || session > 0) throw e;
        }
      }
    });
    this.#setChain = run.catch(() => {});
    return run;
  }

  /**
   * Reads the latest committed value of `key` ("" and `found: false` when it does not exist); with
   * `readMode: "follower"` from any node (linearizable), with `"stale"` from any node within
   * `maxStalenessMs` (see GetOptions).
   */
  async get(key: string, opts: GetOptions = {}): Promise<GetResult> {
    const t0 = performance.now();
    const mode = opts.readMode ?? "leader";
    if (mode === "stale" && !(opts.maxStalenessMs !== undefined && opts.maxStalenessMs > 0)) {
      throw new InvalidArgumentError("GET", 0, "read mode stale needs maxStalenessMs > 0 (--max-staleness)");
    }
    const { reply } = mode === "leader"
      ? await this.#run<GetReply>("GET", opts.timeoutMs ?? this.#timeoutMs, (stub, ms) => stub.get(key, ms))
      : await this.#runAnywhere<GetReply>(
        "GET",
        opts.timeoutMs ?? this.#timeoutMs,
        opts.nodeId,
        (stub, ms) => stub.get(key, ms, { readMode: mode, maxStalenessMs: opts.maxStalenessMs }),
      );
    return {
      value: reply.value,
      found: reply.found,
      version: reply.version,
      nodeId: reply.nodeId,
      latencyMs: performance.now() - t0,
    };
  }

  /** Closes every connection; requests in flight fail with `ClientClosedError`. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const wake of this.#sleepers) wake();
    this.#sleepers.clear();
    for (const stub of this.#stubs.values()) stub.close();
    this.#stubs.clear();
  }

  // ------------------------------------------------------------------------------------------------------

  async #run<R extends ReplyCommon>(
    op: Op,
    timeoutMs: number,
    call: (stub: ClusterStub, deadlineMs: number) => Promise<R>,
  ): Promise<{ reply: R; target: Target }> {
    const t0 = performance.now();
    const deadline = t0 + timeoutMs;
    const tried: Target[] = [];
    let lastError = "";
    /** The node that last acted as the leader (it answered notReady/timeout, or timed out as the leader). */
    let leaderSeen: Target | undefined;
    /** SET only: some attempt may have been appended by a leader (its outcome is unknown). */
    let maybeApplied = false;
    let next: Target | undefined = this.#leader;
    let round = new Set<Target>();
    let foreign = new Set<Target>();
    /** Nodes that failed at the transport level this round: hints to them are not followed again. */
    let unreachable = new Set<Target>();
    let hops = 0;
    let rounds = 0;
    /** Nodes that answered at all (any reply): fewer than a majority means no leader can be elected. */
    const answered = new Set<string>();

    while (true) {
      if (this.#closed) throw new ClientClosedError();
      const remaining = deadline - performance.now();
      if (remaining <= 0) break;
      const target = next ?? this.#nextUntried(round);
      next = undefined;
      if (target === undefined) {
        // Every node was tried in this round: all foreign → say so now; otherwise back off and go again.
        if (foreign.size === this.#targets.length) throw new NotRaftkvError(lastError);
        await this.#sleep(Math.min(backoffMs(rounds++, this.#backoff, this.#random), remaining));
        round = new Set();
        foreign = new Set();
        unreachable = new Set();
        hops = 0;
        continue;
      }
      round.add(target);
      if (!tried.includes(target)) tried.push(target);
      const attemptMs = Math.max(1, Math.min(remaining, this.#attemptTimeoutMs));
      const a0 = performance.now();
      const attempt = await this.#attempt(target, attemptMs, call);
      if ("failure" in attempt) {
        const { failure: e, what } = attempt;
        // A deadline so short (the overall deadline being near) that an answer could not be expected says
        // nothing about the node: keep the error before it, and draw no conclusion from it.
        const clipped = e.code === RpcCode.DEADLINE_EXCEEDED &&
          attemptMs < Math.min(this.#attemptTimeoutMs, FAIR_ATTEMPT_MS);
        if (!clipped || lastError === "") lastError = `${nodeName(target)}: ${what}`;
        this.#report(op, target, what, "", a0);
        unreachable.add(target);
        if (isForeignProtocol(e)) foreign.add(target);
        if (!neverConnected(e) && !clipped) {
          // The node took the call and then failed or went silent: as a leader it may have appended it.
          if (isWrite(op)) maybeApplied = true;
          if (e.code === RpcCode.DEADLINE_EXCEEDED) leaderSeen = target;
        }
        if (this.#leader === target) this.#leader = undefined;
        continue;
      }
      const { reply } = attempt;
      answered.add(target.address);
      if (reply.nodeId > 0 && target.id === 0 && !this.#targets.some((t) => t.id === reply.nodeId)) {
        target.id = reply.nodeId;
      }
      this.#report(op, target, reply.ok ? "ok" : reply.error, reply.errorMessage, a0);
      if (reply.ok) {
        this.#leader = target;
        return { reply, target };
      }
      lastError = `${nodeName(target)}: ${reply.error}${
        reply.errorMessage ? ` (${reply.errorMessage})` : ""
      }`;
      // The node says whether a SET may have been applied: `outcomeUnknown` (it appended the SET, then lost
      // leadership, stopped or gave up waiting). Every other refusal means nothing was done; `timeout` and
      // `internal` are kept as "may have" for nodes that predate the explicit code.
      if (
        isWrite(op) &&
        (reply.error === "outcomeUnknown" || reply.error === "timeout" || reply.error === "internal")
      ) {
        maybeApplied = true;
      }
      switch (reply.error) {
        case "invalidArgument":
          throw new InvalidArgumentError(
            op,
            reply.nodeId || target.id,
            reply.errorMessage || "invalid argument",
          );
        case "staleSequence": // final: nothing applied, and a retry would be refused the same way
          throw new StaleSequenceError(op, reply.nodeId || target.id, reply.errorMessage || "stale sequence");
        case "sessionExpired": // see set(): a new session, and a retry only if nothing can have been applied
          throw new SessionExpiredError(
            op,
            reply.nodeId || target.id,
            reply.errorMessage || "session expired",
            maybeApplied,
          );
        case "notLeader": {
          if (this.#leader === target) this.#leader = undefined;
          const hint = this.#hint(reply);
          // Follow hints, but at most one hop per node per round: two nodes naming each other cannot loop.
          if (hint && hint !== target && !unreachable.has(hint) && hops < this.#targets.length) {
            hops++;
            this.#leader = hint;
            next = hint;
          }
          continue;
        }
        case "notReady":
        case "transferring": {
          if (reply.error === "notReady") leaderSeen = target;
          const hint = reply.error === "transferring" ? this.#hint(reply) : undefined;
          next = hint ?? target;
          this.#leader = next;
          const advised = reply.retryAfterMs > 0 ? reply.retryAfterMs : 20;
          const waitMs = Math.min(Math.max(advised, RETRY_AFTER_MIN_MS), RETRY_AFTER_MAX_MS);
          await this.#sleep(Math.min(waitMs, Math.max(0, deadline - performance.now())));
          continue;
        }
        case "outcomeUnknown": {
          // The SET may still apply: retry the same (clientId, seq), at the new leader when one is named.
          leaderSeen ??= target;
          const hint = this.#hint(reply);
          next = hint !== undefined && hint !== target && !unreachable.has(hint) ? hint : undefined;
          if (next !== undefined) {
            this.#leader = next;
            continue;
          }
          await this.#sleep(
            Math.min(
              backoffMs(rounds++, this.#backoff, this.#random),
              Math.max(0, deadline - performance.now()),
            ),
          );
          continue;
        }
        case "overloaded":
        case "timeout": {
          // The leader gave up waiting for a majority, or a queue of it is full: the same (clientId, seq) may
          // be retried safely, after a back-off.
          leaderSeen = target;
          next = target;
          await this.#sleep(
            Math.min(
              backoffMs(rounds++, this.#backoff, this.#random),
              Math.max(0, deadline - performance.now()),
            ),
          );
          continue;
        }
        default:
          continue; // "internal" and anything unknown: try another node
      }
    }
    const summary = {
      op,
      elapsedMs: performance.now() - t0,
      tried: tried.map(label),
      lastError,
      maybeApplied,
      answered: answered.size,
      total: this.#targets.length,
    };
    throw leaderSeen ? new TimeoutError(summary, label(leaderSeen)) : new NoLeaderError(summary);
  }

  /**
   * A request any node may serve (follower and stale reads): starts at `nodeId` (or the next node in turn),
   * and moves to the next node on a refusal or a transport failure, backing off after each full round.
   */
  async #runAnywhere<R extends ReplyCommon>(
    op: Op,
    timeoutMs: number,
    nodeId: number | undefined,
    call: (stub: ClusterStub, deadlineMs: number) => Promise<R>,
  ): Promise<{ reply: R; target: Target }> {
    const t0 = performance.now();
    const deadline = t0 + timeoutMs;
    const n = this.#targets.length;
    let first = nodeId === undefined ? -1 : this.#targets.findIndex((t) => t.id === nodeId);
    if (first < 0) first = this.#spread++ % n;
    const tried: Target[] = [];
    let lastError = "";
    let rounds = 0;
    for (let i = 0;; i++) {
      if (this.#closed) throw new ClientClosedError();
      let remaining = deadline - performance.now();
      if (remaining <= 0) break;
      if (i > 0 && i % n === 0) {
        await this.#sleep(Math.min(backoffMs(rounds++, this.#backoff, this.#random), remaining));
        remaining = deadline - performance.now();
        if (remaining <= 0) break;
      }
      const target = this.#targets[(first + i) % n];
      if (!tried.includes(target)) tried.push(target);
      const attemptMs = Math.max(1, Math.min(remaining, this.#attemptTimeoutMs));
      const a0 = performance.now();
      const attempt = await this.#attempt(target, attemptMs, call);
      if ("failure" in attempt) {
        const { what } = attempt;
        lastError = `${nodeName(target)}: ${what}`;
        this.#report(op, target, what, "", a0);
        continue;
      }
      const { reply } = attempt;
      this.#report(op, target, reply.ok ? "ok" : reply.error, reply.errorMessage, a0);
      if (reply.ok) return { reply, target };
      lastError = `${nodeName(target)}: ${reply.error}${
        reply.errorMessage ? ` (${reply.errorMessage})` : ""
      }`;
      if (reply.error === "invalidArgument") {
        throw new InvalidArgumentError(
          op,
          reply.nodeId || target.id,
          reply.errorMessage || "invalid argument",
        );
      }
    }
    const summary = {
      op,
      elapsedMs: performance.now() - t0,
      tried: tried.map(label),
      lastError,
      maybeApplied: false,
      answered: tried.length,
      total: n,
    };
    throw new NoLeaderError(summary);
  }

  /** The next node not yet tried in this round, round-robin across requests. */
  #nextUntried(round: Set<Target>): Target | undefined {
    for (let i = 0; i < this.#targets.length; i++) {
      const t = this.#targets[(this.#rr + i) % this.#targets.length];
      if (!round.has(t)) {
        this.#rr = (this.#rr + i + 1) % this.#targets.length;
        return t;
      }
    }
    return undefined;
  }

  /** The node a refusal points at: by address when given (added if unknown), else by id. */
  #hint(reply: ReplyCommon): Target | undefined {
    if (reply.leaderAddress) {
      const byAddress = this.#targets.find((t) => t.address === reply.leaderAddress);
      if (byAddress) {
        if (byAddress.id === 0 && reply.leaderId > 0) byAddress.id = reply.leaderId;
        return byAddress;
      }
      const added: Target = { id: reply.leaderId, address: reply.leaderAddress };
      this.#targets.push(added);
      return added;
    }
    if (reply.leaderId > 0) return this.#targets.find((t) => t.id === reply.leaderId);
    return undefined;
  }

  /**
   * One call to `target` with a deadline of `attemptMs`: its reply, or the transport failure and its description.
   * What no other node can fix is thrown: the client was closed, access was denied, or a bug (not a TransportError).
   */
  async #attempt<R>(
    target: Target,
    attemptMs: number,
    call: (stub: ClusterStub, deadlineMs: number) => Promise<R>,
  ): Promise<{ reply: R } | { failure: TransportError; what: string }> {
    try {
      return { reply: await call(this.#stub(target.address), Math.ceil(attemptMs)) };
    } catch (e) {
      if (this.#closed) throw new ClientClosedError();
      if (!(e instanceof TransportError)) throw e;
      const denied = accessDenied(e);
      if (denied) throw new AccessDeniedError(`${nodeName(target)}: ${denied}`);
      if (isRequestTooLarge(e)) throw new RequestTooLargeError(e.details);
      return { failure: e, what: describeTransportError(e, attemptMs) };
    }
  }

  #stub(address: string): ClusterStub {
    let stub = this.#stubs.get(address);
    if (!stub) {
      stub = new ClusterStub(address, {}, { tls: this.#tls });
      this.#stubs.set(address, stub);
    }
    return stub;
  }

  #report(op: Op, target: Target, outcome: string, detail: string, a0: number): void {
    this.#onAttempt?.({ op, node: label(target), outcome, detail, ms: performance.now() - a0 });
  }

  #sleep(ms: number): Promise<void> {
    if (ms <= 0 || this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.#sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#sleepers.add(wake);
    });
  }
}
