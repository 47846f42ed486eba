/**
 * `/metrics`, `/healthz` and `/readyz` on a running 3-node cluster: the names an operator's dashboards rely on
 * are there, and the values move when the leader is killed and when the last follower goes.
 */
import { ok, strictEqual } from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { IT, withCluster } from "../integration/harness.ts";
import { poll } from "./helpers.ts";

/** `name{labels}` → value, from the Prometheus text format (the node's default label `node` dropped). */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a metric line: ${line}`);
    const labels = (m[2] ?? "").replace(/,?node="\d+"/, "").replace(/^\{,/, "{").replace(/^\{\}$/, "");
    out.set(`${m[1]}${labels}`, Number(m[3]));
  }
  return out;
}

async function scrape(address: string): Promise<Map<string, number>> {
  const r = await fetch(`http://${address}/metrics`);
  strictEqual(r.status, 200);
  ok(
    r.headers.get("content-type")?.startsWith("text/plain"),
    `content-type ${r.headers.get("content-type")}`,
  );
  return parseMetrics(await r.text());
}

async function probe(address: string, path: string): Promise<{ status: number; body: string }> {
  const r = await fetch(`http://${address}${path}`);
  return { status: r.status, body: await r.text() };
}

const NAMES = [
  'raftkv_role{role="leader"}',
  "raftkv_term",
  "raftkv_leader_id",
  "raftkv_commit_index",
  "raftkv_applied_index",
  "raftkv_last_log_index",
  "raftkv_proposals_in_flight",
  "raftkv_lease_remaining_seconds",
  "raftkv_lease_wait_remaining_seconds",
  "raftkv_serving_reads",
  "raftkv_log_size_bytes",
  "raftkv_fsync_duration_seconds_count",
  "raftkv_append_entries_batch_entries_count",
  "raftkv_lease_wait_duration_seconds_count",
  "raftkv_heartbeats_sent_total",
  "raftkv_entries_committed_total",
  'raftkv_elections_started_total{trigger="timeout"}',
];

Deno.test(
  "metrics and health endpoints answer on a running cluster, and their values move when the leader is killed",
  IT,
  async () => {
    await withCluster({ nodes: 3, metrics: true, name: "metrics" }, async (c) => {
      const leader = await c.leader();
      const addr = (id: number) => c.metricsAddresses.get(id)!;
      const client = c.client();
      for (let i = 0; i < 5; i++) await client.set(`k${i}`, `v${i}`);
      strictEqual((await client.get("k1")).value, "v1");

      const before = await scrape(addr(leader.id));
      for (const name of NAMES) ok(before.has(name), `leader's /metrics lacks ${name}`);
      strictEqual(before.get('raftkv_role{role="leader"}'), 1);
      ok(before.get("raftkv_lease_remaining_seconds")! > 0, "a serving leader has lease remaining");
      ok(before.get('raftkv_lease_reads_total{result="served",reason=""}')! >= 1, "the GET was served");
      ok(before.get('raftkv_client_request_duration_seconds_count{op="set",outcome="ok"}')! >= 5, "5 SETs");
      const followers = c.ids.filter((id) => id !== leader.id);
      for (const f of followers) {
        ok(before.has(`raftkv_follower_match_lag_entries{peer="${f}"}`), `lag of follower ${f}`);
        ok(before.get(`raftkv_follower_heartbeat_rtt_seconds{peer="${f}"}`)! > 0, `heartbeat rtt of ${f}`);
      }
      for (const id of c.ids) {
        strictEqual((await probe(addr(id), "/healthz")).status, 200, `node ${id} /healthz`);
        const ready = await probe(addr(id), "/readyz");
        strictEqual(ready.status, 200, `node ${id} /readyz: ${ready.body}`);
      }
      strictEqual((await probe(addr(leader.id), "/nope")).status, 404);
      // TLS (the cluster's default): the notAfter of the node's certificate and of the CA, as issued.
      const notAfter = async (file: string) =>
        Date.parse(new X509Certificate(await Deno.readTextFile(file)).validTo) / 1000;
      strictEqual(
        before.get('raftkv_tls_certificate_not_after_seconds{certificate="node"}'),
        await notAfter(`${c.certsDir}/node-${leader.id}.crt`),
      );
      strictEqual(
        before.get('raftkv_tls_certificate_not_after_seconds{certificate="ca"}'),
        await notAfter(`${c.certsDir}/ca.crt`),
      );

      // Kill the leader: a follower takes over, and its metrics say so.
      await c.kill(leader.id);
      const next = await c.leader(20_000, followers);
      const last = followers.find((id) => id !== next.id)!;
      let after = await scrape(addr(next.id));
      strictEqual(after.get('raftkv_role{role="leader"}'), 1);
      strictEqual(after.get('raftkv_role{role="follower"}'), 0);
      ok(after.get("raftkv_term")! > before.get("raftkv_term")!, "the term moved on");
      strictEqual(after.get("raftkv_leader_elections_won_total"), 1);
      await poll(
        "the new leader's lease wait (zero or not) to be observed",
        async () => {
          after = await scrape(addr(next.id));
          return after.get("raftkv_lease_wait_duration_seconds_count")! >= 1;
        },
        10_000,
        100,
      );
      await poll(
        "the new leader to count failed RPCs to the dead node",
        async () => {
          after = await scrape(addr(next.id));
          return (after.get(`raftkv_peer_rpc_errors_total{peer="${leader.id}"}`) ?? 0) > 0;
        },
        10_000,
        100,
      );
      await client.set("after", "kill");
      await poll(
        "the dead node's match lag to grow",
        async () => {
          after = await scrape(addr(next.id));
          return (after.get(`raftkv_follower_match_lag_entries{peer="${leader.id}"}`) ?? 0) > 0;
        },
        10_000,
        100,
      );

      // The last follower goes: the leader loses its lease, steps down, and is no longer ready.
      await c.kill(last);
      await poll(
        "the lone leader to step down for lack of lease renewals",
        async () => {
          after = await scrape(addr(next.id));
          return (after.get('raftkv_leader_step_downs_total{cause="lease_expired"}') ?? 0) >= 1;
        },
        10_000,
        100,
      );
      await poll(
        "/readyz to say 503 without a quorum",
        async () => (await probe(addr(next.id), "/readyz")).status === 503,
        10_000,
        100,
      );
      strictEqual(
        (await probe(addr(next.id), "/healthz")).status,
        200,
        "alive and writable without a quorum",
      );
    });
  },
);
