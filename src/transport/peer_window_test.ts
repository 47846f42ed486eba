import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import http2 from "node:http2";
import { PeerWindows } from "./peer_window.ts";

const SENT_BYTES = 2 << 20;

/**
 * A client writes SENT_BYTES on one stream to a server that never reads it; `widen` is applied to the server's
 * session as the stream arrives. Returns the server stream's receive window once the writing stops moving it
 * (observed, not slept on): 0 when the sender is held back, window − SENT_BYTES when every byte crossed.
 */
async function windowAfterUnreadUpload(widen: (s: http2.Http2Session) => void): Promise<number> {
  const server = http2.createServer();
  const streams: http2.Http2Stream[] = [];
  server.on("stream", (stream) => {
    widen(stream.session!);
    stream.pause(); // the node busy elsewhere: nothing read
    streams.push(stream);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  const client = http2.connect(`http://127.0.0.1:${port}`);
  try {
    const req = client.request({ ":method": "POST", ":path": "/raftkv.Peer/Stream" });
    req.on("error", () => {});
    req.write(new Uint8Array(SENT_BYTES));
    // Wait until the receive window stops changing for 5 polls in a row (at most 10 s).
    let last = -1, still = 0;
    for (let i = 0; i < 1000 && still < 5; i++) {
      await new Promise((r) => setTimeout(r, 10));
      const w = streams[0]?.state.localWindowSize ?? -1;
      still = w === last && w >= 0 ? still + 1 : 0;
      last = w;
    }
    return last;
  } finally {
    client.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

Deno.test("with HTTP/2's default windows a sender is held back at 64 KiB that the receiver has not read", async () => {
  strictEqual(await windowAfterUnreadUpload(() => {}), 0);
});

Deno.test("a widened session lets a whole window cross before the receiver reads, on a stream already open", async () => {
  const windows = new PeerWindows(4 << 20, 2);
  const window = await windowAfterUnreadUpload((s) => ok(windows.widen(s)));
  strictEqual(window, (4 << 20) - SENT_BYTES);
});

Deno.test("no more sessions are widened than the limit, and a closed one frees its place", async () => {
  const windows = new PeerWindows(1 << 20, 1);
  const server = http2.createServer();
  const sessions: http2.ServerHttp2Session[] = [];
  server.on("session", (s) => sessions.push(s));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  const a = http2.connect(`http://127.0.0.1:${port}`), b = http2.connect(`http://127.0.0.1:${port}`);
  try {
    for (let i = 0; i < 500 && sessions.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    strictEqual(sessions.length, 2);
    ok(windows.widen(sessions[0]));
    ok(windows.widen(sessions[0]), "a session already widened stays so");
    strictEqual(windows.widen(sessions[1]), false);
    deepStrictEqual({ size: windows.size, refused: windows.refused }, { size: 1, refused: 1 });
    strictEqual(sessions[1].state.effectiveLocalWindowSize, 65_535);
    const closed = new Promise((resolve) => sessions[0].once("close", resolve));
    a.destroy();
    await closed;
    strictEqual(windows.size, 0);
    ok(windows.widen(sessions[1]));
    strictEqual(sessions[1].state.effectiveLocalWindowSize, 1 << 20);
  } finally {
    a.destroy();
    b.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

Deno.test("a window outside HTTP/2's bounds is refused", () => {
  throws(() => new PeerWindows(1024), /windowBytes \(1024\) must be an integer from 65535/);
  throws(() => new PeerWindows(2 ** 31), /must be an integer from 65535/);
});
