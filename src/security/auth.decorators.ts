import { SetMetadata } from '@nestjs/common';
import type { ApiScope } from './scopes.js';

export const IS_PUBLIC = 'dbu:isPublic';
export const REQUIRED_SCOPES = 'dbu:requiredScopes';

/** No API key needed (health probes, metrics unless METRICS_REQUIRE_KEY). */
export const Public = (): MethodDecorator & ClassDecorator => SetMetadata(IS_PUBLIC, true);

/** The caller's key must carry every one of these scopes. */
export const RequireScopes = (...scopes: ApiScope[]): MethodDecorator & ClassDecorator =>
  SetMetadata(REQUIRED_SCOPES, scopes);
