import { ok, strictEqual } from "node:assert/strict";
import type { AppendEntries, AppendEntriesResponse, Message, NodeId } from "../raft/types.ts";
import { RpcError } from "./errors.ts";
import type { TransportError } from "./errors.ts";
import { PeerLinks, type PeerLinksOptions } from "./peer_links.ts";
import {
  type CallContext,
  type PeerServing,
  type RunningServer,
  type ServerHandlers,
  startServer,
} from "./server.ts";
import { type RunningRawPeerServer, startRawPeerServer } from "./raw/server.ts";

const CLUSTER = "links-test";

const ae = (seq: number): AppendEntries => ({
  type: "AppendEntries",
  from: 1,
  to: 2,
  term: 3,
  prevLogIndex: seq - 1,
  prevLogTerm: 3,
  entries: [],
  leaderCommit: 0,
  leaseDurationMs: 800,
  seq,
});

/** A fake peer: records what arrives (and by which transport) and answers AppendEntries on the back path. */
class FakePeer implements PeerServing {
  readonly clusterId = CLUSTER;
  readonly arrived: { seq: number; via: string }[] = [];
  constructor(readonly via: string) {}
  readonly peer = {
    requestVote: (): never => {
      throw new RpcError("FAILED_PRECONDITION", "not used");
    },
    appendEntries: (): never => {
      throw new RpcError("FAILED_PRECONDITION", "one-way only");
    },
    timeoutNow: () => {},
    deliver: (msg: Message, _ctx: CallContext, back: (m: Message) => boolean) => {
      if (msg.type !== "AppendEntries") return;
      this.arrived.push({ seq: msg.seq, via: this.via });
      const r: AppendEntriesResponse = {
        type: "AppendEntriesResponse",
        from: 2,
        to: 1,
        term: msg.term,
        success: true,
        matchIndex: 0,
        conflictIndex: 0,
        conflictTerm: 0,
        seq: msg.seq,
      };
      back(r);
    },
  };
}

/** A gRPC server serving only the Peer service (the client and admin handlers are never called here). */
function grpcServer(fake: FakePeer, port = 0): Promise<RunningServer> {
  return startServer(`127.0.0.1:${port}`, fake as unknown as ServerHandlers);
}

interface Events {
  fallbacks: { peer: NodeId; raw: string; err: TransportError }[];
  raws: { peer: NodeId; afterFallback: boolean }[];
  errors: NodeId[];
  answers: Message[];
}

function links(grpcPort: number, offset: number, o: Partial<PeerLinksOptions> = {}): [PeerLinks, Events] {
  const ev: Events = { fallbacks: [], raws: [], errors: [], answers: [] };
  const l = new PeerLinks({
    clusterId: CLUSTER,
    peers: new Map([[2, `127.0.0.1:${grpcPort}`]]),
    deadlineMs: 500,
    portOffset: offset,
    fallbackConfirmMs: 200,
    onMessage: (m) => ev.answers.push(m),
    onFallback: (peer, raw, err) => ev.fallbacks.push({ peer, raw, err }),
    onRaw: (peer, _raw, afterFallback) => ev.raws.push({ peer, afterFallback }),
    onError: (peer) => ev.errors.push(peer),
    ...o,
  });
  return [l, ev];
}

/** Posts AppendEntries (seq from `from`) every 20 ms until `cond` holds, answering heardFrom as a node does. */
async function postUntil(l: PeerLinks, ev: Events, what: string, cond: () => boolean, timeoutMs = 8000) {
  let seq = 1;
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    l.post(ae(seq++));
    if (ev.answers.length > 0) l.heardFrom(2);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A free port whose port + 1000 is free too. */
async function freePair(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const a = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (a.addr as Deno.NetAddr).port;
    try {
      Deno.listen({ hostname: "127.0.0.1", port: port + 1000 }).close();
      return port;
    } catch {
      // taken: another
    } finally {
      a.close();
    }
    await Promise.resolve();
  }
  throw new Error("no free port pair");
}

