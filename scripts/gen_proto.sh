#!/usr/bin/env bash
# Regenerates src/gen/raftkv.ts from proto/raftkv.proto (run it as `deno task gen`).
#
# Tools:
#   * protoc: Debian's protobuf-compiler (`apt-get install -y protobuf-compiler`);
#   * ts-proto (the protoc plugin), pinned below, installed with npm into a throw-away directory on each
#     run (or into $RAFTKV_PROTO_TOOLS if set, which is kept and reused: handy when iterating).
# The output is checked in: building and testing raftkv needs neither tool.
#
# ts-proto options (https://github.com/stephenh/ts-proto#supported-options):
#   outputServices=grpc-js  typed grpc-js service definitions, servers and client constructors
#   importSuffix=.ts        Deno resolves relative imports literally
#   env=node                Buffer-based (de)serializers, as grpc-js expects
#   esModuleInterop=true    default-import style that Deno's npm interop accepts
#   forceLong=number        uint64 fields are JS numbers (terms/indexes stay far below 2^53)
#   useOptionals=none       every field is always present (proto3 defaults)
#   removeEnumPrefix=true   ErrorCode.NOT_LEADER rather than ErrorCode.ERROR_CODE_NOT_LEADER
#   outputJsonMethods=false no proto3-JSON helpers (unused; smaller output)
set -euo pipefail

TS_PROTO_VERSION="2.18.0"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

command -v protoc >/dev/null || { echo "gen_proto.sh: protoc not found (apt-get install -y protobuf-compiler)" >&2; exit 1; }

cleanup=()
trap 'rm -rf "${cleanup[@]}"' EXIT
if [[ -n "${RAFTKV_PROTO_TOOLS:-}" ]]; then
  tools="$RAFTKV_PROTO_TOOLS"
  mkdir -p "$tools"
else
  tools="$(mktemp -d)"
  cleanup+=("$tools")
fi
plugin="$tools/node_modules/.bin/protoc-gen-ts_proto"
if [[ ! -x "$plugin" ]] || ! grep -q "\"version\": \"$TS_PROTO_VERSION\"" "$tools/node_modules/ts-proto/package.json"; then
  echo "gen_proto.sh: installing ts-proto@$TS_PROTO_VERSION into $tools" >&2
  npm install --prefix "$tools" --no-audit --no-fund --silent --ignore-scripts "ts-proto@$TS_PROTO_VERSION" >&2
fi

out="$(mktemp -d)"
cleanup+=("$out")

protoc \
  --plugin="protoc-gen-ts_proto=$plugin" \
  --ts_proto_out="$out" \
  --ts_proto_opt=outputServices=grpc-js,importSuffix=.ts,env=node,esModuleInterop=true \
  --ts_proto_opt=forceLong=number,useOptionals=none,removeEnumPrefix=true,outputJsonMethods=false \
  --proto_path=proto \
  proto/raftkv.proto

mkdir -p src/gen
cp "$out/raftkv.ts" src/gen/raftkv.ts
echo "gen_proto.sh: wrote src/gen/raftkv.ts (ts-proto $TS_PROTO_VERSION, $(protoc --version))" >&2
