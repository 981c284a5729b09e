// A real Alertmanager (Debian prometheus-alertmanager, started here on loopback) routing to a
// webhook receiver in the test. Event time is driven by an injected clock (fast-forward, no real
// waiting); Alertmanager's own timing (group_wait 0s, group_interval 1s) is real.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlertDispatcher } from '../../processors/slo/alert-dispatcher.ts';
import { labelsFingerprint, type WebhookPayload } from '../../processors/slo/alert-payloads.ts';
import { SloEvaluator, type AlertStatus } from '../../processors/slo/evaluator.ts';
import {
  availabilityConfig, countsByMinute, endOfMinute, freePort, MIN, referenceBurning, startAlertmanager, startReceiver,
  trafficByMinute, type Receiver, type RunningAlertmanager,
} from './helpers.ts';

let am: RunningAlertmanager;
let amWebhook: Receiver;

beforeAll(async () => {
  amWebhook = await startReceiver();
  am = await startAlertmanager(amWebhook.url);
});
afterAll(async () => {
  await am?.stop();
  await amWebhook?.close();
});

const isPage = (a: { labels: Record<string, string> }) => a.labels.severity === 'page' && a.labels.windows === '1h/5m';
const pageAlertWith = (status: 'firing' | 'resolved') => (b: unknown) => {
  const p = b as WebhookPayload;
  return p.version === '4' && p.alerts?.some((a) => isPage(a) && a.status === status);
};

