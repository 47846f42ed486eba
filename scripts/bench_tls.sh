#!/bin/bash
# TLS vs plain text: 3 nodes on loopback, raftkv bench (closed loop), same machine, one after the other.
set -u
DENO=${DENO:-deno}
R="$DENO run -A $(cd "$(dirname "$0")/.." && pwd)/mod.ts"
D=${TMPDIR:-/tmp}/raftkv-bench-tls; mkdir -p $D
rm -rf $D/certs $D/data-*; $R certs init --dir $D/certs --nodes 1,2,3 >/dev/null
for mode in plain tls; do
  base=$([ $mode = plain ] && echo 7601 || echo 7701)
  tls=""; [ $mode = tls ] && tls=", \"tls\": {\"cacert\": \"$D/certs/ca.crt\", \"cert\": \"$D/certs/node-{id}.crt\", \"key\": \"$D/certs/node-{id}.key\", \"clientCert\": \"$D/certs/client.crt\", \"clientKey\": \"$D/certs/client.key\"}"
  echo "{\"clusterId\": \"b$mode\", \"nodes\": [{\"id\":1,\"address\":\"127.0.0.1:$base\"},{\"id\":2,\"address\":\"127.0.0.1:$((base+1))\"},{\"id\":3,\"address\":\"127.0.0.1:$((base+2))\"}]$tls}" > $D/$mode.json
  extra=""; [ $mode = plain ] && extra="--insecure"
  pids=()
  for i in 1 2 3; do $R node --id $i --config $D/$mode.json --data-dir $D/data-$mode --quiet $extra > $D/$mode-$i.out 2>&1 & pids+=($!); done
  sleep 6
  benv=""; [ $mode = plain ] && benv="RAFTKV_INSECURE=1"
  for c in 1 16 64; do
    for rr in 0 1; do
      echo -n "$mode c=$c read-ratio=$rr: "
      env $benv $R bench --config $D/$mode.json -d 8s -c $c --read-ratio $rr --json 2>/dev/null | tail -1
    done
  done
  kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null
done
