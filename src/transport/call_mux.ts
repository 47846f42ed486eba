/**
 * Request/answer calls multiplexed on one long-lived gRPC bidirectional stream, both ends.
 *
 * A unary grpc-js call costs a new HTTP/2 stream per request: HEADERS and trailers both ways and a stream
 * object on each side, which under Deno's `node:http2` layer is most of the CPU a small request costs. A frame
 * on an open stream costs its bytes: 4–5× less CPU and latency in the echo measurements (docs/benchmarks.md).
 * The Peer service (node to node) and the Client service (GET/SET) both offer such a `Stream` next to their
 * unary calls; this module is the machinery they share.
 *
 * Client side ({@link CallMux}): every request frame gets a call id (from 1, per stream); the answer frame
 * carries it back, so answers may overtake each other. The stream is opened on first use and again after it
 * fails; a failure fails every call waiting on it. Deadlines stay per call and are checked by one sweep timer
 * for all streams of the process (no timer per call), running only while some call waits. A stream on which a call expired with nothing heard back
 * since that call was sent is reset, so a peer that froze (paused, half-open connection) gets a fresh stream
 * once it is back.
 *
 * Server side ({@link serveFrames}): each request frame is answered when its handler settles, with the body
 * the handler returned or an error frame (gRPC status code and message, as a unary call would report); the
 * stream stays open either way. Handlers' `signal` aborts when the stream ends, however it ends.
 *
 * Batches ({@link FrameBatching}, the Client stream only): the frames one side produces in one microtask
 * checkpoint (the answers one commit settles, the requests a client makes together) travel as one batch frame,
 * one write and one wake-up instead of one each, between ends that both said they read batches.
 *
 * @module
 */

import * as grpc from "@grpc/grpc-js";
import { RpcError, toTransportError, TransportError } from "./errors.ts";
import type { Lane } from "./fair.ts";

/** What every frame carries: the call id and, on a failed call's answer, the error. */
export interface Frame {
  callId: number;
  error?: { code: number; message: string } | undefined;
}

/** How often expired calls are looked for: a call fails at most this late. */
export const SWEEP_INTERVAL_MS = 25;

interface PendingCall<F> {
  readonly sentAtMs: number;
  readonly expiresAtMs: number;
  readonly resolve: (frame: F) => void;
  readonly reject: (err: TransportError) => void;
}

interface OpenStream<F> {
  readonly call: grpc.ClientDuplexStream<F, F>;
  readonly pending: Map<number, PendingCall<F>>;
  nextCallId: number;
  readonly openedMs: number;
  /** When the last answer arrived (or the stream opened). */
  lastHeardMs: number;
  /** The server said it reads batch frames (its response metadata): requests may go out batched. */
  batching: boolean;
  /** Requests waiting to go out together, oldest first. */
  outbox: F[];
  outboxBytes: number;
  outboxScheduled: boolean;
}

/**
 * Every mux with calls waiting for their answer: swept by one shared timer, which runs only while there is one
 * (one-way posts have no deadline here: an idle node's peer streams cost no wake-ups).
 */
const sweeping = new Set<CallMux<Frame>>();
let sweepTimer: ReturnType<typeof setInterval> | undefined;

function startSweeping(mux: CallMux<Frame>): void {
  sweeping.add(mux);
  if (sweepTimer !== undefined) return;
  sweepTimer = setInterval(() => {
    const now = Date.now();
    for (const m of sweeping) m.sweep(now);
  }, SWEEP_INTERVAL_MS);
  Deno.unrefTimer(sweepTimer); // never what keeps a process alive
}

function stopSweeping(mux: CallMux<Frame>): void {
  sweeping.delete(mux);
  if (sweeping.size === 0 && sweepTimer !== undefined) {
    clearInterval(sweepTimer);
    sweepTimer = undefined;
  }
}

/** Calls to one server on one stream at a time (see the module doc). */
export class CallMux<F extends Frame> {
  readonly #address: string;
  readonly #open: () => grpc.ClientDuplexStream<F, F>;
  readonly #connected: () => boolean;
  readonly #batching: FrameBatching<F> | undefined;
  #stream: OpenStream<F> | undefined;
  #closed = false;

