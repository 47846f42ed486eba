#!/usr/bin/env bash
# Deploys a raftkv cluster on Google Compute Engine VMs: one node per VM, run by systemd.
#
#   scripts/deploy-gcp.sh [--nodes 5] [--zones us-central1-a,us-central1-b,…] [--machine-type e2-small]
#                         [--project P] [--prefix raftkv] [--binary dist/raftkv] [--port 7101]
#                         [--certs-dir ./raftkv-certs] [--dry-run]
#
# Steps: create (or reuse) VMs <prefix>-1 … <prefix>-N, zones round-robin; read their internal IPs; write a
# cluster.json (node i at <internal IP of VM i>:<port>); copy the binary and the config to each VM; install the
# binary, the systemd unit (`raftkv systemd-unit --install`) and (re)start it; print `raftkv admin status`
# from node 1.
# Mutual TLS: the certificates are made HERE (`raftkv certs init --dir <certs-dir>`, node certificates valid
# for each VM's internal IP), kept in <certs-dir> with the CA key in <certs-dir>/ca/ca.key, which never leaves
# this machine. Each VM receives ca.crt and its own node-<i>.crt / node-<i>.key in /etc/raftkv/certs (key 0600,
# owned by the raftkv user); cluster.json's "tls" points there. A later run reuses the CA and issues only
# missing node certificates. Zones in more than one region get the multi-region timings (see docs/operations.md).
#
# --dry-run prints every command instead of running it, one per line, prefixed "+ ", and never calls gcloud
# (internal IPs are placeholders 10.128.0.<i+1>). Build the binary first: `deno task build --target
# x86_64-unknown-linux-gnu` (the VMs run Debian 12 on x86_64). The firewall rule <prefix>-peers opens the
# nodes' port and raw peer port (port + 1000, the default peer transport) between the VMs (tag raftkv); nothing
# is opened to the internet.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: scripts/deploy-gcp.sh [options]
  --nodes N            number of VMs / raftkv nodes (default 5)
  --zones Z1,Z2,...    zones, used round-robin (default us-central1-a)
  --machine-type T     VM machine type (default e2-small)
  --project P          GCP project (default: gcloud's configured project)
  --prefix NAME        VM name prefix: NAME-1 ... NAME-N, also the clusterId (default raftkv)
  --binary PATH        the raftkv executable to install (default dist/raftkv)
  --port PORT          port every node listens on (default 7101)
  --certs-dir DIR      where the CA and certificates are made and kept (default ./raftkv-certs)
  --replace OLD        replace the dead node OLD online (issue 11): create VM NAME-NEW, start it with
                       --join, then add-node --replace OLD (waits until it is a voter, removes OLD);
                       needs --new-id
  --new-id NEW         the replacement's id: a fresh one, never an id a removed node had
  --dry-run            print the commands (prefixed "+ ") instead of running them; never calls gcloud
  -h, --help           this help
EOF
}

die_usage() {
  echo "deploy-gcp.sh: $1" >&2
  usage >&2
  exit 64
}

nodes=5
zones_csv="us-central1-a"
machine_type="e2-small"
project=""
prefix="raftkv"
binary="dist/raftkv"
port=7101
certs_dir="./raftkv-certs"
dry_run=0
replace=""
new_id=""

need_value() { [[ $# -ge 2 && -n "$2" && "$2" != --* ]] || die_usage "$1 needs a value"; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --nodes) need_value "$@"; nodes="$2"; shift 2 ;;
    --zones) need_value "$@"; zones_csv="$2"; shift 2 ;;
    --machine-type) need_value "$@"; machine_type="$2"; shift 2 ;;
    --project) need_value "$@"; project="$2"; shift 2 ;;
    --prefix) need_value "$@"; prefix="$2"; shift 2 ;;
    --binary) need_value "$@"; binary="$2"; shift 2 ;;
    --port) need_value "$@"; port="$2"; shift 2 ;;
    --certs-dir) need_value "$@"; certs_dir="$2"; shift 2 ;;
    --replace) need_value "$@"; replace="$2"; shift 2 ;;
    --new-id) need_value "$@"; new_id="$2"; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die_usage "unknown option \"$1\"" ;;
  esac
done

[[ "$nodes" =~ ^[1-9][0-9]*$ ]] || die_usage "--nodes must be a positive integer, got \"$nodes\""
[[ "$port" =~ ^[1-9][0-9]*$ && "$port" -le 64535 ]] ||
  die_usage "--port must be in 1..64535 (its raw peer port, port + 1000, too), got \"$port\""
raw_port=$((port + 1000)) # the raw peer port (rawPeerPortOffset's default)
[[ "$prefix" =~ ^[a-z]([-a-z0-9]{0,40}[a-z0-9])?$ ]] ||
  die_usage "--prefix must be a lowercase VM name prefix like raftkv, got \"$prefix\""
