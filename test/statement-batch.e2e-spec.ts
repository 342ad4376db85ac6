import pg from 'pg';
import { QUERY_CANCELED } from '../src/database/node-errors.js';
import {
  localSettingsStatement,
  runStatementBatch,
  Statement,
} from '../src/database/statement-batch.js';
import { StackDb, stackDb } from './support/databases.js';
import { stackEnv } from './support/stack.js';

/**
 * Statement batches (one round trip, one implicit transaction) on the real stack: what
 * the search path relies on, directly on the replica and through PgBouncer's
 * transaction pooling.
 */
describe('statement batches (real stack)', () => {
  let env: Record<string, string>;
  let db: StackDb;
  const clients: pg.Client[] = [];

  beforeAll(async () => {
    env = await stackEnv();
    db = stackDb(env);
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  });

  async function connect(target: 'primary' | 'replica' | 'pgbouncer'): Promise<pg.Client> {
    const c = new pg.Client(
      target === 'pgbouncer'
        ? {
            host: env.PGBOUNCER_HOST,
            port: Number(env.PGBOUNCER_PORT),
            database: env.PGBOUNCER_DB_RO,
            user: db.user,
            password: db.password,
            ssl: db.ssl,
          }
        : {
            host: db.host,
            port: target === 'primary' ? db.primaryPort : db.replicaPort,
            database: 'postgres',
            user: db.user,
            password: db.password,
            ssl: db.ssl,
          },
    );
    clients.push(c);
    await c.connect();
    return c;
  }

  const settingsOf: Statement = {
    sql: `SELECT current_setting('statement_timeout') AS timeout,
                 current_setting('transaction_read_only') AS read_only,
                 current_setting('enable_seqscan') AS seqscan,
                 $1::text[] AS tags, $2::int + 1 AS n, $3::text AS nothing`,
    params: [['a', 'b"c'], 41, null],
  };

  it.each(['replica', 'pgbouncer'] as const)(
    '%s: settings hold for the statements after them, bound parameters round-trip, nothing outlives the batch',
    async (target) => {
      const c = await connect(target);
      const [set, rows] = await runStatementBatch(c, [
        localSettingsStatement({
          statement_timeout: 1234,
          transaction_read_only: 'on',
          enable_seqscan: 'off',
        }),
        settingsOf,
      ]);
      expect(set).toHaveLength(1);
      expect(rows).toEqual([
        {
          timeout: '1234ms',
          read_only: 'on',
          seqscan: 'off',
          tags: ['a', 'b"c'],
          n: 42,
          nothing: null,
        },
      ]);
      // The same client afterwards (through PgBouncer: whichever server it gets) has
      // its defaults: SET LOCAL ended with the batch's transaction.
      for (let i = 0; i < 10; i++) {
        const after = await c.query(
          `SELECT current_setting('statement_timeout') AS timeout, current_setting('enable_seqscan') AS seqscan`,
        );
        expect(after.rows[0]).not.toMatchObject({ timeout: '1234ms' });
        expect(after.rows[0].seqscan).toBe('on');
      }
    },
  );

  it('a statement_timeout set in the batch cancels a later statement of it (SQLSTATE query_canceled)', async () => {
    const c = await connect('replica');
    await expect(
      runStatementBatch(c, [
        localSettingsStatement({ statement_timeout: 100 }),
        { sql: 'SELECT pg_sleep(2)' },
      ]),
    ).rejects.toMatchObject({ code: QUERY_CANCELED });
    // The connection is usable afterwards.
    expect((await c.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });

  it('read-only in the batch refuses a write on the primary, and a failing statement commits nothing', async () => {
    const c = await connect('primary');
    await c.query('CREATE TEMP TABLE batch_probe (v int)');
    await expect(
      runStatementBatch(c, [
        localSettingsStatement({ transaction_read_only: 'on' }),
        // (a temporary table may be written in a read-only transaction, not created)
        { sql: 'CREATE TEMP TABLE batch_refused (v int)' },
      ]),
    ).rejects.toMatchObject({ code: '25006' });
    // Without read-only: the first insert ran, the division failed, the whole batch rolled back.
    await expect(
      runStatementBatch(c, [
        { sql: 'INSERT INTO batch_probe VALUES ($1)', params: [2] },
        { sql: 'SELECT 1 / $1::int', params: [0] },
      ]),
    ).rejects.toMatchObject({ code: '22012' });
    expect((await c.query('SELECT count(*)::int AS n FROM batch_probe')).rows).toEqual([{ n: 0 }]);
    expect(c.getTransactionStatus()).toBe('I');
  });

  it('refuses a setting name that is not an identifier (names are never input)', () => {
    expect(() => localSettingsStatement({ 'x; DROP TABLE t': 1 })).toThrow(/not a setting name/);
    expect(() => localSettingsStatement({})).toThrow(/at least one/);
  });
});
