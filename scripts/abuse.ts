/**
 * Limits under abuse (issue 12): one raftkv node with mutual TLS on loopback, attacked in turn by
 *
 * 1. idle TCP connections that never speak (default 5,000),
 * 2. TLS handshakes that never finish (a ClientHello, then silence; default 5,000),
 * 3. clients with many frames in flight (default 1,000 clients × 1,000 GET frames each),
 * 4. random bytes on the port (default 1,000 connections × 16 KiB).
 *
 * During each phase a probe client does a SET and a GET every 200 ms (5 s deadline each) from a process of
 * its own (a well-behaved client elsewhere: sharing the attackers' event loop would measure the attackers);
 * the node's RSS and open file descriptors (its sockets) are sampled from /proc every 100 ms. Prints one line
 * per phase and a JSON summary.
 *
 *     deno run -A scripts/abuse.ts              # the full figures
 *     deno run -A scripts/abuse.ts --scale 0.02 # a short run (what CI does)
 *     ABUSE_ONLY=frames deno run -A scripts/abuse.ts # some phases: idle, handshakes, random, frames
 *
 * Attackers read what the node sends them, so a connection the node closes is seen closed.
 *
 * Loopback only.
 *
 * @module
 */
import net from "node:net";
import tls from "node:tls";
import { parseArgs } from "node:util";
import { CertificateStore, certPaths, initCerts, loadTlsMaterial } from "../src/security/mod.ts";
import { ClusterStub, TransportError } from "../src/transport/mod.ts";

const { values: argv } = parseArgs({
  args: Deno.args,
  options: {
    scale: { type: "string", default: "1" },
    json: { type: "string" },
    // Internal: run as the probe client against this address with the client certificate in --certs.
    probe: { type: "string" },
    certs: { type: "string" },
  },
});
const SCALE = Number(argv.scale);
const n = (full: number) => Math.max(2, Math.round(full * SCALE));
const REPO = decodeURIComponent(new URL("../", import.meta.url).pathname).replace(/\/$/, "");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const p = (l.addr as Deno.NetAddr).port;
  l.close();
  return p;
}

if (argv.probe !== undefined) {
  // The probe process: one SET and one GET every 200 ms, one JSON line per round on stdout, until killed.
  const id = { role: "client", name: "default" } as const;
  const certs = argv.certs!;
  const probeStore = new CertificateStore(
    await loadTlsMaterial({
      cacert: certPaths.caCert(certs),
      cert: certPaths.cert(certs, id),
      key: certPaths.key(certs, id),
    }),
  );
  const stub = new ClusterStub(argv.probe, {}, { tls: probeStore });
  const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
  for (let i = 0;; i++) {
    try {
      // A session starts at seq 1 (src/kv/README.md): repeat seq 1 until the node takes it.
      const r = await stub.set("probe", "0", "probe", 1, 1000);
      if (r.ok) break;
    } catch { /* not up yet */ }
    if (i > 200) throw new Error("the node did not start");
    await pause(100);
  }
  console.log(JSON.stringify({ ready: true }));
  for (let seq = 2;; seq++) {
    const t0 = performance.now();
    let error: string | undefined;
    try {
      const s = await stub.set("probe", String(seq), "probe", seq, 5000);
      const g = await stub.get("probe", 5000);
      if (!s.ok || !g.ok) {
        error = `refused: ${s.ok ? g.error : s.error} ${s.errorMessage ?? g.errorMessage ?? ""}`;
      }
    } catch (e) {
      error = e instanceof Error ? e.message : String(e);
    }
    console.log(JSON.stringify({ at: Date.now(), ms: Math.round(performance.now() - t0), error }));
    await pause(200);
  }
}

function rssMiB(pid: number): number {
  let status: string;
  try {
    status = Deno.readTextFileSync(`/proc/${pid}/status`);
  } catch {
    return NaN; // the process is gone
  }
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) / 1024 : NaN;
}

/** A ClientHello as a real TLS client sends it (captured from node:tls against a silent listener). */
async function captureClientHello(): Promise<Uint8Array> {
  const server = net.createServer();
  const hello = new Promise<Uint8Array>((resolve) =>
    server.on(
      "connection",
      (s) => s.once("data", (d: Uint8Array) => (resolve(new Uint8Array(d)), s.destroy())),
    )
  );
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  const c = tls.connect({ host: "127.0.0.1", port, servername: "raftkv", rejectUnauthorized: false });
  c.on("error", () => {});
  const bytes = await hello;
  c.destroy();
  server.close();
  return bytes;
}

function openFds(pid: number): number {
  try {
    let n = 0;
    for (const _ of Deno.readDirSync(`/proc/${pid}/fd`)) n++;
    return n;
  } catch {
    return NaN;
  }
}

