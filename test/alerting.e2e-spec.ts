import { randomUUID } from 'node:crypto';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Gauge } from 'prom-client';
import { SMTPServer } from 'smtp-server';
import request from 'supertest';
import { AlertEvaluatorService } from '../src/alerting/alert-evaluator.service.js';
import { BackupMetrics } from '../src/backup/backup.metrics.js';
import { DEFAULT_ALERT_RULES } from '../src/config/alerting.config.js';
import { JobLeadershipService } from '../src/database/job-leadership.service.js';
import { MetricsService } from '../src/monitoring/metrics.service.js';
import { bearer, bootApp, KEYS, testConfig } from './support/app.js';
import {
  adminQuery,
  createTestDatabase,
  dropTestDatabase,
  StackDb,
  stackDb,
} from './support/databases.js';
import { stackEnv } from './support/stack.js';
import { until } from './support/wait.js';

const SMTP_USER = 'alerts';
const SMTP_PASSWORD = 'smtp-secret-password-7f3a';
const SLACK_SECRET = 'T000/B000/slack-secret-token-91c2';
const RECIPIENTS = ['dba@example.test', 'oncall@example.test'];
const CONDITION = 'dbu_test_alert_condition';

interface Mail {
  from: string;
  to: string[];
  subject: string;
  body: string;
  raw: string;
}

interface SlackPost {
  path: string;
  body: {
    channel?: string;
    username?: string;
    text: string;
    attachments: Array<{
      title: string;
      text: string;
      fields: Array<{ title: string; value: string }>;
    }>;
  };
}

