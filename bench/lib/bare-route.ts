/**
 * The framework's ceiling for issue 14's target 3: a bare NestJS + Fastify application
 * with one route, `GET /v1/recipes/:id`, that answers every id with the same recipe body
 * as the service (BARE_TEMPLATE, the service's own answer, with the id replaced) from a
 * plain object. Same framework versions, Fastify's defaults (logger off), no auth, no
 * cache, no logging, no metrics: what a request costs before the service does anything.
 * Run by bench:cache as a child process (`node dist/bench/lib/bare-route.js`), listening
 * on HOST:PORT; `GET /health/ready` answers 200 for the bench's readiness poll.
 */
import 'reflect-metadata';
import { Controller, Get, Module, Param } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';

const template = JSON.parse(process.env.BARE_TEMPLATE ?? '{}') as Record<string, unknown>;

@Controller()
class BareController {
  @Get('v1/recipes/:id')
  recipe(@Param('id') id: string): Record<string, unknown> {
    return { ...template, id };
  }

  @Get('health/ready')
  ready(): { status: string } {
    return { status: 'ok' };
  }
}

@Module({ controllers: [BareController] })
class BareModule {}

async function main(): Promise<void> {
  const app = await NestFactory.create<NestFastifyApplication>(
    BareModule,
    new FastifyAdapter({ logger: false }),
    { logger: ['error'] },
  );
  const stop = (): void => {
    void app.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  await app.listen(Number(process.env.PORT), process.env.HOST ?? '127.0.0.1');
}

void main();
