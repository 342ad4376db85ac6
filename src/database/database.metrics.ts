/** Names of the metrics recorded by the database layer (new ones; older ones still inline). */
export enum DatabaseMetric {
  PoolUtilization = 'dbu_pool_utilization',
  PoolActiveConnections = 'dbu_pool_active_connections',
  PoolWaitSeconds = 'dbu_pool_wait_seconds',
  PgBouncerClientsActive = 'dbu_pgbouncer_clients_active',
  ConnectionFailures = 'dbu_db_connection_failures_total',
  SlowQueries = 'dbu_slow_queries_total',
}
