/**
 * scripts/deploy-gcp.sh in dry-run mode: the printed plan creates the VMs, copies and installs the binary on
 * each with its own id, ends with a status check, writes a valid cluster.json — and never runs gcloud (a
 * fake gcloud first on PATH records any call).
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { parseClusterConfig } from "../../src/config/cluster_config.ts";
import { assertIncludes, REPO_PATH, run } from "./helpers.ts";

const SCRIPT = `${REPO_PATH}/scripts/deploy-gcp.sh`;

interface Plan {
  readonly code: number;
  readonly stderr: string;
  /** The `+ ` lines, without the prefix. */
  readonly commands: string[];
  /** The cluster.json the script wrote, parsed from its `#   ` lines. */
  readonly config: unknown;
  /** Whether the fake gcloud was called. */
  readonly gcloudCalled: boolean;
}

async function dryRun(args: string[]): Promise<Plan> {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-deploy-test-" });
  try {
    const marker = `${dir}/gcloud-called`;
    await Deno.writeTextFile(`${dir}/gcloud`, `#!/bin/sh\necho "$@" >> '${marker}'\nexit 1\n`, {
      mode: 0o755,
    });
    const r = await run("bash", [SCRIPT, "--dry-run", ...args], {
      cwd: dir,
      env: { PATH: `${dir}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}` },
      timeoutMs: 30_000,
    });
    const lines = r.stdout.split("\n");
    const commands = lines.filter((l) => l.startsWith("+ ")).map((l) => l.slice(2));
    const start = lines.findIndex((l) => /^# \d\. cluster\.json$/.test(l));
    const json = lines.slice(start + 1).filter((l) => l.startsWith("#   ")).map((l) => l.slice(4));
    const end = json.indexOf("}");
    const config = start >= 0 && end >= 0 ? JSON.parse(json.slice(0, end + 1).join("\n")) : undefined;
    let gcloudCalled = true;
    try {
      await Deno.stat(marker);
    } catch {
      gcloudCalled = false;
    }
    return { code: r.code, stderr: r.stderr, commands, config, gcloudCalled };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("the dry-run plan for 5 nodes creates 5 VMs, copies and installs on each with ids 1 to 5, then checks status", async () => {
  const plan = await dryRun(["--nodes", "5"]);
  strictEqual(plan.code, 0, plan.stderr);
  strictEqual(plan.gcloudCalled, false, "dry-run must not call gcloud");
  const creates = plan.commands.filter((c) => c.startsWith("gcloud compute instances create "));
  deepStrictEqual(creates.map((c) => c.split(" ")[4]), [
    "raftkv-1",
    "raftkv-2",
    "raftkv-3",
    "raftkv-4",
    "raftkv-5",
  ]);
  for (const c of creates) {
    assertIncludes(c, "--image-family=debian-12");
    assertIncludes(c, "--image-project=debian-cloud");
    assertIncludes(c, "--machine-type=e2-small");
    assertIncludes(c, "--zone=us-central1-a");
  }
  // The nodes' gRPC and raw peer ports (port + 1000, the default peer transport) open between them.
  const rule = plan.commands.find((c) => c.startsWith("gcloud compute firewall-rules create raftkv-peers "));
  ok(rule !== undefined, plan.commands.join("\n"));
  assertIncludes(rule, "--allow=tcp:7101,tcp:8101");
  assertIncludes(rule, "--source-tags=raftkv --target-tags=raftkv");
  const scps = plan.commands.filter((c) => c.startsWith("gcloud compute scp "));
  strictEqual(scps.length, 5);
  scps.forEach((c, i) => {
    assertIncludes(c, "dist/raftkv ");
    assertIncludes(
      c,
      `/cluster.json ./raftkv-certs/ca.crt ./raftkv-certs/node-${i + 1}.crt ./raftkv-certs/node-${
        i + 1
      }.key raftkv-${i + 1}:/tmp/`,
    );
    ok(!c.includes("ca.key") && !c.includes("/ca/"), `the CA key never leaves this machine: ${c}`);
  });
  // Certificates are made here first, valid for each VM's internal IP.
  const init = plan.commands.findIndex((c) => c.includes(" certs init "));
  ok(
    init >= 0 && init < plan.commands.findIndex((c) => c.startsWith("gcloud compute scp ")),
    "certs before scp",
  );
  assertIncludes(
    plan.commands[init],
    "dist/raftkv certs init --dir ./raftkv-certs --nodes 1,2,3,4,5 --hosts 10.128.0.2,10.128.0.3,10.128.0.4,10.128.0.5,10.128.0.6",
  );
  const installs = plan.commands.filter((c) => c.includes("systemd-unit"));
  strictEqual(installs.length, 5);
  installs.forEach((c, i) => {
    ok(c.startsWith(`gcloud compute ssh raftkv-${i + 1} `), c);
    assertIncludes(c, "sudo install -m 0755 /tmp/raftkv /usr/local/bin/raftkv");
    assertIncludes(c, `raftkv systemd-unit --id ${i + 1} --config /tmp/cluster.json --install`);
    assertIncludes(c, "sudo systemctl enable raftkv");
    assertIncludes(c, `sudo install -m 0600 -o raftkv /tmp/node-${i + 1}.key /etc/raftkv/certs/`);
    ok(
      c.indexOf("systemd-unit") < c.indexOf("install -m 0600"),
      "the raftkv user exists before the key is given",
    );
    ok(c.indexOf("install -m 0600") < c.indexOf("systemctl restart"), "the key is in place before the start");
  });
  // Each node gets its binary and config before it is installed.
  for (let i = 1; i <= 5; i++) {
    const scp = plan.commands.findIndex((c) =>
      c.startsWith("gcloud compute scp ") && c.includes(`raftkv-${i}:`)
    );
    const ssh = plan.commands.findIndex((c) => c.includes(`systemd-unit --id ${i} `));
    ok(scp >= 0 && scp < ssh, `node ${i}: scp before install`);
  }
  const last = plan.commands[plan.commands.length - 1];
  ok(last.startsWith("gcloud compute ssh raftkv-1 "), last);
  assertIncludes(
    last,
    "raftkv admin status --config /etc/raftkv/cluster.json --cacert /etc/raftkv/certs/ca.crt",
  );
});

Deno.test("the dry-run cluster.json lists nodes 1 to 5 at placeholder internal IPs and passes config validation", async () => {
  const plan = await dryRun(["--nodes", "5", "--port", "7200"]);
  strictEqual(plan.code, 0, plan.stderr);
  const config = parseClusterConfig(plan.config, "dry-run cluster.json");
  deepStrictEqual(
    config.nodes.map((n) => `${n.id}@${n.address}`),
    [1, 2, 3, 4, 5].map((i) => `${i}@10.128.0.${i + 1}:7200`),
  );
  strictEqual(config.clusterId, "raftkv");
  deepStrictEqual(config.tls, {
    cacert: "/etc/raftkv/certs/ca.crt",
    cert: "/etc/raftkv/certs/node-{id}.crt",
    key: "/etc/raftkv/certs/node-{id}.key",
  });
  strictEqual(config.leaseDurationMs, 800, "one region: the one-region defaults");
});

Deno.test("zones are used round-robin and zones in two regions get the multi-region timings", async () => {
  const plan = await dryRun(["--nodes", "3", "--zones", "us-central1-a,europe-west1-b", "--project", "p1"]);
  strictEqual(plan.code, 0, plan.stderr);
  const zones = plan.commands.filter((c) => c.startsWith("gcloud compute instances create "))
    .map((c) => /--zone=(\S+)/.exec(c)?.[1]);
  deepStrictEqual(zones, ["us-central1-a", "europe-west1-b", "us-central1-a"]);
  ok(plan.commands.filter((c) => c.startsWith("gcloud ")).every((c) => c.includes("--project=p1")));
  const config = parseClusterConfig(plan.config, "dry-run cluster.json");
  strictEqual(config.heartbeatIntervalMs, 400);
  strictEqual(config.electionTimeoutMsMin, 3000);
  strictEqual(config.leaseDurationMs, 2400);
});

Deno.test("the dry-run replacement creates the new VM, starts it with --join, then add-node --replace adds it, waits for the vote and removes the old one", async () => {
  const plan = await dryRun(["--replace", "3", "--new-id", "6"]);
  strictEqual(plan.code, 0, plan.stderr);
  ok(!plan.gcloudCalled);
  const all = plan.commands.join("\n");
  assertIncludes(all, "gcloud compute instances create raftkv-6");
  assertIncludes(all, "systemd-unit --id 6 --config /tmp/cluster.json --join 10.128.0.7:7101 --install");
  // The same second command as docs/operations.md §7 and tests/integration/replace_node_test.ts: it adds,
  // waits for the vote, then removes the dead node.
  assertIncludes(all, "admin add-node --id 6 --address 10.128.0.7:7101 --replace 3");
  ok(all.indexOf("systemd-unit --id 6") < all.indexOf("add-node"), "started with --join before it is added");
  ok(!all.includes("instances delete"), "the old VM is not deleted by the script");
  const same = await dryRun(["--replace", "3", "--new-id", "3"]);
  ok(same.code !== 0 && same.stderr.includes("never reused"), same.stderr);
});

Deno.test("an unknown flag or a bad value exits non-zero with the usage", async () => {
  for (
    const args of [["--bogus"], ["--nodes", "zero"], ["--nodes"], ["--port", "70000"], ["--zones", "nowhere"]]
  ) {
    const plan = await dryRun(args);
    ok(plan.code !== 0, `${args.join(" ")} should fail`);
    assertIncludes(plan.stderr, "usage: scripts/deploy-gcp.sh", args.join(" "));
    strictEqual(plan.commands.length, 0, `${args.join(" ")} must not print a plan`);
    strictEqual(plan.gcloudCalled, false);
  }
});
