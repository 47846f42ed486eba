import { ConfigError, parseClusterConfig } from "./cluster_config.ts";
import { DEFAULT_SNAPSHOT_POLICY } from "../raft/config.ts";

const nodes = [{ id: 1, address: "127.0.0.1:7101" }];

function refusal(raw: Record<string, unknown>): string {
  try {
    parseClusterConfig({ nodes, ...raw }, "cluster.json");
  } catch (e) {
    if (e instanceof ConfigError) return e.message;
    throw e;
  }
  throw new Error(`accepted ${JSON.stringify(raw)}`);
}

Deno.test("snapshotThresholdEntries and its companions default when absent and are taken when given", () => {
  const d = parseClusterConfig({ nodes });
  if (d.snapshotThresholdEntries !== DEFAULT_SNAPSHOT_POLICY.snapshotThresholdEntries) {
    throw new Error("default");
  }
  if (d.snapshotTrailingEntries !== DEFAULT_SNAPSHOT_POLICY.snapshotTrailingEntries) {
    throw new Error("default");
  }
  const c = parseClusterConfig({
    nodes,
    snapshotThresholdEntries: 100,
    snapshotTrailingEntries: 0,
    snapshotChunkBytes: 4096,
  });
  const got = [c.snapshotThresholdEntries, c.snapshotTrailingEntries, c.snapshotChunkBytes].join(",");
  if (got !== "100,0,4096") throw new Error(got);
});

Deno.test("a bad snapshot policy is refused naming the field, the value and the unit", () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ snapshotThresholdEntries: 0 }, "snapshotThresholdEntries (0) must be a positive integer (entries)"],
    [{ snapshotThresholdEntries: 2.5 }, "snapshotThresholdEntries (2.5)"],
    [{ snapshotThresholdEntries: "10" }, 'snapshotThresholdEntries must be a number, got "10"'],
    [{ snapshotTrailingEntries: -1 }, "snapshotTrailingEntries (-1) must be a non-negative integer"],
    [{ snapshotChunkBytes: 10 }, "snapshotChunkBytes (10 bytes) must be an integer from 64"],
    [{ snapshotChunkBytes: 1 << 30 }, "snapshotChunkBytes (1073741824 bytes)"],
  ];
  for (const [raw, want] of cases) {
    const got = refusal(raw);
    if (!got.includes(want) || !got.startsWith("cluster.json: ")) {
      throw new Error(`for ${JSON.stringify(raw)}: expected "${want}", got "${got}"`);
    }
  }
});
