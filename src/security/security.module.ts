import { Global, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { ApiKeyGuard } from './api-key.guard.js';
import { ApiKeyService } from './api-key.service.js';
import { ApiRateLimiter } from './api-rate-limiter.js';

@Global()
@Module({
  providers: [ApiKeyService, ApiRateLimiter, { provide: APP_GUARD, useClass: ApiKeyGuard }],
  exports: [ApiKeyService, ApiRateLimiter],
})
export class SecurityModule {}
