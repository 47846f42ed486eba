import { ok, strictEqual } from "node:assert/strict";
import { createNodeMetrics, type MetricsSnapshot, stepDownCause } from "./mod.ts";
import { memoryCa } from "../security/certs.ts";
import { tlsMaterialFromPem } from "../security/tls.ts";
import { tlsNotAfterMs } from "../security/expiry.ts";

function value(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

const SNAP: MetricsSnapshot = {
  role: "leader",
  term: 4,
  leaderId: 1,
  commitIndex: 10,
  appliedIndex: 10,
  lastLogIndex: 12,
  leaseRemainingMs: 650,
  leaseWaitRemainingMs: 0,
  servingReads: true,
  proposalsInFlight: 2,
  followers: [{ id: 2, matchIndex: 12, roundTripMs: 1.5 }, { id: 3, matchIndex: 7, roundTripMs: undefined }],
  logBytes: 4096,
};

Deno.test("gauges show the status snapshot taken at scrape time, per follower where it applies", async () => {
  const m = createNodeMetrics(1);
  let snap = SNAP;
  m.setStatusSource(() => snap);
  let text = await m.render();
  strictEqual(value(text, 'raftkv_role{role="leader",node="1"}'), 1);
  strictEqual(value(text, 'raftkv_role{role="follower",node="1"}'), 0);
  strictEqual(value(text, 'raftkv_term{node="1"}'), 4);
  strictEqual(value(text, 'raftkv_lease_remaining_seconds{node="1"}'), 0.65);
  strictEqual(value(text, 'raftkv_proposals_in_flight{node="1"}'), 2);
  strictEqual(value(text, 'raftkv_follower_match_lag_entries{peer="2",node="1"}'), 0);
  strictEqual(value(text, 'raftkv_follower_match_lag_entries{peer="3",node="1"}'), 5);
  strictEqual(value(text, 'raftkv_follower_heartbeat_rtt_seconds{peer="2",node="1"}'), 0.0015);
  strictEqual(value(text, 'raftkv_follower_heartbeat_rtt_seconds{peer="3",node="1"}'), undefined);
  snap = { ...SNAP, role: "follower", term: 5, followers: [] };
  text = await m.render();
  strictEqual(value(text, 'raftkv_role{role="follower",node="1"}'), 1);
  strictEqual(value(text, 'raftkv_term{node="1"}'), 5);
  ok(!text.includes('raftkv_follower_match_lag_entries{peer="3"'), "a follower shows no follower lag");
});

Deno.test("counters follow the core's events: elections by trigger, lease waits, step-downs by cause", async () => {
  const m = createNodeMetrics(2);
  m.setStatusSource(() => ({ ...SNAP, leaderId: 2 }));
  m.onEvent({ kind: "electionTimeout", term: 1 }, 0);
  m.onEvent({ kind: "becameLeader", term: 2 }, 10);
  m.onEvent({ kind: "leaseWaitStarted", term: 2, waitMs: 500 }, 10);
  m.onEvent({ kind: "heartbeat", term: 2 }, 110); // still waiting: no observation yet
  m.onEvent({ kind: "leaseWaitEnded", term: 2 }, 510);
  m.onEvent({ kind: "transferStarted", to: 3, term: 2 }, 600);
  m.onEvent({ kind: "steppedDown", term: 3, reason: "node 3 has a higher term" }, 700);
  m.onEvent({ kind: "transferElection", from: 3, term: 3 }, 800);
  m.onEvent({ kind: "becameLeader", term: 4 }, 810);
  m.onEvent({ kind: "heartbeat", term: 4 }, 910); // no wait announced: a zero wait
  m.onEvent({ kind: "leaseRenewalFailed", term: 4 }, 2000);
  m.onEvent({ kind: "steppedDown", term: 4, reason: "lease renewal failed" }, 2000);
  m.observeLeaseRead("served");
  m.observeLeaseRead("lease_wait");
  m.peerRpcError(3);
  m.observeFsyncSeconds(0.0002);
  const text = await m.render();
  strictEqual(value(text, 'raftkv_elections_started_total{trigger="timeout",node="2"}'), 1);
  strictEqual(value(text, 'raftkv_elections_started_total{trigger="transfer",node="2"}'), 1);
  strictEqual(value(text, 'raftkv_leader_elections_won_total{node="2"}'), 2);
  strictEqual(value(text, 'raftkv_lease_wait_duration_seconds_count{node="2"}'), 2);
  strictEqual(value(text, 'raftkv_lease_wait_duration_seconds_sum{node="2"}'), 0.5);
  strictEqual(value(text, 'raftkv_leader_step_downs_total{cause="transfer",node="2"}'), 1);
  strictEqual(value(text, 'raftkv_leader_step_downs_total{cause="lease_expired",node="2"}'), 1);
  strictEqual(value(text, 'raftkv_lease_renewal_failures_total{node="2"}'), 1);
  strictEqual(value(text, 'raftkv_lease_reads_total{result="served",reason="",node="2"}'), 1);
  strictEqual(value(text, 'raftkv_lease_reads_total{result="refused",reason="lease_wait",node="2"}'), 1);
  strictEqual(value(text, 'raftkv_peer_rpc_errors_total{peer="3",node="2"}'), 1);
  strictEqual(value(text, 'raftkv_fsync_duration_seconds_count{node="2"}'), 1);
});

Deno.test("step-down reasons map to a small fixed set of causes", () => {
  strictEqual(stepDownCause("lease renewal failed", false), "lease_expired");
  strictEqual(stepDownCause("saw a higher term in a vote request", false), "higher_term");
  strictEqual(stepDownCause("node 3 has a higher term", false), "higher_term");
  strictEqual(stepDownCause("heard from leader 3", false), "new_leader");
  strictEqual(stepDownCause("transfer to node 3 timed out", true), "transfer_timeout");
  strictEqual(stepDownCause("heard from leader 3", true), "transfer");
  strictEqual(stepDownCause("something new", false), "other");
});

Deno.test("raftkv_peer_transport shows 1 for the transport each peer link uses and 0 for the other", async () => {
  const m = createNodeMetrics(1);
  let transports = new Map<number, "raw" | "grpc">([[2, "raw"], [3, "grpc"]]);
  m.setStatusSource(() => ({ ...SNAP, peerTransports: transports }));
  let text = await m.render();
  strictEqual(value(text, 'raftkv_peer_transport{peer="2",transport="raw",node="1"}'), 1);
  strictEqual(value(text, 'raftkv_peer_transport{peer="2",transport="grpc",node="1"}'), 0);
  strictEqual(value(text, 'raftkv_peer_transport{peer="3",transport="grpc",node="1"}'), 1);
  strictEqual(value(text, 'raftkv_peer_transport{peer="3",transport="raw",node="1"}'), 0);
  transports = new Map([[3, "raw"]]); // node 3 upgraded; node 2 removed from the cluster
  text = await m.render();
  strictEqual(value(text, 'raftkv_peer_transport{peer="3",transport="raw",node="1"}'), 1);
  strictEqual(value(text, 'raftkv_peer_transport{peer="2",transport="raw",node="1"}'), undefined);
});

Deno.test("client admission shows requests in flight, queued, and the node-busy refusals since start", async () => {
  const m = createNodeMetrics(1);
  let admission = { inFlight: 4096, queued: 65536, refused: 17 };
  m.setStatusSource(() => ({ ...SNAP, clientAdmission: admission }));
  let text = await m.render();
  strictEqual(value(text, 'raftkv_client_requests_in_flight{node="1"}'), 4096);
  strictEqual(value(text, 'raftkv_client_requests_queued{node="1"}'), 65536);
  strictEqual(value(text, 'raftkv_client_requests_refused_total{node="1"}'), 17);
  admission = { inFlight: 0, queued: 0, refused: 20 };
  text = await m.render();
  strictEqual(value(text, 'raftkv_client_requests_in_flight{node="1"}'), 0);
  strictEqual(
    value(text, 'raftkv_client_requests_refused_total{node="1"}'),
    20,
    "a counter, not reset per scrape",
  );
});

Deno.test("the certificate expiry gauge shows the node's and the CA's notAfter in seconds since the epoch, and nothing without TLS", async () => {
  const caNotAfter = new Date("2036-02-03T04:05:06Z"), notAfter = new Date("2028-09-10T11:12:13Z");
  const ca = await memoryCa({ notAfter: caNotAfter });
  const pair = await ca.issue({ role: "node", nodeId: 1 }, {
    notBefore: new Date(Date.now() - 60_000),
    notAfter,
  });
  let material = tlsMaterialFromPem({ ca: ca.caCert, ...pair });
  const m = createNodeMetrics(1);
  let tls = true;
  m.setStatusSource(() => ({ ...SNAP, ...(tls ? { tlsNotAfterMs: tlsNotAfterMs(material) } : {}) }));
  let text = await m.render();
  strictEqual(
    value(text, 'raftkv_tls_certificate_not_after_seconds{certificate="node",node="1"}'),
    1852197133,
  );
  strictEqual(value(text, 'raftkv_tls_certificate_not_after_seconds{certificate="ca",node="1"}'), 2085624306);
  strictEqual(notAfter.getTime() / 1000, 1852197133);
  strictEqual(caNotAfter.getTime() / 1000, 2085624306);
  // A reload (new material in the store) shows at the next scrape.
  const renewed = new Date("2029-01-01T00:00:00Z");
  const next = await ca.issue({ role: "node", nodeId: 1 }, { notAfter: renewed });
  material = tlsMaterialFromPem({ ca: ca.caCert, ...next });
  text = await m.render();
  strictEqual(
    value(text, 'raftkv_tls_certificate_not_after_seconds{certificate="node",node="1"}'),
    1861920000,
  );
  tls = false;
  text = await m.render();
  ok(!text.includes("raftkv_tls_certificate_not_after_seconds{"), "plain text: no sample");
});
