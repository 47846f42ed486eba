/** Calls notifyReady() (or notifyStopping() with `stopping`) and prints whether it sent (for sd_notify_test.ts). */
import { notifyReady, notifyStopping } from "../../../src/ops/sd_notify.ts";

console.log(Deno.args[0] === "stopping" ? await notifyStopping() : await notifyReady());
