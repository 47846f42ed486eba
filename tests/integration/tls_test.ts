/**
 * Mutual TLS on real processes: certificate rotation by SIGHUP under load, a refused rotation, the plain-text
 * warning.
 *
 *     deno test -A tests/integration/tls_test.ts
 *
 * @module
 */

import { match, ok, strictEqual } from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import tls from "node:tls";
import { IT, type LocalCluster, withCluster } from "./harness.ts";
import { issueCert } from "../../src/security/mod.ts";
import { poll } from "../ops/helpers.ts";

/**
 * The fingerprint of the certificate the node at `port` presents to a new connection (`h2`: its gRPC port;
 * false: its raw peer port, which speaks no ALPN).
 */
function presented(c: LocalCluster, port: number, h2 = true): Promise<string> {
  const m = c.tls!.material;
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      host: "127.0.0.1",
      port,
      servername: "raftkv",
      ca: m.ca,
      cert: m.cert,
      key: m.key,
      ...(h2 ? { ALPNProtocols: ["h2"] } : {}),
      checkServerIdentity: () => undefined,
    }, () => {
      resolve(s.getPeerCertificate().fingerprint256);
      s.destroy();
    });
    s.on("error", reject);
  });
}

function port(c: LocalCluster, id: number): number {
  return Number(c.addresses.get(id)!.split(":").pop());
}

Deno.test({
  name:
    "tls: a SIGHUP rotation of every node's certificate under load fails no operation and keeps the leader",
  ...IT,
  fn: async () => {
    await withCluster({ nodes: 3, name: "rotate" }, async (c) => {
      const leader = await c.leader();
      const client = c.client({ timeoutMs: 10_000 });
      let stop = false, ok_ = 0;
      const failures: string[] = [];
      const worker = async (w: number) => {
        for (let i = 0; !stop; i++) {
          try {
            await client.set(`w${w}`, String(i));
            strictEqual((await client.get(`w${w}`)).value, String(i));
            ok_++;
          } catch (e) {
            failures.push(String(e));
          }
        }
      };
      const load = Promise.all(Array.from({ length: 8 }, (_, w) => worker(w)));
      await poll("some load", () => ok_ > 50 || undefined, 10_000, 20);
      const fresh = new Map<number, string>();
      for (const id of c.ids) {
        const files = await issueCert(c.certsDir, { role: "node", nodeId: id });
        fresh.set(id, new X509Certificate(await Deno.readTextFile(files.cert)).fingerprint256);
        c.signal(id, "SIGHUP");
      }
      for (const id of c.ids) {
        await poll(
          `node ${id} reloaded`,
          async () => /certificates reloaded/.test((await c.output(id)).stdout) || undefined,
          10_000,
          50,
        );
      }
      const atReload = ok_;
      await poll("load after the reload", () => ok_ > atReload + 100 || undefined, 15_000, 20);
      stop = true;
      await load;
      strictEqual(failures.length, 0, `failed operations: ${failures.slice(0, 3).join("; ")}`);
      const offset = JSON.parse(await Deno.readTextFile(c.configPath)).rawPeerPortOffset ?? 1000;
      for (const id of c.ids) {
        strictEqual(await presented(c, port(c, id)), fresh.get(id), `node ${id}'s new cert`);
        // The raw peer listener (the default transport) too: new connections get the new certificate.
        strictEqual(await presented(c, port(c, id) + offset, false), fresh.get(id), `node ${id}'s raw port`);
      }
      // New raw connections between the nodes, dialled with the reloaded certificates: a restarted node is
      // dialled anew by the others and dials them, and the cluster keeps working over them.
      const follower = c.ids.find((id) => id !== leader.id)!;
      strictEqual((await c.kill(follower, "SIGTERM")).code, 0);
      c.restart(follower);
      const linkLine = `Peer link to Node ${leader.id} uses the raw transport`;
      await c.waitUntil(
        async () => (await c.readDump(follower)).filter((l) => l.includes(linkLine)).length >= 2,
        20_000,
        `the restarted node ${follower} to link to the leader on raw again`,
      );
      await client.set("after-rotation", "raw");
      await c.waitForReplication((await c.status(leader.id))!.commitIndex);
      const after = await c.leader();
      strictEqual(after.id, leader.id, "the leader stayed");
      strictEqual(after.term, leader.term, "no election");
      // A one-shot CLI call (a new connection, new peer certificates on both sides) works.
      const cli = await c.runCli(["client", "--config", c.configPath, "get", "w0"]);
      strictEqual(cli.code, 0, cli.stderr);
      console.log(
        `tls: ${ok_} SET+GET pairs, ${atReload} before the reload; 0 failed; leader ${leader.id} kept`,
      );
    });
  },
});

Deno.test({
  name:
    "tls: an expired certificate given on SIGHUP is refused with a message and the node keeps the old one",
  ...IT,
  fn: async () => {
    await withCluster({ nodes: 3, name: "expired" }, async (c) => {
      await c.leader();
      const id = 1;
      const before = await presented(c, port(c, id));
      const day = 24 * 3600 * 1000;
      await issueCert(c.certsDir, { role: "node", nodeId: id }, {
        notBefore: new Date(Date.now() - 10 * day),
        notAfter: new Date(Date.now() - day),
      });
      c.signal(id, "SIGHUP");
      const line = await poll(
        "the refusal",
        async () => (await c.output(id)).stderr.split("\n").find((l) => /reload refused/.test(l)),
        10_000,
        50,
      );
      match(
        line,
        /certificate reload refused, keeping the old ones: certificate .*node-1\.crt expired on \d{4}-/,
      );
      strictEqual(await presented(c, port(c, id)), before, "still the old certificate");
      const client = c.client();
      await client.set("k", "v");
      strictEqual((await client.get("k")).value, "v");
      // Restarting with it is refused too, saying so.
      await c.kill(id);
      const r = await c.runCli(["node", "--id", "1", "--config", c.configPath, "--data-dir", c.dataDir]);
      strictEqual(r.code, 2, r.stderr);
      match(r.stderr, /certificate .*node-1\.crt expired on/);
    });
  },
});

Deno.test({
  name: "tls: nodes started with --insecure warn that they run without TLS, and plain clients still work",
  ...IT,
  fn: async () => {
    await withCluster({ nodes: 3, name: "insecure", insecure: true }, async (c) => {
      await c.leader();
      await c.client().set("k", "v");
      for (const id of c.ids) match((await c.output(id)).stderr, /warning: node \d runs WITHOUT TLS/);
      ok(c.tls === undefined);
    });
  },
});
