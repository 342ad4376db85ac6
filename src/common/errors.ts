import { BadRequestException } from '@nestjs/common';

/** Stable error codes; each maps to one HTTP status in the global filter. */
export enum ErrorCode {
  NotFound = 'NOT_FOUND',
  Conflict = 'CONFLICT',
  PreconditionFailed = 'PRECONDITION_FAILED',
  DependencyUnavailable = 'DEPENDENCY_UNAVAILABLE',
  Timeout = 'TIMEOUT',
  BadGateway = 'BAD_GATEWAY',
  Invalid = 'INVALID',
  Forbidden = 'FORBIDDEN',
}

export class DomainError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class NotFoundError extends DomainError {
  constructor(what: string, id: string) {
    super(ErrorCode.NotFound, `${what} ${id} not found`);
  }
}

export class DependencyUnavailableError extends DomainError {
  constructor(message: string) {
    super(ErrorCode.DependencyUnavailable, message);
  }
}

/** A 400 from a service (a rule across fields, a limit the DTO cannot see), naming its fields. */
export class InvalidInputError extends DomainError {
  constructor(readonly errors: FieldError[]) {
    super(ErrorCode.Invalid, errors.map((e) => e.message).join('; '));
  }
}

/** A request body refused before parsing (too deep, too many keys): 400 naming `body`. */
export class BodyShapeError extends InvalidInputError {
  /** Fastify answers with this status if the error is raised before Nest sees the request. */
  readonly statusCode = 400;

  constructor(message: string) {
    super([{ field: 'body', message }]);
  }
}

/** One bad input: its JSON path (`items.3.title`, or a header or parameter name) and what is wrong. */
export interface FieldError {
  field: string;
  message: string;
}

/**
 * A 400 naming every bad field: `message` one string (the lines joined with "; "), and
 * `errors` the fields, as the validation pipe answers.
 */
export function invalidRequest(...errors: FieldError[]): BadRequestException {
  return new BadRequestException({ message: errors.map((e) => e.message).join('; '), errors });
}
