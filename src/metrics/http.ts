/**
 * The metrics listener: `/metrics` (Prometheus text), `/healthz` and `/readyz` on their own HTTP port, never on
 * the gRPC port. Plain text answers, 200 or 503, so a load balancer or GCP health check needs no parser.
 *
 * @module
 */
import { parseAddress } from "../config/cluster_config.ts";
import type { NodeId } from "../raft/types.ts";
import type { NodeMetrics } from "./node_metrics.ts";

/** A check's verdict: `ok` picks 200 or 503, `detail` is the one-line body. */
export interface Verdict {
  readonly ok: boolean;
  readonly detail: string;
}

export interface HealthChecks {
  /** Process alive and storage writable. */
  healthz(): Promise<Verdict>;
  /** This node can serve: a leader holding its lease, or a follower that knows a leader. */
  readyz(): Verdict;
}

export interface MetricsServer {
  /** host:port actually bound (the port filled in when 0 was asked for). */
  readonly address: string;
  close(): Promise<void>;
}

/** The readiness rule on a status snapshot (see {@link HealthChecks.readyz}). */
export function readiness(
  s: { role: string; leaderId: NodeId; servingReads: boolean; leaseWaitRemainingMs: number },
): Verdict {
  if (s.role === "leader") {
    if (s.servingReads) return { ok: true, detail: "ready: leader holding its lease" };
    const why = s.leaseWaitRemainingMs > 0
      ? `waiting out the old leader's lease (${Math.ceil(s.leaseWaitRemainingMs)} ms left)`
      : "no lease yet (no majority has acknowledged it, or its first entry is not committed)";
    return { ok: false, detail: `not ready: leader without a lease: ${why}` };
  }
  if (s.leaderId !== 0) return { ok: true, detail: `ready: ${s.role} of leader node ${s.leaderId}` };
  return { ok: false, detail: `not ready: ${s.role} that knows no leader (election under way or no quorum)` };
}

/**
 * `/healthz`'s storage check: writes, fsyncs and removes a small file in `folder`, at most once per `everyMs`
 * (the verdict is cached in between, so a scraper polling every second costs one fsync a second at most).
 */
export function storageProbe(folder: string, everyMs = 1000): () => Promise<Verdict> {
  let last: { atMs: number; verdict: Verdict } | undefined;
  let running: Promise<Verdict> | undefined;
  const probe = async (): Promise<Verdict> => {
    const path = `${folder}/.healthz-probe`;
    try {
      const f = await Deno.open(path, { write: true, create: true, truncate: true });
      try {
        await f.write(new TextEncoder().encode(`${Date.now()}\n`));
        await f.syncData();
      } finally {
        f.close();
      }
      await Deno.remove(path);
      return { ok: true, detail: `ok: ${folder} writable` };
    } catch (e) {
      return {
        ok: false,
        detail: `unhealthy: cannot write ${folder}: ${e instanceof Error ? e.message : e}`,
      };
    }
  };
  return () => {
    const now = performance.now();
    if (last && now - last.atMs < everyMs) return Promise.resolve(last.verdict);
    running ??= probe().then((verdict) => {
      last = { atMs: performance.now(), verdict };
      running = undefined;
      return verdict;
    });
    return running;
  };
}

/** Serves `/metrics`, `/healthz` and `/readyz` on `address` (host:port; port 0 picks a free one). */
export async function serveMetrics(
  address: string,
  metrics: NodeMetrics,
  checks: HealthChecks,
): Promise<MetricsServer> {
  const { host, port } = parseAddress(address);
  const hostname = host.replace(/^\[|\]$/g, "");
  const bound = Promise.withResolvers<number>();
  const text = (status: number, body: string) =>
    new Response(body.endsWith("\n") ? body : `${body}\n`, {
      status,
      headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" },
    });
  let server: Deno.HttpServer;
  try {
    server = Deno.serve({
      hostname,
      port,
      onListen: (a) => bound.resolve((a as Deno.NetAddr).port),
      onError: (e) => text(500, `error: ${e instanceof Error ? e.message : e}`),
    }, async (req) => {
      if (req.method !== "GET" && req.method !== "HEAD") return text(405, "only GET");
      const path = new URL(req.url).pathname;
      switch (path) {
        case "/metrics":
          return new Response(await metrics.render(), {
            headers: { "content-type": metrics.contentType },
          });
        case "/healthz": {
          const v = await checks.healthz();
          return text(v.ok ? 200 : 503, v.detail);
        }
        case "/readyz": {
          const v = checks.readyz();
          return text(v.ok ? 200 : 503, v.detail);
        }
        default:
          return text(404, "not found: try /metrics, /healthz or /readyz");
      }
    });
  } catch (e) {
    if (e instanceof Deno.errors.AddrInUse) {
      throw new Error(`cannot listen on ${address} for metrics: address already in use`);
    }
    throw e;
  }
  const boundPort = await bound.promise;
  return {
    address: `${host}:${boundPort}`,
    close: () => server.shutdown(),
  };
}
