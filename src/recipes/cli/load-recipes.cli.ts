import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { createPino, PinoLoggerService } from '../../common/logger.js';
import { createClient, RedisClientType } from '@keyv/redis';
import { redisClientOptions } from '../../cache/redis-options.js';
import { bumpGeneration } from '../../cache/cache-generations.service.js';
import { cacheNamespace } from '../../cache/tiered-cache.service.js';
import type { AppConfig } from '../../config/app-config.js';
import { ConfigValidationError, loadConfig } from '../../config/app-config.js';
import { discoverTopology, routeTargets } from '../../database/boot.js';
import { buildDataSourceOptions } from '../../database/data-source.js';
import { LoadCheckpoint, LoadError, loadRecipes } from './recipe-loader.js';

/**
 * `npm run recipes:load -- <file.jsonl> [--batch N]`: bulk-load recipes with
 * embeddings; shows progress on stderr; re-run the same command after a crash
 * and it resumes from the last committed batch.
 */
async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const file = args.find((a) => !a.startsWith('--'));
  const batchIndex = args.indexOf('--batch');
  const batchSize = batchIndex >= 0 ? Number(args[batchIndex + 1]) : undefined;
  if (!file || (batchSize !== undefined && !(batchSize >= 1 && batchSize <= 100))) {
    process.stderr.write('usage: npm run recipes:load -- <file.jsonl> [--batch 1..100]\n');
    process.exit(2);
  }
  const config = loadConfig();
  Logger.overrideLogger(new PinoLoggerService(createPino(config.logLevel)));
  const topology = await discoverTopology(config);
  const { options } = buildDataSourceOptions(config, routeTargets(topology), { writerOnly: true });
  const dataSource = new DataSource(options);
  await dataSource.initialize();
  const started = Date.now();
  const tty = process.stderr.isTTY;
  const progress = (cp: LoadCheckpoint, total: number): void => {
    const pct = total > 0 ? (100 * cp.offset) / total : 100;
    const rate = cp.rows / Math.max((Date.now() - started) / 1000, 0.001);
    const eta = pct > 0 ? ((Date.now() - started) / 1000) * ((100 - pct) / pct) : 0;
    const width = 30;
    const filled = Math.round((pct / 100) * width);
    const line = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${pct.toFixed(1)}%  ${cp.rows} rows  ${rate.toFixed(0)} rows/s  ETA ${eta.toFixed(0)}s`;
    process.stderr.write(tty ? `\r${line}` : `${line}\n`);
  };
  const searches = await searchGenerationBumper(config, dataSource);
  try {
    const result = await loadRecipes(dataSource, file, {
      batchSize,
      onProgress: progress,
      afterBatch: searches.bump,
    });
    if (tty) {
      process.stderr.write('\n');
    }
    process.stdout.write(
      `${JSON.stringify({ file, rows: result.rows, lines: result.lines, resumedFromLine: result.resumedFromLine, seconds: result.seconds })}\n`,
    );
  } finally {
    await searches.close();
    await dataSource.destroy();
  }
}

/**
 * Cached search results must not outlive a committed batch: after each one, the
 * recipes' search generation is bumped in Redis with the writer's WAL position, as
 * the service does after its own writes. Without Redis (or caching) this says so once.
 */
async function searchGenerationBumper(
  config: AppConfig,
  dataSource: DataSource,
): Promise<{ bump: () => Promise<void>; close: () => Promise<void> }> {
  const none = { bump: async () => undefined, close: async () => undefined };
  if (!config.cache.enabled) {
    return none;
  }
  const client = createClient(
    redisClientOptions(config.redis, {
      connectTimeout: config.redis.connectTimeoutMs,
      reconnectStrategy: false,
    }),
  ) as RedisClientType;
  let warned = false;
  const warn = (err: Error): void => {
    if (!warned) {
      warned = true;
      process.stderr.write(
        `\nwarning: cached search results were not invalidated (${err.message}); ` +
          'run POST /v1/ops/cache/invalidate {"type":"search_results"} after the load\n',
      );
    }
  };
  client.on('error', warn);
  try {
    await client.connect();
  } catch (err) {
    warn(err as Error);
    return none;
  }
  const namespace = cacheNamespace(config);
  return {
    bump: async () => {
      try {
        const rows: Array<{ lsn: string }> = await dataSource.query(
          'SELECT pg_current_wal_lsn()::text AS lsn',
        );
        await bumpGeneration(client, namespace, 'search_results', rows[0]?.lsn ?? null);
      } catch (err) {
        warn(err as Error);
      }
    },
    close: async () => {
      await client.close().catch(() => undefined);
    },
  };
}

main().catch((err: unknown) => {
  const message =
    err instanceof LoadError || err instanceof ConfigValidationError
      ? err.message
      : err instanceof Error
        ? (err.stack ?? err.message)
        : String(err);
  process.stderr.write(
    `\nload failed: ${message}\n(re-run the same command to resume after fixing the cause)\n`,
  );
  process.exit(1);
});
