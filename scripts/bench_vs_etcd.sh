#!/bin/sh
# raftkv vs etcd vs the grpc-js echo floor (see docs/benchmarks.md), with the pinned Deno:
#   scripts/bench_vs_etcd.sh [--quick] [--repeats N] [--out results.json] [--markdown]
cd "$(dirname "$0")/.." || exit 2
NO_COLOR=1 exec scripts/deno/node_modules/.bin/deno run -A scripts/bench_vs_etcd.ts "$@"