interface PhaseResult {
  phase: string;
  attackers: number;
  ms: number;
  rssBeforeMiB: number;
  rssPeakMiB: number;
  rssAfterMiB: number;
  probeOk: number;
  probeFailed: number;
  probeMaxMs: number;
  /** The first few probe failures, as text. */
  probeErrors: string[];
  /** Probe rounds (a SET then a GET) that took longer than 1 s. */
  probeOver1s: number;
  /** When those started, in ms from the start of the attack. */
  probeSlowStartsMs: number[];
  /** The node's open file descriptors (listening socket, connections, files) before, at peak, 11 s after. */
  fdsBefore: number;
  fdsPeak: number;
  fdsAfter: number;
  detail: Record<string, number>;
}

const dir = await Deno.makeTempDir({ prefix: "raftkv-abuse-" });
await initCerts(`${dir}/certs`, { nodes: [1] });
const port = freePort();
const address = `127.0.0.1:${port}`;
await Deno.writeTextFile(
  `${dir}/cluster.json`,
  JSON.stringify({
    clusterId: "abuse",
    nodes: [{ id: 1, address }],
    tls: { cacert: "certs/ca.crt", cert: "certs/node-{id}.crt", key: "certs/node-{id}.key" },
    ...(Deno.env.get("ABUSE_LIMITS") ? { transportLimits: JSON.parse(Deno.env.get("ABUSE_LIMITS")!) } : {}),
  }),
);
const node = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "-A",
    // e.g. ABUSE_NODE_FLAGS="--cpu-prof-dir=/tmp/prof --cpu-prof-md" to see where the node's time goes
    ...(Deno.env.get("ABUSE_NODE_FLAGS")?.split(" ").filter((f) => f !== "") ?? []),
    `${REPO}/mod.ts`,
    "node",
    "--id",
    "1",
    "--config",
    `${dir}/cluster.json`,
    "--data-dir",
    dir,
    "--quiet",
  ],
  stdout: "null",
  stderr: "piped",
  env: { NO_COLOR: "1" },
}).spawn();
const nodeErr = (async () => {
  let text = "";
  for await (const chunk of node.stderr.pipeThrough(new TextDecoderStream())) text += chunk;
  return text;
})();
const client = { role: "client", name: "default" } as const;
const store = new CertificateStore(
  await loadTlsMaterial({
    cacert: certPaths.caCert(`${dir}/certs`),
    cert: certPaths.cert(`${dir}/certs`, client),
    key: certPaths.key(`${dir}/certs`, client),
  }),
);
const probeProcess = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "-A",
    decodeURIComponent(new URL(import.meta.url).pathname),
    "--probe",
    address,
    "--certs",
    `${dir}/certs`,
  ],
  stdout: "piped",
  stderr: "inherit",
  env: { NO_COLOR: "1" },
}).spawn();
/** The probe's rounds as they arrive; `null` until it is ready. */
const rounds: { at: number; ms: number; error?: string }[] = [];
let probeReady: () => void = () => {};
const ready = new Promise<void>((r) => (probeReady = r));
const probeOut = (async () => {
  let rest = "";
  for await (const chunk of probeProcess.stdout.pipeThrough(new TextDecoderStream())) {
    rest += chunk;
    const lines = rest.split("\n");
    rest = lines.pop()!;
    for (const line of lines) {
      const m = JSON.parse(line);
      if (m.ready) probeReady();
      else rounds.push(m);
    }
  }
})();
await ready;

async function phase(
  name: string,
  attackers: number,
  attack: () => Promise<Record<string, number>>,
): Promise<PhaseResult> {
  await sleep(1000);
  const rssBefore = rssMiB(node.pid), fdsBefore = openFds(node.pid);
  let peak = rssBefore, fdsPeak = fdsBefore;
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssMiB(node.pid));
    fdsPeak = Math.max(fdsPeak, openFds(node.pid));
  }, 100);
  const firstRound = rounds.length;
  const t0 = performance.now(), startedAt = Date.now();
  const detail = await attack();
  const ms = performance.now() - t0;
  // The round under way when the attack ended counts too.
  const until = rounds.length + 1, waitUntil = performance.now() + 12_000;
  while (rounds.length < until && performance.now() < waitUntil) await sleep(50);
  const mine = rounds.slice(firstRound, until);
  const probeErrors = mine.filter((r) => r.error !== undefined).map((r) => r.error!);
  clearInterval(sampler);
  await sleep(11_000); // past the handshake timeout: what is left is what stays
  const r: PhaseResult = {
    phase: name,
    attackers,
    ms: Math.round(ms),
    rssBeforeMiB: Math.round(rssBefore),
    rssPeakMiB: Math.round(peak),
    rssAfterMiB: Math.round(rssMiB(node.pid)),
    probeOk: mine.length - probeErrors.length,
    probeFailed: probeErrors.length,
    probeMaxMs: Math.max(0, ...mine.map((r) => r.ms)),
    probeErrors: probeErrors.slice(0, 3),
    probeOver1s: mine.filter((r) => r.ms > 1000).length,
    probeSlowStartsMs: mine.filter((r) => r.ms > 1000).map((r) => r.at - r.ms - startedAt),
    fdsBefore,
    fdsPeak,
    fdsAfter: openFds(node.pid),
    detail,
  };
  console.log(
    `${name}: ${attackers} attackers in ${r.ms} ms; RSS ${r.rssBeforeMiB} → peak ${r.rssPeakMiB} → ${r.rssAfterMiB} MiB; ` +
      `node fds ${r.fdsBefore} → peak ${r.fdsPeak} → ${r.fdsAfter}; ` +
      `probe ${r.probeOk} ok, ${r.probeFailed} failed, slowest ${r.probeMaxMs} ms, ${r.probeOver1s} over 1 s` +
      (r.probeOver1s ? ` (starting at ${r.probeSlowStartsMs.join(", ")} ms)` : "") + "; " +
      JSON.stringify(detail) + (r.probeErrors.length ? `; probe errors: ${r.probeErrors.join(" | ")}` : ""),
  );
  return r;
}

