export type CircuitState = 'closed' | 'open' | 'half-open';

/**
 * Stops calling a dependency that keeps failing: after `failureThreshold` failures
 * in a row the circuit opens for `openMs`; then one trial call is let through
 * (half-open): success closes it, failure opens it again.
 */
export class CircuitBreaker {
  private failures = 0;
  private openedAt = 0;
  private trialInFlight = false;
  state: CircuitState = 'closed';

  constructor(
    private readonly failureThreshold: number,
    private readonly openMs: number,
    private readonly now: () => number = Date.now,
    private readonly onChange: (state: CircuitState) => void = () => undefined,
  ) {}

  /** May a call go through now? */
  allow(): boolean {
    if (this.state === 'closed') {
      return true;
    }
    if (this.state === 'open' && this.now() - this.openedAt >= this.openMs) {
      this.transition('half-open');
    }
    if (this.state === 'half-open' && !this.trialInFlight) {
      this.trialInFlight = true;
      return true;
    }
    return false;
  }

  success(): void {
    this.failures = 0;
    this.trialInFlight = false;
    if (this.state !== 'closed') {
      this.transition('closed');
    }
  }

  failure(): void {
    this.trialInFlight = false;
    this.failures += 1;
    if (
      this.state === 'half-open' ||
      (this.state === 'closed' && this.failures >= this.failureThreshold)
    ) {
      this.openedAt = this.now();
      this.transition('open');
    }
  }

  private transition(state: CircuitState): void {
    this.state = state;
    this.onChange(state);
  }
}
