/**
 * The short version of scripts/abuse.ts (the full one: `deno run -A scripts/abuse.ts`): one TLS node under
 * idle connections, stalled handshakes, random bytes and clients with many frames in flight keeps serving a
 * probe client (its own process), and closes the idle and stalled connections.
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
        fdsBefore: number;
        fdsAfter: number;
        detail: Record<string, number>;
      }[];
      strictEqual(phases.length, 4);
      for (const p of phases) {
        ok(p.probeOk > 0, `${p.phase}: the probe was answered`);
        strictEqual(p.probeFailed, 0, `${p.phase}: no probe failed`);
      }
      // The node closes idle connections and stalled TLS handshakes at the handshake timeout (the attackers
      // read, so they see its FIN), and its open descriptors come back to what they were.
      for (const p of phases.slice(0, 2)) {
        strictEqual(p.detail.closedByNodeWithinHold, p.detail.connected, `${p.phase}: closed by the node`);
        ok(p.fdsAfter <= p.fdsBefore + 2, `${p.phase}: node descriptors ${p.fdsBefore} → ${p.fdsAfter}`);
      }
      const frames = phases[3].detail;
      strictEqual(frames.failed, 0, `frames: ${JSON.stringify(frames)}`);
    } finally {
      await Deno.remove(json);
    }
  },
});
