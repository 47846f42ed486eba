/**
 * A TCP proxy per directed pair of nodes (i → j: the connections node i opens to node j), on loopback, so the
 * harness can partition, delay or cut the peer traffic of real node processes.
 *
 * Modes of a link:
 * - `pass`: bytes flow both ways as they arrive.
 * - `delay`: every chunk is held `ms` after its arrival (order kept), in both directions.
 * - `blackhole`: nothing is delivered; bytes read meanwhile are held and flow again at heal (like TCP
 *   retransmitting after a long outage: stale requests arrive late), unless the heal cuts the connections.
 *   New connections are accepted and held too.
 * - `drop`: existing connections are reset and new ones closed at once (a fast "connection refused").
 *
 * Blocking the link i → j stops node i's requests to j *and* j's replies to them; j's own requests to i go
 * over the link j → i, so one link alone is an asymmetric (one-way) partition.
 *
 * @module
 */

export type LinkMode =
  | { readonly kind: "pass" }
  | { readonly kind: "delay"; readonly ms: number }
  | { readonly kind: "blackhole" }
  | { readonly kind: "drop" };

export const PASS: LinkMode = { kind: "pass" };

/** Held bytes per direction of one connection before the proxy gives up on it and resets it. */
const HELD_BYTES_MAX = 16 << 20;
const CHUNK_BYTES = 64 << 10;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

interface Chunk {
  readonly data: Uint8Array;
  readonly atMs: number;
}

/** One proxied connection: two pumps, each a reader that queues and a writer that delivers. */
class ProxyConn {
  readonly #a: Deno.TcpConn;
  readonly #b: Deno.TcpConn;
  readonly #link: LinkProxy;
  #closed = false;

  constructor(a: Deno.TcpConn, b: Deno.TcpConn, link: LinkProxy) {
    this.#a = a;
    this.#b = b;
    this.#link = link;
  }

  start(): void {
    this.#pump(this.#a, this.#b);
    this.#pump(this.#b, this.#a);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const c of [this.#a, this.#b]) {
      // A pending read keeps Deno's socket open after close(): shut the write side first so the peer
      // sees the end of the stream at once (and closes, which ends our read).
      try {
        c.closeWrite().catch(() => {});
      } catch { /* already closed */ }
      try {
        c.close();
      } catch { /* already closed */ }
    }
    this.#link.forget(this);
  }

  #pump(src: Deno.TcpConn, dst: Deno.TcpConn): void {
    const queue: Chunk[] = [];
    let heldBytes = 0;
    let wake: (() => void) | undefined;
    let ended = false;
    const reader = async () => {
      try {
        while (!this.#closed) {
          const buf = new Uint8Array(CHUNK_BYTES);
          const n = await src.read(buf);
          if (n === null) break;
          queue.push({ data: buf.subarray(0, n), atMs: performance.now() });
          heldBytes += n;
          if (heldBytes > HELD_BYTES_MAX) break;
          wake?.();
        }
      } catch { /* reset or closed */ }
      ended = true;
      wake?.();
    };
    const writer = async () => {
      try {
        while (!this.#closed) {
          if (queue.length === 0) {
            if (ended) break;
            await new Promise<void>((r) => (wake = r));
            wake = undefined;
            continue;
          }
          const mode = await this.#link.deliverable();
          if (this.#closed) break;
          const chunk = queue[0];
          if (mode.kind === "delay") {
            const waitMs = chunk.atMs + mode.ms - performance.now();
            if (waitMs > 0) {
              await sleep(waitMs);
              continue; // the mode may have changed meanwhile
            }
          }
          queue.shift();
          heldBytes -= chunk.data.length;
          let off = 0;
          while (off < chunk.data.length) off += await dst.write(chunk.data.subarray(off));
        }
      } catch { /* reset or closed */ }
      this.close();
    };
    void reader();
    void writer();
  }
}

/** The proxy of one directed pair: listens on a loopback port, forwards to the target node's port. */
export class LinkProxy {
  readonly from: number;
  readonly to: number;
  readonly port: number;
  readonly #listener: Deno.TcpListener;
  readonly #targetPort: number;
  readonly #conns = new Set<ProxyConn>();
  #mode: LinkMode = PASS;
  #waiters: (() => void)[] = [];
  #closed = false;
  /** Connections accepted over the proxy's life (for the report). */
  accepted = 0;

