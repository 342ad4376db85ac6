import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';

export class TopSqlItemDto {
  @ApiProperty({ description: 'pg_stat_statements queryid (a 64-bit integer, as a string)' })
  queryId!: string;
  @ApiProperty({
    nullable: true,
    type: String,
    description: 'normalised text: constants are $n or ?, never a value',
  })
  query!: string | null;
  @ApiProperty() calls!: number;
  @ApiProperty({ description: 'execution time spent in the window, ms' }) totalTimeMs!: number;
  @ApiProperty() meanTimeMs!: number;
  @ApiProperty() rows!: number;
  @ApiProperty() sharedBlksHit!: number;
  @ApiProperty() sharedBlksRead!: number;
}

export class TopSqlResponseDto {
  @ApiProperty({ format: 'date-time' }) from!: string;
  @ApiProperty({ format: 'date-time' }) to!: string;
  @ApiProperty({
    description:
      'pg_stat_statements can be read on the writer now; false: top SQL is not being collected (see reason), items are whatever history holds',
  })
  available!: boolean;
  @ApiProperty({ nullable: true, type: String }) reason!: string | null;
  @ApiProperty({ description: 'seconds between snapshots: the resolution of the window' })
  snapshotSeconds!: number;
  @ApiProperty({ type: [TopSqlItemDto] }) items!: TopSqlItemDto[];
}

export class WaitLoadDto {
  @ApiProperty({ description: 'pg_stat_activity.wait_event_type; CPU when waiting on nothing' })
  waitEventType!: string;
  @ApiPropertyOptional({ description: 'pg_stat_activity.wait_event; CPU when waiting on nothing' })
  waitEvent?: string;
  @ApiProperty({ description: 'average active sessions in this state over the window' })
  aas!: number;
}

export class StatementLoadDto {
  @ApiProperty({ nullable: true, type: String, description: 'null: sessions without a query id' })
  queryId!: string | null;
  @ApiProperty({ nullable: true, type: String }) query!: string | null;
  @ApiProperty() aas!: number;
  @ApiProperty({ type: [WaitLoadDto] }) waits!: WaitLoadDto[];
}

export class WaitsResponseDto {
  @ApiProperty({ format: 'date-time' }) from!: string;
  @ApiProperty({ format: 'date-time' }) to!: string;
  @ApiProperty({ description: 'pg_stat_activity samples in the minutes overlapping the window' })
  samples!: number;
  @ApiProperty({ description: 'database load: active sessions, averaged over the samples' })
  averageActiveSessions!: number;
  @ApiProperty({ type: [WaitLoadDto] }) byWaitEventType!: WaitLoadDto[];
  @ApiProperty({ type: [WaitLoadDto] }) byWaitEvent!: WaitLoadDto[];
  @ApiProperty({ type: [StatementLoadDto] }) byStatement!: StatementLoadDto[];
}

export class LockWaitDto {
  @ApiProperty() locktype!: string;
  @ApiProperty() mode!: string;
  @ApiProperty({ nullable: true, type: String }) relation!: string | null;
}

export class BlockingNodeDto {
  @ApiProperty() pid!: number;
  @ApiPropertyOptional({ type: [Number] }) blockedBy?: number[];
  @ApiPropertyOptional({ nullable: true, type: String }) usename?: string | null;
  @ApiPropertyOptional({ nullable: true, type: String }) applicationName?: string | null;
  @ApiPropertyOptional({ nullable: true, type: String }) clientAddr?: string | null;
  @ApiPropertyOptional({ nullable: true, type: String }) state?: string | null;
  @ApiPropertyOptional({ nullable: true, type: String }) waitEventType?: string | null;
  @ApiPropertyOptional({ nullable: true, type: String }) waitEvent?: string | null;
  @ApiPropertyOptional({ nullable: true, type: String }) queryId?: string | null;
  @ApiPropertyOptional({ nullable: true, type: String, description: 'normalised, no values' })
  query?: string | null;
  @ApiPropertyOptional({ nullable: true, type: String, format: 'date-time' })
  xactStart?: string | null;
  @ApiPropertyOptional({ nullable: true, type: String, format: 'date-time' })
  stateChange?: string | null;
  @ApiPropertyOptional({ type: LockWaitDto, nullable: true }) waitingFor?: LockWaitDto | null;
  @ApiPropertyOptional({ description: 'a blocker outside the service database (pid only)' })
  outsideView?: boolean;
  @ApiPropertyOptional({ description: 'this pid closes a lock cycle on this branch' })
  cycle?: boolean;
  @ApiProperty({
    type: () => [BlockingNodeDto],
    description: 'sessions waiting for this one, nested',
  })
  blocking!: BlockingNodeDto[];
}

export class LocksResponseDto {
  @ApiProperty({ description: 'node (host:port) whose sessions these are: the writer' })
  node!: string;
  @ApiProperty({ format: 'date-time' }) takenAt!: string;
  @ApiProperty({ description: 'sessions waiting for a lock' }) blockedSessions!: number;
  @ApiProperty({ type: [BlockingNodeDto], description: 'roots block others and wait for nobody' })
  trees!: BlockingNodeDto[];
}

export class ConnectionGroupDto {
  @ApiProperty() applicationName!: string;
  @ApiProperty({ nullable: true, type: String }) usename!: string | null;
  @ApiProperty({ nullable: true, type: String }) clientAddr!: string | null;
  @ApiProperty() state!: string;
  @ApiProperty() count!: number;
  @ApiProperty({ nullable: true, type: Number }) maxIdleInTransactionSeconds!: number | null;
  @ApiProperty({ nullable: true, type: String, format: 'date-time' })
  oldestXactStart!: string | null;
}

export class IdleInTransactionDto {
  @ApiProperty() pid!: number;
  @ApiProperty() applicationName!: string;
  @ApiProperty({ nullable: true, type: String }) usename!: string | null;
  @ApiProperty({ nullable: true, type: String }) clientAddr!: string | null;
  @ApiProperty() state!: string;
  @ApiProperty({ description: 'seconds since its last statement ended' }) idleSeconds!: number;
  @ApiProperty({ nullable: true, type: String, format: 'date-time' }) xactStart!: string | null;
  @ApiProperty({ nullable: true, type: Number }) xactSeconds!: number | null;
  @ApiProperty({ nullable: true, type: String, description: 'last statement, normalised' })
  query!: string | null;
}

export class ConnectionsResponseDto {
  @ApiProperty() node!: string;
  @ApiProperty({ format: 'date-time' }) takenAt!: string;
  @ApiProperty() total!: number;
  @ApiProperty({ nullable: true, type: Number }) maxIdleInTransactionSeconds!: number | null;
  @ApiProperty({ type: [ConnectionGroupDto] }) groups!: ConnectionGroupDto[];
  @ApiProperty({ type: [IdleInTransactionDto], description: 'oldest first, at most 50' })
  idleInTransaction!: IdleInTransactionDto[];
}
