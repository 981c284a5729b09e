// OTLP/gRPC: the three collector services' Export methods. Requests are taken as raw bytes (no
// protobufjs decode) and handed to the ingestor; errors follow the OTLP spec's gRPC codes, with
// RetryInfo in grpc-status-details-bin on UNAVAILABLE.
import * as grpc from '@grpc/grpc-js';
import { logger } from '../lib/log.ts';
import { signals, type Signal } from '../lib/otlp/proto.ts';
import { authorizeIntake } from '../lib/audit.ts';
import { AuthError, type TokenRegistry } from '../lib/tenancy.ts';
import { IngestError, type IngestErrorKind } from './ingest.ts';
import { receiverMetrics, type Ingestor } from './ingestor.ts';
import { grpcStatusDetails, grpcStatusOf } from './status.ts';

/** What each OTLP front end (gRPC, HTTP) is given. */
export interface FrontEndOptions {
  host: string;
  port: number;
  maxRequestBytes: number;
  retryAfterSeconds: number;
  tokens: TokenRegistry;
  ingestor: Ingestor;
}

export interface RunningServer { port: number; close(): Promise<void> }

const log = logger('receiver');
const identity = (b: Buffer): Buffer => b;
const EMPTY = Buffer.alloc(0);

function handler(signal: Signal, opts: FrontEndOptions): grpc.handleUnaryCall<Buffer, Buffer> {
  return (call, callback) => {
    const end = receiverMetrics.requestSeconds.startTimer({ protocol: 'grpc', signal: signal.name });
    const fail = (kind: IngestErrorKind, reason: string, message: string, tenant?: string) => {
      const code = grpcStatusOf[kind];
      const metadata = new grpc.Metadata();
      metadata.set('grpc-status-details-bin', grpcStatusDetails(code, message, kind === 'unavailable' ? opts.retryAfterSeconds : undefined));
      receiverMetrics.requests.inc({ protocol: 'grpc', signal: signal.name, code: grpc.status[code] ?? String(code) });
      log.info({ protocol: 'grpc', signal: signal.name, tenant_id: tenant, error_code: reason, error_message: message }, 'export refused');
      end();
      callback({ code, details: message, metadata });
    };
    void (async () => {
      let tenant: string | undefined;
      try {
        const auth = call.metadata.get('authorization')[0];
        const principal = authorizeIntake(opts.tokens, typeof auth === 'string' ? auth : auth?.toString(), `grpc ${signal.name}`);
        tenant = principal.tenantId;
        const tp = call.metadata.get('traceparent')[0];
        const outcome = await opts.ingestor.export(signal, call.request, principal, typeof tp === 'string' ? tp : undefined);
        // A full success is the empty Export*ServiceResponse: zero bytes, no protobufjs round.
        const response = outcome.rejected > 0 ? Buffer.from(signal.response.encode(signal.response.fromObject(
          { partialSuccess: { [signal.rejectedField]: outcome.rejected, errorMessage: outcome.message } })).finish()) : EMPTY;
        receiverMetrics.requests.inc({ protocol: 'grpc', signal: signal.name, code: 'OK' });
        end();
        callback(null, response);
      } catch (err) {
        if (err instanceof AuthError) fail(err.kind, err.kind, err.message, tenant);
        else if (err instanceof IngestError) fail(err.kind, err.reason, err.message, tenant);
        else {
          log.error({ tenant_id: tenant, error_message: String(err) }, 'unexpected error in gRPC export');
          fail('unavailable', 'internal', 'internal error; retry later', tenant);
        }
      }
    })();
  };
}

export async function startGrpcServer(opts: FrontEndOptions): Promise<RunningServer> {
  const server = new grpc.Server({
    'grpc.max_receive_message_length': opts.maxRequestBytes,
    'grpc.max_send_message_length': 4 * 1024 * 1024,
    // No channelz: its per-call and per-stream trackers (counters, timestamps) are work on every
    // call for a debugging service we do not expose.
    'grpc.enable_channelz': 0,
  });
  for (const signal of Object.values(signals)) {
    const definition: grpc.ServiceDefinition = {
      Export: {
        path: signal.grpcPath, requestStream: false, responseStream: false,
        requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity,
        originalName: 'export',
      },
    };
    server.addService(definition, { Export: handler(signal, opts) });
  }
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${opts.host}:${opts.port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return {
    port,
    close: () => new Promise<void>((resolve) => {
      const force = setTimeout(() => { server.forceShutdown(); resolve(); }, 5000);
      server.tryShutdown(() => { clearTimeout(force); resolve(); });
    }),
  };
}
