const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

export const WINDOW_PATTERN = /^[1-9]\d{0,5}[smhd]$/;
export const DEFAULT_WINDOW = '1h';

export function windowMs(window: string): number {
  const unit = window.slice(-1) as keyof typeof UNIT_MS;
  return Number(window.slice(0, -1)) * UNIT_MS[unit];
}

export interface TimeWindow {
  from: Date;
  to: Date;
}

/**
 * The window a request asks for: from/to as given; a `window` duration ends at `to` (or
 * now), or starts at `from` when only `from` is given; nothing: the last hour. The DTO
 * has already refused window together with both from and to, and to before from.
 */
export function resolveWindow(
  q: { from?: string; to?: string; window?: string },
  now: Date,
): TimeWindow {
  const length = windowMs(q.window ?? DEFAULT_WINDOW);
  if (q.from !== undefined) {
    const from = new Date(q.from);
    if (q.to !== undefined) {
      return { from, to: new Date(q.to) };
    }
    return {
      from,
      to: q.window !== undefined ? new Date(from.getTime() + length) : now,
    };
  }
  const to = q.to !== undefined ? new Date(q.to) : now;
  return { from: new Date(to.getTime() - length), to };
}
