// AlertDispatcher timing with an injected wall clock against a local HTTP receiver: transitions go
// out at once, firing alerts are re-sent only after the resend interval, endsAt follows the
// Alertmanager conventions, and webhooks get transitions only.
import { afterEach, describe, expect, it } from 'vitest';
import { AlertDispatcher } from '../../processors/slo/alert-dispatcher.ts';
import type { AlertmanagerAlert, WebhookPayload } from '../../processors/slo/alert-payloads.ts';
import type { AlertStatus, EvaluationResult } from '../../processors/slo/evaluator.ts';
import { startReceiver, type Receiver } from './helpers.ts';

const receivers: Receiver[] = [];
afterEach(async () => { for (const r of receivers.splice(0)) await r.close(); });

const alert = (status: 'firing' | 'resolved', windows = '1h/5m'): AlertStatus => ({
  tenant: 'acme', service: 'checkout', slo: 'co', journey: 'checkout', severity: 'page', windows, status,
  atMs: 1_000_000, startsAtMs: 900_000, objective: 0.999, factor: 14.4, burnRateLong: 20, burnRateShort: 100,
  eventsLong: 6000, budgetRemaining: 0.5, exemplarTraceId: 'ab'.repeat(16), runbook: 'https://rb/co',
});

describe('AlertDispatcher', () => {
  it('sends transitions at once and re-sends firing alerts every resend interval', async () => {
    const am = await startReceiver();
    const hook = await startReceiver();
    receivers.push(am, hook);
    let now = Date.parse('2026-11-23T12:00:00Z');
    const d = new AlertDispatcher({
      alertmanagers: [am.url.replace(/\/hook$/, '')], webhooks: [{ name: 'ops', url: hook.url }],
      resendIntervalMs: 60_000, clock: () => now, externalURL: 'https://stella.example/',
    });
    const firing = alert('firing');
    const step = async (r: EvaluationResult) => { d.handle(r); await d.idle(); };

    await step({ transitions: [firing], firing: [firing] });
    expect(am.bodies).toHaveLength(1);
    expect(am.bodies[0]!.path).toBe('/api/v2/alerts');
    const [sent] = am.bodies[0]!.body as AlertmanagerAlert[];
    expect(sent).toMatchObject({
      startsAt: new Date(900_000).toISOString(), endsAt: new Date(now + 4 * 60_000).toISOString(),
      generatorURL: 'https://stella.example/obs/slo?tenant=acme&slo=co',
      annotations: { burn_rate_long: '20.000', budget_remaining: '0.5000', exemplar_trace_id: 'ab'.repeat(16), runbook_url: 'https://rb/co' },
    });

    now += 30_000;
    await step({ transitions: [], firing: [firing] });
    expect(am.bodies).toHaveLength(1); // not yet due
    now += 30_000;
    await step({ transitions: [], firing: [firing] });
    expect(am.bodies).toHaveLength(2); // re-sent after 60 s, same identity and startsAt
    expect((am.bodies[1]!.body as AlertmanagerAlert[])[0]!.startsAt).toBe(sent!.startsAt);
    expect((am.bodies[1]!.body as AlertmanagerAlert[])[0]!.endsAt).toBe(new Date(now + 240_000).toISOString());

    now += 5_000;
    await step({ transitions: [alert('resolved')], firing: [] });
    expect(am.bodies).toHaveLength(3);
    expect((am.bodies[2]!.body as AlertmanagerAlert[])[0]!.endsAt).toBe(new Date(now).toISOString());

    // The webhook saw the two transitions only, in Alertmanager's webhook format.
    expect(hook.bodies.map((b) => (b.body as WebhookPayload).status)).toEqual(['firing', 'resolved']);
    const payload = hook.bodies[0]!.body as WebhookPayload;
    expect(payload).toMatchObject({ version: '4', receiver: 'ops', truncatedAlerts: 0, externalURL: 'https://stella.example' });
    expect(payload.alerts[0]!.fingerprint).toMatch(/^[0-9a-f]{16}$/);
    d.close();
  });

  it('after a restart (fresh dispatcher) a still-firing alert is refreshed immediately', async () => {
    const am = await startReceiver();
    receivers.push(am);
    const d = new AlertDispatcher({ alertmanagers: [am.url.replace(/\/hook$/, '')], clock: () => 5_000_000 });
    d.handle({ transitions: [], firing: [alert('firing'), alert('firing', '6h/30m')] });
    await d.idle();
    expect(am.bodies.map((b) => (b.body as AlertmanagerAlert[])[0]!.labels.windows)).toEqual(['1h/5m', '6h/30m']);
    d.close();
  });
});
