/**
 * Per-stage timestamps of SETs through a node (issue 16), for `deno task trace-set`. Off unless the process
 * is started with `RAFTKV_TRACE_FILE=<path>`: the node then holds no tracer at all (`fromEnv` returns
 * undefined) and every hook is one `?.` on an undefined field.
 *
 * Times are this process's monotonic clock (`performance.now()`, ms). Processes' clocks are not compared:
 * a stage that crosses processes is measured as a round trip on one side (the leader's peer send → ack
 * receive) and a span on the other (the follower's receive → ack sent), and only durations are compared.
 *
 * Records are keyed by log index. The leader's record of an index:
 * `recv` (the Client frame's handler runs), `turn` (the driver's turn proposes it to the core), `fsyncStart`/`fsyncEnd` (the save holding it), `send.<peer>` (the AppendEntries
 * carrying it handed to the peer stream), `ack.<peer>` (that peer's ack covering it delivered), `commit` (the
 * Ready whose commit index covers it), `answer` (the driver answers the proposal), `answered` (the handler
 * returns the reply to the stream, which writes it). A follower's record: `recv` (the AppendEntries frame
 * delivered), `fsyncStart`/`fsyncEnd`, `ackSent` (its AppendEntriesResponse handed to the stream).
 *
 * A record is written once complete (the leader's at `answered`, a follower's at `ackSent`) as one JSON line,
 * in batches every 200 ms off the request path.
 *
 * @module
 */

/** The environment variable that turns tracing on, naming the file the records are appended to. */
export const SET_TRACE_ENV = "RAFTKV_TRACE_FILE";

/** Records kept open (not yet complete) at most; the oldest are dropped beyond it. */
const OPEN_MAX = 4096;
const FLUSH_INTERVAL_MS = 200;

/** One index's stage times (ms, this process's monotonic clock). */
export interface SetTraceRecord {
  readonly node: number;
  readonly role: "leader" | "follower";
  readonly index: number;
  readonly t: Record<string, number>;
  /** `performance.timeOrigin` of the process (wall clock, ms): for same-host diagnostics only. */
  readonly o: number;
}

/** See the module doc. One per node. */
export class SetTracer {
  readonly #node: number;
  readonly #path: string;
  readonly #open = new Map<number, SetTraceRecord>();
  #lines: string[] = [];
  readonly #timer: ReturnType<typeof setInterval>;
  /** Per peer: the highest index whose ack was recorded (acks cover every index up to matchIndex). */
  readonly #acked = new Map<number, number>();
  /** Highest index the last follower-side fsync covered (`fsyncEnd` marks every index up to it). */
  #pendingFsync: number[] = [];

  private constructor(node: number, path: string) {
    this.#node = node;
    this.#path = path;
    this.#timer = setInterval(() => this.flush(), FLUSH_INTERVAL_MS);
    Deno.unrefTimer(this.#timer);
  }

  /** A tracer when `RAFTKV_TRACE_FILE` is set, else undefined (no cost). */
  static fromEnv(node: number): SetTracer | undefined {
    let path: string | undefined;
    try {
      path = Deno.env.get(SET_TRACE_ENV);
    } catch {
      return undefined; // no env permission: tracing stays off
    }
    return path ? new SetTracer(node, path) : undefined;
  }

  #record(index: number, role: "leader" | "follower"): SetTraceRecord {
    let r = this.#open.get(index);
    if (r === undefined || r.role !== role) {
      r = { node: this.#node, role, index, t: {}, o: performance.timeOrigin };
      this.#open.set(index, r);
      if (this.#open.size > OPEN_MAX) this.#open.delete(this.#open.keys().next().value!);
    }
    return r;
  }

  /** Sets `stage` of `index` (first time wins) at `atMs` (default: now). */
  mark(index: number, role: "leader" | "follower", stage: string, atMs = performance.now()): void {
    const r = this.#record(index, role);
    if (r.t[stage] === undefined) r.t[stage] = atMs;
  }

  /** Leader: the indices `first..last` left for `peer` (an AppendEntries with entries). */
  sent(peer: number, first: number, last: number): void {
    const now = performance.now();
    for (let i = Math.max(first, last - 64); i <= last; i++) this.mark(i, "leader", `send.${peer}`, now);
  }

  /** Leader: `peer` acknowledged every index up to `matchIndex`. */
  acked(peer: number, matchIndex: number): void {
    const from = Math.max(this.#acked.get(peer) ?? 0, matchIndex - 64) + 1;
    if (from > matchIndex) return;
    this.#acked.set(peer, matchIndex);
    const now = performance.now();
    for (let i = from; i <= matchIndex; i++) {
      const r = this.#open.get(i);
      if (r !== undefined && r.role === "leader" && r.t[`ack.${peer}`] === undefined) {
        r.t[`ack.${peer}`] = now;
      }
    }
  }

  /** Leader: the commit index reached `commitIndex`. */
  committed(commitIndex: number): void {
    const now = performance.now();
    for (const r of this.#open.values()) {
      if (r.role === "leader" && r.index <= commitIndex && r.t.commit === undefined) r.t.commit = now;
    }
  }

  /** A save of `first..last` starts (either role). */
  fsyncStart(role: "leader" | "follower", first: number, last: number): void {
    const now = performance.now();
    this.#pendingFsync = [];
    for (let i = Math.max(first, last - 64); i <= last; i++) {
      this.mark(i, role, "fsyncStart", now);
      this.#pendingFsync.push(i);
    }
  }

  /** The save started last is durable. */
  fsyncEnd(role: "leader" | "follower"): void {
    const now = performance.now();
    for (const i of this.#pendingFsync) this.mark(i, role, "fsyncEnd", now);
    this.#pendingFsync = [];
  }

  /** Follower: the ack of every index up to `matchIndex` leaves; those records are complete. */
  ackSent(matchIndex: number): void {
    const now = performance.now();
    for (const r of [...this.#open.values()]) {
      if (r.role !== "follower" || r.index > matchIndex) continue;
      r.t.ackSent = now;
      this.#done(r);
    }
  }

  /** Leader: the reply to the SET at `index` is handed back to the stream; its record is complete. */
  answered(index: number, recvMs: number): void {
    const r = this.#record(index, "leader");
    r.t.recv = recvMs;
    r.t.answered = performance.now();
    this.#done(r);
  }

  #done(r: SetTraceRecord): void {
    this.#open.delete(r.index);
    this.#lines.push(JSON.stringify(r));
  }

  /** Appends the complete records to the file. */
  flush(): void {
    if (this.#lines.length === 0) return;
    const text = this.#lines.join("\n") + "\n";
    this.#lines = [];
    try {
      Deno.writeTextFileSync(this.#path, text, { append: true });
    } catch { /* a diagnostic: never stops the node */ }
  }

  close(): void {
    clearInterval(this.#timer);
    this.flush();
  }
}
