/**
 * Where a node's raw peer listener is: its gRPC address's host, at its port plus `rawPeerPortOffset`.
 * Derived (not configured per node) so that everything that carries one address, AddNode included, keeps
 * working unchanged.
 *
 * @module
 */

/** `host:port` → `host:(port + offset)`; throws a RangeError when the port falls outside 1..65535. */
export function rawPeerAddress(address: string, offset: number): string {
  const m = /^(.*):(\d+)$/.exec(address);
  if (m === null) throw new RangeError(`address "${address}" is not host:port`);
  const port = Number(m[2]) + offset;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(
      `the raw peer port of ${address} would be ${port} (port + rawPeerPortOffset ${offset}), outside 1..65535`,
    );
  }
  return `${m[1]}:${port}`;
}

/**
 * The cluster.json fields that select `kind` ("grpc": none) for nodes on `ports` of 127.0.0.1, with a
 * `rawPeerPortOffset` whose ports are free now (for scripts and tests that pick ephemeral ports: minus 30000
 * first, below the ephemeral range, so that no outgoing connection holds one).
 */
export function peerTransportFields(
  kind: string,
  ports: readonly number[],
): { peerTransport?: "raw"; rawPeerPortOffset?: number } {
  if (kind === "grpc") return {};
  if (kind !== "raw") throw new TypeError(`peer transport must be grpc or raw, got "${kind}"`);
  for (let offset = -30000; offset < 30000; offset += 997) {
    const raw = ports.map((p) => p + offset);
    if (raw.some((p) => p < 1024 || p > 65535 || ports.includes(p))) continue;
    const held: Deno.Listener[] = [];
    try {
      for (const port of raw) held.push(Deno.listen({ hostname: "127.0.0.1", port }));
      return { peerTransport: "raw", rawPeerPortOffset: offset };
    } catch {
      // one is taken: try the next offset
    } finally {
      for (const l of held) l.close();
    }
  }
  throw new Error(`no rawPeerPortOffset leaves ports ${ports.join(", ")} a free raw port each`);
}
