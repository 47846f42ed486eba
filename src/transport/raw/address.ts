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
 * The cluster.json fields that select `kind` for nodes on `ports` of 127.0.0.1: "grpc" names it (gRPC is no
 * longer the default); "raw" (the default transport) comes with a `rawPeerPortOffset` whose ports are free now
 * (for scripts and tests that pick ephemeral ports: minus 30000 first, below the ephemeral range, so that no
 * outgoing connection holds one, nor a port another test picks).
 */
export function peerTransportFields(
  kind: string,
  ports: readonly number[],
): { peerTransport: "grpc" | "raw"; rawPeerPortOffset?: number } {
  if (kind === "grpc") return { peerTransport: "grpc" };
  if (kind !== "raw") throw new TypeError(`peer transport must be grpc or raw, got "${kind}"`);
  return { peerTransport: "raw", rawPeerPortOffset: freeRawPortOffset(ports) };
}

/** A `rawPeerPortOffset` that puts every one of `ports` (127.0.0.1) on a free raw port (see above). */
export function freeRawPortOffset(ports: readonly number[]): number {
  for (let offset = -30000; offset < 30000; offset += 997) {
    const raw = ports.map((p) => p + offset);
    if (raw.some((p) => p < 1024 || p > 65535 || ports.includes(p))) continue;
    const held: Deno.Listener[] = [];
    try {
      for (const port of raw) held.push(Deno.listen({ hostname: "127.0.0.1", port }));
      return offset;
    } catch {
      // one is taken: try the next offset
    } finally {
      for (const l of held) l.close();
    }
  }
  throw new Error(`no rawPeerPortOffset leaves ports ${ports.join(", ")} a free raw port each`);
}

/**
 * `n` free loopback ports each of whose raw port (port + `offset`, default the product's 1000) is free too, all
 * bound at once while they are picked (so they differ) and released on return: for tests and scripts that run
 * nodes on the default offset.
 */
export function freePortsWithRawPorts(n: number, offset = 1000): number[] {
  const held: Deno.Listener[] = [];
  const ports: number[] = [];
  try {
    for (let tries = 0; ports.length < n && tries < 50 * n; tries++) {
      const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      held.push(l);
      const port = (l.addr as Deno.NetAddr).port;
      const raw = port + offset;
      if (raw < 1024 || raw > 65535) continue;
      try {
        held.push(Deno.listen({ hostname: "127.0.0.1", port: raw }));
        ports.push(port);
      } catch {
        // its raw port is taken: keep the port held (so it is not picked again) and try another
      }
    }
  } finally {
    for (const l of held) l.close();
  }
  if (ports.length < n) {
    throw new Error(`found only ${ports.length} of ${n} ports with a free port + ${offset}`);
  }
  return ports;
}
