/**
 * A node with TLS warns in dump.txt before its certificate expires and reports the time left in its status
 * (src/security/expiry.ts does the judging; this checks the node wires it up).
 */
import { match, ok, strictEqual } from "node:assert/strict";
import { RaftNode } from "./raft_node.ts";
import { parseClusterConfig } from "../config/cluster_config.ts";
import { freeRawPortOffset } from "../transport/raw/mod.ts";
import { memoryCa } from "../security/certs.ts";
import { CertificateStore, tlsMaterialFromPem } from "../security/tls.ts";
import { DAY_MS } from "../security/expiry.ts";
import { DUMP_FILE, joinPath, nodeFolder } from "../storage/paths.ts";

Deno.test({
  name:
    "a TLS node warns in dump.txt at start and after a reload while its certificate expires within 30 days",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    const config = parseClusterConfig({
      clusterId: "certs",
      nodes: [{ id: 1, address: `127.0.0.1:${port}` }],
      rawPeerPortOffset: freeRawPortOffset([port]),
      heartbeatIntervalMs: 50,
      electionTimeoutMsMin: 300,
      electionTimeoutMsMax: 600,
      leaseDurationMs: 240,
    });
    const ca = await memoryCa();
    const issue = async (days: number) =>
      tlsMaterialFromPem({
        ca: ca.caCert,
        ...await ca.issue({ role: "node", nodeId: 1 }, { notAfter: new Date(Date.now() + days * DAY_MS) }),
      });
    const tls = new CertificateStore(await issue(12.5));
    const dir = await Deno.makeTempDir({ prefix: "raftkv-cert-expiry-" });
    const node = await RaftNode.start({ config, id: 1, dataDir: dir, tls });
    let stopped = false;
    try {
      const left = node.status().certificateExpiresInMs;
      ok(left !== undefined && Math.abs(left - 12.5 * DAY_MS) < 60_000, `time left ${left}`);
      tls.update(await issue(400)); // a reload with a long-lived one: no warning
      strictEqual(Math.floor(node.status().certificateExpiresInMs! / DAY_MS), 399);
      tls.update(await issue(3.5)); // and with one about to expire: warned at once
      await node.stop();
      stopped = true;
      const dump = await Deno.readTextFile(joinPath(nodeFolder(dir, 1), DUMP_FILE));
      const warnings = dump.split("\n").filter((l) => l.includes("WARNING Node 1's certificate"));
      strictEqual(warnings.length, 2, dump);
      match(warnings[0], /certificate \(memory\) expires on \d{4}-.* \(in 12 days\): .*raftkv certs issue/);
      match(warnings[1], /\(in 3 days\)/);
    } finally {
      if (!stopped) await node.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
