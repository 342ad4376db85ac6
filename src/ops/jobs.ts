/** Names of scheduled jobs: the key of their CronJob and of their history rows. */
export enum JobName {
  Heartbeat = 'replication-heartbeat',
}
