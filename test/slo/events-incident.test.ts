// slo_events records and timeline events derived from transitions (deterministic across a replay),
// and the incident-mode core (page burns switch it on, TTL ends it, manual on/off).
import { describe, expect, it } from 'vitest';
import { SloEvaluator, type AlertStatus } from '../../processors/slo/evaluator.ts';
import { IncidentModes } from '../../processors/slo/incident-mode.ts';
import { labelsFingerprint } from '../../processors/slo/alert-payloads.ts';
import { incidentWebhookPayload } from '../../processors/slo/outputs.ts';
import { sloEventRecord, sloTimelineEvent } from '../../processors/slo/slo-events.ts';
import { availabilityConfig, endOfMinute, HOUR, MIN, trafficByMinute } from './helpers.ts';

function transitions(): AlertStatus[] {
  const traffic = trafficByMinute({ startMs: 0, minutes: 130, perMinute: 100, burstFrom: 90, burstTo: 110, errorsPerMinute: 50 });
  const ev = new SloEvaluator(availabilityConfig());
  const out: AlertStatus[] = [];
  traffic.forEach((m, i) => { ev.ingest(m); out.push(...ev.evaluate(endOfMinute(0, i)).transitions); });
  return out;
}

describe('slo events', () => {
  it('maps transitions to slo_events records and timeline rows, identically on a replay', () => {
    const a = transitions();
    const b = transitions();
    const page = a.filter((t) => t.windows === '1h/5m');
    expect(page.map((t) => t.status)).toEqual(['firing', 'resolved']);
    const started = sloTimelineEvent(page[0]!);
    const resolved = sloTimelineEvent(page[1]!);
    expect(started).toMatchObject({
      kind: 'slo.breach.started', tenant_id: 'acme', actor: 'stella-slo', resource_type: 'slo', resource_id: 'checkout-availability',
      ts: (BigInt(endOfMinute(0, 91)) * 1_000_000n).toString(), trace_id: page[0]!.exemplarTraceId, source: 'slo/checkout-availability/1h/5m',
    });
    expect(started.event_id).toMatch(/^[0-9a-f]{32}$/);
    expect(resolved.kind).toBe('slo.breach.resolved');
    expect(resolved.event_id).not.toBe(started.event_id);
    expect(JSON.parse(started.details)).toMatchObject({ severity: 'page', windows: '1h/5m', starts_at_ms: endOfMinute(0, 91) });
    // Replay: same ids, same bytes.
    expect(b.map((t) => sloTimelineEvent(t))).toEqual(a.map((t) => sloTimelineEvent(t)));
    expect(b.map(sloEventRecord)).toEqual(a.map(sloEventRecord));
    const rec = sloEventRecord(page[0]!);
    expect(rec.key).toBe('acme');
    expect(JSON.parse(rec.value)).toMatchObject({ kind: 'slo.breach.started', tenant: 'acme', slo: 'checkout-availability' });
    expect(Object.keys(JSON.parse(rec.value))).toEqual([...Object.keys(JSON.parse(rec.value))].sort()); // canonical key order
  });
});

