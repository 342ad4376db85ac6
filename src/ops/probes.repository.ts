import { Injectable } from '@nestjs/common';
import { ReadRouterService } from '../database/read-router.service.js';

export interface ProbeRow {
  id: string;
  note: string;
  createdAt: string;
  port: number;
  inRecovery: boolean;
}

const SERVED = `inet_server_port() AS port, pg_is_in_recovery() AS "inRecovery"`;

/** Routing probes: rows written on the writer and read back wherever reads are routed. */
@Injectable()
export class ProbesRepository {
  constructor(private readonly router: ReadRouterService) {}

  create(note: string): Promise<ProbeRow> {
    return this.router.write(async (m) => {
      const rows: ProbeRow[] = await m.query(
        `INSERT INTO ops_probes (note) VALUES ($1)
         RETURNING id::text AS id, note, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS "createdAt", ${SERVED}`,
        [note],
      );
      return rows[0];
    });
  }

  getById(id: string): Promise<ProbeRow | null> {
    return this.router.read(async (m) => {
      const rows: ProbeRow[] = await m.query(
        `SELECT id::text AS id, note, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS "createdAt", ${SERVED}
           FROM ops_probes WHERE id = $1`,
        [id],
      );
      return rows[0] ?? null;
    });
  }
}
