import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { ConfigError, parseClusterConfig } from "./cluster_config.ts";

const NODES = [{ id: 1, address: "127.0.0.1:7101" }];

Deno.test("cluster.json's tls names the nodes' files, and client/admin files when given", () => {
  const tls = {
    cacert: "certs/ca.crt",
    cert: "certs/node-{id}.crt",
    key: "certs/node-{id}.key",
    adminCert: "a.crt",
  };
  deepStrictEqual(parseClusterConfig({ nodes: NODES, tls }).tls, tls);
  strictEqual(parseClusterConfig({ nodes: NODES }).tls, undefined, "absent: no TLS files from the config");
  throws(() => parseClusterConfig({ nodes: NODES, tls: { cacert: "x", cert: "y" } }), ConfigError);
  throws(
    () => parseClusterConfig({ nodes: NODES, tls: { ...tls, password: "p" } }),
    /tls: unknown field "password"/,
  );
  throws(() => parseClusterConfig({ nodes: NODES, tls: { ...tls, key: 3 } }), /tls\.key must be a file path/);
});

Deno.test("cluster.json's transportLimits takes known positive integers only", () => {
  deepStrictEqual(
    parseClusterConfig({ nodes: NODES, transportLimits: { maxConnections: 10 } }).transportLimits,
    { maxConnections: 10 },
  );
  throws(() => parseClusterConfig({ nodes: NODES, transportLimits: { maxConnection: 10 } }), /unknown field/);
  throws(
    () => parseClusterConfig({ nodes: NODES, transportLimits: { handshakeTimeoutMs: 0 } }),
    /handshakeTimeoutMs must be a positive integer/,
  );
  deepStrictEqual(
    parseClusterConfig({ nodes: NODES, transportLimits: { peerWindowBytes: 65_535 } }).transportLimits,
    { peerWindowBytes: 65_535 },
  );
  throws(
    () => parseClusterConfig({ nodes: NODES, transportLimits: { peerWindowBytes: 1024 } }),
    /peerWindowBytes must be from 65535 to 2147483647 bytes, got 1024/,
  );
});
