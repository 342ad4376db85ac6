import type { LoggerService } from '@nestjs/common';
import { log, Progress } from './progress.js';
import { BENCH_CRYPTO_ENV } from './service.js';
import { summarize, type LatencySummary } from './stats.js';

/** Nest's warnings and errors to stderr (stdout carries the result table). */
class StderrLogger implements LoggerService {
  log(): void {}
  warn(message: unknown, ...rest: unknown[]): void {
    log(`service warn: ${describe(message, rest)}`);
  }
  error(message: unknown, ...rest: unknown[]): void {
    log(`service error: ${describe(message, rest)}`);
  }
}

function describe(message: unknown, rest: unknown[]): string {
  return [message, ...rest]
    .map((x) => (typeof x === 'string' ? x : x instanceof Error ? x.message : JSON.stringify(x)))
    .join(' ');
}

export interface InProcessResult {
  sampleIds: number;
  valueBytesMean: number;
  /** µs per call */
  l1Hit: LatencySummary;
  l2Hit: LatencySummary;
  dbRead: LatencySummary;
  missLoadFill: LatencySummary;
  notes: string[];
}

/** Awaits `fn(i)` `n` times, each timed alone (µs); `check` runs outside the timed part. */
async function timeEach<T>(
  label: string,
  n: number,
  fn: (i: number) => Promise<T>,
  opts: { before?: (i: number) => Promise<unknown> | void; check?: (v: T, i: number) => void },
): Promise<number[]> {
  const samples = new Array<number>(n);
  const progress = new Progress(label, n, 'calls', 5_000);
  for (let i = 0; i < n; i++) {
    await opts.before?.(i);
    const t0 = process.hrtime.bigint();
    const v = await fn(i);
    samples[i] = Number(process.hrtime.bigint() - t0) / 1000;
    opts.check?.(v, i);
    progress.update(i + 1);
  }
  progress.done(n);
  return samples;
}

/**
 * Boots the compiled AppModule as an application context (no HTTP) on the bench
 * database and times, inside the process: a TieredCacheService.get answered by L1,
 * one answered by L2 (the key dropped from L1 first, outside the timing; the L2 hit
 * refills L1, which is part of its cost), a RecipesRepository.getById (the read the
 * service does on a miss, on the replica), and a getOrLoad after both tiers lost
 * the key (L1 miss, L2 miss, the database read, the fill of both tiers).
 */
export async function measureInProcess(
  env: Record<string, string>,
  ids: readonly string[],
  iterations: { l1: number; l2: number; db: number; miss: number },
): Promise<InProcessResult> {
  await import('reflect-metadata');
  const { NestFactory } = await import('@nestjs/core');
  const { AppModule } = await import('../../src/app.module.js');
  const { loadConfig } = await import('../../src/config/app-config.js');
  const { TieredCacheService } = await import('../../src/cache/tiered-cache.service.js');
  const { RecipesRepository } = await import('../../src/recipes/recipes.repository.js');
  const { toDto } = await import('../../src/recipes/recipes.service.js');
  type Dto = ReturnType<typeof toDto>;

  const app = await NestFactory.createApplicationContext(
    AppModule.forRoot(loadConfig({ ...BENCH_CRYPTO_ENV, ...env })),
    {
      logger: new StderrLogger(),
      abortOnError: false,
    },
  );
  try {
    const cache = app.get(TieredCacheService);
    const repo = app.get(RecipesRepository, { strict: false });
    const type = 'recipes' as const;
    const at = (i: number): string => ids[i % ids.length];
    const mustHit = (v: Dto | undefined, i: number): void => {
      if (v?.id !== at(i)) {
        throw new Error(
          `expected a cache hit for ${at(i)}, got ${v === undefined ? 'a miss' : v.id}`,
        );
      }
    };

    // Fill both tiers with the service's own DTO shape.
    let bytes = 0;
    for (const id of ids) {
      const row = await repo.getById(id);
      if (!row) {
        throw new Error(`recipe ${id} is missing from the bench database`);
      }
      const dto = toDto(row);
      bytes += JSON.stringify(dto).length;
      await cache.set(type, id, dto);
    }
    log(
      `in-process: ${ids.length} recipes in both tiers, ${Math.round(bytes / ids.length)} B each`,
    );

    const warm = (n: number): number => Math.min(1_000, Math.ceil(n / 10));
    await timeEach('L1 hit warm-up', warm(iterations.l1), (i) => cache.get<Dto>(type, at(i)), {
      check: mustHit,
    });
    const l1 = await timeEach('L1 hit', iterations.l1, (i) => cache.get<Dto>(type, at(i)), {
      check: mustHit,
    });

    const dropL1 = (i: number): void => {
      cache.dropLocal(type, [at(i)]);
    };
    await timeEach('L2 hit warm-up', warm(iterations.l2), (i) => cache.get<Dto>(type, at(i)), {
      before: dropL1,
      check: mustHit,
    });
    const l2 = await timeEach('L2 hit', iterations.l2, (i) => cache.get<Dto>(type, at(i)), {
      before: dropL1,
      check: mustHit,
    });

    const mustRow = (row: { id: string } | null, i: number): void => {
      if (row?.id !== at(i)) {
        throw new Error(`getById(${at(i)}) returned ${row ? row.id : 'null'}`);
      }
    };
    await timeEach('DB read warm-up', warm(iterations.db), (i) => repo.getById(at(i)), {
      check: mustRow,
    });
    const db = await timeEach('DB read', iterations.db, (i) => repo.getById(at(i)), {
      check: mustRow,
    });

    const load = async (i: number): Promise<Dto | null> => {
      const row = await repo.getById(at(i));
      return row ? toDto(row) : null;
    };
    const miss = await timeEach(
      'miss+load+fill',
      iterations.miss,
      (i) => cache.getOrLoad(type, at(i), () => load(i)),
      {
        before: (i) => cache.delete(type, [at(i)]),
        check: (v, i) => mustHit(v ?? undefined, i),
      },
    );

    return {
      sampleIds: ids.length,
      valueBytesMean: Math.round(bytes / ids.length),
      l1Hit: summarize(l1),
      l2Hit: summarize(l2),
      dbRead: summarize(db),
      missLoadFill: summarize(miss),
      notes: [
        'µs per awaited call, timed one by one with process.hrtime.bigint() in the benchmark process',
        'L1 and L2 hits include the hit counter and the operation-duration histogram the service records',
        `DB read: RecipesRepository.getById over the service's DataSource, routed to the replica (${iterations.db} calls cycling over ${ids.length} ids, rows in shared_buffers)`,
      ],
    };
  } finally {
    await app.close();
  }
}
