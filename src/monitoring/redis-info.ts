/** The figures of Redis INFO the sampler exports (spec: cache monitoring). */
export interface RedisInfo {
  usedMemoryBytes: number;
  /** 0: no limit configured. */
  maxMemoryBytes: number;
  cpuSysSeconds: number;
  cpuUserSeconds: number;
  connectedClients: number;
  evictedKeys: number;
  keyspaceHits: number;
  keyspaceMisses: number;
}

/** Parses the `key:value` lines of INFO (any sections); a missing field is an error. */
export function parseRedisInfo(text: string): RedisInfo {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const at = line.indexOf(':');
    if (at > 0 && !line.startsWith('#')) {
      fields.set(line.slice(0, at), line.slice(at + 1).trim());
    }
  }
  const num = (key: string): number => {
    const n = Number(fields.get(key));
    if (!fields.has(key) || !Number.isFinite(n)) {
      throw new Error(`redis INFO has no numeric ${key}`);
    }
    return n;
  };
  return {
    usedMemoryBytes: num('used_memory'),
    maxMemoryBytes: num('maxmemory'),
    cpuSysSeconds: num('used_cpu_sys'),
    cpuUserSeconds: num('used_cpu_user'),
    connectedClients: num('connected_clients'),
    evictedKeys: num('evicted_keys'),
    keyspaceHits: num('keyspace_hits'),
    keyspaceMisses: num('keyspace_misses'),
  };
}
