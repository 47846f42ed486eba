/**
 * A worker thread of `deno task sim`: runs each seed it is sent and answers with its outcome.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import type { OptionOverrides } from "./options.ts";
import { runOne } from "./sweep.ts";

self.onmessage = (e: MessageEvent<{ seed: number; overrides: OptionOverrides }>) => {
  self.postMessage(runOne(e.data.seed, e.data.overrides));
};