describe('SLO alerts through a real Alertmanager', () => {
  it('an error burst fires the page alert at the first evaluation past the crossing; the webhook gets it; it resolves after the burst', async () => {
    // Event time: 150 minutes ending about now (Alertmanager rejects nothing in the past, and its
    // liveness checks use wall-clock endsAt, which the dispatcher sets from the real clock).
    const startMs = Math.floor((Date.now() - 150 * MIN) / MIN) * MIN;
    const t = { startMs, minutes: 150, perMinute: 100, burstFrom: 90, burstTo: 110, errorsPerMinute: 50 };
    const traffic = trafficByMinute(t);
    const counts = countsByMinute(traffic);
    // Hand-computed: at the end of minute 90, 1h = 50/6000 = 0.83% < 1.44%; at the end of 91, 100/6000 = 1.67% > 1.44%
    // and 5m = 100/500 = 20%: the crossing happens inside minute 91. The 5m window is clean again at the end of 114.
    const crossingMinute = 91;
    expect(referenceBurning(counts, 90, 0.999, 10)).not.toContain('page:1h/5m');
    expect(referenceBurning(counts, crossingMinute, 0.999, 10)).toContain('page:1h/5m');

    const ev = new SloEvaluator(availabilityConfig());
    const dispatcher = new AlertDispatcher({ alertmanagers: [am.url], resendIntervalMs: 60_000, externalURL: 'http://stella.test' });
    let fired: { minute: number; at: number; alert: AlertStatus } | undefined;
    let resolvedMinute = -1;
    try {
      for (let m = 0; m < t.minutes; m++) {
        ev.ingest(traffic[m]!);
        const result = ev.evaluate(endOfMinute(startMs, m)); // one evaluation per minute of event time
        dispatcher.handle(result);
        const page = result.transitions.find((x) => x.windows === '1h/5m');
        if (page?.status === 'firing') {
          fired = { minute: m, at: performance.now(), alert: page };
          // The webhook must receive it through Alertmanager before we move on.
          const got = await amWebhook.waitFor(pageAlertWith('firing'), 15_000);
          const payload = got.body as WebhookPayload;
          const alert = payload.alerts.find(isPage)!;
          expect(alert.labels).toEqual({
            alertname: 'SloErrorBudgetBurn', tenant: 'acme', service: 'checkout', slo: 'checkout-availability', severity: 'page', windows: '1h/5m',
          });
          expect(alert.annotations).toMatchObject({
            runbook_url: 'https://runbooks.example/slo/checkout', exemplar_trace_id: page.exemplarTraceId, journey: 'checkout',
          });
          expect(Number(alert.annotations.burn_rate_long)).toBeCloseTo(1000 / 60, 2);
          expect(Number(alert.annotations.budget_remaining)).toBeLessThan(1);
          expect(alert.fingerprint).toBe(labelsFingerprint(alert.labels)); // our fingerprint = Alertmanager's
          expect(new Date(alert.startsAt).getTime()).toBe(endOfMinute(startMs, crossingMinute));
          expect(alert.generatorURL).toBe('http://stella.test/obs/slo?tenant=acme&slo=checkout-availability');
          expect(got.at - fired.at).toBeLessThan(10_000);
        }
        if (page?.status === 'resolved') resolvedMinute = m;
      }
      expect(fired?.minute).toBe(crossingMinute); // within one evaluation interval (1 min) of the crossing
      expect(resolvedMinute).toBe(114);
      const resolved = await amWebhook.waitFor(pageAlertWith('resolved'), 15_000);
      const ra = (resolved.body as WebhookPayload).alerts.find(isPage)!;
      expect(new Date(ra.endsAt).getTime()).toBeGreaterThan(new Date(ra.startsAt).getTime());
      // Exactly one firing notification for the page alert: no duplicates from re-sends.
      expect(amWebhook.bodies.filter((b) => pageAlertWith('firing')(b.body))).toHaveLength(1);
      // Alertmanager's own view agrees: the page alert is no longer active.
      const active = (await (await fetch(`${am.url}/api/v2/alerts?active=true`)).json()) as { labels: Record<string, string> }[];
      expect(active.filter(isPage)).toEqual([]);
    } finally {
      dispatcher.close();
    }
  });

  it('a dead Alertmanager (closed port) and a hung one delay nothing else: evaluation stays fast and webhooks still arrive', async () => {
    const closedPort = await freePort(); // nothing listens there
    const net = await import('node:net');
    const held = new Set<import('node:net').Socket>();
    const blackhole = net.createServer((sock) => held.add(sock)); // accepts, never responds
    await new Promise<void>((r) => blackhole.listen(0, '127.0.0.1', r));
    const blackholeUrl = `http://127.0.0.1:${(blackhole.address() as import('node:net').AddressInfo).port}`;
    const webhook = await startReceiver();
    const dispatcher = new AlertDispatcher({
      alertmanagers: [`http://127.0.0.1:${closedPort}`, blackholeUrl],
      webhooks: [{ name: 'ops', url: webhook.url }],
      sender: { baseDelayMs: 50, timeoutMs: 30_000 },
    });
    const startMs = Math.floor(Date.now() / MIN) * MIN - 150 * MIN;
    const traffic = trafficByMinute({ startMs, minutes: 150, perMinute: 100, burstFrom: 90, burstTo: 110, errorsPerMinute: 50 });
    const ev = new SloEvaluator(availabilityConfig());
    try {
      // Enqueue only: handle() returns nothing to await, so evaluation never waits for a send (a
      // dead Alertmanager would hold it for the 30 s timeout). Not timed: a wall-clock bound fails
      // whenever the box is busy.
      const returned: unknown[] = [];
      for (let m = 0; m < 150; m++) {
        ev.ingest(traffic[m]!);
        returned.push(dispatcher.handle(ev.evaluate(endOfMinute(startMs, m))));
      }
      expect(returned.every((r) => r === undefined)).toBe(true);
      // The healthy webhook (own queue) got the page firing and resolution in webhook format.
      const fire = await webhook.waitFor(pageAlertWith('firing'), 5000);
      expect(fire.body).toMatchObject({ version: '4', status: 'firing', receiver: 'ops', groupLabels: { alertname: 'SloErrorBudgetBurn' } });
      expect((fire.body as WebhookPayload).groupKey).toMatch(/^\{\}:\{alertname="SloErrorBudgetBurn", slo="checkout-availability", tenant="acme"\}$/);
      await webhook.waitFor(pageAlertWith('resolved'), 5000);
      // The dead endpoints hold their items and retry in the background.
      expect(dispatcher.alertmanagers[0]!.depth + dispatcher.alertmanagers[1]!.depth).toBeGreaterThan(0);
    } finally {
      dispatcher.close();
      for (const sock of held) sock.destroy();
      blackhole.close();
      await webhook.close();
    }
  });
});