/** Opens `count` sockets (64 at a time), runs `each` on every one, holds them `holdMs`, then closes. */
async function sockets(count: number, each: (s: net.Socket) => void, holdMs: number) {
  const all: net.Socket[] = [];
  let closedByNode = 0, errors = 0, connected = 0;
  for (let i = 0; i < count; i += 64) {
    await Promise.all(Array.from({ length: Math.min(64, count - i) }, () =>
      new Promise<void>((resolve) => {
        const s = net.connect(port, "127.0.0.1", () => {
          connected++;
          each(s);
          resolve();
        });
        s.on("error", () => (errors++, resolve()));
        s.on("close", () => closedByNode++);
        s.resume(); // read (and drop) what the node sends, so its FIN is seen
        all.push(s);
      })));
  }
  const atOpen = closedByNode;
  await sleep(holdMs);
  const atHold = closedByNode;
  for (const s of all) s.destroy();
  return { connected, errors, closedWhileOpening: atOpen, closedByNodeWithinHold: atHold };
}

const results: PhaseResult[] = [];
// e.g. "frames" or "idle,handshakes": run only those phases (idle, handshakes, random, frames)
const ONLY = Deno.env.get("ABUSE_ONLY")?.split(",");
const want = (p: string) => !ONLY || ONLY.includes(p);
if (want("idle")) {
  results.push(await phase("idle TCP connections", n(5000), () => sockets(n(5000), () => {}, 12_000)));
}
const hello = await captureClientHello();
if (want("handshakes")) {
  results.push(
    await phase(
      "TLS handshakes never finished",
      n(5000),
      () => sockets(n(5000), (s) => s.write(hello), 12_000),
    ),
  );
}
if (want("random")) {
  results.push(
    await phase(
      "random bytes",
      n(1000),
      () => sockets(n(1000), (s) => s.write(crypto.getRandomValues(new Uint8Array(16 * 1024))), 2000),
    ),
  );
}
if (want("frames")) {
  const clients = n(1000), frames = n(1000);
  results.push(
    await phase(`${clients} clients × ${frames} frames in flight`, clients, async () => {
      let ok = 0, refused = 0, failed = 0;
      const reasons = new Map<string, number>();
      const stubs = Array.from({ length: clients }, () => new ClusterStub(address, {}, { tls: store }));
      await Promise.all(stubs.map(async (stub) => {
        await Promise.all(Array.from({ length: frames }, () =>
          stub.get("probe", 60_000).then(
            (r) => (r.ok ? ok++ : refused++),
            (e) => {
              if (e instanceof TransportError && e.code === 8) return refused++;
              failed++;
              const why = (e instanceof TransportError ? `${e.code} ${e.details}` : String(e)).slice(0, 80);
              reasons.set(why, (reasons.get(why) ?? 0) + 1);
            },
          )));
        stub.close();
      }));
      if (reasons.size > 0) console.log(`  failures: ${JSON.stringify([...reasons].slice(0, 5))}`);
      return { ok, refused, failed };
    }),
  );
}
try {
  probeProcess.kill("SIGTERM");
} catch {
  // already gone
}
await probeProcess.status;
await probeOut;
try {
  node.kill("SIGTERM");
} catch {
  // already gone
}
const exit = await node.status;
const errText = await nodeErr;
if (!exit.success || /error/i.test(errText)) {
  console.log(
    `node exit ${exit.code}${exit.signal ? ` (${exit.signal})` : ""}; stderr tail:\n${errText.slice(-2000)}`,
  );
}
if (argv.json) await Deno.writeTextFile(argv.json, JSON.stringify(results, null, 2) + "\n");
await Deno.remove(dir, { recursive: true });
const bad = results.filter((r) => r.probeFailed > 0 || r.probeOk === 0);
if (bad.length > 0) {
  console.error(`the node stopped serving during: ${bad.map((r) => r.phase).join(", ")}`);
  Deno.exit(1);
}
