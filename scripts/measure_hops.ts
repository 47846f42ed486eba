/**
 * One stream hop's round trip between two processes (issue 16), to tell raftkv's transport from grpc-js's floor:
 *
 *   deno task hops [--messages 400] [--gap-ms 5]
 *
 * Spawns two servers (this script with `--serve echo|peer PORT`): a bare grpc-js echo stream (src/bench/echo.ts,
 * bytes back as they come) and a raftkv Peer server whose `deliver` answers every AppendEntries at once with its
 * AppendEntriesResponse on the back path (no core, no disk). Then, one message in flight, it measures the
 * round trip of a 200-byte echo frame back to back and with `--gap-ms` between messages, and of an
 * AppendEntries with one 100-byte SET (PeerClients.post → Peer stream → deliver → back → onMessage: protobuf,
 * codec and call_mux included) with the same gap. Prints p10/p50/p90 in µs and the load average.
 *
 * Every process it starts is killed by pid at the end; everything listens on 127.0.0.1.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Buffer } from "node:buffer";
import * as grpc from "@grpc/grpc-js";
import { ECHO_SERVICE, startEchoServer } from "../src/bench/echo.ts";
import { PeerClients, type ServerHandlers, startServer } from "../src/transport/mod.ts";
import type { AppendEntries, Message } from "../src/raft/types.ts";

const { values: argv } = parseArgs({
  args: Deno.args,
  options: {
    messages: { type: "string", default: "400" },
    "gap-ms": { type: "string", default: "5" },
    serve: { type: "string" },
    port: { type: "string" },
  },
  strict: true,
});
const MESSAGES = Math.max(20, Number(argv.messages));
const GAP_MS = Math.max(0, Number(argv["gap-ms"]));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const CLUSTER = "hops";

async function serve(kind: string, port: number): Promise<void> {
  if (kind === "echo") await startEchoServer("127.0.0.1", port);
  else {
    const refuse = () => {
      throw new Error("not served");
    };
    await startServer(`127.0.0.1:${port}`, {
      clusterId: CLUSTER,
      peer: {
        requestVote: refuse,
        appendEntries: refuse,
        timeoutNow: () => {},
        deliver: (msg: Message, _ctx: unknown, back: (m: Message) => boolean) => {
          if (msg.type !== "AppendEntries") return;
          back({
            type: "AppendEntriesResponse",
            from: msg.to,
            to: msg.from,
            term: msg.term,
            success: true,
            matchIndex: msg.prevLogIndex + msg.entries.length,
            conflictIndex: 0,
            conflictTerm: 0,
            seq: msg.seq,
          } as Message);
        },
      },
      client: {},
      admin: {},
    } as unknown as ServerHandlers);
  }
  console.log("listening");
  await new Promise(() => {});
}

function summary(name: string, us: number[]): string {
  const s = [...us].sort((a, b) => a - b);
  const at = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))].toFixed(0);
  return `${name.padEnd(58)} p10 ${at(0.1).padStart(5)}  p50 ${at(0.5).padStart(5)}  p90 ${
    at(0.9).padStart(5)
  } µs`;
}

async function echoRtts(port: number, gapMs: number): Promise<number[]> {
  const Echo = grpc.makeGenericClientConstructor(ECHO_SERVICE, "Echo");
  const client = new Echo(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const stream = (client as unknown as { echoStream(): grpc.ClientDuplexStream<Buffer, Buffer> })
    .echoStream();
  let got: (() => void) | undefined;
  stream.on("data", () => got?.());
  stream.on("error", () => {});
  const body = Buffer.alloc(200);
  const out: number[] = [];
  for (let i = 0; i < MESSAGES + 50; i++) {
    const t = performance.now();
    await new Promise<void>((r) => {
      got = r;
      stream.write(body);
    });
    if (i >= 50) out.push((performance.now() - t) * 1000);
    if (gapMs > 0) await sleep(gapMs);
  }
  stream.end();
  client.close();
  return out;
}

async function peerRtts(port: number, gapMs: number): Promise<number[]> {
  let got: (() => void) | undefined;
  const peers = new PeerClients({
    clusterId: CLUSTER,
    peers: new Map([[2, `127.0.0.1:${port}`]]),
    onMessage: () => got?.(),
  });
  const out: number[] = [];
  for (let i = 0; i < MESSAGES + 50; i++) {
    const ae = {
      type: "AppendEntries",
      from: 1,
      to: 2,
      term: 1,
      prevLogIndex: i,
      prevLogTerm: 1,
      entries: [{
        index: i + 1,
        term: 1,
        command: { op: "set", key: `key-${i}`, value: "v".repeat(100), clientId: "hops", seq: i + 1 },
      }],
      leaderCommit: i,
      leaseDurationMs: 1000,
      seq: i + 1,
    } as unknown as AppendEntries;
    const t = performance.now();
    await new Promise<void>((r) => {
      got = r;
      peers.post(ae);
    });
    if (i >= 50) out.push((performance.now() - t) * 1000);
    if (gapMs > 0) await sleep(gapMs);
  }
  peers.close();
  return out;
}

async function main(): Promise<void> {
  const ports = [0, 0].map(() => {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const p = (l.addr as Deno.NetAddr).port;
    l.close();
    return p;
  });
  const self = new URL(import.meta.url).pathname;
  const procs = ["echo", "peer"].map((kind, i) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", self, "--serve", kind, "--port", String(ports[i])],
      stdout: "piped",
      stderr: "null",
    }).spawn()
  );
  try {
    for (const p of procs) {
      const reader = p.stdout.getReader();
      const { value } = await reader.read(); // "listening"
      if (value === undefined) throw new Error("a server did not start");
      reader.releaseLock();
    }
    const load0 = Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
    console.log(`${MESSAGES} messages each, one in flight; load average ${load0}`);
    console.log(summary("grpc-js echo stream, back to back", await echoRtts(ports[0], 0)));
    console.log(summary(`grpc-js echo stream, ${GAP_MS} ms gaps`, await echoRtts(ports[0], GAP_MS)));
    console.log(
      summary(`raftkv Peer stream AppendEntries → ack, ${GAP_MS} ms gaps`, await peerRtts(ports[1], GAP_MS)),
    );
  } finally {
    for (const p of procs) {
      try {
        p.kill("SIGKILL");
      } catch { /* gone */ }
      await p.status;
      await p.stdout.cancel().catch(() => {});
    }
  }
}

if (import.meta.main) {
  if (argv.serve) await serve(argv.serve, Number(argv.port));
  else await main();
}
