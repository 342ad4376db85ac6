import { Injectable } from '@nestjs/common';
import { Counter, Gauge } from 'prom-client';
import { MetricsService } from '../monitoring/metrics.service.js';

export enum AlertingMetric {
  Firing = 'dbu_alerts_firing',
  Evaluations = 'dbu_alert_evaluations_total',
  OutboxBacklog = 'dbu_alert_outbox_backlog',
  Delivered = 'dbu_alert_notifications_delivered_total',
  DeliveryFailures = 'dbu_alert_delivery_failures_total',
}

@Injectable()
export class AlertingMetrics {
  readonly firing: Gauge<'alert' | 'severity'>;
  readonly evaluations: Counter<'outcome'>;
  readonly backlog: Gauge<'channel'>;
  readonly delivered: Counter<'channel'>;
  readonly deliveryFailures: Counter<'channel'>;

  constructor(metrics: MetricsService) {
    const registers = [metrics.registry];
    this.firing = new Gauge({
      name: AlertingMetric.Firing,
      help: 'Alerts firing (1), exported by the evaluating leader only',
      labelNames: ['alert', 'severity'],
      registers,
    });
    this.evaluations = new Counter({
      name: AlertingMetric.Evaluations,
      help: 'Alert evaluations by outcome (evaluated, not-leader, failed)',
      labelNames: ['outcome'],
      registers,
    });
    this.backlog = new Gauge({
      name: AlertingMetric.OutboxBacklog,
      help: 'Notifications in the outbox not yet delivered, by channel (leader only)',
      labelNames: ['channel'],
      registers,
    });
    this.delivered = new Counter({
      name: AlertingMetric.Delivered,
      help: 'Notifications delivered, by channel',
      labelNames: ['channel'],
      registers,
    });
    this.deliveryFailures = new Counter({
      name: AlertingMetric.DeliveryFailures,
      help: 'Failed delivery attempts (each is retried with backoff), by channel',
      labelNames: ['channel'],
      registers,
    });
  }
}
