import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { ApiFreeFormProperty } from '../../common/dto/free-form.js';

export class FailoverRecordResponseDto {
  @ApiProperty() reason!: string;
  @ApiProperty() planned!: boolean;
  @ApiProperty({ description: 'node (host:port)' }) from!: string;
  @ApiProperty({ nullable: true, type: String }) to!: string | null;
  @ApiProperty({ enum: ['promoted', 'followed', 'cancelled', 'failed'] }) outcome!: string;
  @ApiProperty({ description: 'this instance ran pg_promote()' }) promotedHere!: boolean;
  @ApiProperty({ nullable: true, type: Number }) lagBytes!: number | null;
  @ApiProperty({ format: 'date-time' }) startedAt!: string;
  @ApiProperty() tookMs!: number;
  @ApiPropertyOptional() detail?: string;
}

export class FailoverStateDto {
  @ApiProperty({ enum: ['auto', 'manual', 'off'] }) mode!: string;
  @ApiProperty() inProgress!: boolean;
  @ApiProperty({ nullable: true, type: String }) writesBlocked!: string | null;
  @ApiProperty({ type: [FailoverRecordResponseDto] }) recent!: FailoverRecordResponseDto[];
}

export class RoutingDto {
  @ApiProperty() writes!: string;
  @ApiProperty({ type: [String] }) reads!: string[];
  @ApiProperty() readDefault!: string;
  @ApiProperty() viaPgBouncer!: boolean;
}

export class TopologyNodeDto {
  @ApiProperty({ description: 'host:port' }) name!: string;
  @ApiProperty({ example: 'replica' }) role!: string;
  @ApiProperty() healthy!: boolean;
  @ApiProperty() consecutiveFailures!: number;
  @ApiProperty({ format: 'date-time' }) lastCheckedAt!: string;
  @ApiPropertyOptional() lastError?: string;
  @ApiProperty() fenced!: boolean;
  @ApiProperty({ description: 'added at run time by the replica discovery, not one of DB_NODES' })
  discovered!: boolean;
  @ApiProperty({ nullable: true, type: Number }) timeline!: number | null;
  @ApiProperty({ nullable: true, type: String }) lsn!: string | null;
  @ApiProperty({ nullable: true, type: Number }) replayLagSeconds!: number | null;
  @ApiProperty({ nullable: true, type: Number }) lagBytes!: number | null;
  @ApiProperty({ nullable: true, type: String, description: 'null: may serve reads; else why not' })
  readExclusion!: string | null;
}

export class TopologyResponseDto {
  @ApiProperty({ description: 'the node serving writes' }) writer!: string;
  @ApiProperty({ type: FailoverStateDto }) failover!: FailoverStateDto;
  @ApiProperty({ type: RoutingDto }) routing!: RoutingDto;
  @ApiProperty({ type: [TopologyNodeDto] }) nodes!: TopologyNodeDto[];
}

export class PoolsResponseDto {
  @ApiFreeFormProperty({
    isArray: true,
    description: 'each pool: label, size, active, idle, waiting, utilization',
  })
  pools!: Array<Record<string, unknown>>;
  @ApiFreeFormProperty({ nullable: true, description: 'PgBouncer pool state; null when unused' })
  pgbouncer!: Record<string, unknown> | null;
  @ApiFreeFormProperty({ isArray: true, description: 'recent scaling events' })
  events!: Array<Record<string, unknown>>;
  @ApiProperty({ nullable: true, type: Number }) cap!: number | null;
}

export class JobRunResponseDto {
  @ApiProperty() id!: string;
  @ApiProperty() job!: string;
  @ApiProperty() instanceId!: string;
  @ApiProperty({ enum: ['running', 'succeeded', 'failed'] }) status!: string;
  @ApiProperty({ format: 'date-time' }) startedAt!: string;
  @ApiProperty({ nullable: true, type: String, format: 'date-time' }) finishedAt!: string | null;
  @ApiFreeFormProperty({ nullable: true }) detail!: Record<string, unknown> | null;
}
