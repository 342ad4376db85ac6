import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { setTimeout as sleep } from 'node:timers/promises';
import { AppModule } from './app.module.js';
import { configureApp, FASTIFY_OPTIONS } from './app.setup.js';
import { LifecycleService } from './common/lifecycle.service.js';
import { createPino, PinoLoggerService } from './common/logger.js';
import { AppConfig, ConfigValidationError, loadConfig } from './config/app-config.js';

async function bootstrap(): Promise<void> {
  let config: AppConfig;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigValidationError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const logger = new PinoLoggerService(createPino(config.logLevel));
  for (const reason of config.insecureTransport.reasons) {
    // every boot says it, so that an insecure setting is never forgotten
    logger.warn(
      { setting: reason.split(':')[0], allowInsecureTransport: config.insecureTransport.allowed },
      `insecure transport: ${reason}`,
      'Main',
    );
  }
  const app = await NestFactory.create<NestFastifyApplication>(
    AppModule.forRoot(config),
    new FastifyAdapter(FASTIFY_OPTIONS),
    { logger, bufferLogs: true },
  );
  await configureApp(app);
  await app.listen(config.http.port, config.http.host);
  const log = new Logger('Main');
  log.log({ port: config.http.port, env: config.env }, 'database-unit listening');

  // ECS sends SIGTERM, waits stopTimeout, then SIGKILL: turn readiness 503 first so
  // the load balancer stops sending, then finish in-flight requests and close pools.
  let stopping = false;
  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) {
      return;
    }
    stopping = true;
    app.get(LifecycleService).draining = true;
    log.log({ signal, drainMs: config.http.shutdownDrainMs }, 'shutting down: draining');
    await sleep(config.http.shutdownDrainMs);
    try {
      await app.close();
      log.log('shutdown complete');
      process.exit(0);
    } catch (err) {
      log.error({ err }, 'shutdown failed');
      process.exit(1);
    }
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
}

bootstrap().catch((err: unknown) => {
  process.stderr.write(
    `fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});
