import { CacheModule as NestCacheModule } from '@nestjs/cache-manager';
import { Global, Module } from '@nestjs/common';
import { APP_CONFIG } from '../config/config.module.js';
import { CacheGenerationsService } from './cache-generations.service.js';
import { CacheController } from './cache.controller.js';
import { CacheMetrics } from './cache.metrics.js';
import { CacheService } from './cache.service.js';
import { CACHE_TIERS, CacheTiers, createCacheTiers } from './cache.tiers.js';
import { InvalidationBusService } from './invalidation-bus.service.js';
import { RedisService } from './redis.service.js';
import { TieredCacheService } from './tiered-cache.service.js';

/** Redis, the Keyv tiers, and the strategies. */
@Global()
@Module({
  providers: [
    RedisService,
    CacheMetrics,
    {
      provide: CACHE_TIERS,
      inject: [APP_CONFIG, RedisService, CacheMetrics],
      useFactory: createCacheTiers,
    },
  ],
  exports: [RedisService, CacheMetrics, CACHE_TIERS],
})
class CacheTiersModule {}

@Global()
@Module({
  imports: [
    CacheTiersModule,
    NestCacheModule.registerAsync({
      imports: [CacheTiersModule],
      inject: [CACHE_TIERS],
      useFactory: (tiers: CacheTiers) => ({ stores: [tiers.l1, tiers.l2] }),
    }),
  ],
  controllers: [CacheController],
  providers: [TieredCacheService, InvalidationBusService, CacheGenerationsService, CacheService],
  exports: [CacheTiersModule, TieredCacheService, CacheGenerationsService, CacheService],
})
export class CacheInfraModule {}
