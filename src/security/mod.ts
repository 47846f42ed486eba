/**
 * Security: certificates (`certs.ts`), identities and roles (`identity.ts`), TLS material and credentials that
 * follow a reload (`tls.ts`). See README.md for the rules.
 *
 * @module
 */
export {
  CA_VALIDITY_DAYS,
  certPaths,
  CertsError,
  DEFAULT_HOSTS,
  describeCert,
  initCerts,
  issueCert,
  LEAF_VALIDITY_DAYS,
  memoryCa,
} from "./certs.ts";
export {
  type Action,
  allowed,
  describeIdentity,
  type Identity,
  identityUri,
  parseIdentityUri,
  validName,
} from "./identity.ts";
export {
  CertificateStore,
  channelCredentials,
  identityOfCert,
  loadTlsMaterial,
  TlsConfigError,
  type TlsFiles,
  type TlsMaterial,
  tlsMaterialFromPem,
} from "./tls.ts";
export {
  CertificateExpiryWatch,
  DAY_MS,
  daysLeft,
  expiresSoon,
  EXPIRY_WARNING_DAYS,
  expiryWarning,
  tlsNotAfterMs,
  type WatchedCertificate,
  watchedCertificates,
  wholeDays,
} from "./expiry.ts";
