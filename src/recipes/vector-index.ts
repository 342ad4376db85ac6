/**
 * Parallel HNSW builds are used only from pgvector 0.8.2 on: earlier releases have a
 * flaw in parallel HNSW builds (CVE-2026-3172). Returns the workers to use.
 */
export function parallelWorkersFor(extversion: string, wanted: number): number {
  const [major, minor, patch] = extversion.split('.').map((p) => Number.parseInt(p, 10) || 0);
  const safe = major > 0 || minor > 8 || (minor === 8 && patch >= 2);
  return safe ? wanted : 0;
}
