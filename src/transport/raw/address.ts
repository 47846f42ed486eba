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
