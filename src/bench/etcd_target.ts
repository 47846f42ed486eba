/**
 * The etcd {@linkcode LoadTarget} (npm `etcd3`, on the same grpc-js as raftkv), with the client's retries and
 * circuit breakers switched off so a failure is counted, not hidden: one attempt per operation, like raftkv's
 * target. GETs are linearizable (etcd's default, a ReadIndex round to a quorum) or, with `serializable`,
 * answered from the member's local state.
 *
 * Only the benchmark scripts import this file (the raftkv executable does not carry etcd3).
 *
 * @module
 */
import { Etcd3, type IOptions } from "etcd3";
import { STUB_CHANNEL_OPTIONS } from "../transport/mod.ts";
import { type LoadTarget, OpError } from "./load.ts";

/** A cockatiel policy that runs the call once and does nothing else (etcd3 only calls `execute`). */
const NOOP_POLICY = {
  execute: <T>(fn: (ctx: { signal: AbortSignal }) => PromiseLike<T> | T) =>
    Promise.resolve().then(() => fn({ signal: new AbortController().signal })),
} as unknown as NonNullable<NonNullable<IOptions["faultHandling"]>["global"]>;

/** etcd3 options for one attempt per call and raftkv's channel options. */
export function etcdOptions(endpoints: readonly string[]): IOptions {
  return {
    hosts: endpoints.map((e) => (e.startsWith("http") ? e : `http://${e}`)),
    faultHandling: { host: () => NOOP_POLICY, global: NOOP_POLICY },
    grpcOptions: { ...STUB_CHANNEL_OPTIONS },
    dialTimeout: 5000,
  };
}

function opError(e: unknown): OpError {
  if (e instanceof Error) {
    const kind = e.name && e.name !== "Error" ? e.name : e.constructor?.name ?? "Error";
    return new OpError(kind, e.message);
  }
  return new OpError(String(e));
}

export interface EtcdTargetOptions {
  /** `host:port` client endpoints; the benchmark gives only the leader's. */
  readonly endpoints: readonly string[];
  readonly serializable?: boolean;
  readonly deadlineMs?: number;
}

export class EtcdTarget implements LoadTarget {
  readonly client: Etcd3;
  readonly redirects = 0;
  readonly #serializable: boolean;
  readonly #deadlineMs: number;

  constructor(opts: EtcdTargetOptions) {
    this.client = new Etcd3(etcdOptions(opts.endpoints));
    this.#serializable = opts.serializable ?? false;
    this.#deadlineMs = opts.deadlineMs ?? 5000;
  }

  async prepare(): Promise<void> {
    let last: unknown;
    for (let i = 0; i < 50; i++) {
      try {
        await this.get("key0", 0);
        await this.get("key1", 0);
        return;
      } catch (e) {
        last = e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    throw opError(last);
  }

  async get(key: string, _worker: number): Promise<void> {
    try {
      await this.client.get(key).serializable(this.#serializable).options({
        deadline: Date.now() + this.#deadlineMs,
      }).exec();
    } catch (e) {
      throw opError(e);
    }
  }

  async set(key: string, value: string, _worker: number): Promise<void> {
    try {
      await this.client.put(key).value(value).options({ deadline: Date.now() + this.#deadlineMs }).exec();
    } catch (e) {
      throw opError(e);
    }
  }

  close(): void {
    this.client.close();
  }
}
