/**
 * Errors of the transport: `TransportError` (a call failed: the client side sees it) and `RpcError` (a
 * handler refuses a call with a chosen gRPC status: the server side throws it).
 *
 * @module
 */

import { status as grpcStatus } from "@grpc/grpc-js";

/** The gRPC status code names ("OK", "CANCELLED", …, "UNAVAILABLE", "DEADLINE_EXCEEDED", …). */
export type RpcCodeName = keyof typeof grpcStatus;

/** gRPC status codes by name (the numeric values of the gRPC spec). */
export const RpcCode: Readonly<Record<RpcCodeName, number>> = grpcStatus;

/** The name of a numeric gRPC status code ("UNKNOWN" for a code outside the spec). */
export function rpcCodeName(code: number): RpcCodeName {
  const name = grpcStatus[code];
  return typeof name === "string" ? name as RpcCodeName : "UNKNOWN";
}

/** A remote call that did not produce a reply: unreachable peer, deadline, refusal by status code, etc. */
export class TransportError extends Error {
  override readonly name = "TransportError";
  /** The numeric gRPC status code. */
  readonly code: number;
  /** The status code's name, e.g. "DEADLINE_EXCEEDED". */
  readonly codeName: RpcCodeName;
  /** The status details sent by the server (or produced locally by grpc-js). */
  readonly details: string;
  /** The address that was called. */
  readonly address: string;

  constructor(code: number, details: string, address: string, options?: ErrorOptions) {
    super(`${rpcCodeName(code)} from ${address}: ${details}`, options);
    this.code = code;
    this.codeName = rpcCodeName(code);
    this.details = details;
    this.address = address;
  }
}

/** Thrown by a server handler to fail the call with a chosen gRPC status (the server maps it). */
export class RpcError extends Error {
  override readonly name = "RpcError";
  readonly codeName: RpcCodeName;

  constructor(codeName: RpcCodeName, message: string, options?: ErrorOptions) {
    super(message, options);
    this.codeName = codeName;
  }
}

/** Converts whatever a grpc-js client callback reported into a `TransportError`. */
export function toTransportError(err: unknown, address: string): TransportError {
  if (err instanceof TransportError) return err;
  if (typeof err === "object" && err !== null && "code" in err && typeof err.code === "number") {
    const details = "details" in err && typeof err.details === "string" ? err.details : String(err);
    return new TransportError(err.code, details, address, { cause: err });
  }
  return new TransportError(grpcStatus.UNKNOWN, err instanceof Error ? err.message : String(err), address, {
    cause: err,
  });
}
