import { Body, Controller, Get, Param, ParseUUIDPipe, Post, Put, Query, Res } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
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

const uuid = new ParseUUIDPipe();

/** A list of every item there is: one page, no further cursor. */
interface Whole<T> {
  items: T[];
  nextCursor: null;
}

@ApiTags('consent')
@Controller({ version: '1' })
export class ConsentController {
  constructor(private readonly consent: ConsentService) {}

  @Get('consent-policies')
  @RequireScopes('users:read')
  @ApiOperation({
    summary:
      'Policies per purpose, each with its immutable versions: { items, nextCursor } (one page: one item per purpose)',
  })
  async policies(): Promise<Whole<PolicyResponse>> {
    return { items: await this.consent.policies(), nextCursor: null };
  }

  @Get('consent-policies/:purpose')
  @RequireScopes('users:read')
  @ApiOperation({ summary: "One purpose's policy with its versions" })
  async policy(@Param() p: PurposeParamDto): Promise<PolicyResponse> {
    return (await this.consent.policies()).find((x) => x.purpose === p.purpose)!;
  }

  @Post('consent-policies')
  @RequireScopes('consent:write')
  @ApiOperation({ summary: 'Publish a new policy version for a purpose (201 + Location)' })
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
  async effective(@Param('id', uuid) id: string): Promise<Whole<EffectiveConsent>> {
    return { items: await this.consent.effective(id), nextCursor: null };
  }

  @Get('users/:id/consents/history')
  @RequireScopes('users:read')
  @ApiOperation({
    summary: 'Every grant and withdrawal, oldest first: { items, nextCursor } (?limit, ?cursor)',
  })
  history(
    @Param('id', uuid) id: string,
    @Query() q: ConsentHistoryQueryDto,
  ): Promise<{ items: ConsentEvent[]; nextCursor: string | null }> {
    return this.consent.historyPage(id, q.limit ?? 100, q.cursor);
  }

  @Put('users/:id/consents/:purpose')
  @RequireScopes('consent:write')
  @ApiOperation({ summary: 'Grant or withdraw: { granted, policyVersion, source }' })
  set(
    @Param('id', uuid) id: string,
    @Param('purpose') purpose: string,
    @Body() dto: SetConsentDto,
  ): Promise<EffectiveConsent> {
    return this.consent.set(id, purpose, dto);
  }
}
