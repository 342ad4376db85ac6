import { Body, Controller, Get, Param, Post, Put, Query, Res } from '@nestjs/common';
import { UuidParamPipe } from '../common/params.js';
import {
  ApiCreatedResponse,
  ApiOkResponse,
  ApiOperation,
  ApiParam,
  ApiTags,
} from '@nestjs/swagger';
import {
  ApiErrorResponses,
  ApiUuidParam,
  ApiV1Controller,
  ApiWrite,
  LOCATION_HEADER,
} from '../common/openapi.decorators.js';
import {
  ConsentHistoryResponseDto,
  EffectiveConsentListResponseDto,
  EffectiveConsentResponseDto,
  PolicyListResponseDto,
  PolicyResponseDto,
} from './dto/consent-response.dto.js';
import { CONSENT_PURPOSES } from './consent.purposes.js';
import type { FastifyReply } from 'fastify';
import { RequireScopes } from '../security/auth.decorators.js';
import { ConsentService } from './consent.service.js';
import type { ConsentEvent, EffectiveConsent, PolicyResponse } from './dto/consent.dto.js';
import {
  ConsentHistoryQueryDto,
  PublishPolicyDto,
  PurposeParamDto,
  SetConsentDto,
} from './dto/consent.dto.js';

const uuid = new UuidParamPipe();

/** A list of every item there is: one page, no further cursor. */
interface Whole<T> {
  items: T[];
  nextCursor: null;
}

@ApiTags('consent')
@ApiV1Controller()
@Controller({ version: '1' })
export class ConsentController {
  constructor(private readonly consent: ConsentService) {}

  @Get('consent-policies')
  @RequireScopes('users:read')
  @ApiOperation({
    summary:
      'Policies per purpose, each with its immutable versions: { items, nextCursor } (one page: one item per purpose)',
  })
  @ApiOkResponse({ type: PolicyListResponseDto })
  async policies(): Promise<Whole<PolicyResponse>> {
    return { items: await this.consent.policies(), nextCursor: null };
  }

  @Get('consent-policies/:purpose')
  @RequireScopes('users:read')
  @ApiOperation({ summary: "One purpose's policy with its versions" })
  @ApiOkResponse({ type: PolicyResponseDto })
  async policy(@Param() p: PurposeParamDto): Promise<PolicyResponse> {
    return (await this.consent.policies()).find((x) => x.purpose === p.purpose)!;
  }

  @Post('consent-policies')
  @RequireScopes('consent:write')
  @ApiOperation({ summary: 'Publish a new policy version for a purpose (201 + Location)' })
  @ApiCreatedResponse({ type: PolicyResponseDto, headers: LOCATION_HEADER })
  @ApiWrite()
  async publish(
    @Body() dto: PublishPolicyDto,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<PolicyResponse> {
    const policy = await this.consent.publish(dto);
    void reply.header('location', `/v1/consent-policies/${policy.purpose}`);
    return policy;
  }

  @Get('users/:id/consents')
  @RequireScopes('users:read')
  @ApiOperation({
    summary:
      "The user's effective consent per purpose: { items, nextCursor } (one page: one item per purpose)",
  })
  @ApiOkResponse({ type: EffectiveConsentListResponseDto })
  @ApiUuidParam()
  @ApiErrorResponses(404)
  async effective(@Param('id', uuid) id: string): Promise<Whole<EffectiveConsent>> {
    return { items: await this.consent.effective(id), nextCursor: null };
  }

  @Get('users/:id/consents/history')
  @RequireScopes('users:read')
  @ApiOperation({
    summary: 'Every grant and withdrawal, oldest first: { items, nextCursor } (?limit, ?cursor)',
  })
  @ApiOkResponse({ type: ConsentHistoryResponseDto })
  @ApiUuidParam()
  @ApiErrorResponses(404)
  history(
    @Param('id', uuid) id: string,
    @Query() q: ConsentHistoryQueryDto,
  ): Promise<{ items: ConsentEvent[]; nextCursor: string | null }> {
    return this.consent.historyPage(id, q.limit ?? 100, q.cursor);
  }

  @Put('users/:id/consents/:purpose')
  @RequireScopes('consent:write')
  @ApiOperation({ summary: 'Grant or withdraw: { granted, policyVersion, source }' })
  @ApiOkResponse({ type: EffectiveConsentResponseDto })
  @ApiParam({ name: 'purpose', enum: CONSENT_PURPOSES })
  @ApiWrite()
  @ApiUuidParam()
  @ApiErrorResponses(404)
  set(
    @Param('id', uuid) id: string,
    @Param('purpose') purpose: string,
    @Body() dto: SetConsentDto,
  ): Promise<EffectiveConsent> {
    return this.consent.set(id, purpose, dto);
  }
}
