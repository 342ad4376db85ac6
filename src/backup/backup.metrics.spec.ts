import type { AppConfig } from '../config/app-config.js';
import { MetricsService } from '../monitoring/metrics.service.js';
import { BackupMetrics } from './backup.metrics.js';

function setup(durationAlertMinutes: number): {
  metrics: BackupMetrics;
  text: () => Promise<string>;
} {
  const registry = new MetricsService();
  const config = { backup: { durationAlertMinutes } } as AppConfig;
  return {
    metrics: new BackupMetrics(config, registry),
    text: async () => (await registry.render()).body,
  };
}

const alert = (name: string, value: 0 | 1): RegExp =>
  new RegExp(`dbu_backup_alert\\{[^}]*alert="${name}"[^}]*\\} ${value}\\n`);

describe(BackupMetrics.name, () => {
  it('raises backup_failed on a failure and clears it on the next success', async () => {
    const { metrics, text } = setup(120);
    expect(await text()).toMatch(alert('backup_failed', 0));
    metrics.failed('daily', 1_000);
    expect(await text()).toMatch(alert('backup_failed', 1));
    expect(await text()).toMatch(/dbu_backup_completion_status\{[^}]*kind="daily"[^}]*\} 0\n/);
    metrics.succeeded('daily', 2_000, 4096, new Date());
    expect(await text()).toMatch(alert('backup_failed', 0));
    expect(await text()).toMatch(/dbu_backup_completion_status\{[^}]*kind="daily"[^}]*\} 1\n/);
    expect(await text()).toMatch(/dbu_backup_size_bytes\{[^}]*kind="daily"[^}]*\} 4096\n/);
  });

  it('raises backup_duration_long while a backup runs past the threshold, and after a long one', async () => {
    const { metrics, text } = setup(1);
    metrics.started(new Date(Date.now() - 30_000));
    expect(await text()).toMatch(alert('backup_duration_long', 0));
    metrics.started(new Date(Date.now() - 90_000));
    expect(await text()).toMatch(alert('backup_duration_long', 1));
    metrics.succeeded('weekly', 90_000, null, new Date());
    expect(await text()).toMatch(alert('backup_duration_long', 1));
    metrics.succeeded('weekly', 10_000, null, new Date());
    expect(await text()).toMatch(alert('backup_duration_long', 0));
  });

  it('reports the last good backup and its age', async () => {
    const { metrics, text } = setup(120);
    expect(await text()).toMatch(/dbu_backup_last_good_age_seconds\{[^}]*\} -1\n/);
    metrics.setLastGood(new Date(Date.now() - 3_600_000));
    const age = /dbu_backup_last_good_age_seconds\{[^}]*\} ([\d.]+)/.exec(await text());
    expect(Number(age?.[1])).toBeGreaterThanOrEqual(3600);
  });
});
