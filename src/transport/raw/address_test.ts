import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { freePortsWithRawPorts, peerTransportFields, rawPeerAddress } from "./address.ts";

Deno.test("the raw peer address is the node's host at its port plus the offset, within 1..65535", () => {
  strictEqual(rawPeerAddress("10.0.0.1:7101", 1000), "10.0.0.1:8101");
  strictEqual(rawPeerAddress("[::1]:7101", -7000), "[::1]:101");
  throws(() => rawPeerAddress("h:65000", 1000), /would be 66000/);
  throws(() => rawPeerAddress("h:100", -100), /would be 0/);
});

Deno.test("peerTransportFields picks an offset whose raw ports are free, and names gRPC explicitly", () => {
  deepStrictEqual(peerTransportFields("grpc", [40000]), { peerTransport: "grpc" });
  const held = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (held.addr as Deno.NetAddr).port;
  const blocker = Deno.listen({ hostname: "127.0.0.1", port: port - 30000 });
  try {
    const f = peerTransportFields("raw", [port]);
    strictEqual(f.peerTransport, "raw");
    strictEqual(typeof f.rawPeerPortOffset, "number");
    strictEqual(f.rawPeerPortOffset === -30000, false, "the taken port was skipped");
  } finally {
    blocker.close();
    held.close();
  }
  throws(() => peerTransportFields("tcp", [1]), /grpc or raw/);
});

Deno.test("freePortsWithRawPorts picks distinct ports whose port plus the offset can be listened on", () => {
  const ports = freePortsWithRawPorts(3, 1000);
  strictEqual(new Set(ports).size, 3);
  const held = ports.flatMap((p) => [
    Deno.listen({ hostname: "127.0.0.1", port: p }),
    Deno.listen({ hostname: "127.0.0.1", port: p + 1000 }),
  ]);
  for (const l of held) l.close();
});
