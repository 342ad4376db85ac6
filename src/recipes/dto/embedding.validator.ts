import { registerDecorator, ValidationOptions } from 'class-validator';
import { EMBEDDING_DIMENSIONS } from '../recipes.constants.js';

/** Why `value` is not a usable embedding, or null when it is. One tight loop, no per-element validators. */
export function embeddingProblem(value: unknown, dimensions = EMBEDDING_DIMENSIONS): string | null {
  if (!Array.isArray(value)) {
    return 'must be an array of numbers';
  }
  if (value.length !== dimensions) {
    return `must have exactly ${dimensions} numbers (got ${value.length})`;
  }
  let allZero = true;
  for (let i = 0; i < value.length; i++) {
    const v: unknown = value[i];
    if (typeof v !== 'number') {
      return `element ${i} is not a number`;
    }
    if (!Number.isFinite(v)) {
      return `element ${i} is not finite (NaN or Infinity)`;
    }
    if (v !== 0) {
      allZero = false;
    }
  }
  if (allZero) {
    // Cosine distance is undefined for the zero vector.
    return 'must not be all zeros';
  }
  return null;
}

export function IsEmbedding(options?: ValidationOptions): PropertyDecorator {
  return (target: object, propertyName: string | symbol) =>
    registerDecorator({
      name: 'isEmbedding',
      target: target.constructor,
      propertyName: propertyName.toString(),
      options,
      validator: {
        validate: (value: unknown) => embeddingProblem(value) === null,
        defaultMessage: (args) =>
          `${args?.property ?? 'embedding'} ${embeddingProblem(args?.value) ?? ''}`,
      },
    });
}
