// A restart with alerts firing and no traffic must not let Alertmanager resolve them: the runner
// re-sends the restored firing alerts at startup (before the endsAt the previous process gave
// them) and keeps re-sending on a timer that does not wait for an evaluation. Real Kafka, chdb and
// a real Alertmanager (Debian prometheus-alertmanager) routing to a webhook receiver.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WebhookPayload } from '../../processors/slo/alert-payloads.ts';
import { parseSloConfig } from '../../processors/slo/config.ts';
import { startSloRunner, type RunningSloRunner } from '../../processors/slo/runner.ts';
import type { StageRecord } from '../../lib/kafka/stage.ts';
import type { Store } from '../../lib/store/index.ts';
import { HeadSampler } from '../../receiver/sampling.ts';
import { createTopics, testKafka, uniq } from '../support/kafka.ts';
import { endOfMinute, MIN, startAlertmanager, startReceiver, type Receiver, type RunningAlertmanager } from './helpers.ts';
import { minuteRequest, produceTenant, sloTestStore } from './support.ts';

const config = parseSloConfig(`
slos:
  - name: checkout-availability
    tenant: acme
    service: checkout
    objective: 0.999
    sli: { type: availability, spans: { name: "POST /checkout", kind: server } }
`);

// endsAt = last send + 4 × resend interval = 6 s: short enough that a runner which stays silent
// after its restart lets the alert expire within the observation below.
const RESEND_MS = 1500;
const OBSERVE_AFTER_RESTART_MS = 10_000;

let store: Store;
let am: RunningAlertmanager;
let amHook: Receiver;
const topics = { spans: uniq('slo_rs_spans'), metrics: uniq('slo_rs_metrics'), sloEvents: uniq('slo_rs_events'), timelineEvents: uniq('slo_rs_tl') };

beforeAll(async () => {
  store = await sloTestStore();
  await createTopics(Object.values(topics), 3);
  amHook = await startReceiver();
  am = await startAlertmanager(amHook.url);
});
afterAll(async () => {
  await am?.stop();
  await amHook?.close();
});

const isPage = (a: { labels: Record<string, string> }) => a.labels.alertname === 'SloErrorBudgetBurn' && a.labels.severity === 'page' && a.labels.windows === '1h/5m';

interface AmAlert { labels: Record<string, string>; startsAt: string; endsAt: string; status: { state: string } }

describe('SLO runner restart with alerts firing and no traffic', () => {
  it('Alertmanager never shows the page alert resolved: restored alerts are re-sent at startup and on a timer', async () => {
    const groupId = uniq('stella-slo-restart');
    const startMs = Math.floor((Date.now() - 100 * MIN) / MIN) * MIN;
    // Minutes 0..99, errors from minute 90: the 1h/5m page fires at the end of minute 91 and is still firing at 98.
    const sent = await produceTenant(topics.spans, 'acme', Array.from({ length: 100 }, (_, m) => minuteRequest({ tenant: 'acme', service: 'checkout',
      spanName: 'POST /checkout', startMs, minute: m, perMinute: 100, errors: m >= 90 ? 50 : 0 })));
    let handled = -1n;
    const start = (): Promise<RunningSloRunner> => startSloRunner({ kafka: testKafka('slo-restart'), config, store, topics, groupId,
      alertmanagerUrl: am.url, externalURL: 'http://stella.test', resendIntervalMs: RESEND_MS, sender: { baseDelayMs: 50 },
      // No idle evaluation during the test: only the restart path and the resend timer can refresh the alert.
      idleTickMs: 3_600_000, sampler: new HeadSampler(),
      beforeCommit: async (recs: StageRecord[]) => { const o = BigInt(recs[recs.length - 1]!.offset); if (o > handled) handled = o; } });

    const polls: { at: number; active: boolean; endsAt?: number }[] = [];
    let watching = true;
    let watcher: Promise<void> = Promise.resolve();
    let runner = await start();
    let restartedAt = 0;
    try {
      const deadline = Date.now() + 60_000;
      while (handled < sent.lastOffset) {
        if (Date.now() > deadline) throw new Error('the runner did not consume the traffic');
        await new Promise((r) => setTimeout(r, 100));
      }
      const fired = await amHook.waitFor((b) => (b as WebhookPayload).alerts?.some((a) => isPage(a) && a.status === 'firing'), 20_000);
      const firingStartsAt = (fired.body as WebhookPayload).alerts.find(isPage)!.startsAt;
      expect(Date.parse(firingStartsAt)).toBe(endOfMinute(startMs, 91));
      expect((await runner.summaries('acme'))[0]!.firing).toContain('page:1h/5m');
      // From here on, watch Alertmanager: every poll must list the page alert as active.
      watcher = (async () => {
        while (watching) {
          try {
            const list = (await (await fetch(`${am.url}/api/v2/alerts`)).json()) as AmAlert[];
            const page = list.find(isPage);
            const at = Date.now();
            polls.push({ at, active: !!page && page.status.state === 'active' && Date.parse(page.endsAt) > at, endsAt: page ? Date.parse(page.endsAt) : undefined });
          } catch { /* Alertmanager busy: next poll */ }
          await new Promise((r) => setTimeout(r, 200));
        }
      })();

      await runner.stop(); // what SIGTERM does: stop consuming, final checkpoint
      await new Promise((r) => setTimeout(r, 1000)); // the process is down for a moment
      restartedAt = Date.now();
      runner = await start(); // no new traffic from here on
      await new Promise((r) => setTimeout(r, OBSERVE_AFTER_RESTART_MS));

      // Still firing in the restarted runner, same alert (labels and startsAt) in Alertmanager.
      expect((await runner.summaries('acme'))[0]!.firing).toContain('page:1h/5m');
      const list = (await (await fetch(`${am.url}/api/v2/alerts`)).json()) as AmAlert[];
      expect(list.filter(isPage).map((a) => a.startsAt)).toEqual([new Date(endOfMinute(startMs, 91)).toISOString()]);
    } finally {
      watching = false;
      await watcher;
      await runner.stop();
    }
    // The observation covered more than one endsAt period after the restart, with no traffic.
    const after = polls.filter((p) => p.at >= restartedAt);
    expect(after.length).toBeGreaterThan(20);
    expect(after[after.length - 1]!.at - restartedAt).toBeGreaterThan(4 * RESEND_MS + 2000);
    expect(polls.filter((p) => !p.active).map((p) => ({ ...p, sinceRestart: p.at - restartedAt })), JSON.stringify(polls.slice(0, 80).map((p) => [p.at - restartedAt, p.endsAt ? p.endsAt - p.at : null, p.active]))).toEqual([]);
    // And no receiver was told it resolved: exactly one notification, the firing one.
    await new Promise((r) => setTimeout(r, 1500)); // group_interval is 1 s: a resolution would have been sent by now
    const pages = amHook.bodies.map((b) => b.body as WebhookPayload).filter((p) => p.alerts?.some(isPage));
    expect(pages.map((p) => p.alerts.find(isPage)!.status)).toEqual(['firing']);
  }, 120_000);
});
