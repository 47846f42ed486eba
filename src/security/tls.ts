/**
 * TLS material for grpc-js: loading the CA, certificate and key files, checking them (readable, matching
 * validity window, a raftkv identity), and credentials that follow a reload (SIGHUP) without a restart.
 *
 * Rotation uses grpc-js's certificate-provider credentials: a {@linkcode CertificateStore} pushes the new
 * material to the server (new handshakes use it; open connections stay up) and to the node's outgoing
 * channels (their next connection presents the new certificate).
 *
 * Under Deno a TLS client may not use an IP address as server name: every channel sets
 * `grpc.ssl_target_name_override` to a name and checks the server's certificate against the real host
 * (a DNS or IP SAN) itself, plus its raftkv role.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { createPrivateKey, X509Certificate } from "node:crypto";
import tls from "node:tls";
import * as grpc from "@grpc/grpc-js";
import { describeIdentity, type Identity, parseIdentityUri } from "./identity.ts";

/**
 * The validity window and SAN URIs of a PEM certificate (its first one), read with node:crypto: a node reads its
 * certificates but never makes one, so it does not load @peculiar/x509 (`certs.ts`, for `raftkv certs`), which
 * cost ~4.5 MB of RSS and 2.7 MB of V8 heap at start (docs/operations.md "Memory").
 */
export function describeCertFile(pemText: string): { notBefore: Date; notAfter: Date; uris: string[] } {
  const cert = new X509Certificate(pemText);
  const uris = (cert.subjectAltName ?? "").split(/,\s*/).filter((n) => n.startsWith("URI:")).map((n) =>
    n.slice(4)
  );
  const date = (text: string) => {
    const d = new Date(text);
    if (Number.isNaN(d.getTime())) throw new Error(`unreadable validity date ${JSON.stringify(text)}`);
    return d;
  };
  return { notBefore: date(cert.validFrom), notAfter: date(cert.validTo), uris };
}

