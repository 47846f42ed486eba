/** Runs the `systemd-unit` subcommand on its own, as the CLI will (for tests/ops/systemd_test.ts). */
import { systemdUnitCommand } from "../../../src/ops/systemd.ts";

await systemdUnitCommand().parseAsync(Deno.args, { from: "user" });
