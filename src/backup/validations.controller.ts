import { Controller, Get, HttpCode, Param, Post, Res } from '@nestjs/common';
import { UuidParamPipe } from '../common/params.js';
import { ApiAcceptedResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import {
  ApiErrorResponses,
  ApiUuidParam,
  ApiV1Controller,
  ApiWrite,
  LOCATION_HEADER,
} from '../common/openapi.decorators.js';
import { AcceptedResponseDto } from '../common/dto/error-response.dto.js';
import { ValidationStatusResponseDto } from './dto/backup-response.dto.js';
import type { FastifyReply } from 'fastify';
import { RequireScopes } from '../security/auth.decorators.js';
import { ValidationResponseDto, ValidationService } from './validation.service.js';

@ApiTags('backups')
@ApiV1Controller()
@Controller({ version: '1' })
export class ValidationsController {
  constructor(private readonly validations: ValidationService) {}

  @Post('backups/:id/validations')
  @HttpCode(202)
  @RequireScopes('backup:admin')
  @ApiOperation({ summary: 'Restore a backup into a scratch instance and run the four checks' })
  @ApiAcceptedResponse({ type: AcceptedResponseDto, headers: LOCATION_HEADER })
  @ApiWrite()
  @ApiUuidParam()
  @ApiErrorResponses(404)
  async validate(
    @Param('id', new UuidParamPipe()) id: string,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<{ id: string }> {
    const created = await this.validations.request(id);
    void reply.header('location', `/v1/backup-validations/${created.id}`);
    return created;
  }

  @Get('backup-validations/:id')
  @RequireScopes('backup:admin')
  @ApiOperation({ summary: 'A validation: status and the report of each check' })
  @ApiOkResponse({ type: ValidationStatusResponseDto })
  @ApiUuidParam()
  @ApiErrorResponses(404)
  get(@Param('id', new UuidParamPipe()) id: string): Promise<ValidationResponseDto> {
    return this.validations.get(id);
  }
}