/** The raw message's headers unfolded and its quoted-printable body decoded. */
function parseMail(raw: string, from: string, to: string[]): Mail {
  const split = raw.indexOf('\r\n\r\n');
  const headers = raw.slice(0, split).replace(/\r\n(?=[ \t])/g, '');
  const subject = /^Subject: (.*)$/im.exec(headers)?.[1] ?? '';
  let body = raw.slice(split + 4);
  if (/Content-Transfer-Encoding: quoted-printable/i.test(headers)) {
    body = body
      .replace(/=\r\n/g, '')
      .replace(/=([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
  }
  return { from, to, subject, body: body.replace(/\r\n/g, '\n'), raw };
}

/** A real SMTP server in the test process (auth required, no TLS), restartable on its port. */
class TestSmtp {
  readonly mails: Mail[] = [];
  private server: SMTPServer | null = null;
  port = 0;

  async start(): Promise<void> {
    const server = new SMTPServer({
      authOptional: false,
      disabledCommands: ['STARTTLS'],
      allowInsecureAuth: true,
      logger: false,
      onAuth: (auth, _session, cb) => {
        if (auth.username === SMTP_USER && auth.password === SMTP_PASSWORD) {
          cb(null, { user: auth.username });
        } else {
          cb(new Error('bad credentials'));
        }
      },
      onData: (stream, session, cb) => {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
          const to = session.envelope.rcptTo.map((r) => r.address);
          this.mails.push(parseMail(Buffer.concat(chunks).toString('utf8'), from, to));
          cb();
        });
      },
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.server.address() as AddressInfo).port;
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  about(alert: string): Mail[] {
    return this.mails.filter((m) => m.subject.includes(alert));
  }
}

/** Slack's incoming webhook, answering `status` (200 "ok" like Slack, or an outage). */
class TestSlack {
  readonly posts: SlackPost[] = [];
  readonly refused: string[] = [];
  status = 200;
  /** While set, requests get no answer (until `release`). */
  hang = false;
  private readonly held: ServerResponse[] = [];
  readonly heldBodies: string[] = [];
  private readonly server: Server;
  port = 0;

  constructor() {
    this.server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (this.hang) {
          this.held.push(res);
          this.heldBodies.push(text);
          return;
        }
        if (this.status !== 200) {
          this.refused.push(text);
          res.writeHead(this.status, { 'content-type': 'text/plain' }).end('server_error');
          return;
        }
        this.posts.push({ path: req.url ?? '', body: JSON.parse(text) as SlackPost['body'] });
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
      });
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', () => resolve()));
    this.port = (this.server.address() as AddressInfo).port;
  }

  /** Answers the held requests (their callers gave up long ago) and stops holding. */
  release(): void {
    this.hang = false;
    for (const res of this.held.splice(0)) {
      res.writeHead(503).end();
    }
  }

  async stop(): Promise<void> {
    this.release();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  about(alert: string): SlackPost[] {
    return this.posts.filter((p) => p.body.text.includes(alert));
  }
}

/** Sets the test rules' gauge in one app's registry (each app has its own). */
function condition(app: NestFastifyApplication, which: string, value: number): void {
  const registry = app.get(MetricsService).registry;
  const gauge =
    (registry.getSingleMetric(CONDITION) as Gauge<'case'> | undefined) ??
    new Gauge({ name: CONDITION, help: 'test', labelNames: ['case'], registers: [registry] });
  gauge.set({ case: which }, value);
}

const testRule = (which: string, severity: string, forSeconds = 0): Record<string, unknown> => ({
  metric: CONDITION,
  labels: { case: which },
  threshold: 0,
  forSeconds,
  severity,
  summary: `test condition ${which}`,
});

describe('alerting (rules, state, outbox, e-mail and Slack)', () => {
  let app: NestFastifyApplication;
  let db: StackDb;
  let database: string;
  let env: Record<string, string>;
  const smtp = new TestSmtp();
  const slack = new TestSlack();

  function config(): ReturnType<typeof testConfig> {
    const rules: Record<string, unknown> = Object.fromEntries(
      DEFAULT_ALERT_RULES.filter((r) => r.name !== 'backup_failed').map((r) => [
        r.name,
        { enabled: false },
      ]),
    );
    Object.assign(rules, {
      test_pending: testRule('pending', 'critical', 3600),
      test_silenced: testRule('silenced', 'critical'),
      test_smtp_down: testRule('smtp', 'critical'),
      test_slack_500: testRule('slack', 'medium'),
      test_leader: testRule('leader', 'critical'),
      test_hang: testRule('hang', 'critical'),
    });
    return testConfig(env, database, {
      ALERTING_RULES: JSON.stringify(rules),
      ALERTING_EVAL_INTERVAL_MS: '200',
      ALERTING_DELIVERY_INTERVAL_MS: '200',
      ALERTING_DELIVERY_MAX_BACKOFF_MS: '1000',
      ALERTING_DELIVERY_TIMEOUT_MS: '3000',
      ALERTING_EMAIL_TO: RECIPIENTS.join(','),
      ALERTING_EMAIL_FROM: 'database-unit@example.test',
      ALERTING_SMTP_HOST: '127.0.0.1',
      ALERTING_SMTP_PORT: String(smtp.port),
      ALERTING_SMTP_TLS: 'none',
      ALERTING_SMTP_USER: SMTP_USER,
      ALERTING_SMTP_PASSWORD: SMTP_PASSWORD,
      SLACK_WEBHOOK_URL: `http://127.0.0.1:${slack.port}/services/${SLACK_SECRET}`,
      ALERTING_SLACK_CHANNEL: '#database-alerts',
    });
  }

  async function alerts(target = app): Promise<{
    active: Array<Record<string, unknown>>;
    recent: Array<Record<string, unknown>>;
  }> {
    const res = await request(target.getHttpServer())
      .get('/v1/ops/alerts')
      .set(bearer(KEYS.opsRead))
      .expect(200);
    return res.body as {
      active: Array<Record<string, unknown>>;
      recent: Array<Record<string, unknown>>;
    };
  }

  async function stateOf(alert: string, target = app): Promise<string | undefined> {
    const body = await alerts(target);
    return [...body.active, ...body.recent].find((a) => a.alert === alert)?.state as
      string | undefined;
  }

  async function outbox(): Promise<
    Array<{
      channel: string;
      attempts: number;
      delivered: boolean;
      last_error: string | null;
      subject: string;
    }>
  > {
    const res = await adminQuery(
      db,
      db.primaryPort,
      database,
      `SELECT channel, attempts, delivered_at IS NOT NULL AS delivered, last_error,
              payload->>'subject' AS subject FROM alert_outbox ORDER BY id`,
    );
    return res.rows as Array<{
      channel: string;
      attempts: number;
      delivered: boolean;
      last_error: string | null;
      subject: string;
    }>;
  }

  /** Every queued message delivered: the next test starts with an empty outbox. */
  async function settled(): Promise<void> {
    const rows = await until(outbox, (r) => r.every((o) => o.delivered));
    expect(rows.filter((o) => !o.delivered)).toEqual([]);
  }

  beforeAll(async () => {
    env = await stackEnv();
    db = stackDb(env);
    database = await createTestDatabase(db, 'alerting');
    await smtp.start();
    await slack.start();
    app = await bootApp(config());
  });

  afterAll(async () => {
    await app?.close();
    await smtp.stop();
    await slack.stop();
    await dropTestDatabase(db, database);
  });

  it('fires backup_failed from the backup gauge: one e-mail and one Slack message, then one resolution of each', async () => {
    app.get(BackupMetrics).failed('daily', 1000);
    expect(
      await until(
        () => stateOf('backup_failed'),
        (s) => s === 'firing',
      ),
    ).toBe('firing');

    const mails = await until(
      async () => smtp.about('backup_failed'),
      (m) => m.length >= 1,
    );
    expect(mails).toHaveLength(1);
    expect(mails[0].to.sort()).toEqual([...RECIPIENTS].sort());
    expect(mails[0].from).toBe('database-unit@example.test');
    expect(mails[0].subject).toBe('[database-unit] FIRING 1: backup_failed');
    expect(mails[0].body).toContain('[FIRING] backup_failed (severity critical)');
    expect(mails[0].body).toContain('The last backup failed');
    expect(mails[0].body).toContain('value: 1 (condition: GreaterThanThreshold 0)');
    expect(mails[0].raw).toMatch(/^Message-ID: <alert-\d+@database-unit>/im);

    const posts = await until(
      async () => slack.about('backup_failed'),
      (p) => p.length >= 1,
    );
    expect(posts).toHaveLength(1);
    expect(posts[0].path).toBe(`/services/${SLACK_SECRET}`);
    expect(posts[0].body).toMatchObject({
      channel: '#database-alerts',
      username: 'database-unit',
      text: '[database-unit] FIRING 1: backup_failed',
    });
    expect(posts[0].body.attachments).toHaveLength(1);
    expect(posts[0].body.attachments[0]).toMatchObject({
      title: 'FIRING backup_failed (critical)',
      text: 'The last backup failed',
    });

    const metrics = await request(app.getHttpServer()).get('/metrics').expect(200);
    expect(metrics.text).toMatch(
      /dbu_alerts_firing\{alert="backup_failed",severity="critical"[^}]*\} 1/,
    );

    // A pending alert (for = 1 h) is listed as pending and sends nothing.
    condition(app, 'pending', 1);
    expect(
      await until(
        () => stateOf('test_pending'),
        (s) => s === 'pending',
      ),
    ).toBe('pending');

    // Cleared by a successful backup.
    app.get(BackupMetrics).succeeded('daily', 1000, 1, new Date());
    expect(
      await until(
        () => stateOf('backup_failed'),
        (s) => s === 'resolved',
      ),
    ).toBe('resolved');
    const resolved = await until(
      async () => smtp.about('backup_failed'),
      (m) => m.length >= 2,
    );
    expect(resolved.map((m) => m.subject)).toEqual([
      '[database-unit] FIRING 1: backup_failed',
      '[database-unit] RESOLVED 1: backup_failed',
    ]);
    expect(
      await until(
        async () => slack.about('backup_failed'),
        (p) => p.length >= 2,
      ),
    ).toHaveLength(2);
    condition(app, 'pending', 0);
    expect(
      await until(
        () => stateOf('test_pending'),
        (s) => s === undefined,
      ),
    ).toBeUndefined();

    const body = await alerts();
    expect(body.recent.map((a) => a.alert)).toContain('backup_failed');
    const all = JSON.stringify(body) + JSON.stringify(await outbox());
    expect(all).not.toContain(SMTP_PASSWORD);
    expect(all).not.toContain(SLACK_SECRET);
    expect(smtp.about('test_pending')).toHaveLength(0);
    await settled();
  });

  it('documents the routes in OpenAPI and closes them without a key', async () => {
    const server = app.getHttpServer();
    const doc = await request(server).get('/docs-json').expect(200);
    expect(Object.keys((doc.body as { paths: object }).paths)).toEqual(
      expect.arrayContaining([
        '/v1/ops/alerts',
        '/v1/ops/alerts/silences',
        '/v1/ops/alerts/silences/{id}',
      ]),
    );
    await request(server).get('/v1/ops/alerts').expect(401);
    await request(server).get('/v1/ops/alerts').set(bearer(KEYS.none)).expect(403);
  });

  it('validates silences (400 naming every bad field), needs ops:admin, and holds back notifications while active', async () => {
    const server = app.getHttpServer();
    const bad = await request(server)
      .post('/v1/ops/alerts/silences')
      .set(bearer(KEYS.all))
      .send({ matchers: [{ name: '1bad', value: '' }], endsAt: 'tomorrow', comment: 5 })
      .expect(400);
    const message = JSON.stringify(bad.body);
    for (const field of ['matchers.0.name', 'matchers.0.value', 'endsAt', 'comment']) {
      expect(message).toContain(field);
    }
    const past = await request(server)
      .post('/v1/ops/alerts/silences')
      .set(bearer(KEYS.all))
      .send({
        matchers: [{ name: 'alertname', value: 'test_silenced' }],
        endsAt: new Date(Date.now() - 60_000).toISOString(),
        comment: 'x',
      })
      .expect(400);
    expect(JSON.stringify(past.body)).toContain('endsAt');
    await request(server)
      .post('/v1/ops/alerts/silences')
      .set(bearer(KEYS.opsRead))
      .send({})
      .expect(403);
    await request(server).get('/v1/ops/alerts/silences').set(bearer(KEYS.opsRead)).expect(403);

    const created = await request(server)
      .post('/v1/ops/alerts/silences')
      .set(bearer(KEYS.all))
      .send({
        matchers: [{ name: 'alertname', value: 'test_silenced' }],
        endsAt: new Date(Date.now() + 3_600_000).toISOString(),
        comment: 'maintenance window',
      })
      .expect(201);
    expect(created.body).toMatchObject({
      createdBy: 'test-all',
      comment: 'maintenance window',
      matchers: [{ name: 'alertname', value: 'test_silenced' }],
    });
    // Reads go to the replica unless asked otherwise: read-your-writes as API.md says.
    const listed = await request(server)
      .get('/v1/ops/alerts/silences')
      .set(bearer(KEYS.all))
      .set('x-consistency', 'strong')
      .expect(200);
    expect(listed.body.nextCursor).toBeNull();
    expect((listed.body.items as Array<{ id: string }>).map((s) => s.id)).toContain(
      created.body.id,
    );
    // 201 names the silence, and it can be read there
    expect(created.headers.location).toBe(`/v1/ops/alerts/silences/${created.body.id}`);
    const located = await request(server)
      .get(created.headers.location)
      .set(bearer(KEYS.all))
      .set('x-consistency', 'strong')
      .expect(200);
    expect(located.body).toMatchObject({ id: created.body.id, comment: 'maintenance window' });
    await request(server)
      .get(`/v1/ops/alerts/silences/${randomUUID()}`)
      .set(bearer(KEYS.all))
      .set('x-consistency', 'strong')
      .expect(404);

    condition(app, 'silenced', 1);
    expect(
      await until(
        () => stateOf('test_silenced'),
        (s) => s === 'firing',
      ),
    ).toBe('firing');
    const listedAlert = (await alerts()).active.find((a) => a.alert === 'test_silenced');
    expect(listedAlert).toMatchObject({ state: 'firing', silencedBy: [created.body.id] });
    // Several evaluations while silenced: nothing queued for it.
    const evaluator = app.get(AlertEvaluatorService);
    for (let i = 0; i < 3; i++) {
      await evaluator.evaluate();
    }
    expect((await outbox()).filter((o) => o.subject.includes('test_silenced'))).toHaveLength(0);

    await request(server)
      .delete(`/v1/ops/alerts/silences/${created.body.id as string}`)
      .set(bearer(KEYS.all))
      .expect(200);
    await request(server)
      .delete(`/v1/ops/alerts/silences/${created.body.id as string}`)
      .set(bearer(KEYS.all))
      .expect(404);
    // Still firing once the silence ended: sent now, once.
    expect(
      await until(
        async () => smtp.about('test_silenced'),
        (m) => m.length >= 1,
      ),
    ).toHaveLength(1);
    condition(app, 'silenced', 0);
    expect(
      await until(
        () => stateOf('test_silenced'),
        (s) => s === 'resolved',
      ),
    ).toBe('resolved');
    expect(
      await until(
        async () => smtp.about('test_silenced'),
        (m) => m.length >= 2,
      ),
    ).toHaveLength(2);
    await settled();
  });

  it('keeps the e-mail while the SMTP server is down and delivers it once it is back; Slack and requests go on', async () => {
    await smtp.stop();
    condition(app, 'smtp', 1);
    expect(
      await until(
        () => stateOf('test_smtp_down'),
        (s) => s === 'firing',
      ),
    ).toBe('firing');
    // Slack is not held up by the mail outage.
    expect(
      await until(
        async () => slack.about('test_smtp_down'),
        (p) => p.length >= 1,
      ),
    ).toHaveLength(1);
    const failing = await until(
      async () =>
        (await outbox()).filter(
          (o) => o.channel === 'email' && o.subject.includes('test_smtp_down'),
        ),
      (rows) => rows.length === 1 && rows[0].attempts >= 2,
    );
    expect(failing[0]).toMatchObject({ delivered: false });
    expect(failing[0].last_error).not.toContain(SMTP_PASSWORD);
    const metrics = await request(app.getHttpServer()).get('/metrics').expect(200);
    expect(metrics.text).toMatch(/dbu_alert_delivery_failures_total\{channel="email"[^}]*\} [1-9]/);
    expect(metrics.text).toMatch(/dbu_alert_outbox_backlog\{channel="email"[^}]*\} [1-9]/);

    // It resolves while the mail server is still down: both messages wait, in order.
    condition(app, 'smtp', 0);
    expect(
      await until(
        () => stateOf('test_smtp_down'),
        (s) => s === 'resolved',
      ),
    ).toBe('resolved');
    const queued = await until(
      async () =>
        (await outbox()).filter(
          (o) => o.channel === 'email' && o.subject.includes('test_smtp_down'),
        ),
      (rows) => rows.length === 2,
    );
    expect(queued.map((r) => r.delivered)).toEqual([false, false]);
    expect(smtp.about('test_smtp_down')).toHaveLength(0);

    await smtp.start();
    const mails = await until(
      async () => smtp.about('test_smtp_down'),
      (m) => m.length >= 2,
    );
    expect(mails.map((m) => m.subject)).toEqual([
      '[database-unit] FIRING 1: test_smtp_down',
      '[database-unit] RESOLVED 1: test_smtp_down',
    ]);
    const done = await until(
      async () => (await outbox()).filter((o) => o.subject.includes('test_smtp_down')),
      (rows) => rows.every((r) => r.delivered),
    );
    expect(done.map((r) => [r.channel, r.delivered])).toEqual([
      ['email', true],
      ['slack', true],
      ['email', true],
      ['slack', true],
    ]);
    expect(
      await until(
        async () => slack.about('test_smtp_down'),
        (p) => p.length >= 2,
      ),
    ).toHaveLength(2);
    expect(smtp.about('test_smtp_down')).toHaveLength(2);
    await settled();
  });

  it('retries the Slack message while the webhook answers 500', async () => {
    slack.status = 500;
    condition(app, 'slack', 1);
    const refused = await until(
      async () => slack.refused.filter((t) => t.includes('test_slack_500')),
      (r) => r.length >= 2,
    );
    expect(refused.length).toBeGreaterThanOrEqual(2);
    // Evaluation went on meanwhile (the alert is firing and listed).
    expect(await stateOf('test_slack_500')).toBe('firing');
    const row = (await outbox()).find((o) => o.subject.includes('test_slack_500'));
    expect(row).toMatchObject({ channel: 'slack', delivered: false });
    expect(row?.last_error).not.toContain(SLACK_SECRET);

    slack.status = 200;
    expect(
      await until(
        async () => slack.about('test_slack_500'),
        (p) => p.length >= 1,
      ),
    ).toHaveLength(1);
    // medium: Slack only, no e-mail.
    expect(smtp.about('test_slack_500')).toHaveLength(0);
    condition(app, 'slack', 0);
    expect(
      await until(
        async () => slack.about('test_slack_500'),
        (p) => p.length >= 2,
      ),
    ).toHaveLength(2);
    await settled();
  });

  it('a webhook that does not answer holds up neither the e-mail nor evaluation', async () => {
    slack.hang = true;
    condition(app, 'hang', 1);
    expect(
      await until(
        async () => smtp.about('test_hang'),
        (m) => m.length >= 1,
      ),
    ).toHaveLength(1);
    expect(
      await until(
        async () => slack.heldBodies.filter((b) => b.includes('test_hang')),
        (b) => b.length >= 1,
      ),
    ).not.toHaveLength(0);
    // While the Slack call hangs: the alert resolves and its e-mail goes out.
    condition(app, 'hang', 0);
    expect(
      await until(
        () => stateOf('test_hang'),
        (s) => s === 'resolved',
      ),
    ).toBe('resolved');
    expect(
      await until(
        async () => smtp.about('test_hang'),
        (m) => m.length >= 2,
      ),
    ).toHaveLength(2);
    expect(slack.about('test_hang')).toHaveLength(0);

    slack.release();
    const posts = await until(
      async () => slack.about('test_hang'),
      (p) => p.length >= 2,
    );
    expect(posts.map((p) => p.body.text)).toEqual([
      '[database-unit] FIRING 1: test_hang',
      '[database-unit] RESOLVED 1: test_hang',
    ]);
    await settled();
  });

  it('survives a leader change: the next leader keeps the alert firing, sends nothing twice, and resolves it', async () => {
    const second = await bootApp(config());
    try {
      condition(app, 'leader', 1);
      condition(second, 'leader', 1);
      expect(
        await until(
          () => stateOf('test_leader'),
          (s) => s === 'firing',
        ),
      ).toBe('firing');
      expect(
        await until(
          async () => smtp.about('test_leader'),
          (m) => m.length >= 1,
        ),
      ).toHaveLength(1);
      await until(
        async () => slack.about('test_leader'),
        (p) => p.length >= 1,
      );
      const leaderId = app.get(JobLeadershipService).instanceId;
      const evaluatedBy = async (): Promise<string> =>
        (
          await adminQuery(
            db,
            db.primaryPort,
            database,
            `SELECT evaluated_by FROM alert_states WHERE rule = 'test_leader'`,
          )
        ).rows[0].evaluated_by as string;
      expect(await evaluatedBy()).toBe(leaderId);

      await app.close();
      const nextId = second.get(JobLeadershipService).instanceId;
      expect(await until(evaluatedBy, (id) => id === nextId)).toBe(nextId);
      // A few evaluations by the new leader: still firing, nothing sent again.
      const evaluator = second.get(AlertEvaluatorService);
      for (let i = 0; i < 3; i++) {
        expect(await evaluator.evaluate()).toMatchObject({ leader: true, failed: false });
      }
      expect(await stateOf('test_leader', second)).toBe('firing');
      expect(smtp.about('test_leader')).toHaveLength(1);
      expect(slack.about('test_leader')).toHaveLength(1);

      condition(second, 'leader', 0);
      expect(
        await until(
          () => stateOf('test_leader', second),
          (s) => s === 'resolved',
        ),
      ).toBe('resolved');
      const mails = await until(
        async () => smtp.about('test_leader'),
        (m) => m.length >= 2,
      );
      expect(mails.map((m) => m.subject)).toEqual([
        '[database-unit] FIRING 1: test_leader',
        '[database-unit] RESOLVED 1: test_leader',
      ]);
      expect(
        await until(
          async () => slack.about('test_leader'),
          (p) => p.length >= 2,
        ),
      ).toHaveLength(2);
    } finally {
      app = second;
    }
  });
});
