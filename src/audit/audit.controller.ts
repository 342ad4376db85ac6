import { Controller, Get, Query } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiV1Controller } from '../common/openapi.decorators.js';
import { AuditListResponseDto, VerifyReportResponseDto } from './dto/audit-response.dto.js';
import { RequireScopes } from '../security/auth.decorators.js';
import { decodeSeqCursor, encodeSeqCursor } from '../common/pagination.js';
import type { AuditRow } from './audit.repository.js';
import { AuditService, VerifyReport } from './audit.service.js';
import { AuditQueryDto, VerifyQueryDto } from './dto/audit.dto.js';

/** An audit entry as the API gives it: times as ISO-8601 strings, like every other time. */
export type AuditItem = Omit<AuditRow, 'occurredAtMs'> & { occurredAt: string };

function toItem({ occurredAtMs, ...rest }: AuditRow): AuditItem {
  return { ...rest, occurredAt: new Date(occurredAtMs).toISOString() };
}

@ApiTags('audit')
@ApiV1Controller()
@Controller({ path: 'audit-logs', version: '1' })
export class AuditController {
  constructor(private readonly audit: AuditService) {}

  @Get()
  @RequireScopes('audit:read')
  @ApiOperation({
    summary: 'Audit entries in chain order; filters subjectId, actor, eventType, from, to',
  })
  @ApiOkResponse({ type: AuditListResponseDto })
  async list(
    @Query() q: AuditQueryDto,
  ): Promise<{ items: AuditItem[]; nextCursor: string | null }> {
    const limit = q.limit ?? 100;
    const { cursor, ...filters } = q;
    const afterSeq = cursor === undefined ? undefined : decodeSeqCursor(cursor);
    const rows = await this.audit.list({ ...filters, afterSeq, limit });
    return {
      items: rows.map(toItem),
      nextCursor: rows.length === limit ? encodeSeqCursor(rows[rows.length - 1].seq) : null,
    };
  }

  @Get('verify')
  @RequireScopes('audit:read')
  @ApiOperation({
    summary:
      'Walk the hash chain (every retained row, or from the last verified checkpoint); report the first broken link',
  })
  @ApiOkResponse({ type: VerifyReportResponseDto })
  verify(@Query() q: VerifyQueryDto): Promise<VerifyReport> {
    return this.audit.verify({ mode: q.mode ?? 'full' });
  }
}
