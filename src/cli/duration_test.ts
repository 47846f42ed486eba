import { strictEqual, throws } from "node:assert/strict";
import { DurationError, formatDuration, parseDuration } from "./duration.ts";

Deno.test("durations with ms, s, m and h units parse to milliseconds", () => {
  strictEqual(parseDuration("500ms"), 500);
  strictEqual(parseDuration("5s"), 5000);
  strictEqual(parseDuration("1.5s"), 1500);
  strictEqual(parseDuration("1m"), 60_000);
  strictEqual(parseDuration("1h"), 3_600_000);
  strictEqual(parseDuration(" 2s "), 2000);
  strictEqual(parseDuration("0ms"), 0);
});

Deno.test("a sum of durations such as 1m30s parses to the total", () => {
  strictEqual(parseDuration("1m30s"), 90_000);
  strictEqual(parseDuration("1s500ms"), 1500);
});

Deno.test("a duration without a unit or with an unknown unit is refused with a hint", () => {
  throws(
    () => parseDuration("5"),
    (e: unknown) => e instanceof DurationError && /no unit.*500ms, 5s/.test(e.message),
  );
  throws(() => parseDuration("5x"), DurationError);
  throws(() => parseDuration("s"), DurationError);
  throws(() => parseDuration(""), DurationError);
  throws(() => parseDuration("-1s"), DurationError);
  throws(() => parseDuration("5 s"), DurationError);
  throws(() => parseDuration("1m 30s"), DurationError);
});

Deno.test("durations format back into short human text", () => {
  strictEqual(formatDuration(800), "800 ms");
  strictEqual(formatDuration(5000), "5 s");
  strictEqual(formatDuration(1500), "1.5 s");
  strictEqual(formatDuration(120_000), "2 m");
});
