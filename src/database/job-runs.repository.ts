import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';

export interface JobRunRow {
  id: string;
  job: string;
  instanceId: string;
  status: 'running' | 'succeeded' | 'failed';
  startedAt: Date;
  finishedAt: Date | null;
  detail: unknown;
}

/** History of scheduled job runs (`ops_job_runs`), written on the primary. */
@Injectable()
export class JobRunsRepository {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  async start(job: string, instanceId: string): Promise<string> {
    const rows: Array<{ id: string }> = await this.dataSource.query(
      `INSERT INTO ops_job_runs (job, instance_id, status) VALUES ($1, $2, 'running') RETURNING id::text AS id`,
      [job, instanceId],
    );
    return rows[0].id;
  }

  async finish(id: string, status: 'succeeded' | 'failed', detail: unknown): Promise<void> {
    await this.dataSource.query(
      `UPDATE ops_job_runs SET status = $2, finished_at = now(), detail = $3::jsonb WHERE id = $1`,
      [id, status, JSON.stringify(detail ?? null)],
    );
  }

  async getById(id: string): Promise<JobRunRow | null> {
    const rows: JobRunRow[] = await this.dataSource.query(
      `SELECT id::text AS id, job, instance_id AS "instanceId", status, started_at AS "startedAt",
              finished_at AS "finishedAt", detail
         FROM ops_job_runs WHERE id = $1`,
      [id],
    );
    return rows[0] ?? null;
  }

  async recent(job: string, limit: number): Promise<JobRunRow[]> {
    return this.dataSource.query(
      `SELECT id::text AS id, job, instance_id AS "instanceId", status, started_at AS "startedAt",
              finished_at AS "finishedAt", detail
         FROM ops_job_runs WHERE job = $1 ORDER BY started_at DESC LIMIT $2`,
      [job, limit],
    );
  }
}
