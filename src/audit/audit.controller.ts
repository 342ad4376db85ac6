import { Controller, Get, Query } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { RequireScopes } from '../security/auth.decorators.js';
import type { AuditRow } from './audit.repository.js';
import { AuditService, VerifyReport } from './audit.service.js';
import { AuditQueryDto, VerifyQueryDto } from './dto/audit.dto.js';

@ApiTags('audit')
@Controller({ path: 'audit-logs', version: '1' })
export class AuditController {
  constructor(private readonly audit: AuditService) {}

  @Get()
  @RequireScopes('audit:read')
  @ApiOperation({
    summary: 'Audit entries in chain order; filters subjectId, actor, eventType, from, to',
  })
  async list(@Query() q: AuditQueryDto): Promise<{ items: AuditRow[]; nextCursor: string | null }> {
    const limit = q.limit ?? 100;
    const items = await this.audit.list({ ...q, afterSeq: q.cursor, limit });
    return {
      items,
      nextCursor: items.length === limit ? String(items[items.length - 1].seq) : null,
    };
  }

  @Get('verify')
  @RequireScopes('audit:read')
  @ApiOperation({
    summary:
      'Walk the hash chain (every retained row, or from the last verified checkpoint); report the first broken link',
  })
  verify(@Query() q: VerifyQueryDto): Promise<VerifyReport> {
    return this.audit.verify({ mode: q.mode ?? 'full' });
  }
}