/** The first certificate of a CA file to expire (the file may hold a bundle of several while a CA is replaced). */
export interface CaExpiry {
  /** Its subject, e.g. `CN=raftkv cluster CA`. */
  readonly subject: string;
  readonly notAfter: Date;
  /** How many CA certificates the file holds. */
  readonly count: number;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Every certificate of a PEM file (a CA file may be a bundle), read with node:crypto. */
export function pemCertificates(pemText: string): X509Certificate[] {
  return (pemText.match(PEM_CERTIFICATE) ?? []).map((block) => new X509Certificate(block));
}

/** The DNS and IP SANs of a certificate (what `raftkv certs issue --hosts` was given, plus the defaults). */
function hostsOf(cert: X509Certificate): string[] {
  return (cert.subjectAltName ?? "").split(/,\s*/).flatMap((n) =>
    n.startsWith("DNS:") ? [n.slice(4)] : n.startsWith("IP Address:") ? [n.slice(11)] : []
  );
}

/** The three files of a TLS setting (etcdctl's `--cacert --cert --key`). */
export interface TlsFiles {
  readonly cacert: string;
  readonly cert: string;
  readonly key: string;
}

export class TlsConfigError extends Error {
  override name = "TlsConfigError";
}

/** A loaded and checked set of TLS files. */
export interface TlsMaterial {
  readonly files: TlsFiles;
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
  /** Whom the certificate names. */
  readonly identity: Identity;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** The certificate's DNS and IP SANs (for the command that reissues it). */
  readonly hosts: readonly string[];
  /** The CA file's certificate that expires first (src/security/expiry.ts warns before it does). */
  readonly caExpiry: CaExpiry;
}

async function read(path: string, what: string): Promise<Buffer> {
  try {
    return Buffer.from(await Deno.readFile(path));
  } catch (e) {
    throw new TlsConfigError(`cannot read the ${what} ${path}: ${(e as Error).message}`);
  }
}

/**
 * Reads and checks `files`: refuses a certificate that is expired or not yet valid at `now` (saying so, with
 * the dates), one without a raftkv identity, or a key that does not match it.
 */
export async function loadTlsMaterial(files: TlsFiles, now = new Date()): Promise<TlsMaterial> {
  const [ca, cert, key] = await Promise.all([
    read(files.cacert, "CA certificate (--cacert)"),
    read(files.cert, "certificate (--cert)"),
    read(files.key, "key (--key)"),
  ]);
  return checkMaterial(files, ca, cert, key, now);
}

/**
 * Material from PEM texts (tests, or certificates held in memory). `checkValidity: false` skips the validity
 * window check, to present an expired certificate on purpose (tests of the server's refusal).
 */
export function tlsMaterialFromPem(
  pem: { ca: string; cert: string; key: string },
  options: { now?: Date; checkValidity?: boolean } = {},
): TlsMaterial {
  const files = { cacert: "(memory)", cert: "(memory)", key: "(memory)" };
  const [ca, cert, key] = [pem.ca, pem.cert, pem.key].map((t) => Buffer.from(t));
  return checkMaterial(files, ca, cert, key, options.now ?? new Date(), options.checkValidity ?? true);
}

function checkMaterial(
  files: TlsFiles,
  ca: Buffer,
  cert: Buffer,
  key: Buffer,
  now: Date,
  checkValidity = true,
): TlsMaterial {
  let info: ReturnType<typeof describeCertFile>;
  try {
    info = describeCertFile(cert.toString("utf8"));
  } catch (e) {
    throw new TlsConfigError(`${files.cert} is not a PEM certificate: ${(e as Error).message}`);
  }
  if (checkValidity && now < info.notBefore) {
    throw new TlsConfigError(
      `certificate ${files.cert} is not yet valid: valid from ${info.notBefore.toISOString()} ` +
        `(now ${now.toISOString()}); check the clock or issue a new one`,
    );
  }
  if (checkValidity && now > info.notAfter) {
    throw new TlsConfigError(
      `certificate ${files.cert} expired on ${info.notAfter.toISOString()} (now ${now.toISOString()}); ` +
        `issue a new one with "raftkv certs issue" and reload (SIGHUP)`,
    );
  }
  const identity = info.uris.map(parseIdentityUri).find((id) => id !== undefined);
  if (identity === undefined) {
    throw new TlsConfigError(
      `certificate ${files.cert} names no raftkv identity (a SAN URI such as raftkv://node/3, ` +
        `raftkv://client/NAME or raftkv://admin/NAME); issue one with "raftkv certs issue"`,
    );
  }
  // Deno's createSecureContext below does not compare the key with the certificate (Node's does): a
  // certificate put in place without its key would be taken, and every new TLS connection would then fail.
  let matches: boolean;
  try {
    matches = new X509Certificate(cert).checkPrivateKey(createPrivateKey(key));
  } catch (e) {
    throw new TlsConfigError(`${files.key} is not a usable private key: ${(e as Error).message}`);
  }
  if (!matches) {
    throw new TlsConfigError(
      `the key ${files.key} does not match the certificate ${files.cert}: install the key issued with it`,
    );
  }
  try {
    tls.createSecureContext({ ca, cert, key });
  } catch (e) {
    throw new TlsConfigError(
      `cannot use ${files.cert} with ${files.key} and ${files.cacert}: ${(e as Error).message}`,
    );
  }
  const x509 = new X509Certificate(cert);
  const caExpiry = checkCa(files, ca, x509, now, checkValidity);
  return {
    files,
    ca,
    cert,
    key,
    identity,
    notBefore: info.notBefore,
    notAfter: info.notAfter,
    hosts: hostsOf(x509),
    caExpiry,
  };
}

/**
 * Reads the CA file's certificates and refuses a CA that can no longer vouch for anyone: the CA certificate that
 * issued `cert` expired (every peer would refuse `cert`), or every CA certificate in the file did. An expired CA
 * left in a bundle beside a valid one is not refused (the valid one still works): expiry.ts warns about it.
 */
function checkCa(
  files: TlsFiles,
  ca: Buffer,
  cert: X509Certificate,
  now: Date,
  checkValidity: boolean,
): CaExpiry {
  let cas: X509Certificate[];
  try {
    cas = pemCertificates(ca.toString("utf8"));
  } catch (e) {
    throw new TlsConfigError(`${files.cacert} is not a PEM certificate: ${(e as Error).message}`);
  }
  if (cas.length === 0) throw new TlsConfigError(`${files.cacert} holds no PEM certificate`);
  const notAfter = (c: X509Certificate) => new Date(c.validTo);
  if (checkValidity) {
    const expired = (c: X509Certificate) => now > notAfter(c);
    const issuer = cas.find((c) => cert.checkIssued(c) && cert.verify(c.publicKey));
    const dead = issuer !== undefined && expired(issuer) ? issuer : cas.every(expired) ? cas[0] : undefined;
    if (dead !== undefined) {
      const subject = dead.subject.replaceAll("\n", ", "), date = notAfter(dead).toISOString();
      throw new TlsConfigError(
        `the CA certificate ${files.cacert} (${subject}) expired on ${date} (now ${now.toISOString()}): ` +
          `no certificate it signed is accepted any more; make a new CA and certificates ("raftkv certs ` +
          `init") and install them (docs/operations.md "Certificate expiry")`,
      );
    }
  }
  const first = cas.reduce((a, b) => (notAfter(b) < notAfter(a) ? b : a));
  return { subject: first.subject.replaceAll("\n", ", "), notAfter: notAfter(first), count: cas.length };
}

type CaListener = (update: { caCertificate: Buffer } | null) => void;
type IdentityListener = (update: { certificate: Buffer; privateKey: Buffer } | null) => void;

/**
 * The current TLS material, as a grpc-js certificate provider: credentials made from it follow `update`.
 */
export class CertificateStore implements grpc.experimental.CertificateProvider {
  #material: TlsMaterial;
  readonly #ca = new Set<CaListener>();
  readonly #id = new Set<IdentityListener>();
  readonly #updated = new Set<(material: TlsMaterial) => void>();