describe('IncidentModes', () => {
  const page = (tenant: string) => ({ tenant, slo: 's', windows: '1h/5m', severity: 'page' });
  const ticket = (tenant: string) => ({ tenant, slo: 's', windows: '1d/2h', severity: 'ticket' });

  it('a page burn switches the tenant on once, keeps extending it while paging, and the TTL ends it', () => {
    const im = new IncidentModes({ autoTtlMs: 2 * HOUR });
    expect(im.fromAlerts([ticket('acme')], 0)).toEqual([]);
    const started = im.fromAlerts([page('acme')], 10 * MIN);
    expect(started).toEqual([{ kind: 'incident.mode.started', tenant: 'acme', atMs: 10 * MIN, sinceMs: 10 * MIN, untilMs: 10 * MIN + 2 * HOUR, reason: 'slo:s 1h/5m', by: 'stella-slo' }]);
    expect(im.fromAlerts([page('acme')], 60 * MIN)).toEqual([]); // still paging: extended, no new event
    expect(im.isOn('acme', 60 * MIN + 2 * HOUR - 1)).toBe(true);
    expect(im.isOn('globex', 60 * MIN)).toBe(false);
    expect(im.expire(60 * MIN + 2 * HOUR - 1)).toEqual([]);
    expect(im.expire(60 * MIN + 2 * HOUR)).toEqual([{ kind: 'incident.mode.stopped', tenant: 'acme', atMs: 60 * MIN + 2 * HOUR, sinceMs: 10 * MIN, untilMs: 0, reason: 'ttl', by: 'stella-slo' }]);
    expect(im.isOn('acme', 60 * MIN + 2 * HOUR)).toBe(false);
  });

  it('manual on/off with a TTL cap, and survives a checkpoint', () => {
    const im = new IncidentModes({ maxTtlMs: 4 * HOUR });
    const ev = im.on('acme', { nowMs: 0, ttlMs: 100 * HOUR, reason: 'manual', by: 'user:alice' });
    expect(ev[0]!.untilMs).toBe(4 * HOUR); // capped
    im.on('globex', { nowMs: 0, ttlMs: HOUR, reason: 'manual', by: 'user:bob' });
    const restored = new IncidentModes({ maxTtlMs: 4 * HOUR });
    restored.restore(im.snapshot());
    expect(restored.list(MIN).map((a) => a.tenant)).toEqual(['acme', 'globex']);
    expect(restored.off('acme', MIN, 'user:alice')).toEqual([{ kind: 'incident.mode.stopped', tenant: 'acme', atMs: MIN, sinceMs: 0, untilMs: 0, reason: 'manual', by: 'user:alice' }]);
    expect(restored.off('acme', MIN, 'user:alice')).toEqual([]);
    // A lapsed mode switched on again reports its stop before the new start; other tenants are untouched.
    const again = restored.on('globex', { nowMs: 2 * HOUR, ttlMs: HOUR, reason: 'manual', by: 'user:bob' });
    expect(again.map((e) => e.kind)).toEqual(['incident.mode.stopped', 'incident.mode.started']);
  });

  it('the resolved StellaIncidentMode webhook carries the firing alert\'s startsAt (the mode\'s start), ending at the stop', () => {
    for (const stop of ['manual', 'ttl'] as const) {
      const im = new IncidentModes({ autoTtlMs: HOUR });
      const [started] = im.fromAlerts([page('acme')], 10 * MIN);
      const [stopped] = stop === 'manual' ? im.off('acme', 40 * MIN, 'user:alice') : im.expire(10 * MIN + HOUR);
      const firing = incidentWebhookPayload(started!, 'ops', 'http://stella.test');
      const resolved = incidentWebhookPayload(stopped!, 'ops', 'http://stella.test');
      const stopAt = stop === 'manual' ? 40 * MIN : 10 * MIN + HOUR;
      expect(firing.alerts[0]).toMatchObject({ status: 'firing', startsAt: new Date(10 * MIN).toISOString(), endsAt: new Date(10 * MIN + HOUR).toISOString() });
      expect(resolved.alerts[0]).toMatchObject({ status: 'resolved', startsAt: new Date(10 * MIN).toISOString(), endsAt: new Date(stopAt).toISOString() });
      expect(resolved.alerts[0]!.fingerprint).toBe(firing.alerts[0]!.fingerprint);
      expect(resolved.alerts[0]!.fingerprint).toBe(labelsFingerprint({ alertname: 'StellaIncidentMode', tenant: 'acme', severity: 'info' }));
    }
    // Restored from a checkpoint, the stop still knows when the mode started.
    const im = new IncidentModes();
    im.on('acme', { nowMs: 5 * MIN, ttlMs: HOUR, reason: 'manual', by: 'user:alice' });
    const restored = new IncidentModes();
    restored.restore(im.snapshot());
    expect(incidentWebhookPayload(restored.off('acme', 9 * MIN, 'user:alice')[0]!, 'ops', '').alerts[0]!.startsAt).toBe(new Date(5 * MIN).toISOString());
  });
});
