import { message } from './alert-evaluator.service.js';

describe(message.name, () => {
  const alert = (name: string, status: 'firing' | 'resolved') => ({
    alert: name,
    severity: 'critical' as const,
    status,
    value: status === 'firing' ? 1 : 0,
    comparison: 'GreaterThanThreshold' as const,
    threshold: 0,
    summary: `${name} summary`,
    since: '2026-01-01T00:00:00.000Z',
  });

  it('groups the notifications of one evaluation into one subject and body', () => {
    const m = message([alert('a', 'firing'), alert('b', 'firing'), alert('c', 'resolved')]);
    expect(m.subject).toBe('[database-unit] FIRING 2: a, b; RESOLVED 1: c');
    expect(m.text).toContain('[FIRING] a (severity critical)\n  a summary\n  value: 1');
    expect(m.text).toContain('[RESOLVED] c (severity critical)');
    expect(m.text).toContain('resolved at: 2026-01-01T00:00:00.000Z');
    expect(m.alerts).toHaveLength(3);
  });
});
