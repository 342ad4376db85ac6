import { parseRedisInfo } from './redis-info.js';

const INFO = [
  '# Clients',
  'connected_clients:7',
  '# Memory',
  'used_memory:1048576',
  'used_memory_human:1.00M',
  'maxmemory:1073741824',
  'maxmemory_policy:allkeys-lru',
  '# Stats',
  'evicted_keys:3',
  'keyspace_hits:90',
  'keyspace_misses:10',
  '# CPU',
  'used_cpu_sys:1.250000',
  'used_cpu_user:2.500000',
  '',
].join('\r\n');

describe(parseRedisInfo.name, () => {
  it('reads memory, CPU, clients, evictions and keyspace hits/misses', () => {
    expect(parseRedisInfo(INFO)).toEqual({
      usedMemoryBytes: 1_048_576,
      maxMemoryBytes: 1_073_741_824,
      cpuSysSeconds: 1.25,
      cpuUserSeconds: 2.5,
      connectedClients: 7,
      evictedKeys: 3,
      keyspaceHits: 90,
      keyspaceMisses: 10,
    });
  });

  it('refuses an answer without a field it needs', () => {
    expect(() => parseRedisInfo(INFO.replace('keyspace_hits:90', ''))).toThrow(/keyspace_hits/);
  });
});