  /**
   * `open` starts a new stream call (e.g. `() => client.stream()`); `address` names the server in errors;
   * `channel` (the channel the calls go through) tells whether a connection was up when a call expired;
   * with `batching`, a batch frame from the server is handled as the frames it carries, in order, and the
   * requests made in one microtask checkpoint go out as one batch frame once the server's response metadata
   * says `FRAME_BATCH_METADATA: 1` (a server that does not say so gets one frame per request).
   */
  constructor(
    address: string,
    open: () => grpc.ClientDuplexStream<F, F>,
    channel?: grpc.Channel,
    batching?: FrameBatching<F>,
  ) {
    this.#address = address;
    this.#open = open;
    this.#connected = () => channel?.getConnectivityState(false) === grpc.connectivityState.READY;
    this.#batching = batching;
  }

  /**
   * Sends `frame` (its `callId` is set here) and resolves with the answer frame. Rejects with a
   * `TransportError`: the server's error frame, the stream failing (UNAVAILABLE, …), DEADLINE_EXCEEDED after
   * `deadlineMs`, CANCELLED after `close()`.
   */
  call(frame: F, deadlineMs: number): Promise<F> {
    if (this.#closed) {
      return Promise.reject(new TransportError(grpc.status.CANCELLED, "closed", this.#address));
    }
    const stream = this.#stream ?? this.#openStream();
    const callId = stream.nextCallId++;
    frame.callId = callId;
    return new Promise<F>((resolve, reject) => {
      const now = Date.now();
      stream.pending.set(callId, { sentAtMs: now, expiresAtMs: now + deadlineMs, resolve, reject });
      startSweeping(this as unknown as CallMux<Frame>);
      this.#send(stream, frame);
    });
  }

  /** Writes a request, or queues it for this microtask checkpoint's batch (see the constructor). */
  #send(stream: OpenStream<F>, frame: F): void {
    const b = this.#batching;
    const bytes = b !== undefined && stream.batching ? b.sizeOf(frame) : undefined;
    if (bytes === undefined) {
      this.#flush(stream); // what was asked before goes first
      this.#write(stream, frame);
      return;
    }
    if (stream.outbox.length >= b!.maxFrames || stream.outboxBytes + bytes > b!.maxBytes) this.#flush(stream);
    stream.outbox.push(frame);
    stream.outboxBytes += bytes;
    if (!stream.outboxScheduled) {
      stream.outboxScheduled = true;
      queueMicrotask(() => {
        stream.outboxScheduled = false;
        this.#flush(stream);
      });
    }
  }

  #flush(stream: OpenStream<F>): void {
    if (stream.outbox.length === 0) return;
    const frames = stream.outbox;
    stream.outbox = [];
    stream.outboxBytes = 0;
    // A dropped stream failed these calls already: nothing to send.
    if (this.#stream !== stream) return;
    this.#write(stream, frames.length === 1 ? frames[0] : this.#batching!.pack(frames));
  }

  #write(stream: OpenStream<F>, frame: F): void {
    try {
      stream.call.write(frame);
    } catch (e) {
      this.#drop(stream, toTransportError(e, this.#address));
    }
  }

