/**
 * The floor of the benchmarks: a trivial grpc-js unary service that sends back the bytes it gets, served and
 * called with the same grpc-js, runtime and channel options as raftkv, so any cost above it is raftkv's own.
 *
 * Run a server on its own: `deno run -A src/bench/echo.ts --port 0` prints `echo listening on 127.0.0.1:<port>`
 * and serves until SIGTERM/SIGINT.
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import { Buffer } from "node:buffer";
import { STUB_CHANNEL_OPTIONS } from "../transport/mod.ts";
import { type LoadTarget, OpError } from "./load.ts";

const identity = (b: Buffer) => b;

/**
 * Bytes in, the same bytes out (no protobuf, no handler work): `echo` as a unary call, `echoStream` as messages
 * on one long-lived bidirectional stream (what a streaming peer transport would pay per message).
 */
export const ECHO_SERVICE: grpc.ServiceDefinition = {
  echo: {
    path: "/raftkv.bench.Echo/Echo",
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
  echoStream: {
    path: "/raftkv.bench.Echo/EchoStream",
    requestStream: true,
    responseStream: true,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

export interface EchoServer {
  readonly port: number;
  close(): Promise<void>;
}

export function startEchoServer(host = "127.0.0.1", port = 0): Promise<EchoServer> {
  const server = new grpc.Server();
  server.addService(ECHO_SERVICE, {
    echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) =>
      cb(null, call.request),
    echoStream: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.on("data", (b: Buffer) => call.write(b));
      call.on("end", () => call.end());
      call.on("error", () => {});
    },
  });
  return new Promise((resolve, reject) => {
    server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, bound) => {
      if (err) return reject(err);
      resolve({
        port: bound,
        close: () =>
          new Promise<void>((r) => {
            server.tryShutdown(() => r());
            setTimeout(() => {
              server.forceShutdown();
              r();
            }, 2000);
          }),
      });
    });
  });
}

const EchoClient = grpc.makeGenericClientConstructor(ECHO_SERVICE, "Echo");

type EchoStub = grpc.Client & {
  echo(
    req: Buffer,
    md: grpc.Metadata,
    opts: grpc.CallOptions,
    cb: (err: grpc.ServiceError | null, res?: Buffer) => void,
  ): grpc.ClientUnaryCall;
  echoStream(md?: grpc.Metadata, opts?: grpc.CallOptions): grpc.ClientDuplexStream<Buffer, Buffer>;
};

/**
 * A {@linkcode LoadTarget} for the echo server: a GET sends the key, a SET sends key and value. With `stream`,
 * every message goes over one bidirectional stream (replies come back in order) instead of a unary call each.
 */
export class EchoTarget implements LoadTarget {
  readonly address: string;
  readonly redirects = 0;
  readonly #client: EchoStub;
  readonly #deadlineMs: number;
  readonly #stream: grpc.ClientDuplexStream<Buffer, Buffer> | undefined;
  readonly #waiting: { resolve: () => void; reject: (e: Error) => void }[] = [];

  constructor(address: string, deadlineMs = 5000, stream = false) {
    this.address = address;
    this.#deadlineMs = deadlineMs;
    // The same channel options as raftkv's ClusterStub.
    this.#client = new EchoClient(address, grpc.credentials.createInsecure(), {
      ...STUB_CHANNEL_OPTIONS,
    }) as unknown as EchoStub;
    if (stream) {
      this.#stream = this.#client.echoStream();
      this.#stream.on("data", () => this.#waiting.shift()?.resolve());
      this.#stream.on("error", (e: Error) => {
        for (const w of this.#waiting.splice(0)) w.reject(new OpError("streamError", e.message));
      });
    }
  }

  async prepare(): Promise<void> {
    for (let i = 0; i < 5; i++) await this.#call(Buffer.from("warm"));
  }

  get(key: string, _worker: number): Promise<void> {
    return this.#call(Buffer.from(key));
  }

  set(key: string, value: string, _worker: number): Promise<void> {
    return this.#call(Buffer.from(`${key} ${value}`));
  }

  close(): void {
    this.#stream?.end();
    this.#client.close();
  }

  #call(body: Buffer): Promise<void> {
    const stream = this.#stream;
    if (stream) {
      return new Promise((resolve, reject) => {
        this.#waiting.push({ resolve, reject });
        stream.write(body);
      });
    }
    return new Promise((resolve, reject) => {
      this.#client.echo(body, new grpc.Metadata(), { deadline: Date.now() + this.#deadlineMs }, (err) => {
        if (err) reject(new OpError(grpc.status[err.code] ?? String(err.code), err.message));
        else resolve();
      });
    });
  }
}

if (import.meta.main) {
  const i = Deno.args.indexOf("--port");
  const port = i >= 0 ? Number(Deno.args[i + 1]) : 0;
  const server = await startEchoServer("127.0.0.1", port);
  console.log(`echo listening on 127.0.0.1:${server.port}`);
  const stop = async () => {
    await server.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
}
