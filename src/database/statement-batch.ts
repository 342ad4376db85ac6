import { createRequire } from 'node:module';
import pg from 'pg';

/** node-postgres' own conversion of a bound value (arrays, dates, buffers, JSON) to the wire. */
const { prepareValue } = createRequire(import.meta.url)('pg/lib/utils.js') as {
  prepareValue(this: void, value: unknown): unknown;
};

/** One SQL statement with its bound parameters. */
export interface Statement {
  sql: string;
  params?: readonly unknown[];
}

/** Settings for the rest of a transaction (`set_config(name, value, true)`). */
export type LocalSettings = Record<string, string | number>;

/** The rows of one statement of a batch. */
export type Rows = Array<Record<string, unknown>>;

/** Setting names are identifiers (dotted for extensions), never input. */
const SETTING_NAME = /^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$/;

/**
 * `SELECT set_config($1, $2, true), …`: several settings in one statement, the names
 * and values bound. They hold until the end of the transaction (SET LOCAL).
 */
export function localSettingsStatement(settings: LocalSettings): Statement {
  const names = Object.keys(settings);
  if (names.length === 0) {
    throw new Error('localSettingsStatement needs at least one setting');
  }
  for (const name of names) {
    if (!SETTING_NAME.test(name)) {
      throw new Error(`not a setting name: ${name}`);
    }
  }
  return {
    sql: `SELECT ${names.map((_, i) => `set_config($${2 * i + 1}, $${2 * i + 2}, true)`).join(', ')}`,
    params: names.flatMap((n) => [n, String(settings[n])]),
  };
}

interface WireConnection {
  parse(msg: { text: string; name?: string; types?: unknown[] }): void;
  bind(msg: {
    portal?: string;
    statement?: string;
    values: readonly unknown[];
    valueMapper?: (value: unknown) => unknown;
  }): void;
  describe(msg: { type: 'P' | 'S'; name?: string }): void;
  execute(msg: { portal?: string; rows?: number }): void;
  sync(): void;
}

type Done = (err: Error | undefined, results: unknown) => void;

/**
 * Statements sent in one round trip on the extended protocol: Parse, Bind, Describe and
 * Execute of each, then a single Sync. PostgreSQL runs them in order as one implicit
 * transaction, committed at the Sync and rolled back whole when one fails, so settings
 * made with `set_config(…, true)` by one hold for the statements after it (each is
 * planned at its Bind, after the ones before it ran, and its statement_timeout starts
 * afresh). Safe behind PgBouncer's transaction pooling: the transaction ends with the
 * batch. Rows are parsed by node-postgres' Query machinery, which already collects the
 * results of several statements; this class only changes what is written to the wire
 * (node-postgres' documented Submittable extension point).
 */
class StatementBatch extends pg.Query {
  private readonly statements: readonly Statement[];

  constructor(statements: readonly Statement[], done: Done) {
    super({ text: statements.map((s) => s.sql).join(';\n') }, done as never);
    this.statements = statements;
  }

  /** Always the extended protocol (the Query base class asks this in submit()). */
  requiresPreparation(): boolean {
    return true;
  }

  /** Called by the base class's submit() inside a cork: one write for the whole batch. */
  prepare(connection: WireConnection): void {
    for (const s of this.statements) {
      connection.parse({ text: s.sql });
      connection.bind({ values: s.params ?? [], valueMapper: prepareValue });
      connection.describe({ type: 'P', name: '' });
      connection.execute({ portal: '' });
    }
    connection.sync();
  }
}

/**
 * Runs `statements` on `client` in one round trip and one implicit transaction (see
 * StatementBatch); resolves to the rows of each, in order. A failing statement rejects
 * with PostgreSQL's error, and nothing of the batch is committed.
 */
export function runStatementBatch(
  client: pg.ClientBase,
  statements: readonly Statement[],
): Promise<Rows[]> {
  if (statements.length === 0) {
    return Promise.resolve([]);
  }
  return new Promise<Rows[]>((resolve, reject) => {
    const batch = new StatementBatch(statements, (err, results) => {
      if (err) {
        reject(err);
        return;
      }
      const list = (Array.isArray(results) ? results : [results]) as pg.QueryResult[];
      if (list.length !== statements.length) {
        reject(
          new Error(
            `statement batch: ${statements.length} statements sent, ${list.length} results received`,
          ),
        );
        return;
      }
      resolve(list.map((r) => r.rows as Rows));
    });
    client.query(batch);
  });
}
