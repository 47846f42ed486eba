/**
 * Prometheus metrics and health checks for a node, on their own HTTP listener (`--metrics-address`).
 *
 * - {@linkcode createNodeMetrics}: the metrics (prom-client) behind the {@linkcode NodeMetrics} interface the
 *   node loop calls; gauges read a status snapshot at scrape time, counters come from the core's events.
 * - {@linkcode serveMetrics}: `/metrics`, `/healthz`, `/readyz` (see README.md and docs/operations.md).
 * - {@linkcode SetTracer}: per-stage timestamps of SETs, only with `RAFTKV_TRACE_FILE` set (issue 16).
 *
 * @example
 * ```ts
 * import { createNodeMetrics, serveMetrics, readiness, storageProbe } from "./mod.ts";
 * const metrics = createNodeMetrics(1);
 * const node = await RaftNode.start({ config, id: 1, dataDir, metrics });
 * const server = await serveMetrics("127.0.0.1:9101", metrics, {
 *   healthz: storageProbe("data/logs_node_1"),
 *   readyz: () => readiness(node.status()),
 * });
 * ```
 *
 * @module
 */
export {
  type ClientOp,
  createNodeMetrics,
  type FollowerSnapshot,
  type LeaseReadRefusal,
  type MetricsSnapshot,
  type NodeMetrics,
  stepDownCause,
} from "./node_metrics.ts";
export {
  type HealthChecks,
  type MetricsServer,
  readiness,
  serveMetrics,
  storageProbe,
  type Verdict,
} from "./http.ts";
export { SET_TRACE_ENV, SetTracer, type SetTraceRecord } from "./set_trace.ts";
