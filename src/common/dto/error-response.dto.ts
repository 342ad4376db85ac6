import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';

export class FieldErrorDto {
  @ApiProperty({
    description: 'JSON path of the bad input (`items.3.title`), or a header or parameter name',
  })
  field!: string;
  @ApiProperty({ description: 'what is wrong with it' })
  message!: string;
}

/** Every error answer (the global filter's shape). */
export class ErrorResponseDto {
  @ApiProperty({ example: 404 }) statusCode!: number;
  @ApiProperty({ example: 'Not Found' }) error!: string;
  @ApiProperty({ description: 'what went wrong, for a human; validation failures join every line' })
  message!: string;
  @ApiProperty({ description: 'the x-request-id of the request, for the logs' }) requestId!: string;
  @ApiPropertyOptional({
    description: 'a stable machine-readable code (NOT_FOUND, CONFLICT, PRECONDITION_FAILED, …)',
  })
  code?: string;
  @ApiPropertyOptional({
    type: [FieldErrorDto],
    description: 'validation failures: every bad field by its path',
  })
  errors?: FieldErrorDto[];
}

/** `202 Accepted` of long work: the id to poll (the Location header names where). */
export class AcceptedResponseDto {
  @ApiProperty() id!: string;
}
