#!/usr/bin/env node
// Connection churn against a raftkv gRPC server, from Node.js (used by grpc_churn_test.ts).
//
//   node tests/integration/churn_client.cjs <port> <cycles> [parallel]
//
// `parallel` loops (default 1) share the cycles and run at the same time. Each cycle opens a fresh channel (its own connection), makes 3 calls at once (Admin/Status, Client/Get,
// Client/Set) and closes the channel: what every one-shot CLI invocation does to a node. Requests are
// encoded by hand (no generated code needed on the Node side). Prints one JSON line
// {"cycles", "ok", "failed", "firstErrors"} and exits 0 only if every call succeeded.
"use strict";

const path = require("node:path");

const root = path.resolve(__dirname, "..", "..");
let grpc;
try {
  grpc = require(path.join(root, "node_modules", "@grpc", "grpc-js"));
} catch (err) {
  console.error(
    `churn_client: cannot load @grpc/grpc-js from ${root}/node_modules (run \`deno install\`): ${err}`,
  );
  process.exit(2);
}

const [port, cyclesArg, parallelArg] = process.argv.slice(2);
const cycles = Number(cyclesArg);
const parallel = Number(parallelArg ?? "1");
if (!port || !Number.isInteger(cycles) || cycles <= 0 || !Number.isInteger(parallel) || parallel <= 0) {
  console.error("usage: node churn_client.cjs <port> <cycles> [parallel]");
  process.exit(2);
}

function str(field, s) {
  const bytes = Buffer.from(s, "utf8");
  if (bytes.length > 127) throw new Error("string too long for this tiny encoder");
  return Buffer.concat([Buffer.from([(field << 3) | 2, bytes.length]), bytes]);
}

function varint(field, n) {
  if (n < 0 || n > 127) throw new Error("number out of range for this tiny encoder");
  return Buffer.from([field << 3, n]);
}

const identity = (b) => b;
const options = {
  // A connection of its own per channel: closing the channel closes the connection (the churn under test).
  "grpc.use_local_subchannel_pool": 1,
  "grpc.enable_http_proxy": 0,
  "grpc.enable_retries": 0,
};

function call(client, method, body) {
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      method,
      identity,
      identity,
      body,
      new grpc.Metadata(),
      { deadline: Date.now() + 5000 },
      (err, reply) => resolve(err ? `${method}: ${err.code} ${err.details}` : reply),
    );
  });
}

async function main() {
  let ok = 0;
  let failed = 0;
  let next = 0;
  const firstErrors = [];
  const target = `127.0.0.1:${port}`;
  async function loop() {
    for (let i = next++; i < cycles; i = next++) {
      const client = new grpc.Client(target, grpc.credentials.createInsecure(), options);
      const replies = await Promise.all([
        call(client, "/raftkv.v1.Admin/Status", Buffer.alloc(0)),
        call(client, "/raftkv.v1.Client/Get", str(1, `key ${i % 10}`)),
        call(
          client,
          "/raftkv.v1.Client/Set",
          Buffer.concat([str(1, "k"), str(2, "v"), str(3, "churn"), varint(4, i % 100)]),
        ),
      ]);
      client.close();
      for (const reply of replies) {
        if (typeof reply === "string") {
          failed++;
          if (firstErrors.length < 5) firstErrors.push(`cycle ${i}: ${reply}`);
        } else {
          ok++;
        }
      }
    }
  }
  await Promise.all(Array.from({ length: parallel }, loop));
  console.log(JSON.stringify({ cycles, parallel, ok, failed, firstErrors }));
  process.exitCode = failed === 0 ? 0 : 1;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
