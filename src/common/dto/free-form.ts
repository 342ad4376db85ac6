import { ApiProperty } from '@nestjs/swagger';

/**
 * A JSON object whose members are reported as they are (plans, manifests, reports of
 * internal checks): documented as an open object rather than field by field.
 */
export function ApiFreeFormProperty(
  options: { description?: string; nullable?: boolean; isArray?: boolean } = {},
): PropertyDecorator {
  const object = { type: 'object', additionalProperties: true } as const;
  return options.isArray
    ? ApiProperty({ type: 'array', items: object, description: options.description })
    : ApiProperty({ ...object, nullable: options.nullable, description: options.description });
}
