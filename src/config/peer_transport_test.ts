import { strictEqual, throws } from "node:assert/strict";
import { parseClusterConfig } from "./cluster_config.ts";

const NODES = [{ id: 1, address: "127.0.0.1:7101" }, { id: 2, address: "127.0.0.1:7102" }];

Deno.test("cluster.json's peerTransport is absent (the raw default) unless set to grpc or raw", () => {
  strictEqual(parseClusterConfig({ nodes: NODES }).peerTransport, undefined);
  strictEqual(parseClusterConfig({ nodes: NODES, peerTransport: "raw" }).peerTransport, "raw");
  strictEqual(parseClusterConfig({ nodes: NODES, peerTransport: "grpc" }).peerTransport, "grpc");
  throws(
    () => parseClusterConfig({ nodes: NODES, peerTransport: "tcp" }),
    /peerTransport must be "grpc" or "raw"/,
  );
});

Deno.test("a raw peer port outside 1..65535 or on another listener's address is refused, naming the node", () => {
  throws(
    () => parseClusterConfig({ nodes: NODES, peerTransport: "raw", rawPeerPortOffset: 60000 }),
    /node 1's raw peer port would be 67101/,
  );
  throws(
    () => parseClusterConfig({ nodes: NODES, peerTransport: "raw", rawPeerPortOffset: 1 }),
    /node 1's raw peer port 127\.0\.0\.1:7102 .* is another listener's address/,
  );
  throws(
    () =>
      parseClusterConfig({
        nodes: [{ id: 1, address: "127.0.0.1:7101", metricsAddress: "127.0.0.1:8101" }],
        peerTransport: "raw",
      }),
    /raw peer port 127\.0\.0\.1:8101/,
  );
  throws(() => parseClusterConfig({ nodes: NODES, rawPeerPortOffset: 0 }), /must be a non-zero integer/);
  // The default serves raw ports too, so a default config is checked as "raw" is; "grpc" without an offset
  // serves none and is not.
  throws(
    () =>
      parseClusterConfig({
        nodes: [{ id: 1, address: "127.0.0.1:7101", metricsAddress: "127.0.0.1:8101" }],
      }),
    /raw peer port 127\.0\.0\.1:8101/,
  );
  throws(() => parseClusterConfig({ nodes: [{ id: 1, address: "127.0.0.1:65000" }] }), /would be 66000/);
  strictEqual(
    parseClusterConfig({ nodes: [{ id: 1, address: "127.0.0.1:65000" }], peerTransport: "grpc" })
      .peerTransport,
    "grpc",
  );
  strictEqual(
    parseClusterConfig({ nodes: NODES, peerTransport: "raw", rawPeerPortOffset: -100 }).rawPeerPortOffset,
    -100,
  );
});
