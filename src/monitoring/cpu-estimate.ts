/**
 * A database node's CPU use estimated from its sessions, where no CPU figure can be read
 * over SQL (a self-managed cluster): each sample counts the sessions active and waiting
 * on no event (on a CPU or queued for one, what Performance Insights calls "CPU" load);
 * the estimate is the mean of the last `window` samples over the node's CPUs, in %, at
 * most 100 (more runnable sessions than CPUs is a saturated node, not 150 % of one).
 */
export class CpuEstimator {
  private readonly samples = new Map<string, number[]>();

  constructor(
    private readonly vcpus: number,
    private readonly window: number,
  ) {}

  /** Adds one sample of `node`; its estimate, or null when the CPU count is unknown (0). */
  add(node: string, onCpuSessions: number): number | null {
    if (this.vcpus <= 0) {
      return null;
    }
    const list = this.samples.get(node) ?? [];
    list.push(onCpuSessions);
    if (list.length > this.window) {
      list.splice(0, list.length - this.window);
    }
    this.samples.set(node, list);
    const mean = list.reduce((a, b) => a + b, 0) / list.length;
    return Math.min(100, (100 * mean) / this.vcpus);
  }

  forget(node: string): void {
    this.samples.delete(node);
  }

  clear(): void {
    this.samples.clear();
  }
}

/** Samples in a minute at the sampler's interval (at least one). */
export function minuteWindow(sampleSeconds: number): number {
  return Math.max(1, Math.round(60 / Math.max(1, sampleSeconds)));
}
