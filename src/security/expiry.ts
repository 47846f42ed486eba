/**
 * Warning before a node's certificates expire: the day one does, every handshake fails and the cluster is down.
 *
 * - Pure: {@linkcode daysLeft} (whole days, rounded down), {@linkcode expiresSoon} (the 30-day threshold),
 *   {@linkcode watchedCertificates} (the node's certificate and its CA's first to expire) and
 *   {@linkcode expiryWarning} (the line, naming the file, the date, the days left and how to rotate).
 * - {@linkcode CertificateExpiryWatch}: checks at start, after each reload (SIGHUP) and once a day (an unref'd
 *   timer, cleared by `stop`), writing each warning through the node's dump (dump.txt and its log).
 *
 * Wall-clock time on purpose: a certificate's validity is a calendar date, and the node's TLS checks it against
 * the wall clock. Imports node:crypto only through tls.ts (never certs.ts: a node does not load @peculiar/x509).
 *
 * @module
 */
import { DEFAULT_HOSTS } from "./identity.ts";
import type { CertificateStore, TlsMaterial } from "./tls.ts";

export const DAY_MS = 24 * 3600 * 1000;

/** Warn when a certificate expires within this many days (as Kubernetes' and etcd's usual alert rules do). */
export const EXPIRY_WARNING_DAYS = 30;

/** Whole days in a duration, rounded down (-1 for any duration from -1 day up to 0, excluded). */
export function wholeDays(ms: number): number {
  return Math.floor(ms / DAY_MS);
}

/** Whole days from `nowMs` until `notAfterMs`, rounded down (negative once expired: -1 during the first day). */
export function daysLeft(notAfterMs: number, nowMs: number): number {
  return wholeDays(notAfterMs - nowMs);
}

/** True when `notAfterMs` is less than `withinDays` days away (or past). */
export function expiresSoon(notAfterMs: number, nowMs: number, withinDays = EXPIRY_WARNING_DAYS): boolean {
  return notAfterMs - nowMs < withinDays * DAY_MS;
}

/** A certificate a node depends on: its own (`node`) or its CA's (`ca`, the first of the file to expire). */
export interface WatchedCertificate {
  readonly certificate: "node" | "ca";
  readonly file: string;
  readonly notAfterMs: number;
  /** The node's id (`node`), for the reissue command. */
  readonly nodeId?: number;
  /** The node certificate's DNS and IP SANs besides the defaults (`--hosts` of the reissue command). */
  readonly hosts?: readonly string[];
  /** The CA certificate's subject, and how many the CA file holds. */
  readonly subject?: string;
  readonly count?: number;
}

/** The node's certificate and its CA, from loaded material. */
export function watchedCertificates(m: TlsMaterial): WatchedCertificate[] {
  const nodeId = m.identity.role === "node" ? m.identity.nodeId : undefined;
  return [
    {
      certificate: "node",
      file: m.files.cert,
      notAfterMs: m.notAfter.getTime(),
      ...(nodeId !== undefined ? { nodeId } : {}),
      hosts: m.hosts.filter((h) => !DEFAULT_HOSTS.includes(h)),
    },
    {
      certificate: "ca",
      file: m.files.cacert,
      notAfterMs: m.caExpiry.notAfter.getTime(),
      subject: m.caExpiry.subject,
      count: m.caExpiry.count,
    },
  ];
}

const days = (n: number) => (n === 0 ? "less than a day" : n === 1 ? "1 day" : `${n} days`);

/** What `raftkv_tls_certificate_not_after_seconds` shows (in ms): the node certificate's and its CA's notAfter. */
export function tlsNotAfterMs(m: TlsMaterial): { node: number; ca: number } {
  return { node: m.notAfter.getTime(), ca: m.caExpiry.notAfter.getTime() };
}

/** `expires on <ISO date> (in N days)`, or `expired on <ISO date> (N days ago)`. */
function when(notAfterMs: number, nowMs: number): string {
  const date = new Date(notAfterMs).toISOString();
  if (notAfterMs <= nowMs) return `expired on ${date} (${days(daysLeft(nowMs, notAfterMs))} ago)`;
  return `expires on ${date} (in ${days(daysLeft(notAfterMs, nowMs))})`;
}

