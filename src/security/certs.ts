/**
 * Certificates without extra tools: a cluster CA and the node, client and admin certificates it signs, made
 * with WebCrypto (ECDSA P-256) and `@peculiar/x509` (no hand-written ASN.1).
 *
 * Layout of a certificate folder (`raftkv certs init --dir DIR`):
 * - `ca.crt`: the CA certificate every node and client trusts (public).
 * - `ca/ca.key`: the CA's private key, in its own sub-folder (mode 0700, key 0600) so that copying the
 *   folder's top level to a node never ships it. Only `certs issue` needs it.
 * - `node-<id>.crt` / `node-<id>.key`, `client.crt` / `client.key`, `admin.crt` / `admin.key`,
 *   and `client-<NAME>` / `admin-<NAME>` for further ones. Keys are written 0600.
 *
 * The identity lives in a SAN URI (`raftkv://node/3`, `raftkv://client/NAME`, `raftkv://admin/NAME`, see
 * identity.ts); node certificates also name the hosts they serve (DNS names and IP addresses), always
 * including `localhost` and `127.0.0.1`.
 *
 * @module
 */

// @peculiar/x509 resolves its services with tsyringe, which needs the Reflect metadata polyfill loaded first.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { DEFAULT_HOSTS, type Identity, identityUri } from "./identity.ts";

x509.cryptoProvider.set(crypto);

const ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
export { DEFAULT_HOSTS };
const DAY_MS = 24 * 3600 * 1000;
/** Default validity: CA 10 years, leaf certificates 2 years. */
export const CA_VALIDITY_DAYS = 3650;
export const LEAF_VALIDITY_DAYS = 730;

export class CertsError extends Error {
  override name = "CertsError";
}

export interface IssueOptions {
  /** Extra hosts (names or IP addresses) for a node certificate. */
  readonly hosts?: readonly string[];
  /** Validity window; defaults: from one hour ago for `LEAF_VALIDITY_DAYS`. */
  readonly notBefore?: Date;
  readonly notAfter?: Date;
}

/** Files of one issued certificate. */
export interface IssuedFiles {
  readonly cert: string;
  readonly key: string;
}

/** Where each file of a certificate folder lives. */
export const certPaths = {
  caCert: (dir: string) => `${dir}/ca.crt`,
  caKeyDir: (dir: string) => `${dir}/ca`,
  caKey: (dir: string) => `${dir}/ca/ca.key`,
  /** `node-3`, `client`, `client-alice`, `admin`, `admin-bob`. */
  baseName(id: Identity): string {
    if (id.role === "node") return `node-${id.nodeId}`;
    return id.name === "default" ? id.role : `${id.role}-${id.name}`;
  },
  cert: (dir: string, id: Identity) => `${dir}/${certPaths.baseName(id)}.crt`,
  key: (dir: string, id: Identity) => `${dir}/${certPaths.baseName(id)}.key`,
};

function pem(label: string, der: ArrayBuffer): string {
  const b64 = btoa(String.fromCharCode(...new Uint8Array(der)));
  return `-----BEGIN ${label}-----\n${b64.match(/.{1,64}/g)!.join("\n")}\n-----END ${label}-----\n`;
}

function pemBody(text: string, label: string, file: string): Uint8Array<ArrayBuffer> {
  const m = new RegExp(`-----BEGIN ${label}-----([^-]+)-----END ${label}-----`).exec(text);
  if (!m) throw new CertsError(`${file} holds no ${label} in PEM form`);
  return Uint8Array.from(atob(m[1].replace(/\s+/g, "")), (c) => c.charCodeAt(0));
}

async function writePrivate(path: string, text: string): Promise<void> {
  // Created 0600 from the start (and chmod in case the file existed with looser bits).
  await Deno.writeTextFile(path, text, { mode: 0o600 });
  await Deno.chmod(path, 0o600);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

function randomSerial(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[0] &= 0x7f; // positive
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

/** True for an IPv4 or IPv6 literal. */
export function isIpAddress(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.includes(":");
}

interface Ca {
  readonly cert: x509.X509Certificate;
  readonly key: CryptoKey;
}

async function createCa(notBefore: Date, notAfter: Date): Promise<{ ca: Ca; keyPem: string }> {
  const keys = await crypto.subtle.generateKey(ALG, true, ["sign", "verify"]) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: "CN=raftkv cluster CA",
    notBefore,
    notAfter,
    signingAlgorithm: ALG,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const keyPem = pem("PRIVATE KEY", await crypto.subtle.exportKey("pkcs8", keys.privateKey));
  return { ca: { cert, key: keys.privateKey }, keyPem };
}

async function loadCa(dir: string): Promise<Ca> {
  const certFile = certPaths.caCert(dir), keyFile = certPaths.caKey(dir);
  let certText: string, keyText: string;
  try {
    certText = await Deno.readTextFile(certFile);
    keyText = await Deno.readTextFile(keyFile);
  } catch (e) {
    throw new CertsError(
      `cannot read the CA (${certFile} and ${keyFile}): ${(e as Error).message}; ` +
        `run "raftkv certs init --dir ${dir}" first, or point --dir at the folder holding the CA key`,
    );
  }
  const cert = new x509.X509Certificate(certText);
  const key = await crypto.subtle.importKey("pkcs8", pemBody(keyText, "PRIVATE KEY", keyFile), ALG, false, [
    "sign",
  ]);
  return { cert, key };
}

/** Makes a certificate and key for `id`, signed by `ca`, as PEM texts. */
async function issueWith(
  ca: Ca,
  id: Identity,
  options: IssueOptions,
): Promise<{ cert: string; key: string }> {
  const keys = await crypto.subtle.generateKey(ALG, true, ["sign", "verify"]) as CryptoKeyPair;
  const names: x509.JsonGeneralName[] = [{ type: "url", value: identityUri(id) }];
  if (id.role === "node") {
    const hosts = [...new Set([...DEFAULT_HOSTS, ...(options.hosts ?? [])])];
    for (const h of hosts) names.push({ type: isIpAddress(h) ? "ip" : "dns", value: h });
  }
  const notBefore = options.notBefore ?? new Date(Date.now() - 3600 * 1000);
  const notAfter = options.notAfter ?? new Date(notBefore.getTime() + LEAF_VALIDITY_DAYS * DAY_MS);
  const usages = id.role === "node"
    ? [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]
    : [x509.ExtendedKeyUsage.clientAuth];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: `CN=${certPaths.baseName(id)}, O=raftkv`,
    issuer: ca.cert.subject,
    notBefore,
    notAfter,
    signingAlgorithm: ALG,
    publicKey: keys.publicKey,
    signingKey: ca.key,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
        true,
      ),
      new x509.ExtendedKeyUsageExtension(usages),
      new x509.SubjectAlternativeNameExtension(names),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
    ],
  });
  return {
    cert: cert.toString("pem") + "\n",
    key: pem("PRIVATE KEY", await crypto.subtle.exportKey("pkcs8", keys.privateKey)),
  };
}