  /**
   * `rawOffset` (the cluster's `rawPeerPortOffset`, with `"peerTransport": "raw"`): the link also listens at
   * its port + the offset and forwards there to the target's port + the offset, in the same mode.
   */
  constructor(from: number, to: number, targetPort: number, rawOffset?: number) {
    this.from = from;
    this.to = to;
    this.#targetPort = targetPort;
    let raw: Deno.TcpListener | undefined;
    let listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    for (let attempt = 1; rawOffset !== undefined && raw === undefined; attempt++) {
      try {
        raw = Deno.listen({ hostname: "127.0.0.1", port: (listener.addr as Deno.NetAddr).port + rawOffset });
      } catch (e) {
        if (attempt >= 20) throw e;
        const next = Deno.listen({ hostname: "127.0.0.1", port: 0 }); // another port before freeing this one
        listener.close();
        listener = next;
      }
    }
    this.#listener = listener;
    this.port = (this.#listener.addr as Deno.NetAddr).port;
    void this.#acceptLoop(this.#listener, targetPort);
    if (raw !== undefined) {
      this.#rawListener = raw;
      void this.#acceptLoop(raw, targetPort + rawOffset!);
    }
  }

  /** The raw peer transport's listener (port + rawOffset), when the link has one. */
  readonly #rawListener: Deno.TcpListener | undefined;

  get mode(): LinkMode {
    return this.#mode;
  }

  setMode(mode: LinkMode): void {
    this.#mode = mode;
    if (mode.kind === "drop") this.cutConnections();
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  /** Resets every open connection of this link (new ones are accepted as the mode says). */
  cutConnections(): void {
    for (const c of [...this.#conns]) c.close();
  }

  /** Resolves with the mode once bytes may be delivered (not blackholed). */
  async deliverable(): Promise<LinkMode> {
    while (this.#mode.kind === "blackhole" && !this.#closed) {
      await new Promise<void>((r) => this.#waiters.push(r));
    }
    return this.#mode;
  }

  forget(c: ProxyConn): void {
    this.#conns.delete(c);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const l of [this.#listener, this.#rawListener]) {
      try {
        l?.close();
      } catch { /* closed */ }
    }
    this.cutConnections();
    for (const w of this.#waiters) w();
    this.#waiters = [];
  }

  async #acceptLoop(listener: Deno.TcpListener, targetPort: number): Promise<void> {
    while (!this.#closed) {
      let a: Deno.TcpConn;
      try {
        a = await listener.accept();
      } catch {
        break; // listener closed
      }
      this.accepted++;
      if (this.#mode.kind === "drop" || this.#closed) {
        a.close();
        continue;
      }
      void this.#connect(a, targetPort);
    }
  }

  async #connect(a: Deno.TcpConn, targetPort: number): Promise<void> {
    let b: Deno.TcpConn;
    try {
      b = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
    } catch {
      a.close(); // target down: the dialer sees a reset, as it would dialing the node itself
      return;
    }
    if (this.#closed || this.#mode.kind === "drop") {
      a.close();
      b.close();
      return;
    }
    a.setNoDelay(true);
    b.setNoDelay(true);
    const c = new ProxyConn(a, b, this);
    this.#conns.add(c);
    c.start();
  }
}

/** Every directed link of a cluster, with the partition shapes the nemesis uses. */
export class ProxyNetwork {
  #ids: readonly number[];
  readonly #ports: Map<number, number>;
  readonly #links = new Map<string, LinkProxy>();

  readonly #rawOffset: number | undefined;

  /** `ports`: each node's real listening port; `rawOffset`: see LinkProxy (raw peer transport only). */
  constructor(ports: ReadonlyMap<number, number>, rawOffset?: number) {
    this.#ports = new Map(ports);
    this.#rawOffset = rawOffset;
    this.#ids = [...ports.keys()].sort((a, b) => a - b);
    for (const from of this.#ids) {
      for (const to of this.#ids) {
        if (from !== to) this.#links.set(`${from}>${to}`, new LinkProxy(from, to, ports.get(to)!, rawOffset));
      }
    }
  }

  /** Every node with links, also nodes that left (their links stay, unused). */
  get ids(): readonly number[] {
    return this.#ids;
  }

  /** A new node (a replacement on a new port): a proxy for each link to and from every known node. */
  addNode(id: number, port: number): void {
    if (this.#ports.has(id)) throw new Error(`node ${id} already has links`);
    for (const other of this.#ids) {
      this.#links.set(`${other}>${id}`, new LinkProxy(other, id, port, this.#rawOffset));
      this.#links.set(`${id}>${other}`, new LinkProxy(id, other, this.#ports.get(other)!, this.#rawOffset));
    }
    this.#ports.set(id, port);
    this.#ids = [...this.#ids, id].sort((a, b) => a - b);
  }

  link(from: number, to: number): LinkProxy {
    const l = this.#links.get(`${from}>${to}`);
    if (!l) throw new Error(`no link ${from} → ${to}`);
    return l;
  }

  /** The address node `from` dials to reach node `to`. */
  addressFor(from: number, to: number): string {
    return `127.0.0.1:${this.link(from, to).port}`;
  }

  setLink(from: number, to: number, mode: LinkMode): void {
    this.link(from, to).setMode(mode);
  }

  /** No traffic between different groups (both directions); nodes in no group are cut from everyone. */
  partition(groups: readonly (readonly number[])[], mode: LinkMode): void {
    const groupOf = new Map<number, number>();
    groups.forEach((g, i) => g.forEach((id) => groupOf.set(id, i)));
    for (const from of this.ids) {
      for (const to of this.ids) {
        if (from === to) continue;
        const same = groupOf.has(from) && groupOf.get(from) === groupOf.get(to);
        this.setLink(from, to, same ? PASS : mode);
      }
    }
  }

  /** Every link from a node of `from` to a node of `to` gets `mode` (others unchanged). */
  block(from: readonly number[], to: readonly number[], mode: LinkMode): void {
    for (const f of from) for (const t of to) if (f !== t) this.setLink(f, t, mode);
  }

  /** Every link passes again; with `cut`, connections held by a blackhole are reset instead of resumed. */
  heal(cut = false): void {
    for (const l of this.#links.values()) {
      if (cut && l.mode.kind === "blackhole") l.cutConnections();
      l.setMode(PASS);
    }
  }

  /** Links not in `pass` mode, e.g. `1>2 blackhole`. */
  describe(): string {
    const parts: string[] = [];
    for (const l of this.#links.values()) {
      if (l.mode.kind !== "pass") {
        parts.push(`${l.from}>${l.to} ${l.mode.kind}${l.mode.kind === "delay" ? ` ${l.mode.ms}ms` : ""}`);
      }
    }
    return parts.length === 0 ? "all links pass" : parts.join(", ");
  }

  close(): void {
    for (const l of this.#links.values()) l.close();
  }
}
