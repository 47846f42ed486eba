/**
 * What TLS costs a bulk transfer on this Deno, per side, by API (why a rebuild's follower spends a third of its
 * CPU in the raw peer transport's TLS; docs/benchmarks.md):
 *
 *   deno run -A scripts/bench_tls_stream.ts [--mib 13] [--write-kib 1024] [--runs 3]
 *
 * The receiver (this process) listens on loopback; a child process connects and writes `--mib` MiB in writes of
 * `--write-kib` KiB, then closes. Each side reports its own CPU time (user + system) for the transfer:
 * - `node:net`: plain text, the raw transport with `--insecure`;
 * - `node:tls`: TLS 1.3 with client certificates, what the raw peer transport and gRPC use (the node's CA and
 *   certificates, made in memory);
 * - `Deno.listenTls`: Deno's own TLS, which cannot ask for a client certificate, so the node cannot use it for a
 *   listener (it is here to show where the cost is).
 *
 * @module
 */
import { parseArgs } from "node:util";
import net from "node:net";
import tls from "node:tls";
import { memoryCa } from "../src/security/certs.ts";

const { values: argv } = parseArgs({
  args: Deno.args,
  options: {
    mib: { type: "string", default: "13" },
    "write-kib": { type: "string", default: "1024" },
    runs: { type: "string", default: "3" },
    // Internal: run as the sending child.
    send: { type: "string" },
    port: { type: "string" },
  },
});
const TOTAL = Number(argv.mib) << 20;
const WRITE = Number(argv["write-kib"]) << 10;
const HOST_NAME = "localhost";

type Mode = "node:net" | "node:tls" | "Deno.listenTls";

function cpuMs(since: { user: number; system: number }): number {
  const c = process.cpuUsage(since);
  return Math.round((c.user + c.system) / 1000);
}

if (argv.send !== undefined) {
  // The sending child: material on stdin, one connection, TOTAL bytes, then its CPU time on stdout.
  const mode = argv.send as Mode;
  const port = Number(argv.port);
  const m = JSON.parse(await new Response(Deno.stdin.readable).text());
  const payload = new Uint8Array(WRITE).fill(0x61);
  const cpu0 = process.cpuUsage();
  if (mode === "Deno.listenTls") {
    const c = await Deno.connectTls({ hostname: HOST_NAME, port, caCerts: [m.ca], cert: m.cert, key: m.key });
    for (let sent = 0; sent < TOTAL; sent += WRITE) {
      let off = 0;
      while (off < payload.length) off += await c.write(payload.subarray(off));
    }
    c.close();
  } else {
    const s = mode === "node:tls"
      ? tls.connect({ host: "127.0.0.1", servername: HOST_NAME, port, ca: m.ca, cert: m.cert, key: m.key })
      : net.connect(port, "127.0.0.1");
    await new Promise((r) => s.once(mode === "node:tls" ? "secureConnect" : "connect", r));
    for (let sent = 0; sent < TOTAL; sent += WRITE) {
      if (!s.write(payload)) await new Promise((r) => s.once("drain", r));
    }
    s.end();
    await new Promise((r) => s.once("close", r));
  }
  console.log(JSON.stringify({ cpuMs: cpuMs(cpu0) }));
  Deno.exit(0);
}

const ca = await memoryCa();
const server = await ca.issue({ role: "node", nodeId: 1 }, { hosts: [HOST_NAME] });
const client = await ca.issue({ role: "node", nodeId: 2 }, { hosts: [HOST_NAME] });

async function once(mode: Mode): Promise<{ receiverCpuMs: number; senderCpuMs: number; ms: number }> {
  let got = 0;
  let t0 = 0;
  let cpu0 = process.cpuUsage();
  const done = Promise.withResolvers<void>();
  const onData = (n: number) => {
    if (got === 0) {
      t0 = performance.now();
      cpu0 = process.cpuUsage();
    }
    got += n;
    if (got >= TOTAL) done.resolve();
  };
  let close: () => void;
  let port: number;
  if (mode === "Deno.listenTls") {
    const l = Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert: server.cert, key: server.key });
    port = l.addr.port;
    close = () => l.close();
    (async () => {
      const conn = await l.accept();
      const buf = new Uint8Array(1 << 20);
      try {
        for (;;) {
          const n = await conn.read(buf);
          if (n === null) break;
          onData(n);
        }
      } catch {
        /* the sender closes without a TLS close_notify once all is written: a reset, after the bytes */
      }
      try {
        conn.close();
      } catch {
        /* already closed */
      }
    })();
  } else {
    const srv = mode === "node:tls"
      ? tls.createServer(
        { key: server.key, cert: server.cert, ca: ca.caCert, requestCert: true, rejectUnauthorized: true },
        (s) => s.on("data", (c: Uint8Array) => onData(c.length)),
      )
      : net.createServer((s) => s.on("data", (c: Uint8Array) => onData(c.length)));
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
    port = (srv.address() as net.AddressInfo).port;
    close = () => srv.close();
  }
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", import.meta.filename!, "--send", mode, "--port", String(port), ...Deno.args],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(JSON.stringify({ ca: ca.caCert, ...client })));
  await w.close();
  await done.promise;
  const ms = performance.now() - t0;
  const receiverCpuMs = cpuMs(cpu0);
  const out = await child.output();
  close();
  const senderCpuMs = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").pop()!).cpuMs;
  return { receiverCpuMs, senderCpuMs, ms };
}

console.log(
  `# bench_tls_stream: ${argv.mib} MiB in writes of ${argv["write-kib"]} KiB, Deno ${Deno.version.deno}`,
);
for (const mode of ["node:net", "node:tls", "Deno.listenTls"] as const) {
  for (let r = 0; r < Number(argv.runs); r++) {
    const { receiverCpuMs, senderCpuMs, ms } = await once(mode);
    console.log(
      `${mode.padEnd(15)} receiver CPU ${String(receiverCpuMs).padStart(4)} ms, sender CPU ${
        String(senderCpuMs).padStart(4)
      } ms, ${Math.round(ms)} ms from the first byte received`,
    );
  }
}
