import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `backups.checksum`: the provider's checksum of the whole backup set. For pgBackRest it
 * is the SHA-1 that seals the set's manifest (`backrest-checksum`), and the manifest lists
 * the SHA-1 of every file: one value that names the exact content of the set. RDS
 * snapshots have none (null).
 */
export class BackupChecksum1795651213000 implements MigrationInterface {
  name = 'BackupChecksum1795651213000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE backups ADD COLUMN checksum text`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE backups DROP COLUMN checksum`);
  }
}
