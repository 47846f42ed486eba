/**
 * Fair admission of client requests to the node: round-robin between connections, a budget per connection.
 *
 * Without it a node serves request frames in the order they arrive, so a flood on many connections (1,000
 * clients × 1,000 frames) puts every other client's request behind the flood. Here every request frame of a
 * Client stream, and every unary Client call (Get, Set, Delete, Cas, List), first waits in its connection's
 * lane; the node runs at most `maxInFlight` of them at once
 * (node-wide) and at most `perLane` of one connection, and when a slot frees it goes to the next lane in turn
 * that has a request waiting. A well-behaved client's request therefore waits for at most one request of each
 * other busy connection, whatever they have queued. A request holds its slot until its answer has been handed
 * to the connection (or the stream closed), so a client that does not read its answers holds `perLane` slots
 * at most. Lanes waiting past `maxQueued` requests in all are refused at once (the caller says how); the
 * stream applies back-pressure long before that (`serveFrames` pauses reading while its lane is backed up).
 *
 * Pure bookkeeping: no I/O, no timers.
 *
 * @module
 */

/** The work of one admitted request: resolves once its slot may be given back. */
export type AdmittedWork = () => Promise<void>;

/** One connection's queue of requests waiting for a slot. */
export class Lane {
  /** Requests waiting for a slot, oldest first. */
  readonly waiting: AdmittedWork[] = [];
  /** Requests of this lane running now (admitted, slot not yet given back). */
  admitted = 0;
  /** Whether the lane is in the turn order (has work waiting and room in its budget). */
  inTurn = false;
  readonly #admission: FairAdmission;

  constructor(admission: FairAdmission) {
    this.#admission = admission;
  }

  /**
   * Queues `work` for a slot; runs it at once when one is free and it is this lane's turn. Returns false,
   * queuing nothing, when `maxQueued` requests already wait on the node.
   */
  submit(work: AdmittedWork): boolean {
    return this.#admission.submit(this, work);
  }
}

/** Counters, for tests and metrics. */
export interface AdmissionStats {
  readonly inFlight: number;
  readonly queued: number;
  readonly lanesWaiting: number;
  /** Requests refused since start because `maxQueued` requests waited (the "node busy" answer). */
  readonly refused: number;
}

/** The node-wide scheduler (see the module doc). */
export class FairAdmission {
  readonly maxInFlight: number;
  readonly perLane: number;
  readonly maxQueued: number;
  #inFlight = 0;
  #queued = 0;
  #refused = 0;
  /** Lanes in turn order: `#turns[#head]` goes next. */
  #turns: Lane[] = [];
  #head = 0;

  constructor(limits: { maxInFlight: number; perLane: number; maxQueued: number }) {
    this.maxInFlight = limits.maxInFlight;
    this.perLane = limits.perLane;
    this.maxQueued = limits.maxQueued;
  }

  /** A lane for one connection (its streams share it). */
  lane(): Lane {
    return new Lane(this);
  }

  get stats(): AdmissionStats {
    return {
      inFlight: this.#inFlight,
      queued: this.#queued,
      lanesWaiting: this.#turns.length - this.#head,
      refused: this.#refused,
    };
  }

  /** See `Lane.submit`. */
  submit(lane: Lane, work: AdmittedWork): boolean {
    if (this.#queued >= this.maxQueued) {
      this.#refused++;
      return false;
    }
    lane.waiting.push(work);
    this.#queued++;
    this.#enqueue(lane);
    this.#pump();
    return true;
  }

  #enqueue(lane: Lane): void {
    if (lane.inTurn || lane.waiting.length === 0 || lane.admitted >= this.perLane) return;
    lane.inTurn = true;
    this.#turns.push(lane);
  }

  #next(): Lane | undefined {
    if (this.#head >= this.#turns.length) return undefined;
    const lane = this.#turns[this.#head++];
    if (this.#head > 1024 && this.#head * 2 > this.#turns.length) {
      this.#turns = this.#turns.slice(this.#head);
      this.#head = 0;
    }
    return lane;
  }

  /** Gives free slots to lanes in turn, one request each, until slots or waiting lanes run out. */
  #pump(): void {
    while (this.#inFlight < this.maxInFlight) {
      const lane = this.#next();
      if (lane === undefined) return;
      lane.inTurn = false;
      const work = lane.waiting.shift();
      if (work === undefined) continue;
      this.#queued--;
      this.#inFlight++;
      lane.admitted++;
      this.#enqueue(lane); // back of the line for its next request
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        this.#inFlight--;
        lane.admitted--;
        this.#enqueue(lane);
        this.#pump();
      };
      let running: Promise<void>;
      try {
        running = work();
      } catch {
        release();
        continue;
      }
      running.then(release, release);
    }
  }
}