  /**
   * Sends `frame` as a one-way message (call id 0: never answered). Returns false, sending nothing, when the
   * mux is closed or `framesQueuedMax` frames already wait in the stream's write buffer (the peer or the
   * connection is not keeping up: the message is dropped, which Raft tolerates). A write that throws resets
   * the stream (the next post opens a new one) and reports false.
   */
  post(frame: F, framesQueuedMax: number): boolean {
    if (this.#closed) return false;
    const stream = this.#stream ?? this.#openStream();
    if (stream.call.writableLength >= framesQueuedMax) return false;
    this.#flush(stream);
    frame.callId = 0;
    try {
      stream.call.write(frame);
    } catch (e) {
      this.#drop(stream, toTransportError(e, this.#address));
      return false;
    }
    return true;
  }

  /**
   * Drops the current stream (the next call or post opens a new one): for a stream on which nothing comes
   * back, e.g. through a black-holed connection that no error will ever end.
   */
  reset(failure: TransportError): void {
    if (this.#stream) this.#drop(this.#stream, failure);
  }

  /** Called with each one-way frame (call id 0) the server sends on the stream. */
  onMessage: ((frame: F) => void) | undefined;

  /** Called when the current stream fails (however it ends), with the failure. */
  onStreamFailure: ((failure: TransportError) => void) | undefined;

  /** Fails every waiting call with CANCELLED and ends the stream. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#stream) {
      this.#drop(this.#stream, new TransportError(grpc.status.CANCELLED, "closed", this.#address));
    }
  }

  /** Fails the calls whose deadline passed; resets a stream silent since such a call was sent. Internal. */
  sweep(now: number): void {
    const stream = this.#stream;
    if (stream === undefined) return;
    let silent = false;
    for (const [callId, c] of stream.pending) {
      if (now < c.expiresAtMs) continue;
      stream.pending.delete(callId);
      if (stream.lastHeardMs <= c.sentAtMs) silent = true;
      // Worded like grpc-js's own deadline errors, which name remote_addr only when a connection was up: the
      // client library tells "the node took the call and went silent" from "never reached a node" by it.
      const reached = stream.lastHeardMs > stream.openedMs || this.#connected();
      const details = `Deadline exceeded after ${now - c.sentAtMs} ms` +
        (reached ? `, remote_addr=${this.#address}` : ` (no connection to ${this.#address})`);
      c.reject(new TransportError(grpc.status.DEADLINE_EXCEEDED, details, this.#address));
    }
    if (silent) {
      this.#drop(
        stream,
        new TransportError(grpc.status.DEADLINE_EXCEEDED, "the stream went silent", this.#address),
      );
    } else if (stream.pending.size === 0) stopSweeping(this as unknown as CallMux<Frame>);
  }

  #openStream(): OpenStream<F> {
    const call = this.#open();
    const now = Date.now();
    const stream: OpenStream<F> = {
      call,
      pending: new Map(),
      nextCallId: 1,
      openedMs: now,
      lastHeardMs: now,
      batching: false,
      outbox: [],
      outboxBytes: 0,
      outboxScheduled: false,
    };
    this.#stream = stream;
    if (this.#batching !== undefined) {
      call.on("metadata", (md: grpc.Metadata) => {
        if (md.get(FRAME_BATCH_METADATA)[0] === "1") stream.batching = true;
      });
    }
    call.on("data", (frame: F) => {
      stream.lastHeardMs = Date.now();
      const frames = this.#batching?.unbatch(frame);
      if (frames === undefined) this.#receive(stream, frame);
      else for (const f of frames) this.#receive(stream, f);
    });
    call.on("error", (err: grpc.ServiceError) => this.#drop(stream, toTransportError(err, this.#address)));
    call.on("end", () => {
      this.#drop(
        stream,
        new TransportError(grpc.status.UNAVAILABLE, "the server ended the stream", this.#address),
      );
    });
    return stream;
  }

  /** One frame from the server: a one-way message, or the answer to a waiting call. */
  #receive(stream: OpenStream<F>, frame: F): void {
    if (frame.callId === 0) {
      // A one-way message from the server (e.g. a Raft response sent back on the stream its request came in
      // on): not an answer to anything.
      try {
        this.onMessage?.(frame);
      } catch { /* a malformed one-way message is dropped */ }
      return;
    }
    const pending = stream.pending.get(frame.callId);
    if (pending === undefined) return; // expired already
    stream.pending.delete(frame.callId);
    if (frame.error) {
      pending.reject(new TransportError(frame.error.code, frame.error.message, this.#address));
    } else {
      pending.resolve(frame);
    }
  }

  /** Forgets `stream` (if still current), cancels it and fails what waits on it. */
  #drop(stream: OpenStream<F>, failure: TransportError): void {
    if (this.#stream === stream) {
      this.#stream = undefined;
      stopSweeping(this as unknown as CallMux<Frame>);
      if (!this.#closed) this.onStreamFailure?.(failure);
    }
    const calls = [...stream.pending.values()];
    stream.pending.clear();
    stream.call.cancel(); // a no-op when the call has ended already
    for (const c of calls) c.reject(failure);
  }
}

/** What a frame handler learns about the stream it serves (one object per stream, shared by its frames). */
export interface FrameContext {
  /** Aborted when the stream ends (the caller went away or the server is closing). */
  readonly signal: AbortSignal;
  /** A frame carries no deadline of its own: always Infinity (the caller enforces its deadlines). */
  readonly deadlineMs: number;
  /** The caller's address as grpc-js reports it. */
  readonly peer: string;
}

/**
 * Serves a bidirectional stream of request frames: `answer` returns each answer's body (without the call id)
 * or throws; `toError` turns what it threw into the error frame's code and message. A frame with call id 0
 * is a one-way message: it goes to `oneWay` (when given; else it is answered like any frame) and is never
 * answered; what `oneWay` throws is dropped with the frame.
 *
 * With `admission`, each request frame waits for a slot of the node-wide fair scheduler in its connection's
 * lane (src/transport/fair.ts) before `answer` runs, and holds it until its answer is handed to the
 * connection. While `pauseQueued` frames of this stream wait for a slot the stream stops reading (HTTP/2 flow
 * control then holds the sender back), so a flood costs the node the frames it admits, not the ones it is sent.
 */
export function serveFrames<F extends Frame>(
  call: grpc.ServerDuplexStream<F, F>,
  answer: (frame: F, ctx: FrameContext) => Promise<Omit<F, "callId">>,
  toError: (err: unknown) => { code: number; message: string },
  oneWay?: (frame: F, ctx: FrameContext, back: (frame: F) => boolean) => void,
  limit?: FramesLimit<F>,
  admission?: FramesAdmission,
  batching?: { readonly limits: FrameBatching<F>; readonly replies: boolean },
): void {
  let inFlight = 0;
  /** Frames of this stream waiting for an admission slot. */
  let queued = 0;
  let paused = false;
  /** Slots held by answers not yet handed to the connection: given back when the stream closes. */
  const holding = new Set<() => void>();
  const abort = new AbortController();
  let open = true;
  const finish = () => {
    if (!open) return;
    open = false;
    abort.abort(new RpcError("CANCELLED", "the stream closed"));
    for (const release of [...holding]) release();
  };
  call.on("cancelled", finish);
  call.on("error", finish);
  call.on("close", finish);
  call.on("end", () => {
    finish();
    call.end();
  });
  const ctx: FrameContext = { signal: abort.signal, deadlineMs: Infinity, peer: call.getPeer() };
  /** Sends a one-way frame back to the caller on this stream; false once the stream is closed. */
  const back = (frame: F): boolean => {
    if (!open) return false;
    frame.callId = 0;
    try {
      call.write(frame);
    } catch {
      return false;
    }
    return true;
  };
  /** Writes `out` (one frame or a batch); `done` runs once grpc-js handed it to the connection or it failed. */
  const write = (out: F, done: () => void): void => {
    try {
      call.write(out, done);
    } catch {
      done();
    }
  };
  /** Answers waiting to go out together (with `batching`), oldest first, and what they hold. */
  let outbox: F[] = [];
  let outboxReleases: (() => void)[] = [];
  let outboxBytes = 0;
  let outboxScheduled = false;
  const flushOutbox = (): void => {
    if (outbox.length === 0) return;
    const frames = outbox, releases = outboxReleases;
    outbox = [];
    outboxReleases = [];
    outboxBytes = 0;
    const done = () => {
      for (const release of releases) release();
    };
    if (!open) return done();
    write(frames.length === 1 ? frames[0] : batching!.limits.pack(frames), done);
  };
  /** Writes an answer; resolves once grpc-js handed it to the connection (or the stream closed). */
  const send = (out: F): Promise<void> => {
    if (!open) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const release = () => {
        holding.delete(release);
        resolve();
      };
      holding.add(release);
      const bytes = batching?.replies ? batching.limits.sizeOf(out) : undefined;
      if (bytes === undefined) {
        flushOutbox(); // what was answered before goes first
        write(out, release);
        return;
      }
      const limits = batching!.limits;
      if (outbox.length >= limits.maxFrames || outboxBytes + bytes > limits.maxBytes) flushOutbox();
      outbox.push(out);
      outboxReleases.push(release);
      outboxBytes += bytes;
      if (!outboxScheduled) {
        // The answers of one commit settle in the same microtask checkpoint: they leave together.
        outboxScheduled = true;
        queueMicrotask(() => {
          outboxScheduled = false;
          flushOutbox();
        });
      }
    });
  };
  const serve = (frame: F, callId: number): Promise<void> =>
    answer(frame, ctx).then(
      (body) => {
        inFlight--;
        return send({ ...body, callId } as F);
      },
      (err: unknown) => {
        inFlight--;
        return send({ callId, error: toError(err) } as F);
      },
    );
  call.on("data", (frame: F) => {
    const frames = batching?.limits.unbatch(frame);
    if (frames === undefined) onFrame(frame);
    else for (const f of frames) onFrame(f);
  });
  function onFrame(frame: F): void {
    const callId = frame.callId;
    if (callId === 0 && oneWay !== undefined) {
      try {
        oneWay(frame, ctx, back);
      } catch { /* a malformed or foreign one-way message is dropped: there is no one to tell */ }
      return;
    }
    if (limit !== undefined && inFlight >= limit.max) {
      // A bounded number of requests per stream waits for its answer; the next is refused at once.
      let body: Omit<F, "callId"> | undefined;
      try {
        body = limit.overloaded(frame, inFlight);
      } catch { /* a malformed frame: answered with an error below */ }
      call.write(
        (body !== undefined
          ? { ...body, callId }
          : { callId, error: { code: grpc.status.RESOURCE_EXHAUSTED, message: "overloaded" } }) as F,
      );
      return;
    }
    inFlight++;
    if (admission === undefined) {
      void serve(frame, callId);
      return;
    }
    queued++;
    const admitted = admission.lane.submit(() => {
      queued--;
      if (paused && queued < admission.pauseQueued) {
        paused = false;
        call.resume();
      }
      if (!open) {
        inFlight--;
        return Promise.resolve();
      }
      return serve(frame, callId);
    });
    if (!admitted) {
      queued--;
      inFlight--;
      call.write({ callId, error: admission.busy() } as F);
      return;
    }
    if (!paused && queued >= admission.pauseQueued) {
      paused = true;
      call.pause();
    }
  }
}

/** The fair scheduler a stream's request frames go through (see `serveFrames`). */
export interface FramesAdmission {
  /** The lane of the stream's connection. */
  readonly lane: Lane;
  /** Frames of the stream waiting for a slot at which it stops reading until one is admitted. */
  readonly pauseQueued: number;
  /** The error frame for a request refused because the node's queue is full. */
  readonly busy: () => { code: number; message: string };
}

/**
 * Answers of one stream that settle together (in one microtask checkpoint, e.g. the SETs one commit answers)
 * go out as one batch frame (`pack`) in one write, in the order they settled, instead of one write each:
 * grpc-js writes a stream's messages one at a time, each waiting for the previous one's flush, so N answers
 * cost N socket writes and N wake-ups of the caller; and on the receiving side grpc-js pauses and resumes
 * the HTTP/2 stream for every message. The same goes for requests made together (`CallMux`). Each side
 * sends batches only to a side that said it reads them (`FRAME_BATCH_METADATA`; ClientFrameBatch in
 * proto/raftkv.proto): a caller in its call metadata, a server in its response metadata.
 */
/** Metadata key (value "1") by which each end of a Client stream says it reads batch frames. */
export const FRAME_BATCH_METADATA = "raftkv-frame-batch";

export interface FrameBatching<F extends Frame> {
  /** One frame carrying `frames` (two or more), in order. */
  readonly pack: (frames: F[]) => F;
  /** The frames a batch frame carries, or undefined for an ordinary frame. */
  readonly unbatch: (frame: F) => readonly F[] | undefined;
  /** An upper bound of `frame`'s encoded size in bytes, or undefined when it must go out on its own. */
  readonly sizeOf: (frame: F) => number | undefined;
  /** Frames per batch at most. */
  readonly maxFrames: number;
  /** Bytes per batch at most (by `sizeOf`); a frame that would cross it starts the next batch. */
  readonly maxBytes: number;
}

/** At most `max` requests of one stream wait for their answers; `overloaded` answers the next at once. */
export interface FramesLimit<F extends Frame> {
  readonly max: number;
  readonly overloaded: (frame: F, inFlight: number) => Omit<F, "callId">;
}
