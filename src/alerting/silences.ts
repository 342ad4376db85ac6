import type { SilenceMatcher } from './alerting.repository.js';

/** A silence applies when every one of its matchers equals the alert's label of that name. */
export function silenceMatches(
  matchers: SilenceMatcher[],
  labels: Record<string, string>,
): boolean {
  return matchers.length > 0 && matchers.every((m) => labels[m.name] === m.value);
}
