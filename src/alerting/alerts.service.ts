import { Inject, Injectable } from '@nestjs/common';
import { FieldError, InvalidInputError, NotFoundError } from '../common/errors.js';
import { RequestContextStore } from '../common/request-context.js';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { AlertingRepository, AlertStateRow, SilenceRow } from './alerting.repository.js';
import { silenceMatches } from './silences.js';
import type {
  AlertResponseDto,
  AlertsResponseDto,
  CreateSilenceDto,
  SilenceResponseDto,
} from './dto/silence.dto.js';

/** The alerts' and silences' view for the ops API. */
@Injectable()
export class AlertsService {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly repo: AlertingRepository,
  ) {}

  async list(): Promise<AlertsResponseDto> {
    const [rows, silences] = await Promise.all([
      this.repo.listAlerts(this.config.alerting.recentHours),
      this.repo.listSilences(),
    ]);
    const now = new Date();
    const active = silences.filter((s) => new Date(s.startsAt) <= now);
    const view = (r: AlertStateRow): AlertResponseDto => ({
      ...alertView(r),
      silencedBy: active
        .filter((s) => silenceMatches(s.matchers, { alertname: r.rule, severity: r.severity }))
        .map((s) => s.id),
    });
    return {
      active: rows.filter((r) => r.state !== 'resolved').map(view),
      recent: rows.filter((r) => r.state === 'resolved').map(view),
    };
  }

  async createSilence(dto: CreateSilenceDto): Promise<SilenceResponseDto> {
    const now = new Date();
    const startsAt = dto.startsAt ? new Date(dto.startsAt) : now;
    const endsAt = new Date(dto.endsAt);
    const problems: FieldError[] = [];
    if (endsAt <= startsAt) {
      problems.push({ field: 'endsAt', message: 'endsAt must be after startsAt' });
    }
    if (endsAt <= now) {
      problems.push({ field: 'endsAt', message: 'endsAt must be in the future' });
    }
    if (problems.length > 0) {
      throw new InvalidInputError(problems);
    }
    const row = await this.repo.createSilence({
      matchers: dto.matchers.map((m) => ({ name: m.name, value: m.value })),
      startsAt,
      endsAt,
      createdBy: RequestContextStore.get()?.keyId ?? 'unknown',
      comment: dto.comment,
    });
    return silenceView(row);
  }

  async listSilences(): Promise<SilenceResponseDto[]> {
    return (await this.repo.listSilences()).map(silenceView);
  }

  async getSilence(id: string): Promise<SilenceResponseDto> {
    const row = await this.repo.getSilence(id);
    if (!row) {
      throw new NotFoundError('silence', id);
    }
    return silenceView(row);
  }

  async expireSilence(id: string): Promise<SilenceResponseDto> {
    const row = await this.repo.expireSilence(id);
    if (!row) {
      throw new NotFoundError('silence', id);
    }
    return silenceView(row);
  }
}

const iso = (d: Date | null): string | null => (d ? new Date(d).toISOString() : null);

function alertView(r: AlertStateRow): Omit<AlertResponseDto, 'silencedBy'> {
  return {
    alert: r.rule,
    severity: r.severity,
    state: r.state,
    value: r.value,
    comparison: r.comparison,
    threshold: r.threshold,
    pendingSince: iso(r.pendingSince),
    firingSince: iso(r.firingSince),
    resolvedAt: iso(r.resolvedAt),
    lastNotifiedAt: iso(r.lastNotifiedAt),
    evaluatedAt: new Date(r.evaluatedAt).toISOString(),
  };
}

function silenceView(s: SilenceRow): SilenceResponseDto {
  return {
    id: s.id,
    matchers: s.matchers,
    startsAt: new Date(s.startsAt).toISOString(),
    endsAt: new Date(s.endsAt).toISOString(),
    createdBy: s.createdBy,
    comment: s.comment,
    createdAt: new Date(s.createdAt).toISOString(),
  };
}
