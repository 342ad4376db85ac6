import { Inject, Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import { IncomingWebhook } from '@slack/webhook';
import nodemailer, { type Transporter } from 'nodemailer';
import type { AlertSeverity } from '../config/alerting.config.js';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import type { AlertChannel, OutboxRow } from './alerting.repository.js';

/**
 * The two channels of the spec. Each sends one outbox row; the row's id makes the e-mail's
 * Message-ID, so a message re-sent after a crash between sending and marking it delivered
 * is recognisably the same one. Errors come back as text with the secrets taken out.
 */
@Injectable()
export class AlertChannels implements OnModuleDestroy {
  private readonly logger = new Logger(AlertChannels.name);
  private readonly mailer: Transporter | null = null;
  private readonly webhook: IncomingWebhook | null = null;
  private readonly secrets: string[];

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {
    const { email, slack, delivery } = config.alerting;
    if (email) {
      const { smtp } = email;
      this.mailer = nodemailer.createTransport({
        host: smtp.host,
        port: smtp.port,
        secure: smtp.tls === 'tls',
        requireTLS: smtp.tls === 'starttls',
        ignoreTLS: smtp.tls === 'none',
        auth: smtp.user ? { user: smtp.user, pass: smtp.password ?? '' } : undefined,
        connectionTimeout: delivery.timeoutMs,
        greetingTimeout: delivery.timeoutMs,
        socketTimeout: delivery.timeoutMs,
        logger: false,
      });
    }
    if (slack) {
      this.webhook = new IncomingWebhook(slack.webhookUrl, {
        channel: slack.channel,
        username: 'database-unit',
        timeout: delivery.timeoutMs,
      });
    }
    this.secrets = [email?.smtp.password, slack?.webhookUrl].filter(
      (s): s is string => typeof s === 'string' && s.length > 0,
    );
  }

  /** The channels with a server to send to. */
  get configured(): AlertChannel[] {
    return [
      ...(this.mailer ? (['email'] as const) : []),
      ...(this.webhook ? (['slack'] as const) : []),
    ];
  }

  /** Channels that get a notification of this severity (configured ones only). */
  route(severity: AlertSeverity): AlertChannel[] {
    const { email, slack } = this.config.alerting;
    const out: AlertChannel[] = [];
    if (email?.severities.includes(severity)) {
      out.push('email');
    }
    if (slack?.severities.includes(severity)) {
      out.push('slack');
    }
    return out;
  }

  /** null when sent; otherwise why not (secrets removed). */
  async send(row: OutboxRow): Promise<string | null> {
    try {
      if (row.channel === 'email') {
        await this.sendEmail(row);
      } else {
        await this.sendSlack(row);
      }
      return null;
    } catch (err) {
      return this.scrub(err instanceof Error ? err.message : String(err));
    }
  }

  private async sendEmail(row: OutboxRow): Promise<void> {
    const email = this.config.alerting.email;
    if (!this.mailer || !email) {
      throw new Error('e-mail channel not configured');
    }
    await this.mailer.sendMail({
      from: email.from,
      to: email.to,
      subject: row.payload.subject,
      text: row.payload.text,
      messageId: `<alert-${row.id}@database-unit>`,
    });
  }

  private async sendSlack(row: OutboxRow): Promise<void> {
    if (!this.webhook) {
      throw new Error('Slack channel not configured');
    }
    await this.webhook.send({
      text: row.payload.subject,
      attachments: row.payload.alerts.map((a) => ({
        color: a.status === 'resolved' ? 'good' : a.severity === 'medium' ? 'warning' : 'danger',
        title: `${a.status.toUpperCase()} ${a.alert} (${a.severity})`,
        text: a.summary,
        fields: [
          { title: 'value', value: a.value === null ? 'n/a' : String(a.value), short: true },
          { title: 'condition', value: `${a.comparison} ${a.threshold}`, short: true },
        ],
        footer: `since ${a.since} · outbox ${row.id}`,
      })),
    });
  }

  private scrub(message: string): string {
    let out = message;
    for (const s of this.secrets) {
      out = out.split(s).join('[redacted]');
    }
    return out;
  }

  onModuleDestroy(): void {
    this.mailer?.close();
    this.logger.debug('alert channels closed');
  }
}
