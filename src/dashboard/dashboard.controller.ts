import {
  Body,
  Controller,
  ForbiddenException,
  Get,
  Header,
  HttpCode,
  Inject,
  NotFoundException,
  Param,
  Post,
  Req,
  Res,
  UnauthorizedException,
  VERSION_NEUTRAL,
} from '@nestjs/common';
import {
  ApiExcludeEndpoint,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiOperation,
  ApiProduces,
  ApiTags,
} from '@nestjs/swagger';
import { ApiErrorResponses, ApiPublic } from '../common/openapi.decorators.js';
import { DashboardDataResponseDto } from './dto/dashboard-response.dto.js';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { RateLimiterMemory } from 'rate-limiter-flexible';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { ApiKeyService } from '../security/api-key.service.js';
import { Public, RequireScopes } from '../security/auth.decorators.js';
import { consumeOr429 } from '../security/rate-limit.js';
import { DASHBOARD_COOKIE, readCookie, sessionCookie } from '../security/session-cookie.js';
import { DashboardAssets } from './dashboard-assets.js';
import { DashboardSeriesService } from './dashboard-series.service.js';
import type { DashboardView } from './dashboard-series.service.js';
import { dashboardPage, loginPage } from './dashboard.page.js';
import { DashboardLoginDto } from './dto/dashboard-login.dto.js';

const SCOPE = 'ops:read';

/** Same-origin only, no inline code: the pages load their script and styles from here. */
const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * GET /dashboard: the live dashboard for a signed-in `ops:read` key, else the sign-in
 * form. The form posts the key in a JSON body; the answer is an HttpOnly, SameSite=Strict
 * session cookie (no key in any URL, none stored by the service).
 */
@ApiTags('dashboard')
@Controller({ path: 'dashboard', version: VERSION_NEUTRAL })
export class DashboardController {
  /** Sign-in attempts per client address: 10 a minute. */
  private readonly attempts = new RateLimiterMemory({ points: 10, duration: 60 });

  constructor(
    private readonly series: DashboardSeriesService,
    private readonly keys: ApiKeyService,
    private readonly assets: DashboardAssets,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  @Public()
  @Get()
  @ApiOperation({
    summary: 'The dashboard page (signed in with an ops:read key), else the sign-in form',
  })
  @ApiPublic()
  @ApiProduces('text/html')
  @ApiOkResponse({ description: 'HTML page', schema: { type: 'string' } })
  page(@Req() request: FastifyRequest, @Res() reply: FastifyReply): void {
    const token = readCookie(request.headers.cookie, DASHBOARD_COOKIE);
    const key = token ? this.keys.verifySession(token) : null;
    const html = key?.scopes.has(SCOPE) ? dashboardPage(key.id) : loginPage();
    void reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('content-security-policy', CSP)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('cache-control', 'no-store')
      .send(html);
  }

  @Public()
  @Post('login')
  @HttpCode(204)
  @ApiOperation({ summary: 'Sign in to the dashboard with an ops:read key (sets the cookie)' })
  @ApiPublic()
  @ApiNoContentResponse({
    description: 'signed in',
    headers: {
      'Set-Cookie': { description: 'the HttpOnly session cookie', schema: { type: 'string' } },
    },
  })
  @ApiErrorResponses(400, 401, 403, 429)
  async login(
    @Body() body: DashboardLoginDto,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<void> {
    await consumeOr429(this.attempts, request.ip, reply, 'too many sign-in attempts');
    const key = this.keys.authenticate(body.key);
    if (!key) {
      throw new UnauthorizedException('unknown API key');
    }
    if (!key.scopes.has(SCOPE)) {
      throw new ForbiddenException(`API key ${key.id} lacks scope ${SCOPE}`);
    }
    const minutes = this.config.dashboard.sessionMinutes;
    const token = this.keys.issueSession(key, minutes * 60_000);
    void reply.header('set-cookie', sessionCookie(token, minutes * 60, secure(request)));
  }

  @Public()
  @Post('logout')
  @HttpCode(204)
  @ApiOperation({ summary: 'Sign out of the dashboard (clears the cookie)' })
  @ApiPublic()
  @ApiNoContentResponse({ description: 'signed out (the cookie is cleared)' })
  logout(@Req() request: FastifyRequest, @Res({ passthrough: true }) reply: FastifyReply): void {
    void reply.header('set-cookie', sessionCookie(null, 0, secure(request)));
  }

  @RequireScopes(SCOPE)
  @Get('data')
  @Header('cache-control', 'no-store')
  @ApiOperation({ summary: "The dashboard's time series, active alerts and backups (JSON)" })
  @ApiOkResponse({ type: DashboardDataResponseDto })
  @ApiErrorResponses(401, 403, 429)
  data(): DashboardView {
    return this.series.view();
  }

  @Public()
  @Get('assets/:name')
  @ApiExcludeEndpoint()
  async asset(@Param('name') name: string, @Res() reply: FastifyReply): Promise<void> {
    const asset = await this.assets.get(name);
    if (!asset) {
      throw new NotFoundException(`no dashboard asset ${name}`);
    }
    void reply
      .header('content-type', asset.contentType)
      .header('x-content-type-options', 'nosniff')
      .header('cache-control', 'public, max-age=300')
      .send(asset.body);
  }
}

/** Behind HTTPS (directly or at the load balancer) the cookie is Secure. */
function secure(request: FastifyRequest): boolean {
  return request.protocol === 'https' || request.headers['x-forwarded-proto'] === 'https';
}
