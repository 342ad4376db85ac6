import { Injectable } from '@nestjs/common';
import { ReadRouterService } from '../database/read-router.service.js';

/** The replication heartbeat row: written by the leader, read on replicas for lag. */
@Injectable()
export class HeartbeatRepository {
  constructor(private readonly router: ReadRouterService) {}

  beat(instanceId: string): Promise<void> {
    return this.router.write(async (m) => {
      await m.query(
        `INSERT INTO ops_heartbeat (id, instance_id, beat_at) VALUES (1, $1, now())
         ON CONFLICT (id) DO UPDATE SET instance_id = EXCLUDED.instance_id, beat_at = EXCLUDED.beat_at`,
        [instanceId],
      );
    });
  }
}
