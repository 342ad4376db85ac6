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

/** A request body refused before parsing (too deep, too many keys): 400. */
export class BodyShapeError extends DomainError {
  /** Fastify answers with this status if the error is raised before Nest sees the request. */
  readonly statusCode = 400;

  constructor(message: string) {
    super(ErrorCode.Invalid, message);
  }
}
