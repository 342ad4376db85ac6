import { DomainError, ErrorCode } from '../../common/errors.js';

/** Turns text into an embedding of EMBEDDING_DIMENSIONS numbers (search `text` mode). */
export interface EmbeddingProvider {
  readonly name: string;
  embed(text: string): Promise<number[]>;
}

export const EMBEDDING_PROVIDER = Symbol('EMBEDDING_PROVIDER');

/** The provider failed or answered something unusable: 502 to our caller. */
export class EmbeddingProviderError extends DomainError {
  constructor(message: string) {
    super(ErrorCode.BadGateway, `embedding provider: ${message}`);
  }
}
