/**
 * The short version of scripts/abuse.ts (the full one: `deno run -A scripts/abuse.ts`): one TLS node under
 * idle connections, stalled handshakes, random bytes and clients with many frames in flight keeps serving.
 *
 * @module
 */
import { ok, strictEqual } from "node:assert/strict";

const SCRIPT = new URL("../../scripts/abuse.ts", import.meta.url).pathname;

Deno.test({
  name: "a TLS node under a scaled-down abuse run keeps serving a probe client in every phase",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const json = await Deno.makeTempFile({ suffix: ".json" });
    try {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", SCRIPT, "--scale", "0.02", "--json", json],
        env: { NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(240_000),
      }).output();
      const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      console.log(text);
      strictEqual(out.code, 0, text);
      const phases = JSON.parse(await Deno.readTextFile(json)) as {
        phase: string;
        probeOk: number;
        probeFailed: number;
        detail: Record<string, number>;
      }[];
      strictEqual(phases.length, 4);
      for (const p of phases) {
        ok(p.probeOk > 0, `${p.phase}: the probe was answered`);
        strictEqual(p.probeFailed, 0, `${p.phase}: no probe failed`);
      }
      strictEqual(
        phases[0].detail.closedByNodeWithinHold,
        phases[0].detail.connected,
        "idle connections closed",
      );
      const frames = phases[3].detail;
      strictEqual(frames.failed, 0, `frames: ${JSON.stringify(frames)}`);
    } finally {
      await Deno.remove(json);
    }
  },
});
