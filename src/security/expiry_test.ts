import { deepStrictEqual, match, ok, strictEqual, throws } from "node:assert/strict";
import { memoryCa } from "./certs.ts";
import { CertificateStore, TlsConfigError, tlsMaterialFromPem } from "./tls.ts";
import {
  CertificateExpiryWatch,
  DAY_MS,
  daysLeft,
  expiresSoon,
  expiryWarning,
  tlsNotAfterMs,
  watchedCertificates,
  wholeDays,
} from "./expiry.ts";

const NOW = Date.parse("2027-03-01T12:00:00Z");
const HOUR = 3600 * 1000;

Deno.test("days left are whole days rounded down, and negative once the certificate has expired", () => {
  strictEqual(daysLeft(NOW + 730 * DAY_MS, NOW), 730);
  strictEqual(daysLeft(NOW + 30 * DAY_MS - 1, NOW), 29, "one ms short of 30 days is 29 whole days");
  strictEqual(daysLeft(NOW + 30 * DAY_MS, NOW), 30);
  strictEqual(daysLeft(NOW + 23 * HOUR, NOW), 0, "less than a day left is 0");
  strictEqual(daysLeft(NOW - 1, NOW), -1, "expired a moment ago");
  strictEqual(daysLeft(NOW - DAY_MS - 1, NOW), -2);
  strictEqual(wholeDays(2.5 * DAY_MS), 2);
  strictEqual(wholeDays(-0.5 * DAY_MS), -1);
});

Deno.test("a certificate is due for a warning when it expires within 30 days, not from 30 days on", () => {
  strictEqual(expiresSoon(NOW + 30 * DAY_MS, NOW), false, "exactly 30 days left");
  strictEqual(expiresSoon(NOW + 30 * DAY_MS - 1, NOW), true);
  strictEqual(expiresSoon(NOW + 365 * DAY_MS, NOW), false);
  strictEqual(expiresSoon(NOW + HOUR, NOW), true);
  strictEqual(expiresSoon(NOW - DAY_MS, NOW), true, "already expired");
  strictEqual(expiresSoon(NOW + 8 * DAY_MS, NOW, 7), false, "another threshold");
  strictEqual(expiresSoon(NOW + 6 * DAY_MS, NOW, 7), true);
});

/** Node 3's material: a certificate valid until `notAfter`, from a CA valid until `caNotAfter`. */
async function material(notAfter: Date, caNotAfter?: Date, extraCa = "") {
  const ca = await memoryCa(caNotAfter ? { notAfter: caNotAfter } : {});
  const pair = await ca.issue({ role: "node", nodeId: 3 }, {
    hosts: ["10.128.0.4", "db3.internal"],
    notBefore: new Date(Date.now() - HOUR),
    notAfter,
  });
  return tlsMaterialFromPem({ ca: ca.caCert + extraCa, ...pair });
}

Deno.test("the watched notAfter times are the node certificate's and its CA's as issued", async () => {
  const notAfter = new Date("2031-04-05T06:07:08Z"), caNotAfter = new Date("2035-01-02T03:04:05Z");
  const m = await material(notAfter, caNotAfter);
  deepStrictEqual(tlsNotAfterMs(m), { node: notAfter.getTime(), ca: caNotAfter.getTime() });
  const [node, ca] = watchedCertificates(m);
  deepStrictEqual(node, {
    certificate: "node",
    file: "(memory)",
    notAfterMs: notAfter.getTime(),
    nodeId: 3,
    hosts: ["10.128.0.4", "db3.internal"],
  });
  strictEqual(ca.certificate, "ca");
  strictEqual(ca.notAfterMs, caNotAfter.getTime());
  strictEqual(ca.subject, "CN=raftkv cluster CA");
  strictEqual(ca.count, 1);
});