async function writeIssued(
  dir: string,
  id: Identity,
  pair: { cert: string; key: string },
): Promise<IssuedFiles> {
  const files = { cert: certPaths.cert(dir, id), key: certPaths.key(dir, id) };
  await Deno.writeTextFile(files.cert, pair.cert, { mode: 0o644 });
  await writePrivate(files.key, pair.key);
  return files;
}

export interface InitOptions {
  readonly nodes: readonly number[];
  readonly hosts?: readonly string[];
  /** Replace an existing CA (default: refuse, so a second init never orphans the running cluster). */
  readonly force?: boolean;
}

/**
 * Creates the CA and the certificates of `nodes`, `client` and `admin` in `dir`. Refuses if `dir` already
 * holds a CA unless `force`. Returns every file written.
 */
export async function initCerts(dir: string, options: InitOptions): Promise<string[]> {
  if (!options.force && await exists(certPaths.caCert(dir))) {
    throw new CertsError(
      `${certPaths.caCert(dir)} exists: this folder already has a CA (use "raftkv certs issue" to add ` +
        `certificates, or --force to replace the CA and every certificate it signed)`,
    );
  }
  await Deno.mkdir(certPaths.caKeyDir(dir), { recursive: true, mode: 0o700 });
  await Deno.chmod(certPaths.caKeyDir(dir), 0o700);
  const now = Date.now();
  const { ca, keyPem } = await createCa(
    new Date(now - 3600 * 1000),
    new Date(now + CA_VALIDITY_DAYS * DAY_MS),
  );
  await writePrivate(certPaths.caKey(dir), keyPem);
  await Deno.writeTextFile(certPaths.caCert(dir), ca.cert.toString("pem") + "\n", { mode: 0o644 });
  const written = [certPaths.caCert(dir), certPaths.caKey(dir)];
  const ids: Identity[] = [
    ...options.nodes.map((n): Identity => ({ role: "node", nodeId: n })),
    { role: "client", name: "default" },
    { role: "admin", name: "default" },
  ];
  for (const id of ids) {
    const files = await writeIssued(dir, id, await issueWith(ca, id, { hosts: options.hosts }));
    written.push(files.cert, files.key);
  }
  return written;
}

/** Issues one more certificate with the CA kept in `dir`. */
export async function issueCert(dir: string, id: Identity, options: IssueOptions = {}): Promise<IssuedFiles> {
  const ca = await loadCa(dir);
  return writeIssued(dir, id, await issueWith(ca, id, options));
}

/**
 * For tests: a CA in memory and certificates it signs, as PEM texts (nothing written). The CA is valid from an
 * hour ago for CA_VALIDITY_DAYS (as `certs init` makes it, so nodes do not warn of its expiry), or as given.
 */
export async function memoryCa(options: { notBefore?: Date; notAfter?: Date } = {}): Promise<{
  caCert: string;
  issue(id: Identity, options?: IssueOptions): Promise<{ cert: string; key: string }>;
}> {
  const now = Date.now();
  const { ca } = await createCa(
    options.notBefore ?? new Date(now - 3600 * 1000),
    options.notAfter ?? new Date(now + CA_VALIDITY_DAYS * DAY_MS),
  );
  return { caCert: ca.cert.toString("pem") + "\n", issue: (id, options = {}) => issueWith(ca, id, options) };
}

/** The validity window and SAN URIs of a PEM certificate (for checks and messages). */
export function describeCert(pemText: string): { notBefore: Date; notAfter: Date; uris: string[] } {
  const cert = new x509.X509Certificate(pemText);
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const uris = san ? san.names.items.filter((n) => n.type === "url").map((n) => n.value) : [];
  return { notBefore: cert.notBefore, notAfter: cert.notAfter, uris };
}