Deno.test("a peer that serves only gRPC gets its frames over gRPC, one fallback warning, and raw once it serves raw", async () => {
  const old = new FakePeer("grpc");
  const port = await freePair();
  const server = await grpcServer(old, port);
  const [l, ev] = links(port, 1000, { rawRetryMs: 300 });
  let raw: RunningRawPeerServer | undefined;
  try {
    await postUntil(
      l,
      ev,
      "frames over gRPC and a confirmed fallback",
      () => old.arrived.length >= 3 && ev.fallbacks.length === 1,
    );
    strictEqual(l.transport(2), "grpc");
    strictEqual(ev.fallbacks[0].raw, `127.0.0.1:${port + 1000}`);
    ok(/ECONNREFUSED|refused/i.test(ev.fallbacks[0].err.message), ev.fallbacks[0].err.message);
    // Probes keep being refused: still one warning.
    await postUntil(l, ev, "a few probes", () => old.arrived.length >= 40);
    strictEqual(ev.fallbacks.length, 1, "said once");
    strictEqual(ev.raws.length, 0);
    // The peer upgraded: its raw port opens, the next probe (rawRetryMs) moves the link to raw.
    const upgraded = new FakePeer("raw");
    raw = await startRawPeerServer(`127.0.0.1:${port + 1000}`, upgraded);
    await postUntil(
      l,
      ev,
      "the link back on raw",
      () => l.transport(2) === "raw" && upgraded.arrived.length >= 3,
    );
    strictEqual(ev.raws.length, 1);
    strictEqual(ev.raws[0].afterFallback, true);
    strictEqual(l.transports().get(2), "raw");
  } finally {
    l.close();
    await raw?.close();
    await server.close();
  }
});

Deno.test("a raw port that answers HTTP/2 (a gRPC port) is not a raw peer: gRPC at once, said once", async () => {
  const old = new FakePeer("grpc");
  const server = await grpcServer(old);
  // Offset 0 would be refused by the config; here it points the raw dial at the gRPC port itself.
  const [l, ev] = links(server.port, 0, { fallbackConfirmMs: 60_000 });
  try {
    await postUntil(l, ev, "frames over gRPC", () => old.arrived.length >= 3 && ev.fallbacks.length === 1);
    strictEqual(l.transport(2), "grpc");
    ok(/not a raftkv raw peer port/.test(ev.fallbacks[0].err.message), ev.fallbacks[0].err.message);
  } finally {
    l.close();
    await server.close();
  }
});

Deno.test("a peer that is down on both paths is not taken for an old one: no fallback warning", async () => {
  const port = await freePair(); // nothing listens on it nor on port + 1000
  const [l, ev] = links(port, 1000);
  try {
    const end = Date.now() + 1500;
    await postUntil(l, ev, "1.5 s of refused dials", () => Date.now() > end);
    strictEqual(ev.fallbacks.length, 0, "a down peer is not said to be an older version");
    ok(ev.errors.length <= 2, `errors said ${ev.errors.length} times (once per path at most)`);
    // It comes back on this release (raw and gRPC): the link is raw.
    const back = new FakePeer("raw");
    const server = await grpcServer(back, port);
    const raw = await startRawPeerServer(`127.0.0.1:${port + 1000}`, back);
    try {
      await postUntil(
        l,
        ev,
        "raw frames",
        () => back.arrived.some((a) => a.via === "raw") && l.transport(2) === "raw",
      );
      strictEqual(ev.fallbacks.length, 0);
    } finally {
      await raw.close();
      await server.close();
    }
  } finally {
    l.close();
  }
});

Deno.test("a peer of this release is reached on raw from the start, with no gRPC channel opened", async () => {
  const fake = new FakePeer("raw");
  const port = await freePair();
  const grpcSide = new FakePeer("grpc");
  const server = await grpcServer(grpcSide, port);
  const raw = await startRawPeerServer(`127.0.0.1:${port + 1000}`, fake);
  const [l, ev] = links(port, 1000);
  try {
    await postUntil(l, ev, "frames on raw", () => fake.arrived.length >= 5);
    strictEqual(grpcSide.arrived.length, 0);
    strictEqual(server.connections, 0, "no gRPC connection to the peer");
    strictEqual(ev.raws.length, 1);
    strictEqual(ev.raws[0].afterFallback, false);
  } finally {
    l.close();
    await raw.close();
    await server.close();
  }
});
