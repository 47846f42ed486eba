import { deepStrictEqual, throws } from "node:assert/strict";
import { describeCert, memoryCa } from "./certs.ts";
import { describeCertFile } from "./tls.ts";

Deno.test("a node reads its certificate's validity and SAN URIs with node:crypto as @peculiar/x509 reads them", async () => {
  const ca = await memoryCa();
  const notBefore = new Date("2026-01-02T03:04:05Z"), notAfter = new Date("2027-06-07T08:09:10Z");
  const cases = [
    await ca.issue({ role: "node", nodeId: 3 }, { hosts: ["10.0.0.7", "db.example"], notBefore, notAfter }),
    await ca.issue({ role: "admin", name: "alice" }),
  ];
  for (const { cert } of cases) {
    const got = describeCertFile(cert), want = describeCert(cert);
    deepStrictEqual(
      { ...got, notBefore: got.notBefore.toISOString(), notAfter: got.notAfter.toISOString() },
      { ...want, notBefore: want.notBefore.toISOString(), notAfter: want.notAfter.toISOString() },
    );
  }
  deepStrictEqual(describeCertFile(cases[0].cert).notAfter, notAfter);
  deepStrictEqual(describeCertFile(cases[0].cert).uris, ["raftkv://node/3"]);
  throws(() => describeCertFile("not a certificate"));
});