Deno.test("the node certificate's warning names the file, the date, the days left and how to rotate it", async () => {
  const m = await material(new Date(Date.now() + 12 * DAY_MS + HOUR));
  const [node] = watchedCertificates(m);
  const file = { ...node, file: "/etc/raftkv/certs/node-3.crt" };
  const line = expiryWarning(3, file, Date.now())!;
  ok(line !== undefined, "12 days left warns");
  match(line, /^Node 3's certificate \/etc\/raftkv\/certs\/node-3\.crt expires on \d{4}-\d\d-\d\dT[\d:.]+Z /);
  ok(line.includes(`expires on ${new Date(node.notAfterMs).toISOString()} (in 12 days)`), line);
  ok(line.includes('"raftkv certs issue --dir DIR --node 3 --hosts 10.128.0.4,db3.internal"'), line);
  ok(line.includes("systemctl reload raftkv") && line.includes("kill -HUP <pid>"), line);
  ok(line.includes('docs/operations.md "Certificate expiry"'), line);
  strictEqual(expiryWarning(3, file, node.notAfterMs - 31 * DAY_MS), undefined, "31 days left: no warning");
  match(expiryWarning(3, file, node.notAfterMs - HOUR)!, /\(in less than a day\)/);
  match(expiryWarning(3, file, node.notAfterMs - DAY_MS - HOUR)!, /\(in 1 day\)/);
  match(
    expiryWarning(3, file, node.notAfterMs + 3 * DAY_MS + HOUR)!,
    /node-3\.crt expired on .* \(3 days ago\)/,
  );
});

Deno.test("the CA's warning names the first CA certificate of the file to expire and how to replace the CA", async () => {
  const later = await memoryCa({ notAfter: new Date(Date.now() + 3000 * DAY_MS) });
  const caNotAfter = new Date(Math.floor((Date.now() + 20 * DAY_MS + HOUR) / 1000) * 1000); // X.509: seconds
  const m = await material(new Date(Date.now() + 700 * DAY_MS), caNotAfter, later.caCert);
  const [node, ca] = watchedCertificates(m);
  strictEqual(expiryWarning(3, node, Date.now()), undefined, "the node certificate has 700 days");
  strictEqual(ca.notAfterMs, caNotAfter.getTime(), "the bundle's first to expire");
  const line = expiryWarning(3, ca, Date.now())!;
  match(
    line,
    /^Node 3: the CA certificate CN=raftkv cluster CA \(the first to expire of the 2 in \(memory\)\)/,
  );
  ok(line.includes(`expires on ${caNotAfter.toISOString()} (in 20 days)`), line);
  ok(line.includes('"raftkv certs init --dir NEWDIR') && line.includes("systemctl reload raftkv"), line);
});

Deno.test("material whose CA has expired is refused naming the CA file and its notAfter date", async () => {
  const ca = await memoryCa({
    notBefore: new Date(Date.now() - 400 * DAY_MS),
    notAfter: new Date(Date.now() - 2 * DAY_MS),
  });
  const pair = await ca.issue({ role: "node", nodeId: 1 });
  let refused: unknown;
  try {
    tlsMaterialFromPem({ ca: ca.caCert, ...pair });
  } catch (err) {
    refused = err;
  }
  ok(refused instanceof TlsConfigError, String(refused));
  match(
    refused.message,
    /^the CA certificate \(memory\) \(CN=raftkv cluster CA\) expired on \d{4}-\d\d-\d\dT/,
  );
  // An expired CA left in a bundle beside the valid one that issued the certificate still starts (and warns).
  const valid = await memoryCa();
  const mine = await valid.issue({ role: "node", nodeId: 1 });
  const m = tlsMaterialFromPem({ ca: ca.caCert + valid.caCert, ...mine });
  strictEqual(m.caExpiry.count, 2);
  ok(m.caExpiry.notAfter.getTime() < Date.now(), "the expired one is the first to expire");
  match(expiryWarning(1, watchedCertificates(m)[1], Date.now())!, /expired on .* \(2 days ago\)/);
  // But not when the CA that issued the certificate is the expired one.
  throws(() => tlsMaterialFromPem({ ca: ca.caCert + valid.caCert, ...pair }), /CA certificate .* expired on/);
});

Deno.test("the watch warns at start, after a reload, on every tick while it stays true, and not after stop", async () => {
  const soon = await material(new Date(Date.now() + 10 * DAY_MS));
  const store = new CertificateStore(soon);
  const lines: string[] = [];
  const watch = new CertificateExpiryWatch({ store, nodeId: 3, warn: (l) => lines.push(l), intervalMs: 20 });
  watch.start();
  strictEqual(lines.length, 1, "one warning at start (the CA has 10 years)");
  match(lines[0], /certificate \(memory\) expires on .* \(in (9|10) days\)/);
  // Ticks: the warning again while it stays true.
  const t0 = performance.now();
  while (lines.length < 3 && performance.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 10));
  ok(lines.length >= 3, `warned again on the timer: ${lines.length}`);
  // A reload with a certificate good for two years: checked at once, and no more warnings.
  store.update(await material(new Date(Date.now() + 730 * DAY_MS)));
  const afterReload = lines.length;
  await new Promise((r) => setTimeout(r, 100));
  strictEqual(lines.length, afterReload, "no warning once the certificate is good for long");
  // A reload with a soon-expiring one warns at once (not on the next day's tick).
  watch.stop();
  const w2 = new CertificateExpiryWatch({
    store,
    nodeId: 3,
    warn: (l) => lines.push(l),
    intervalMs: 3600_000,
  });
  w2.start();
  const before = lines.length;
  store.update(await material(new Date(Date.now() + 5 * DAY_MS)));
  strictEqual(lines.length, before + 1, "warned on the reload");
  match(lines.at(-1)!, /\(in (4|5) days\)/);
  w2.stop();
  store.update(await material(new Date(Date.now() + 5 * DAY_MS)));
  strictEqual(lines.length, before + 1, "stopped: the reload is not watched any more");
});
