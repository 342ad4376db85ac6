/**
 * `--tls-ab` (issue 13): the hot path's cost of TLS, by the `--monitoring-ab` machinery
 * (ABBA rounds, each with a fresh service): "on" is the stack's own settings (DB_SSL=
 * verify-full against its CA, rediss:// with the ACL user), "off" the same service with
 * DB_SSL=disable and Redis's plain port. Monitoring is off on both sides, so the rounds
 * differ in their transport only. The stack must accept plain TCP as well:
 * `STACK_TLS_ONLY=0 bash docker/stack.sh up` (benchmarks only; a plain `up` goes back to
 * TLS only).
 */
import { createClient } from '@keyv/redis';
import pg from 'pg';
import type { AbComparison } from './monitoring-ab.js';
import { MONITORING_OFF_ENV } from './monitoring-ab.js';
import type { StackEnv } from './stack.js';

export const TLS_AB_TARGET_PCT = 5;

const HOW =
  'start the stack with plain TCP allowed too: STACK_TLS_ONLY=0 bash docker/stack.sh up ' +
  '(run `bash docker/stack.sh up` afterwards to go back to TLS only)';

/** Does Redis take a plain-text client on `port` (the ACL user's login and a PING)? */
async function plainRedisAnswers(port: number, user: string, password: string): Promise<boolean> {
  const client = createClient({
    url: `redis://127.0.0.1:${port}`,
    username: user,
    password,
    socket: { connectTimeout: 5_000, reconnectStrategy: false },
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    if (client.isOpen) {
      client.destroy();
    }
  }
}

/** Both sides' settings, after checking that the stack takes plain connections. */
export async function tlsComparison(env: StackEnv): Promise<AbComparison> {
  const plainPg = new pg.Client({
    host: env.primary.host,
    port: env.primary.port,
    user: env.user,
    password: env.password,
    database: 'postgres',
    ssl: false,
  });
  plainPg.on('error', () => undefined);
  try {
    await plainPg.connect();
  } catch (err) {
    throw new Error(`--tls-ab: PostgreSQL refuses plain TCP (${(err as Error).message}): ${HOW}`, {
      cause: err,
    });
  } finally {
    await plainPg.end().catch(() => undefined);
  }
  const redisPort = Number(env.vars.STACK_REDIS_PLAIN_PORT);
  if (
    !redisPort ||
    !(await plainRedisAnswers(redisPort, env.vars.REDIS_USERNAME, env.vars.REDIS_PASSWORD))
  ) {
    throw new Error(`--tls-ab: Redis has no plain port on ${redisPort}: ${HOW}`);
  }
  return {
    name: 'tls',
    envOn: { ...MONITORING_OFF_ENV },
    envOff: {
      ...MONITORING_OFF_ENV,
      DB_SSL: 'disable',
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      REDIS_TLS_CA: '',
      // the benches run the service with NODE_ENV=production, which refuses clear text
      ALLOW_INSECURE_TRANSPORT: 'true',
    },
    targetPct: TLS_AB_TARGET_PCT,
  };
}
