import type { AlertComparison } from '../config/alerting.config.js';

export const ALERT_STATES = ['inactive', 'pending', 'firing', 'resolved'] as const;
export type AlertStateName = (typeof ALERT_STATES)[number];

/** What the database keeps of one rule between evaluations (and across leaders). */
export interface AlertState {
  state: AlertStateName;
  value: number | null;
  pendingSince: Date | null;
  firingSince: Date | null;
  resolvedAt: Date | null;
  /** Last time a firing notification was queued; null: none yet for this firing. */
  lastNotifiedAt: Date | null;
}

export type NotificationKind = 'firing' | 'resolved';

export interface StepInput {
  /** null: the metric has no value (no series, or a windowed aggregation without data). */
  value: number | null;
  comparison: AlertComparison;
  threshold: number;
  forMs: number;
  /** 0: never re-sent. */
  renotifyMs: number;
  silenced: boolean;
  now: Date;
}

export const INITIAL_STATE: AlertState = {
  state: 'inactive',
  value: null,
  pendingSince: null,
  firingSince: null,
  resolvedAt: null,
  lastNotifiedAt: null,
};

export function breaches(
  value: number | null,
  comparison: AlertComparison,
  threshold: number,
): boolean {
  if (value === null || Number.isNaN(value)) {
    return false;
  }
  switch (comparison) {
    case 'GreaterThanThreshold':
      return value > threshold;
    case 'GreaterThanOrEqualToThreshold':
      return value >= threshold;
    case 'LessThanThreshold':
      return value < threshold;
    case 'LessThanOrEqualToThreshold':
      return value <= threshold;
  }
}

/**
 * One evaluation of one rule: inactive → pending (condition holds) → firing (held for
 * `forMs`) → resolved (condition cleared) → pending again when it returns. A pending
 * alert whose condition clears goes back to inactive without a word. Notifications: one
 * when it fires, again every `renotifyMs` while it fires, one when a notified alert
 * resolves. A silence holds back the firing ones (the alert still changes state); once
 * it ends, a still-firing alert that was never sent is sent.
 */
export function step(
  prev: AlertState,
  input: StepInput,
): { next: AlertState; notify: NotificationKind | null } {
  const { now } = input;
  const holds = breaches(input.value, input.comparison, input.threshold);
  const base = { ...prev, value: input.value };

  if (!holds) {
    if (prev.state === 'firing') {
      return {
        next: { ...base, state: 'resolved', pendingSince: null, resolvedAt: now },
        notify: prev.lastNotifiedAt !== null ? 'resolved' : null,
      };
    }
    if (prev.state === 'pending') {
      return { next: { ...base, state: 'inactive', pendingSince: null }, notify: null };
    }
    return { next: base, notify: null };
  }

  if (prev.state === 'firing') {
    const due =
      prev.lastNotifiedAt === null ||
      (input.renotifyMs > 0 && now.getTime() - prev.lastNotifiedAt.getTime() >= input.renotifyMs);
    return notifyIfDue(base, due && !input.silenced, now);
  }

  const pendingSince = prev.state === 'pending' && prev.pendingSince ? prev.pendingSince : now;
  if (now.getTime() - pendingSince.getTime() >= input.forMs) {
    const firing: AlertState = {
      ...base,
      state: 'firing',
      pendingSince,
      firingSince: now,
      resolvedAt: null,
      lastNotifiedAt: null,
    };
    return notifyIfDue(firing, !input.silenced, now);
  }
  return { next: { ...base, state: 'pending', pendingSince }, notify: null };
}

function notifyIfDue(
  state: AlertState,
  due: boolean,
  now: Date,
): { next: AlertState; notify: NotificationKind | null } {
  return due
    ? { next: { ...state, lastNotifiedAt: now }, notify: 'firing' }
    : { next: state, notify: null };
}