/**
 * The warning line for `c` at `nowMs` when it expires within `withinDays` days (or has expired), else undefined:
 * which file, when (date and days left), and how to rotate (docs/operations.md "Certificate expiry").
 */
export function expiryWarning(
  nodeId: number,
  c: WatchedCertificate,
  nowMs: number,
  withinDays = EXPIRY_WARNING_DAYS,
): string | undefined {
  if (!expiresSoon(c.notAfterMs, nowMs, withinDays)) return undefined;
  if (c.certificate === "node") {
    const hosts = c.hosts && c.hosts.length > 0 ? ` --hosts ${c.hosts.join(",")}` : "";
    const issue = `raftkv certs issue --dir DIR --node ${c.nodeId ?? nodeId}${hosts}`;
    return `Node ${nodeId}'s certificate ${c.file} ${when(c.notAfterMs, nowMs)}: every TLS handshake with ` +
      `it fails from then on. Rotate it: "${issue}" (DIR: the folder holding ca/ca.key), copy the new .crt ` +
      `and .key over ${c.file} and its key, then run "systemctl reload raftkv" (SIGHUP: "kill -HUP <pid>") ` +
      `on the node (docs/operations.md "Certificate expiry").`;
  }
  const which = c.count !== undefined && c.count > 1
    ? `the CA certificate ${c.subject} (the first to expire of the ${c.count} in ${c.file})`
    : `the CA certificate ${c.file}${c.subject ? ` (${c.subject})` : ""}`;
  return `Node ${nodeId}: ${which} ${when(c.notAfterMs, nowMs)}: no certificate it signed is accepted from ` +
    `then on. Replace the CA: make a new one ("raftkv certs init --dir NEWDIR --nodes <ids> --hosts ` +
    `<addresses>"), put both CA certificates in ${c.file} on every node and reload, install the new node ` +
    `certificates and reload, then drop the old CA and reload; to reload, run "systemctl reload raftkv" ` +
    `(SIGHUP: "kill -HUP <pid>") on each node (docs/operations.md "Certificate expiry").`;
}

/** Options of {@link CertificateExpiryWatch}. */
export interface ExpiryWatchOptions {
  readonly store: CertificateStore;
  readonly nodeId: number;
  /** Writes one warning line (the node's dump: dump.txt and its log). */
  readonly warn: (line: string) => void;
  /** Wall clock in ms since the epoch (default Date.now). */
  readonly now?: () => number;
  /** How often to check again while the node runs (default: once a day). */
  readonly intervalMs?: number;
  readonly withinDays?: number;
}

/**
 * Warns while a node's certificate or CA expires within 30 days: at `start`, after each reload of the store,
 * and every `intervalMs` (a day) from then on. `stop` clears the timer and the subscription.
 */
export class CertificateExpiryWatch {
  readonly #o: ExpiryWatchOptions;
  #timer: ReturnType<typeof setInterval> | undefined;
  #unsubscribe: (() => void) | undefined;

  constructor(options: ExpiryWatchOptions) {
    this.#o = options;
  }

  /** Checks now, then after every reload and every `intervalMs`. */
  start(): void {
    if (this.#timer !== undefined) return;
    this.check();
    this.#unsubscribe = this.#o.store.onUpdate(() => this.check());
    const timer = this.#timer = setInterval(() => this.check(), this.#o.intervalMs ?? DAY_MS);
    Deno.unrefTimer(timer); // never keeps a stopping process alive
  }

  /** Writes (and returns) a warning for each watched certificate that expires soon. */
  check(): string[] {
    const nowMs = (this.#o.now ?? Date.now)();
    const lines = watchedCertificates(this.#o.store.material)
      .map((c) => expiryWarning(this.#o.nodeId, c, nowMs, this.#o.withinDays))
      .filter((l): l is string => l !== undefined);
    for (const l of lines) this.#o.warn(l);
    return lines;
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
  }
}