IFS=',' read -r -a zones <<<"$zones_csv"
[[ ${#zones[@]} -gt 0 ]] || die_usage "--zones needs at least one zone"
for z in "${zones[@]}"; do
  [[ "$z" =~ ^[a-z]+-[a-z]+[0-9]+-[a-z]$ ]] || die_usage "--zones: \"$z\" does not look like a zone (us-central1-a)"
done
if ((nodes % 2 == 0)); then
  echo "deploy-gcp.sh: note: $nodes nodes tolerate as many failures as $((nodes - 1)); an odd count is usual" >&2
fi

# Quotes one word for display the way a shell would read it back.
quote() {
  if [[ "$1" =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then
    printf '%s' "$1"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

# Runs a command, or in dry-run mode prints it as "+ cmd args…".
run() {
  if ((dry_run)); then
    local out="+" w
    for w in "$@"; do out+=" $(quote "$w")"; done
    printf '%s\n' "$out"
  else
    "$@"
  fi
}

# Runs a command up to 10 times, 6 s apart (fresh VMs take a while to accept ssh). Dry-run: once.
retry() {
  if ((dry_run)); then
    run "$@"
    return
  fi
  local attempt
  for attempt in 1 2 3 4 5 6 7 8 9 10; do
    if "$@"; then return 0; fi
    echo "deploy-gcp.sh: attempt $attempt failed: $*" >&2
    sleep 6
  done
  echo "deploy-gcp.sh: giving up: $*" >&2
  return 1
}

gflags=()
[[ -n "$project" ]] && gflags+=("--project=$project")

if ((!dry_run)); then
  command -v gcloud >/dev/null || { echo "deploy-gcp.sh: gcloud is not installed" >&2; exit 1; }
  [[ -x "$binary" ]] || { echo "deploy-gcp.sh: $binary is missing: run deno task build first" >&2; exit 1; }
elif [[ ! -e "$binary" ]]; then
  echo "# note: $binary does not exist yet (dry run continues)"
fi

# Timings: one region (RTT ≤ 2 ms) or several (RTT up to ~150 ms).
regions=$(for z in "${zones[@]}"; do echo "${z%-*}"; done | sort -u | wc -l)
if ((regions > 1)); then
  timings='"heartbeatIntervalMs": 400, "electionTimeoutMsMin": 3000, "electionTimeoutMsMax": 6000, "leaseDurationMs": 2400'
else
  timings='"heartbeatIntervalMs": 100, "electionTimeoutMsMin": 1000, "electionTimeoutMsMax": 2000, "leaseDurationMs": 800'
fi

name_of() { echo "$prefix-$1"; }
zone_of() { echo "${zones[$((($1 - 1) % ${#zones[@]}))]}"; }

# Replacing a dead VM (docs/operations.md §7): the cluster keeps serving throughout.
if [[ -n "$replace" || -n "$new_id" ]]; then
  [[ "$replace" =~ ^[1-9][0-9]*$ ]] || die_usage "--replace needs the id of the node to replace, got \"$replace\""
  [[ "$new_id" =~ ^[1-9][0-9]*$ ]] || die_usage "--replace needs --new-id N (a fresh id), got \"$new_id\""
  [[ "$new_id" != "$replace" ]] || die_usage "--new-id must differ from --replace (ids are never reused)"
  if ((!dry_run)); then
    [[ -f ./cluster.json ]] || { echo "deploy-gcp.sh: --replace needs the cluster's ./cluster.json" >&2; exit 1; }
  fi
  # A surviving member to run the admin commands from: the lowest bootstrap id that is not the dead one.
  via=1
  [[ "$via" == "$replace" ]] && via=2
  name=$(name_of "$new_id") zone=$(zone_of "$new_id")
  echo "# 1. VM $name ($zone) for node $new_id, replacing node $replace"
  run gcloud compute instances create "$name" --zone="$zone" "${gflags[@]}" --machine-type="$machine_type" \
    --image-family=debian-12 --image-project=debian-cloud --tags=raftkv \
    --labels=app=raftkv,raftkv-node="$new_id"
  echo "# 2. its internal IP"
  if ((dry_run)); then
    run gcloud compute instances describe "$name" --zone="$zone" "${gflags[@]}" \
      --format='get(networkInterfaces[0].networkIP)'
    ip="10.128.0.$((new_id + 1))"
  else
    ip=$(gcloud compute instances describe "$name" --zone="$zone" "${gflags[@]}" \
      --format='get(networkInterfaces[0].networkIP)')
    [[ "$ip" =~ ^[0-9.]+$ ]] || { echo "deploy-gcp.sh: no internal IP for $name: \"$ip\"" >&2; exit 1; }
  fi
  certs_remote="/etc/raftkv/certs"
  echo "# 3. its certificate, signed by the cluster CA in $certs_dir"
  [[ -e "$certs_dir/node-$new_id.crt" ]] ||
    run "$binary" certs issue --dir "$certs_dir" --node "$new_id" --hosts "$ip"
  echo "# 4. install and start it with --join (same cluster.json: same cluster id and timings)"
  retry gcloud compute scp "$binary" ./cluster.json "$certs_dir/ca.crt" "$certs_dir/node-$new_id.crt" \
    "$certs_dir/node-$new_id.key" "$name:/tmp/" --zone="$zone" "${gflags[@]}"
  bin_name=$(basename "$binary")
  remote="sudo install -m 0755 /tmp/$bin_name /usr/local/bin/raftkv"
  remote+=" && sudo /usr/local/bin/raftkv systemd-unit --id $new_id --config /tmp/cluster.json --join $ip:$port --install"
  remote+=" && sudo install -d -m 0750 -o raftkv $certs_remote"
  remote+=" && sudo install -m 0644 /tmp/ca.crt /tmp/node-$new_id.crt $certs_remote/"
  remote+=" && sudo install -m 0600 -o raftkv /tmp/node-$new_id.key $certs_remote/ && rm -f /tmp/node-$new_id.key"
  remote+=" && sudo systemctl daemon-reload && sudo systemctl enable raftkv && sudo systemctl restart raftkv"
  retry gcloud compute ssh "$name" --zone="$zone" "${gflags[@]}" --command="$remote"
  echo "# 5. the operator's second command: add it (a learner, promoted once caught up), then remove node"
  echo "#    $replace (add-node --replace; from node $via, with the admin certificate: changing membership is an"
  echo "#    admin action; removed from the VM afterwards)"
  retry gcloud compute scp "$certs_dir/admin.crt" "$certs_dir/admin.key" "$(name_of "$via"):/tmp/" \
    --zone="$(zone_of "$via")" "${gflags[@]}"
  admin="/usr/local/bin/raftkv admin"
  cfg="--config /etc/raftkv/cluster.json --cacert $certs_remote/ca.crt --cert /tmp/admin.crt --key /tmp/admin.key"
  remote="$admin add-node --id $new_id --address $ip:$port --replace $replace --timeout 10m $cfg"
  remote+=" && $admin status $cfg"
  remote="($remote); status=\$?; rm -f /tmp/admin.key /tmp/admin.crt; exit \$status"
  retry gcloud compute ssh "$(name_of "$via")" --zone="$(zone_of "$via")" "${gflags[@]}" --command="$remote"
  echo "# 6. done: node $replace is out of the cluster. Delete its VM when you no longer need its disk:"
  echo "#   gcloud compute instances delete $(name_of "$replace") --zone=$(zone_of "$replace")"
  echo "#   and add node $new_id ($ip:$port) to your cluster.json so clients try it first."
  exit 0
fi

echo "# 1. VMs: create or reuse $nodes x $machine_type in ${zones[*]}"
for ((i = 1; i <= nodes; i++)); do
  name=$(name_of "$i") zone=$(zone_of "$i")
  if ((dry_run)); then
    run gcloud compute instances describe "$name" --zone="$zone" "${gflags[@]}" --format='value(name)'
    echo "#   (if $name does not exist:)"
  elif gcloud compute instances describe "$name" --zone="$zone" "${gflags[@]}" --format='value(name)' \
    >/dev/null 2>&1; then
    echo "#   reusing $name ($zone)"
    continue
  fi
  run gcloud compute instances create "$name" --zone="$zone" "${gflags[@]}" --machine-type="$machine_type" \
    --image-family=debian-12 --image-project=debian-cloud --tags=raftkv \
    --labels=app=raftkv,raftkv-node="$i"
done

# The nodes' gRPC port and raw peer port (gRPC port + rawPeerPortOffset, default 1000: the default peer
# transport) between the VMs tagged raftkv. default-allow-internal opens them too on the default network; this
# rule keeps them open on a network without it, and names them.
echo "# 1b. firewall: tcp:$port (gRPC: clients, admin, gRPC peers) and tcp:$raw_port (raw peers) between the nodes"
rule="$prefix-peers"
if ((dry_run)); then
  run gcloud compute firewall-rules describe "$rule" "${gflags[@]}" --format='value(name)'
  echo "#   (if $rule does not exist:)"
  run gcloud compute firewall-rules create "$rule" "${gflags[@]}" --network=default --direction=INGRESS \
    --allow="tcp:$port,tcp:$raw_port" --source-tags=raftkv --target-tags=raftkv
elif gcloud compute firewall-rules describe "$rule" "${gflags[@]}" --format='value(name)' >/dev/null 2>&1; then
  echo "#   reusing $rule"
else
  run gcloud compute firewall-rules create "$rule" "${gflags[@]}" --network=default --direction=INGRESS \
    --allow="tcp:$port,tcp:$raw_port" --source-tags=raftkv --target-tags=raftkv
fi

echo "# 2. internal IPs"
ips=()
for ((i = 1; i <= nodes; i++)); do
  name=$(name_of "$i") zone=$(zone_of "$i")
  if ((dry_run)); then
    run gcloud compute instances describe "$name" --zone="$zone" "${gflags[@]}" \
      --format='get(networkInterfaces[0].networkIP)'
    ips+=("10.128.0.$((i + 1))")
  else
    ip=$(gcloud compute instances describe "$name" --zone="$zone" "${gflags[@]}" \
      --format='get(networkInterfaces[0].networkIP)')
    [[ "$ip" =~ ^[0-9.]+$ ]] || { echo "deploy-gcp.sh: no internal IP for $name: \"$ip\"" >&2; exit 1; }
    ips+=("$ip")
  fi
done

echo "# 3. certificates in $certs_dir (the CA key stays here, in $certs_dir/ca/)"
certs_remote="/etc/raftkv/certs"
if [[ -e "$certs_dir/ca.crt" ]]; then
  for ((i = 1; i <= nodes; i++)); do
    [[ -e "$certs_dir/node-$i.crt" ]] ||
      run "$binary" certs issue --dir "$certs_dir" --node "$i" --hosts "${ips[$((i - 1))]}"
  done
else
  ids=$(seq -s, 1 "$nodes")
  hosts=$(IFS=,; echo "${ips[*]}")
  run "$binary" certs init --dir "$certs_dir" --nodes "$ids" --hosts "$hosts"
fi

echo "# 4. cluster.json"
workdir=$(mktemp -d "${TMPDIR:-/tmp}/raftkv-deploy.XXXXXX")
trap 'rm -rf "$workdir"' EXIT
config="$workdir/cluster.json"
{
  echo "{"
  echo "  \"clusterId\": \"$prefix\","
  echo "  \"nodes\": ["
  for ((i = 1; i <= nodes; i++)); do
    sep=","
    ((i == nodes)) && sep=""
    echo "    { \"id\": $i, \"address\": \"${ips[$((i - 1))]}:$port\" }$sep"
  done
  echo "  ],"
  echo "  $timings,"
  echo "  \"maxClockDrift\": 0.01,"
  echo "  \"tls\": { \"cacert\": \"$certs_remote/ca.crt\", \"cert\": \"$certs_remote/node-{id}.crt\", \"key\": \"$certs_remote/node-{id}.key\" }"
  echo "}"
} >"$config"
sed 's/^/#   /' "$config"
if ((!dry_run)); then
  cp "$config" ./cluster.json
  echo "#   (a copy is in ./cluster.json)"
fi

echo "# 5. copy the binary, the config and the node's certificate, install, start"
bin_name=$(basename "$binary")
for ((i = 1; i <= nodes; i++)); do
  name=$(name_of "$i") zone=$(zone_of "$i")
  retry gcloud compute scp "$binary" "$config" "$certs_dir/ca.crt" "$certs_dir/node-$i.crt" \
    "$certs_dir/node-$i.key" "$name:/tmp/" --zone="$zone" "${gflags[@]}"
  remote="sudo install -m 0755 /tmp/$bin_name /usr/local/bin/raftkv"
  remote+=" && sudo /usr/local/bin/raftkv systemd-unit --id $i --config /tmp/cluster.json --install"
  remote+=" && sudo install -d -m 0750 -o raftkv $certs_remote"
  remote+=" && sudo install -m 0644 /tmp/ca.crt /tmp/node-$i.crt $certs_remote/"
  remote+=" && sudo install -m 0600 -o raftkv /tmp/node-$i.key $certs_remote/ && rm -f /tmp/node-$i.key"
  remote+=" && sudo systemctl daemon-reload && sudo systemctl enable raftkv && sudo systemctl restart raftkv"
  retry gcloud compute ssh "$name" --zone="$zone" "${gflags[@]}" --command="$remote"
done

echo "# 6. status (from node 1, with its own certificate: status is open to every identity)"
retry gcloud compute ssh "$(name_of 1)" --zone="$(zone_of 1)" "${gflags[@]}" \
  --command="sudo /usr/local/bin/raftkv admin status --config /etc/raftkv/cluster.json --cacert $certs_remote/ca.crt --cert $certs_remote/node-1.crt --key $certs_remote/node-1.key"
