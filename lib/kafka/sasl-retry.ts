// SASL logins that survive a connection lost in the middle of the exchange. kafkajs' SCRAM and
// PLAIN authenticators wrap every error they meet into a KafkaJSSASLAuthenticationError, which is
// non-retriable: a broker that closes the socket between the SaslHandshake and the last
// SaslAuthenticate (seen in a loaded CI run: "SASL SCRAM SHA512 authentication failed: Closed
// connection") failed the client at once, although the broker gave no verdict on the credentials.
//
// Each login here runs kafkajs' own authenticator and watches its SaslAuthenticate requests: when
// one failed because the connection did (KafkaJSConnectionError: closed by the broker, socket
// error), the login fails with a KafkaJSConnectionError instead, which kafkajs handles like any
// lost connection: a new socket, within the client's bounded retries and backoff (createKafka's
// `retries` / `retryBackoffMs`). An answer from the broker (SASL_AUTHENTICATION_FAILED for a wrong
// password or unknown user) stays the non-retriable SASL error: such a client fails at once.
import { createRequire } from 'node:module';
import kafkajs, { type AuthenticationProviderArgs, type Authenticator, type Mechanism } from 'kafkajs';
import type { KafkaSasl } from './auth.ts';

type BuiltInProvider = (sasl: { username: string; password: string }) => (args: AuthenticationProviderArgs) => Authenticator;
const load = createRequire(import.meta.url);
const BUILT_IN: Record<KafkaSasl['mechanism'], BuiltInProvider> = {
  plain: load('kafkajs/src/broker/saslAuthenticator/plain.js') as BuiltInProvider,
  'scram-sha-256': load('kafkajs/src/broker/saslAuthenticator/scram256.js') as BuiltInProvider,
  'scram-sha-512': load('kafkajs/src/broker/saslAuthenticator/scram512.js') as BuiltInProvider,
};

/** The kafkajs `sasl` option for `s`: kafkajs' authenticator, a lost connection made retriable. */
export function saslWithRetriableTransport(s: KafkaSasl): Mechanism {
  const provider = BUILT_IN[s.mechanism]({ username: s.username, password: s.password.reveal() });
  return {
    mechanism: s.mechanism,
    authenticationProvider: (args) => {
      let lost: Error | undefined;
      const inner = provider({
        ...args,
        saslAuthenticate: async (request) => {
          try {
            return await args.saslAuthenticate(request);
          } catch (err) {
            if (err instanceof kafkajs.KafkaJSConnectionError) lost = err;
            throw err;
          }
        },
      });
      return {
        authenticate: async () => {
          lost = undefined;
          try {
            await inner.authenticate();
          } catch (err) {
            const cause = lost as Error | undefined; // set by the wrapped saslAuthenticate above
            if (!cause) throw err;
            throw new kafkajs.KafkaJSConnectionError(
              `connection lost during SASL ${s.mechanism.toUpperCase()} authentication, before the broker's verdict: ${cause.message}`,
              { broker: `${args.host}:${args.port}` });
          }
        },
      };
    },
  };
}