  constructor(material: TlsMaterial) {
    this.#material = material;
  }

  get material(): TlsMaterial {
    return this.#material;
  }

  /** Switches to new material (same identity required: a node must not become another member). */
  update(material: TlsMaterial): void {
    const was = describeIdentity(this.#material.identity), now = describeIdentity(material.identity);
    if (was !== now) {
      throw new TlsConfigError(`the new certificate ${material.files.cert} is for ${now}, not ${was}`);
    }
    this.#material = material;
    for (const l of this.#ca) l({ caCertificate: material.ca });
    for (const l of this.#id) l({ certificate: material.cert, privateKey: material.key });
    for (const l of this.#updated) l(material);
  }

  /** Calls `listener` after each switch to new material (a reload); returns what unsubscribes it. */
  onUpdate(listener: (material: TlsMaterial) => void): () => void {
    this.#updated.add(listener);
    return () => void this.#updated.delete(listener);
  }

  /** Reads the files again and switches to them; throws (keeping the old material) if they are unusable. */
  async reload(): Promise<TlsMaterial> {
    const material = await loadTlsMaterial(this.#material.files);
    this.update(material);
    return material;
  }

  addCaCertificateListener(listener: CaListener): void {
    this.#ca.add(listener);
    listener({ caCertificate: this.#material.ca });
  }
  removeCaCertificateListener(listener: CaListener): void {
    this.#ca.delete(listener);
  }
  addIdentityCertificateListener(listener: IdentityListener): void {
    this.#id.add(listener);
    listener({ certificate: this.#material.cert, privateKey: this.#material.key });
  }
  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.#id.delete(listener);
  }
}

/** TLS settings of a server: the store, and how long a connection may take to finish its handshake. */
export interface ServerTls {
  readonly store: CertificateStore;
}

/** Server credentials requiring a client certificate signed by the CA. */
export function serverCredentials(
  store: CertificateStore,
  handshakeTimeoutMs: number,
): grpc.ServerCredentials {
  // The client certificate is requested but checked per call (server.ts's guard): a refused caller then
  // learns why (UNAUTHENTICATED: no certificate, another CA, expired) instead of a bare failed connection.
  const creds = grpc.experimental.createCertificateProviderServerCredentials(store, store, false);
  // grpc-js passes its constructor options to http2.createSecureServer: `handshakeTimeout` closes a
  // connection whose TLS handshake has not finished in time (idle TCP connections included).
  const options = (creds as unknown as { serverConstructorOptions: Record<string, unknown> })
    .serverConstructorOptions;
  options.handshakeTimeout = handshakeTimeoutMs;
  // grpc-js registers with the provider only when its HTTP/2 server adds the first watcher, after reading the
  // (still empty) context: that server would drop every connection. A first watcher here loads the context.
  creds._addWatcher(() => {});
  return creds;
}

/** The server name sent in the TLS handshake (Deno refuses IP addresses there); never checked by itself. */
export const TLS_SERVER_NAME = "raftkv";

/** What a client expects of the server it dials: any node, or one member. */
export type ExpectedServer = { readonly role: "node"; readonly nodeId?: number };

/** Channel credentials and options for dialing `address` with the store's certificate. */
export function channelCredentials(
  store: CertificateStore,
  address: string,
  expected: ExpectedServer = { role: "node" },
): { credentials: grpc.ChannelCredentials; options: grpc.ChannelOptions } {
  return {
    credentials: grpc.experimental.createCertificateProviderChannelCredentials(store, store, {
      checkServerIdentity: serverIdentityCheck(address, expected),
    }),
    options: { "grpc.ssl_target_name_override": TLS_SERVER_NAME },
  };
}

/**
 * The `checkServerIdentity` of a TLS connection to `address`: the certificate must match the real host (a DNS
 * or IP SAN) and name the `expected` raftkv role. Shared by grpc-js channels and the raw peer transport.
 */
export function serverIdentityCheck(
  address: string,
  expected: ExpectedServer = { role: "node" },
): (name: string, cert: tls.PeerCertificate) => Error | undefined {
  const host = address.replace(/:\d+$/, "").replace(/^\[(.*)\]$/, "$1");
  const checkServerIdentity = (_name: string, cert: tls.PeerCertificate): Error | undefined => {
    const hostError = tls.checkServerIdentity(host, cert);
    if (hostError) return hostError;
    const id = identityOfCert(cert);
    if (id?.role !== "node" || (expected.nodeId !== undefined && id.nodeId !== expected.nodeId)) {
      const want = expected.nodeId === undefined ? "a node" : `node ${expected.nodeId}`;
      return new Error(
        `the server at ${address} presented ${
          id ? describeIdentity(id) : "no raftkv identity"
        }, expected ${want}`,
      );
    }
    return undefined;
  };
  return checkServerIdentity;
}

/** The raftkv identity in a peer certificate's SAN URIs (as Node's TLS reports them), if any. */
export function identityOfCert(cert: { subjectaltname?: string } | undefined): Identity | undefined {
  const san = cert?.subjectaltname ?? "";
  for (const part of san.split(/,\s*/)) {
    if (part.startsWith("URI:")) {
      const id = parseIdentityUri(part.slice(4));
      if (id) return id;
    }
  }
  return undefined;
}

/** The TLS socket under a grpc-js server call (the pinned grpc-js keeps it at call → nextCall… → stream). */
export function tlsSocketOf(call: unknown): tls.TLSSocket | undefined {
  // deno-lint-ignore no-explicit-any
  let c: any = (call as any)?.call;
  for (let i = 0; c && !c.stream && i < 8; i++) c = c.nextCall;
  const socket = c?.stream?.session?.socket;
  return socket instanceof tls.TLSSocket ? socket : undefined;
}

/** Why a TLS caller is not authenticated, in words (from the socket's verification result). */
export function unauthenticatedReason(socket: tls.TLSSocket | undefined): string {
  if (!socket) return "no TLS connection";
  const cert = socket.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return "no client certificate";
  const code = String(
    (socket.authorizationError as unknown as { code?: string })?.code ?? socket.authorizationError ?? "",
  );
  const who = identityOfCert(cert);
  const whose = who ? `the certificate of ${describeIdentity(who)}` : "the client certificate";
  // The validity window first (Deno's TLS may name another failure for an expired certificate).
  const now = Date.now(), from = Date.parse(cert.valid_from), to = Date.parse(cert.valid_to);
  if (Number.isFinite(to) && now > to) return `${whose} expired on ${new Date(to).toISOString()}`;
  if (Number.isFinite(from) && now < from) {
    return `${whose} is not yet valid (from ${new Date(from).toISOString()})`;
  }
  if (/CERT_HAS_EXPIRED/.test(code)) return `${whose} expired on ${new Date(cert.valid_to).toISOString()}`;
  if (/CERT_NOT_YET_VALID/.test(code)) {
    return `${whose} is not yet valid (from ${new Date(cert.valid_from).toISOString()})`;
  }
  if (/UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|SELF_SIGNED|SIGNATURE/.test(code)) {
    return `${whose} is not signed by this cluster's CA`;
  }
  return `${whose} was not accepted (${code || "unverified"})`;
}
