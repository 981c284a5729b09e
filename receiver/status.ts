// One mapping from refusal kinds to the OTLP spec's HTTP and gRPC answers.
import { status as GrpcStatus } from '@grpc/grpc-js';
import { types } from '../lib/otlp/proto.ts';
import type { IngestErrorKind } from './ingest.ts';

export const httpStatusOf: Record<IngestErrorKind, number> = {
  unauthenticated: 401, forbidden: 403, invalid: 400, too_large: 413, unsupported_media_type: 415, unavailable: 503,
};

export const grpcStatusOf: Record<IngestErrorKind, GrpcStatus> = {
  unauthenticated: GrpcStatus.UNAUTHENTICATED,
  forbidden: GrpcStatus.PERMISSION_DENIED,
  invalid: GrpcStatus.INVALID_ARGUMENT,
  // Without RetryInfo, RESOURCE_EXHAUSTED tells OTLP clients not to retry: right for "too large".
  too_large: GrpcStatus.RESOURCE_EXHAUSTED,
  unsupported_media_type: GrpcStatus.INVALID_ARGUMENT,
  unavailable: GrpcStatus.UNAVAILABLE,
};

/** google.rpc.Status for grpc-status-details-bin; with RetryInfo when a retry delay is given (UNAVAILABLE). */
export function grpcStatusDetails(code: number, message: string, retryAfterSeconds?: number): Buffer {
  const details = retryAfterSeconds === undefined ? [] : [{
    // protobufjs supplies its own google.protobuf.Any, which keeps the snake_case field name.
    type_url: 'type.googleapis.com/google.rpc.RetryInfo',
    value: types.RetryInfo.encode(types.RetryInfo.fromObject({ retryDelay: { seconds: retryAfterSeconds, nanos: 0 } })).finish(),
  }];
  return Buffer.from(types.Status.encode(types.Status.fromObject({ code, message, details })).finish());
}
