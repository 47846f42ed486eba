#!/bin/bash
# TLS's cost: the same `raftkv bench` against a 3-node cluster in plain text (--insecure) and one with mutual
# TLS, on loopback, side by side. Both clusters run at once and every measurement alternates plain / TLS, so a
# change in the machine's load hits both columns alike. Prints a markdown table (ops/s, TLS÷plain, p50/p99)
# and the load average before and after.
#
#   DENO=scripts/deno/node_modules/.bin/deno bash scripts/bench_tls.sh            # ~1 min: 1 and 16 in flight, 5 s each
#   BENCH_SECS=10 BENCH_CONC="1 16 64" bash scripts/bench_tls.sh                    # longer
#
# Env: DENO (the deno binary, default `deno`), BENCH_SECS (per measurement, default 5), BENCH_CONC (in-flight
# levels, default "1 16"), BENCH_DIR (work folder, default $TMPDIR/raftkv-bench-tls, wiped first).
set -euo pipefail
DENO=${DENO:-deno}
SECS=${BENCH_SECS:-5}
CONC=${BENCH_CONC:-1 16}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
R="$DENO run -A $ROOT/mod.ts"
D=${BENCH_DIR:-${TMPDIR:-/tmp}/raftkv-bench-tls}
rm -rf "$D" && mkdir -p "$D"
$R certs init --dir "$D/certs" --nodes 1,2,3 >/dev/null
pids=()
cleanup() { [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT
port0=$((20000 + RANDOM % 20000))
for mode in plain tls; do
  base=$([ $mode = plain ] && echo $port0 || echo $((port0 + 10)))
  tls=""
  [ $mode = tls ] && tls=", \"tls\": {\"cacert\": \"$D/certs/ca.crt\", \"cert\": \"$D/certs/node-{id}.crt\", \"key\": \"$D/certs/node-{id}.key\", \"clientCert\": \"$D/certs/client.crt\", \"clientKey\": \"$D/certs/client.key\"}"
  echo "{\"clusterId\": \"b$mode\", \"nodes\": [{\"id\":1,\"address\":\"127.0.0.1:$base\"},{\"id\":2,\"address\":\"127.0.0.1:$((base + 1))\"},{\"id\":3,\"address\":\"127.0.0.1:$((base + 2))\"}]$tls}" >"$D/$mode.json"
  extra=""
  [ $mode = plain ] && extra="--insecure"
  for i in 1 2 3; do
    $R node --id $i --config "$D/$mode.json" --data-dir "$D/data-$mode" --quiet $extra >"$D/$mode-$i.out" 2>&1 &
    pids+=($!)
  done
done
# Both clusters answer (a leader elected and serving) before anything is measured.
for mode in plain tls; do
  env=""
  [ $mode = plain ] && env="RAFTKV_INSECURE=1"
  for _ in $(seq 60); do
    env $env $R bench --config "$D/$mode.json" -d 1s -c 1 --read-ratio 0 --json >/dev/null 2>&1 && break
    sleep 1
  done
done
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for c in $CONC; do
  for rr in 0 1; do
    for mode in plain tls; do
      env=""
      [ $mode = plain ] && env="RAFTKV_INSECURE=1"
      out=$(env $env $R bench --config "$D/$mode.json" -d ${SECS}s -c $c --read-ratio $rr --json 2>/dev/null | tail -1 || true)
      echo "$mode $c $rr $out" >>"$D/results.txt"
      echo "$mode c=$c read-ratio=$rr: $(echo "$out" | cut -c1-100)…" >&2
    done
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
# The table, from the JSON summaries.
$DENO eval '
const rows = Deno.readTextFileSync(Deno.args[0]).trim().split("\n").map((l) => {
  const [mode, c, rr, ...json] = l.split(" ");
  let s; try { s = JSON.parse(json.join(" ")); } catch { s = undefined; }
  return { mode, c: Number(c), op: rr === "1" ? "GET" : "SET", s };
});
const f = (x, d = 3) => (x === undefined ? "?" : Number(x.toPrecision(d)).toString());
console.log("| in flight | op  | plain ops/s | TLS ops/s | TLS÷plain | plain p50 / p99 ms | TLS p50 / p99 ms |");
console.log("| --------: | --- | ----------: | --------: | --------: | -----------------: | ---------------: |");
for (const p of rows.filter((r) => r.mode === "plain")) {
  const t = rows.find((r) => r.mode === "tls" && r.c === p.c && r.op === p.op);
  const a = p.s?.[p.op], b = t?.s?.[p.op];
  const ratio = a && b && a.opsPerSec > 0 ? `${(b.opsPerSec / a.opsPerSec).toFixed(2)}×` : "?";
  console.log(`| ${p.c} | ${p.op} | ${f(a?.opsPerSec, 4)} | ${f(b?.opsPerSec, 4)} | ${ratio} | ${f(a?.p50Ms)} / ${f(a?.p99Ms)} | ${f(b?.p50Ms)} / ${f(b?.p99Ms)} |`);
}
' "$D/results.txt"
