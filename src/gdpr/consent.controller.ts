import { Body, Controller, Get, Param, ParseUUIDPipe, Post, Put } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { RequireScopes } from '../security/auth.decorators.js';
import { ConsentService } from './consent.service.js';
import type { ConsentEvent, EffectiveConsent, PolicyResponse } from './dto/consent.dto.js';
import { PublishPolicyDto, SetConsentDto } from './dto/consent.dto.js';

const uuid = new ParseUUIDPipe();

@ApiTags('consent')
@Controller({ version: '1' })
export class ConsentController {
  constructor(private readonly consent: ConsentService) {}

  @Get('consent-policies')
  @RequireScopes('users:read')
  @ApiOperation({ summary: 'Policies per purpose, each with its immutable versions' })
  policies(): Promise<PolicyResponse[]> {
    return this.consent.policies();
  }

  @Post('consent-policies')
  @RequireScopes('consent:write')
  @ApiOperation({ summary: 'Publish a new policy version for a purpose' })
  publish(@Body() dto: PublishPolicyDto): Promise<PolicyResponse> {
    return this.consent.publish(dto);
  }

  @Get('users/:id/consents')
  @RequireScopes('users:read')
  @ApiOperation({ summary: "The user's effective consent per purpose" })
  effective(@Param('id', uuid) id: string): Promise<EffectiveConsent[]> {
    return this.consent.effective(id);
  }

  @Get('users/:id/consents/history')
  @RequireScopes('users:read')
  @ApiOperation({ summary: 'Every grant and withdrawal, oldest first' })
  history(@Param('id', uuid) id: string): Promise<ConsentEvent[]> {
    return this.consent.history(id);
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
