import { normalizeStatement } from './sql-normalize.js';

describe(normalizeStatement.name, () => {
  it.each([
    ['SELECT pg_sleep(0.3), $1::text AS secret', 'SELECT pg_sleep(?), $1::text AS secret'],
    [
      "SELECT * FROM users WHERE email = 'a@b.c' AND id = 42",
      'SELECT * FROM users WHERE email = ? AND id = ?',
    ],
    ["SELECT 'it''s', E'a\\'b', 1e10, .5, -3", 'SELECT ?, ?, ?, ?, -?'],
    ['SELECT $tag$secret$tag$, $$also secret$$', 'SELECT ?, ?'],
    [
      'SELECT t1.col2 FROM "Table 9" t1 WHERE x = $12',
      'SELECT t1.col2 FROM "Table 9" t1 WHERE x = $12',
    ],
    ["SELECT 1 -- password 'hunter2'\n FROM x /* 123 */", 'SELECT ? FROM x'],
    ['SELECT\n\n  a,\tb   FROM   c LIMIT 10', 'SELECT a, b FROM c LIMIT ?'],
    ["SELECT 'unterminated", 'SELECT ?'],
  ])('%j → %j', (sql, expected) => {
    expect(normalizeStatement(sql)).toBe(expected);
  });

  it('cuts long statements', () => {
    const long = `SELECT ${'a, '.repeat(1_000)}b`;
    expect(normalizeStatement(long).length).toBe(1_001);
  });
});
