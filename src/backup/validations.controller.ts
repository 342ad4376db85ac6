import { Controller, Get, HttpCode, Param, ParseUUIDPipe, Post, Res } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { RequireScopes } from '../security/auth.decorators.js';
import { ValidationResponseDto, ValidationService } from './validation.service.js';

@ApiTags('backups')
@Controller({ version: '1' })
export class ValidationsController {
  constructor(private readonly validations: ValidationService) {}

  @Post('backups/:id/validations')
  @HttpCode(202)
  @RequireScopes('backup:admin')
  @ApiOperation({ summary: 'Restore a backup into a scratch instance and run the four checks' })
  async validate(
    @Param('id', new ParseUUIDPipe()) id: string,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<{ id: string }> {
    const created = await this.validations.request(id);
    void reply.header('location', `/v1/backup-validations/${created.id}`);
    return created;
  }

  @Get('backup-validations/:id')
  @RequireScopes('backup:admin')
  @ApiOperation({ summary: 'A validation: status and the report of each check' })
  get(@Param('id', new ParseUUIDPipe()) id: string): Promise<ValidationResponseDto> {
    return this.validations.get(id);
  }
}
