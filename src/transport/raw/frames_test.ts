import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import * as pb from "../../gen/raftkv.ts";
import {
  checkHello,
  decodeFrame,
  encodeFrame,
  encodeHello,
  encodeReply,
  FrameReader,
  parseReply,
  RawFrameError,
  Status,
} from "./frames.ts";

const FRAME: pb.PeerFrame = {
  callId: 7,
  appendEntriesResponse: {
    from: 2,
    to: 1,
    term: 3,
    success: true,
    matchIndex: 41,
    conflictIndex: 0,
    conflictTerm: 0,
    seq: 5,
    senderElapsedMs: 0,
    clusterId: "c",
  },
};

function frames(n: number): Uint8Array {
  const parts = [...Array(n).keys()].map((i) => encodeFrame({ ...FRAME, callId: i + 1 }));
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function isKind(kind: RawFrameError["kind"]) {
  return (e: unknown) => e instanceof RawFrameError && e.kind === kind;
}

Deno.test("a frame torn into single bytes comes out whole, once, after its last byte", () => {
  const bytes = encodeFrame(FRAME);
  const reader = new FrameReader(1024);
  for (let i = 0; i < bytes.length - 1; i++) strictEqual(reader.push(bytes.subarray(i, i + 1)).length, 0);
  const out = reader.push(bytes.subarray(bytes.length - 1));
  strictEqual(out.length, 1);
  deepStrictEqual(decodeFrame(out[0]), pb.PeerFrame.decode(pb.PeerFrame.encode(FRAME).finish()));
  strictEqual(reader.buffered, 0);
});

Deno.test("frames split at every possible boundary come out in order and complete", () => {
  const bytes = frames(5);
  for (let cut = 1; cut < bytes.length; cut++) {
    const reader = new FrameReader(1024);
    const got = [...reader.push(bytes.slice(0, cut)), ...reader.push(bytes.slice(cut))];
    deepStrictEqual(got.map((b) => decodeFrame(b).callId), [1, 2, 3, 4, 5], `cut at ${cut}`);
  }
});

Deno.test("a frame whose length is over the limit is refused from its length prefix alone", () => {
  const reader = new FrameReader(100);
  const prefix = new Uint8Array(4);
  new DataView(prefix.buffer).setUint32(0, 101);
  throws(() => reader.push(prefix), isKind("frameTooLarge"));
  // At the limit it is accepted.
  const ok100 = new Uint8Array(104);
  new DataView(ok100.buffer).setUint32(0, 100);
  strictEqual(new FrameReader(100).push(ok100).length, 1);
});

Deno.test("bytes that are not a PeerFrame are refused as malformed", () => {
  throws(() => decodeFrame(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff])), isKind("malformed"));
});

Deno.test("a hello with another magic, an HTTP/2 preface or another version is refused, saying which", () => {
  checkHello(encodeHello());
  throws(() => checkHello(new TextEncoder().encode("PRI * HT")), (e: unknown) => {
    ok(e instanceof RawFrameError && e.kind === "badMagic");
    ok(e.message.includes("gRPC client"), e.message);
    return true;
  });
  throws(() => checkHello(new Uint8Array([1, 2, 3, 4, 1, 0, 0, 0])), isKind("badMagic"));
  throws(() => checkHello(encodeHello(9)), isKind("badVersion"));
});

Deno.test("a reply is parsed only once complete, and a refusal carries its reason", () => {
  const reply = encodeReply(Status.BUSY, "over maxConnections (2)");
  for (let i = 1; i < reply.length; i++) strictEqual(parseReply(reply.subarray(0, i), "x:1"), undefined);
  deepStrictEqual(parseReply(reply, "x:1"), {
    status: Status.BUSY,
    message: "over maxConnections (2)",
    bytes: reply.length,
  });
});

Deno.test("an answer that is not a raw peer reply (an HTTP/2 server) names the address and the likely cause", () => {
  // An HTTP/2 SETTINGS frame header, as a gRPC port may send first.
  throws(() => parseReply(new Uint8Array([0, 0, 0x12, 4, 0, 0, 0, 0]), "127.0.0.1:7101"), (e: unknown) => {
    ok(e instanceof RawFrameError && e.kind === "badMagic");
    ok(e.message.includes("127.0.0.1:7101 is not a raftkv raw peer port"), e.message);
    return true;
  });
});

Deno.test("TLS on one side of a raw peer link only is named as such, in the hello and in the reply", () => {
  // A node started with --insecure in a TLS cluster: its peers' ClientHello reaches its plain raw listener, and
  // its plain hello gets a TLS alert back. Both were reported as "is it a gRPC port …?".
  const clientHello = new Uint8Array([0x16, 0x03, 0x01, 0x00, 0xe8, 0x01, 0x00, 0x00]);
  throws(() => checkHello(clientHello), (e: unknown) => {
    ok(e instanceof RawFrameError && e.kind === "badMagic");
    ok(/a TLS handshake: .*this node runs without TLS \(--insecure\)/.test(e.message), e.message);
    return true;
  });
  const alert = new Uint8Array([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32]);
  throws(() => parseReply(alert, "127.0.0.1:8101"), (e: unknown) => {
    ok(e instanceof RawFrameError && e.kind === "badMagic");
    ok(
      /127\.0\.0\.1:8101 answered with TLS: .*this node runs without TLS \(--insecure\)/.test(e.message),
      e.message,
    );
    return true;
  });
});
